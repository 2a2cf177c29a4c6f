"""HTTP: serves a published snapshot (/metrics, /health, /) and nothing else.

One asyncio event loop in one thread serves every listener of the process; h11 parses
HTTP/1.1. Resources are bounded whatever the clients do (docs/exporters.md "HTTP serving"):
at most ``max_connections`` open connections (a new one evicts the oldest connection that is
waiting for a request, else it is answered 503), a deadline for each request's head and
body, an idle keep-alive timeout, a deadline for writing an answer, and answers written in
slices under the transport's flow control, so a slow reader holds no copy of a body.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import html
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from typing import Any, Optional
from urllib.parse import urlsplit

import h11

from advisor_core import __version__ as VERSION

from .exposition import CONTENT_TYPE
from .http_policy import ClientLog, HttpLimits, accepts_gzip
from .publisher import ExporterState
from .refresh import Refresher

logger = logging.getLogger("exporters.http")

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
_LISTEN_BACKLOG = 1024
#: Answered to a connection over the limit when no open one can be evicted.
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
         b"Retry-After: 1\r\n\r\n")


class _Site:
    """One listener: the set it serves and its index page."""

    def __init__(self, sock: socket.socket, state: ExporterState) -> None:
        self.sock = sock
        self.state = state
        title = html.escape(f"advisor-core {state.metric_set.name} exporter {VERSION}")
        self.index = _INDEX.format(title=title).encode()

    def count(self, reason: str) -> None:
        errors = self.state.http_client_errors
        errors[reason] = errors.get(reason, 0) + 1


class _Connection(asyncio.Protocol):
    """One client connection: h11 in, sliced answers out, every wait under a deadline."""

    def __init__(self, server: Server, site: _Site) -> None:
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


class Server:
    """Every listener of a process on one asyncio loop in one thread.

    The sockets are bound by the constructor (an error is raised there, before any thread);
    ``start()`` serves, ``stop()`` closes every connection and returns within ~a second.
    """

    def __init__(self, sites: Sequence[tuple[tuple[str, int], ExporterState]],
                 refresher: Refresher, limits: Optional[HttpLimits] = None) -> None:
        self.refresher = refresher
        self.limits = HttpLimits() if limits is None else limits
        self.client_log = ClientLog()
        self.sites: list[_Site] = []
        try:
            for address, state in sites:
                sock = socket.create_server(address, backlog=_LISTEN_BACKLOG)
                sock.setblocking(False)
                self.sites.append(_Site(sock, state))
        except OSError:
            self.close_sockets()
            raise
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._loop_error)
        # Insertion order is admission order: the first waiting connection is the oldest.
        self._connections: dict[_Connection, None] = {}
        self._servers: list[asyncio.base_events.Server] = []
        self._thread: Optional[threading.Thread] = None
        self._date = (0, b"")

    @property
    def ports(self) -> dict[str, int]:
        """Bound port of each set, by set name."""
        return {site.state.metric_set.name: site.sock.getsockname()[1] for site in self.sites}

    def date(self) -> bytes:
        """The Date header value, formatted once per second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True).encode("ascii"))
        return self._date[1]

    def admit(self, connection: _Connection) -> bool:
        """Admit a new connection, evicting the oldest waiting one when at the limit."""
        if len(self._connections) >= self.limits.max_connections:
            victim = next((c for c in self._connections if not c.answering), None)
            if victim is None:
                return False
            self.forget(victim)
            victim.site.state.http_connections -= 1
            victim.evict()
        self._connections[connection] = None
        return True

    def forget(self, connection: _Connection) -> bool:
        """Drop a connection from the open set; False when it was not there."""
        return self._connections.pop(connection, False) is None

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # asyncio reports an accept() that failed for lack of descriptors (EMFILE) here and
        # retries a second later; one line, rate-limited, no traceback.
        exc = context.get("exception")
        if isinstance(exc, OSError):
            failed = context.get("socket")  # asyncio's wrapper of the listening socket
            fileno = failed.fileno() if failed is not None else -1
            for site in self.sites:
                if site.sock.fileno() == fileno:
                    site.count("accept_failed")
            self.client_log.warning("http: %s: %s", context.get("message"), exc)
            return
        loop.default_exception_handler(context)

    def start(self) -> None:
        """Serve every listener on the loop's thread."""
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            for site in self.sites:
                self._servers.append(self.loop.run_until_complete(self.loop.create_server(
                    functools.partial(_Connection, self, site), sock=site.sock)))
            self.loop.call_soon(ready.set)
            self.loop.run_forever()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

        self._thread = threading.Thread(target=run, name="http", daemon=True)
        self._thread.start()
        ready.wait(10.0)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting, drop every connection and end the loop's thread."""
        if self._thread is None:
            self.close_sockets()
            return

        def shutdown() -> None:
            for server in self._servers:
                server.close()
            for connection in list(self._connections):
                connection._abort()
            self._connections.clear()
            self.loop.call_soon(self.loop.stop)

        if self.loop.is_running():
            self.loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout)
        self.close_sockets()

    def close_sockets(self) -> None:
        """Close the listening sockets (idempotent)."""
        for site in self.sites:
            site.sock.close()
