"""HTTP: serves a published snapshot (/metrics, /health, /) and nothing else."""

from __future__ import annotations

import html
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import urlsplit

from advisor_core import __version__ as VERSION

from .exposition import CONTENT_TYPE
from .publisher import ExporterState
from .refresh import Refresher

_INDEX = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/health">/health</a></p>
</body></html>
"""


def _accepts_gzip(header: Optional[str]) -> bool:
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "advisor-exporter/" + VERSION

    def version_string(self) -> str:
        """Server header without the Python version."""
        return self.server_version
    timeout = 30  # idle keep-alive connections do not pin a thread forever

    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Access log suppressed (scrapes every second would flood it)."""

    def _send(self, status: int, body: Sequence[bytes], content_type: str, head: bool,
              headers: Sequence[tuple[str, str]] = ()) -> None:
        # The head is written here rather than by send_header()/end_headers(), which would send
        # it on its own: it goes out with the body in one write.
        fields = [
            ("Server", self.version_string()),
            ("Date", self.date_time_string()),
            ("Content-Type", content_type),
            ("Content-Length", str(sum(len(chunk) for chunk in body))),
            *headers,
        ]
        head_bytes = "".join([
            f"{self.protocol_version} {status} {HTTPStatus(status).phrase}\r\n",
            *(f"{key}: {value}\r\n" for key, value in fields),
            "\r\n",
        ]).encode("latin-1")
        _send_all(self.connection, (head_bytes,) if head else (head_bytes, *body))

    def _serve(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            plain, compressed = self.server.state.chunks
            if _accepts_gzip(self.headers.get("Accept-Encoding")):
                self._send(200, compressed, CONTENT_TYPE, head,
                           (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")))
            else:
                self._send(200, plain, CONTENT_TYPE, head, (("Vary", "Accept-Encoding"),))
        elif path == "/health":
            if self.server.refresher.is_alive():
                self._send(200, (b"OK\n",), "text/plain; charset=utf-8", head)
            else:
                self._send(503, (b"refresh thread stopped\n",), "text/plain; charset=utf-8",
                           head)
        elif path == "/":
            self._send(200, (self.server.index,), "text/html; charset=utf-8", head)
        else:
            self._send(404, (b"Not Found\n",), "text/plain; charset=utf-8", head)

    def do_GET(self) -> None:
        """Serve /metrics, /health, / (GET)."""
        self._serve(head=False)

    def do_HEAD(self) -> None:
        """Serve /metrics, /health, / (HEAD: headers only)."""
        self._serve(head=True)


#: Buffers handed to one sendmsg call (Linux's IOV_MAX is 1024).
_MAX_BUFFERS = 512


def _send_all(sock: Any, buffers: Sequence[bytes]) -> None:
    """Write the buffers back to back: one gathering sendmsg per call where the OS has it.

    A scrape answer is the headers and a few dozen pre-rendered chunks; one system call for all
    of them instead of one per chunk.
    """
    if not hasattr(sock, "sendmsg"):  # Windows
        for buffer in buffers:
            sock.sendall(buffer)
        return
    pending = [memoryview(buffer) for buffer in buffers if buffer]
    while pending:
        sent = sock.sendmsg(pending[:_MAX_BUFFERS])
        while sent:
            size = len(pending[0])
            if sent < size:
                pending[0] = pending[0][sent:]
                break
            sent -= size
            pending.pop(0)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: ExporterState, refresher: Refresher):
        self.state = state
        self.refresher = refresher
        title = html.escape(f"advisor-core {state.metric_set.name} exporter {VERSION}")
        self.index = _INDEX.format(title=title).encode()
        super().__init__(address, _Handler)

