"""The HTTP layer's rules that need no socket: limits, gzip and keep-alive, client logging.

``exporters.serving`` and ``exporters.http_connection`` apply them to connections
(docs/exporters.md "HTTP serving").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["ClientLog", "HttpLimits", "accepts_gzip", "keeps_alive"]

logger = logging.getLogger("exporters.http")


@dataclass(frozen=True)
class HttpLimits:
    """Bounds of the HTTP layer: connections per process and deadlines in seconds."""

    max_connections: int = 512
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    write_timeout: float = 30.0


def accepts_gzip(header: Optional[str]) -> bool:
    """Return True when an Accept-Encoding header allows gzip (q > 0)."""
    if not header:
        return False
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() not in ("gzip", "*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        return quality > 0
    return False


def keeps_alive(http_version: str, connection: str) -> bool:
    """Return True when a request lets its connection stay open after the answer.

    HTTP/1.1 keeps it unless the Connection header has the ``close`` option; an HTTP/1.0
    client is answered and closed (its keep-alive extension is not offered).
    """
    if http_version != "1.1":
        return False
    return "close" not in (token.strip().lower() for token in connection.split(","))


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
