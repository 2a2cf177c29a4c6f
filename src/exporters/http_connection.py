"""One HTTP/1.1 client connection of the exporters' server: h11 in, a snapshot out.

The protocol answers /metrics (plain or gzip, as the client accepts), /health and / from the
published snapshot of its listener's set, and keeps every wait under a deadline
(docs/exporters.md "HTTP serving"): the request head and body, the idle keep-alive time and
writing the answer, which goes out in slices under the transport's flow control, so a slow
reader holds no copy of a body. ``serving.Server`` owns the loop, the listeners and the
connection limit.
"""

from __future__ import annotations

import asyncio
import html
import socket
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

import h11

from advisor_core import __version__ as VERSION

from .exposition import CONTENT_TYPE
from .http_policy import accepts_gzip
from .publisher import ExporterState

if TYPE_CHECKING:
    from .serving import Server

_INDEX = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/health">/health</a></p>
</body></html>
"""

_SERVER = f"advisor-exporter/{VERSION}".encode("ascii")
#: The largest request head accepted (bytes); h11 answers a longer one as malformed.
MAX_HEAD_BYTES = 16 * 1024
#: Answers go to the transport in slices of this size (bytes), each written only while the
#: transport's buffer is below its high-water mark.
_SLICE = 256 * 1024
_HIGH_WATER = 256 * 1024
#: Pieces up to this size are copied into one write with their neighbours (bytes).
_JOIN = 16 * 1024
#: Answered to a connection over the limit when no open one can be evicted.
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
         b"Retry-After: 1\r\n\r\n")


class Site:
    """One listener: the set it serves and its index page."""

    def __init__(self, sock: socket.socket, state: ExporterState) -> None:
        self.sock = sock
        self.state = state
        title = html.escape(f"advisor-core {state.metric_set.name} exporter {VERSION}")
        self.index = _INDEX.format(title=title).encode()

    def count(self, reason: str) -> None:
        errors = self.state.http_client_errors
        errors[reason] = errors.get(reason, 0) + 1


class Connection(asyncio.Protocol):
    """One client connection: h11 in, sliced answers out, every wait under a deadline."""

    def __init__(self, server: Server, site: Site) -> None:
        self.server = server
        self.site = site
        self.transport: Optional[asyncio.Transport] = None
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.peer = "?"
        self.answering = False  # an answer is being written (not evictable meanwhile)
        self.started_request = False  # bytes of the current request have arrived
        self._writing = True  # the transport accepts more (flow control)
        self._pending: Optional[Iterator[Any]] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._closed = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if not self.server.admit(self):
            self.site.count("over_capacity")
            transport.write(_BUSY)
            self._close()
            return
        self.site.state.http_connections += 1
        self._arm(self.server.limits.header_timeout, "header_timeout")

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if not self.started_request and not self.answering:
            self.started_request = True
            self._arm(self.server.limits.header_timeout, "header_timeout")
        self.http.receive_data(data)
        if self.answering:
            # Pipelined bytes wait in h11 until the answer is out; no more are read meanwhile.
            self.transport.pause_reading()  # type: ignore[union-attr]
            return
        self._process()

    def eof_received(self) -> bool:
        if self._closed:
            return False
        if self.http.their_state is h11.IDLE and not self.answering:
            # Nothing or part of a request head, then the client went away: not malformed.
            if self.started_request:
                self.site.count("disconnected")
            self._close()
            return False
        self.http.receive_data(b"")
        if not self.answering:
            self._process()
        return True  # keep the write half open until the answer is out

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self._closed:
            self._closed = True
        self._pending = None
        if self.server.forget(self):
            self.site.state.http_connections -= 1

    def pause_writing(self) -> None:
        self._writing = False

    def resume_writing(self) -> None:
        self._writing = True
        self._pump()

    # -- requests ---------------------------------------------------------------------------

    def _process(self) -> None:
        while not self._closed and not self.answering:
            if self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
                self.http.start_next_cycle()
                self.started_request = False
                self._arm(self.server.limits.idle_timeout, None)
                self.transport.resume_reading()  # type: ignore[union-attr]
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
                if size > MAX_HEAD_BYTES:  # a head that arrived whole in one read
                    self._bad_request(h11.RemoteProtocolError(
                        f"request head of {size} bytes, more than {MAX_HEAD_BYTES}", 431))
                    return
                self._answer(event)
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return
            # Data and EndOfMessage of a request: nothing to do with a body but read it.

    def _answer(self, request: h11.Request) -> None:
        site = self.site
        headers: list[tuple[bytes, bytes]] = []
        body: Sequence[bytes]
        method = request.method
        path = urlsplit(request.target.decode("latin-1")).path
        if method not in (b"GET", b"HEAD"):
            status, body, ctype = 405, (b"Method Not Allowed\n",), b"text/plain; charset=utf-8"
            headers.append((b"Allow", b"GET, HEAD"))
        elif path == "/metrics":
            plain, compressed = site.state.chunks
            accept = b", ".join(value for name, value in request.headers
                                if name == b"accept-encoding").decode("latin-1")
            status, ctype = 200, CONTENT_TYPE.encode("ascii")
            if accepts_gzip(accept):
                body = compressed
                headers.append((b"Content-Encoding", b"gzip"))
            else:
                body = plain
            headers.append((b"Vary", b"Accept-Encoding"))
        elif path == "/health":
            ctype = b"text/plain; charset=utf-8"
            if self.server.refresher.is_alive():
                status, body = 200, (b"OK\n",)
            else:
                status, body = 503, (b"refresh thread stopped\n",)
        elif path == "/":
            status, body, ctype = 200, (site.index,), b"text/html; charset=utf-8"
        else:
            status, body, ctype = 404, (b"Not Found\n",), b"text/plain; charset=utf-8"
        length = sum(len(chunk) for chunk in body)
        head = [(b"Server", _SERVER), (b"Date", self.server.date()), (b"Content-Type", ctype),
                (b"Content-Length", str(length).encode("ascii")), *headers]
        self._start_answer(status, head, () if method == b"HEAD" else body)

    def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        self.site.count("bad_request")
        self.server.client_log.warning("%s: %s: malformed request (%s)",
                                       self.site.state.metric_set.name, self.peer, exc)
        if self.http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            text = f"{HTTPStatus(status).phrase}\n".encode()
            head = [(b"Server", _SERVER), (b"Date", self.server.date()),
                    (b"Content-Type", b"text/plain; charset=utf-8"),
                    (b"Content-Length", str(len(text)).encode("ascii")),
                    (b"Connection", b"close")]
            self._start_answer(status, head, (text,))
        else:
            self._close()

    # -- answers ----------------------------------------------------------------------------

    def _start_answer(self, status: int, head: list, body: Sequence[bytes]) -> None:
        try:
            response = h11.Response(status_code=status, headers=head,
                                    reason=HTTPStatus(status).phrase.encode("ascii"))
            parts = self.http.send_with_data_passthrough(response) or []
        except h11.LocalProtocolError:
            self._close()
            return
        self.answering = True
        self._arm(self.server.limits.write_timeout, "write_timeout")
        self._pending = self._slices(b"".join(parts), body)
        self._pump()

    def _slices(self, head: bytes, body: Sequence[bytes]) -> Iterator[Any]:
        """The answer in pieces of at most ``_SLICE`` bytes: views of the body's chunks (no
        copy), small ones joined with the head so that a small answer is one write."""
        pending = bytearray(head)
        for chunk in body:
            view = memoryview(chunk)
            for start in range(0, len(view), _SLICE):
                piece: Any = view[start:start + _SLICE]  # h11 passes any bytes-like through
                for part in self.http.send_with_data_passthrough(h11.Data(data=piece)) or ():
                    if len(part) <= _JOIN and len(pending) + len(part) <= _SLICE:
                        pending += part
                        continue
                    if pending:
                        yield pending
                        pending = bytearray()
                    yield part
        for part in self.http.send_with_data_passthrough(h11.EndOfMessage()) or ():
            pending += part
        if pending:
            yield pending

    def _pump(self) -> None:
        transport = self.transport
        while self._pending is not None and self._writing and not self._closed:
            piece = next(self._pending, None)
            if piece is None:
                self._pending = None
                self._answered()
                return
            if piece:
                transport.write(piece)  # type: ignore[union-attr]

    def _answered(self) -> None:
        self.answering = False
        if self.http.our_state is h11.MUST_CLOSE or self.http.their_state in (h11.MUST_CLOSE,
                                                                               h11.CLOSED):
            self._close()
            return
        # A request body still coming has the request deadline; a new cycle gets the idle one.
        self._arm(self.server.limits.header_timeout, "header_timeout")
        self.transport.resume_reading()  # type: ignore[union-attr]
        self._process()

    # -- deadlines and closing --------------------------------------------------------------

    def _arm(self, seconds: float, reason: Optional[str]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.server.loop.call_later(seconds, self._expired, reason)

    def _expired(self, reason: Optional[str]) -> None:
        self._timer = None
        if self._closed:
            return
        if reason is not None:
            self.site.count(reason)
            self.server.client_log.warning("%s: %s: closed after %s",
                                           self.site.state.metric_set.name, self.peer,
                                           reason.replace("_", " "))
        self._abort()

    def evict(self) -> None:
        """Close this connection to make room for a new one (it waits for a request)."""
        self.site.count("evicted")
        self._abort()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transport.close()  # type: ignore[union-attr]

    def _abort(self) -> None:
        self._closed = True
        self._pending = None
        self.transport.abort()  # type: ignore[union-attr]
