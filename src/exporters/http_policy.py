"""The HTTP layer's rules that need no socket: limits, gzip, keep-alive, body framing, client
logging.

``exporters.serving`` and ``exporters.http_connection`` apply them to connections
(docs/exporters.md "HTTP serving").
"""

from __future__ import annotations

import functools
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["ClientLog", "HttpLimits", "accepts_gzip", "framing_error", "keeps_alive",
           "request_path"]

logger = logging.getLogger("exporters.http")


@dataclass(frozen=True)
class HttpLimits:
    """Bounds of the HTTP layer: connections per process and deadlines in seconds."""

    max_connections: int = 512
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    write_timeout: float = 30.0


@functools.lru_cache(maxsize=64)  # a scraper sends the same header every time
def accepts_gzip(header: Optional[str]) -> bool:
    """Return True when an Accept-Encoding header allows gzip (q > 0).

    An explicit ``gzip`` wins over ``*`` wherever each stands (RFC 9110 §12.5.3): ``*;q=0,
    gzip`` is gzip, ``gzip;q=0, *`` is not.
    """
    if not header:
        return False
    qualities: dict[str, float] = {}
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        token = token.strip().lower()
        if token not in ("gzip", "*") or token in qualities:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[token] = quality
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0


#: What a request target may hold: visible ASCII (RFC 9112 §3.2; h11 refuses the rest too).
_TARGET = re.compile(r"[\x21-\x7e]+")
#: Absolute form: an http(s) URI's authority, then its path up to the query or fragment.
_ABSOLUTE = re.compile(r"(?i:https?)://([^/?#]*)([^?#]*)")
_ORIGIN_PATH = re.compile(r"[^?#]*")


def request_path(target: str) -> Optional[str]:
    """The path of a request target (RFC 9112 §3.2): origin form ``/metrics?x``, absolute form
    ``http://host/metrics`` (an empty path is ``/``) or ``*``; None for anything else
    (``mailto:/x``, ``http://[::1/x``, control or non-ASCII characters)."""
    if not _TARGET.fullmatch(target):
        return None
    if target.startswith("/"):
        return _ORIGIN_PATH.match(target).group()  # type: ignore[union-attr]
    if target == "*":
        return target
    absolute = _ABSOLUTE.match(target)
    if absolute is None:
        return None
    authority, path = absolute.groups()
    brackets = authority.count("[")
    if brackets > 1 or brackets != authority.count("]"):  # an IPv6 literal is one [...]
        return None
    return path or "/"


def keeps_alive(http_version: str, connection: str) -> bool:
    """Return True when a request lets its connection stay open after the answer.

    HTTP/1.1 keeps it unless the Connection header has the ``close`` option; an HTTP/1.0
    client is answered and closed (its keep-alive extension is not offered).
    """
    if http_version != "1.1":
        return False
    return "close" not in (token.strip().lower() for token in connection.split(","))


#: The blank line that ends a request head (h11 accepts bare LF line ends too).
_HEAD_END = re.compile(rb"\n\r?\n")


def framing_error(head: bytes | bytearray) -> Optional[str]:
    """Why the body framing of a request head is ambiguous, or None when it is not.

    ``head`` holds the request's bytes from its request line on, at least up to the blank
    line. RFC 9112 §6.1 and §6.3: a request with both Content-Length and Transfer-Encoding, or
    with more than one Content-Length value (repeated fields or a list, equal or not), must be
    answered 400 and its connection closed, since a proxy in front may have framed it
    differently (request smuggling). h11 rejects an invalid or conflicting value itself, but
    accepts both headers (Transfer-Encoding wins) and merges equal repeated values.
    """
    end = _HEAD_END.search(head)
    lengths, chunked = 0, False
    for line in head[:end.start() if end else len(head)].split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name = name.lower()
        if name == b"content-length":
            lengths += value.count(b",") + 1
        elif name == b"transfer-encoding":
            chunked = True
    if lengths and chunked:
        return "both Content-Length and Transfer-Encoding"
    if lengths > 1:
        return "more than one Content-Length"
    return None


class ClientLog:
    """One log line per misbehaving client, at most ``burst`` lines per ``period`` seconds.

    Lines beyond the budget are counted and the count is added to the next line written.
    """

    def __init__(self, burst: int = 5, period: float = 10.0) -> None:
        self.burst, self.period = burst, period
        self._window_start = -period
        self._written = 0
        self._suppressed = 0

    def warning(self, message: str, *args: Any) -> None:
        """Log ``message % args`` as a warning unless the budget of this period is spent."""
        now = time.monotonic()
        if now - self._window_start >= self.period:
            self._window_start, self._written = now, 0
        if self._written >= self.burst:
            self._suppressed += 1
            return
        self._written += 1
        if self._suppressed:
            message += " (%d similar lines suppressed)"
            args = (*args, self._suppressed)
            self._suppressed = 0
        logger.warning(message, *args)
