"""One HTTP/1.1 client connection of the exporters' server: h11 in, a snapshot out.

The connection drives its own non-blocking socket on the server's asyncio loop: it reads when
the loop says the socket is readable and writes when it is writable (``loop.add_reader`` /
``add_writer``), and h11 turns the bytes into requests. It answers /metrics (plain or gzip, as
the client accepts), /health and / from the published snapshot of its listener's set, and keeps
every wait under a deadline (docs/exporters.md "HTTP serving"): the request head and body, the
idle keep-alive time and writing the answer, which goes out as views of the published bytes,
so a slow reader holds no copy of a body. A request that arrived with the connection is read
and answered in the callback that accepted it (benchmarks/README.md "Exporters": asyncio's
transports cost a scrape more than twice what the same bytes cost from ``http.server``).
``serving.Server`` owns the loop, the listeners and the connection limit.
"""

from __future__ import annotations

import html
import socket
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Optional

import h11

from advisor_core import __version__ as VERSION

from .exposition import CONTENT_TYPE
from .http_policy import accepts_gzip, framing_error, keeps_alive, request_path
from .publisher import ExporterState

if TYPE_CHECKING:
    import asyncio

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
#: Bytes asked of the socket per readable event.
_READ = 64 * 1024
#: Pieces up to this size are copied into one write with their neighbours (bytes).
_JOIN = 16 * 1024
_STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
                 for status in HTTPStatus}
#: h11's states of a client whose request has all arrived. A request asking for an Upgrade
#: (``curl --http2`` sends ``Upgrade: h2c``) or a CONNECT leaves h11 waiting for a protocol
#: switch this server never makes: its answer ends the cycle like any other.
_REQUEST_ENDED = (h11.DONE, h11.MIGHT_SWITCH_PROTOCOL)
#: Answered to a connection over the limit when no open one can be evicted.
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
        b"Retry-After: 1\r\n\r\n")


class Site:
    """One listener: the set it serves and its index page."""

    def __init__(self, sock: socket.socket, state: ExporterState) -> None:
        self.sock = sock
        self.state = state
        title = html.escape(f"advisor-core {state.metric_set.name} exporter {VERSION}")
        self.index = _INDEX.format(title=title).encode()

    def count(self, reason: str) -> None:
        """Count one client error of this listener's set under ``reason``."""
        errors = self.state.http_client_errors
        errors[reason] = errors.get(reason, 0) + 1


class Connection:
    """One client connection: h11 parses its requests, answers go out as views of the
    snapshot, every wait under a deadline."""

    def __init__(self, server: Server, site: Site, sock: socket.socket, peer: Any) -> None:
        self.server = server
        self.site = site
        self.sock = sock
        self.loop: asyncio.AbstractEventLoop = server.loop
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.answering = False  # an answer is being written (not evictable meanwhile)
        self.started_request = False  # bytes of the current request have arrived
        self._pending: Optional[Iterator[Any]] = None  # the answer's pieces not yet taken
        self._out: Optional[memoryview] = None  # what the socket has not taken of a piece
        self._reading = False  # registered with the loop for readable events
        self._writing = False  # registered with the loop for writable events
        self._eof = False
        self._answered_request = False  # the current request has been answered (or is)
        # What the current parser was fed until its request head came out (None after): the
        # framing check needs the raw fields h11 merges. A head that came in one read is that
        # read's bytes, not a copy; h11 refuses one that stays incomplete past MAX_HEAD_BYTES.
        self._head: Optional[bytes | bytearray] = b""
        self._close_after = False  # the answer being written ends the connection
        self._timer: Optional[asyncio.TimerHandle] = None
        self._deadline = 0.0  # loop time at which the current wait ends
        self._reason: Optional[str] = None  # counted when it does (None: a quiet close)
        self._closed = False
        self._opening = False  # in open(): deadlines are noted, the timer comes after
        self._nodelay = False  # TCP_NODELAY is set on the socket

    def open(self) -> None:
        """Start serving an admitted connection: read at once, as the request is often here."""
        self.site.state.http_connections += 1
        # A scraper's request is usually answered, and the connection closed, within this
        # call: the loop timer is made only for a connection that is left waiting.
        self._opening = True
        self._arm(self.server.limits.header_timeout, "header_timeout")
        self._safely(self._read)
        self._opening = False
        if not self._closed:
            self._timer = self.loop.call_at(self._deadline, self._safely, self._expired)

    def _safely(self, step: Callable[[], None]) -> None:
        """Run one of the loop's callbacks; an error nobody foresaw ends this connection alone,
        counted and logged in one line (no traceback per request)."""
        try:
            step()
        except Exception as exc:  # whatever it was, the server goes on
            self.site.count("internal_error")
            self.server.client_log.warning("%s: %s: closed on an internal error: %r",
                                           self.site.state.metric_set.name, self.peer, exc)
            self.close()

    # -- the socket -------------------------------------------------------------------------

    def _read(self) -> None:
        # Only called while no answer is being written: reading stops for the answer's time.
        if self._closed:
            return
        try:
            data = self.sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            self._want_read(True)
            return
        except OSError:  # reset by the client: it left
            if self.started_request and not self._answered_request:
                self.site.count("disconnected")  # as when it closes in the middle of a head
            self.close()
            return
        if not data:
            self._eof_received()
            return
        if not self.started_request:
            self.started_request = True
            self._arm(self.server.limits.header_timeout, "header_timeout")
        self._feed(data)
        self._process()
        if not self._closed:
            # Pipelined bytes wait in the kernel while an answer is out; none are read meanwhile.
            self._want_read(not self.answering)

    def _feed(self, data: bytes) -> None:
        """Give the current request's parser bytes received from the client."""
        head = self._head
        if head is not None and len(head) <= MAX_HEAD_BYTES:
            if not head:
                self._head = data
            else:  # a head in pieces: one growing buffer, not a copy per piece
                if not isinstance(head, bytearray):
                    self._head = head = bytearray(head)
                head += data
        self.http.receive_data(data)

    def _want_read(self, wanted: bool) -> None:
        if wanted and not self._reading and not self._eof:
            self.loop.add_reader(self.sock.fileno(), self._safely, self._read)
            self._reading = True
        elif not wanted and self._reading:
            self.loop.remove_reader(self.sock.fileno())
            self._reading = False

    def _flush(self) -> bool:
        """Hand the socket what it takes of the answer; True once all of it is out."""
        while not self._closed:
            if self._out is None:
                piece = next(self._pending, None) if self._pending is not None else None
                if piece is None:
                    self._pending = None
                    self._want_write(False)
                    return True
                self._out = memoryview(piece)
            try:
                sent = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                self._want_write(True)
                return False
            except OSError:  # the client went away mid-answer
                self.close()
                return False
            self._out = self._out[sent:] if sent < len(self._out) else None
        return False

    def _writable(self) -> None:
        if self._flush():
            self._answered()
            if not self._closed:
                self._process()  # pipelined requests already received
            if not self._closed:
                self._want_read(not self.answering)

    def _want_write(self, wanted: bool) -> None:
        if wanted and not self._writing:
            self.loop.add_writer(self.sock.fileno(), self._safely, self._writable)
            self._writing = True
        elif not wanted and self._writing:
            self.loop.remove_writer(self.sock.fileno())
            self._writing = False

    def _eof_received(self) -> None:
        self._eof = True
        self._want_read(False)
        if self.http.their_state is h11.IDLE or (self._answered_request
                                                 and not self.started_request):
            # Nothing or part of a request head, then the client went away: not malformed.
            if self.started_request:
                self.site.count("disconnected")
            self.close()
            return
        # A half-closed client still gets its answer; h11 then reports the connection closed.
        self.http.receive_data(b"")
        self._process()

    # -- requests ---------------------------------------------------------------------------

    def _process(self) -> None:
        while not self._closed and not self.answering:
            if self._answered_request and self.http.their_state in _REQUEST_ENDED \
                    and not self._next_cycle():
                return
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                # One pass over h11's header sequence (each item is a Python-level lookup).
                headers = list(event.headers)
                size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in headers)
                if size > MAX_HEAD_BYTES:  # a head that arrived whole in one read
                    self._bad_request(h11.RemoteProtocolError(
                        f"request head of {size} bytes, more than {MAX_HEAD_BYTES}", 431))
                    return
                head, self._head = self._head, None
                if head is not None and any(name == b"content-length"
                                            for name, _ in headers):
                    problem = framing_error(head)
                    if problem is not None:  # answered 400 and closed: nothing behind it
                        self._bad_request(h11.RemoteProtocolError(problem, 400))
                        return
                self._answer(event, headers)
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return
            # Data and EndOfMessage of a request: nothing to do with a body but read it.

    def _next_cycle(self) -> bool:
        """A request and its answer are done: the next request gets a parser of its own.

        h11 parses requests only: answers are written here, so each request starts a new
        ``h11.Connection`` fed with what its predecessor had received beyond its request.
        False while nothing of a next request has arrived: the keep-alive wait begins, and
        the parser is made when bytes come (most scrapers close instead; benchmarks/README.md
        "Idle CPU").
        """
        data, closed = self.http.trailing_data
        if not data and not closed:
            if self.started_request:  # the first look since the answer
                self.started_request = False
                self._arm(self.server.limits.idle_timeout, None)
            return False
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._answered_request = False
        self._head = b""
        self.started_request = bool(data)
        if data:
            self._feed(data)
            self._arm(self.server.limits.header_timeout, "header_timeout")
        else:
            self._arm(self.server.limits.idle_timeout, None)
        if closed:
            self.http.receive_data(b"")
        return True

    def _answer(self, request: h11.Request, fields: list[tuple[bytes, bytes]]) -> None:
        site = self.site
        headers: list[tuple[bytes, bytes]] = []
        body: Sequence[bytes]
        method = request.method
        # A method not served gets 405 whatever its target (CONNECT's is host:port).
        path = request_path(request.target.decode("latin-1")) \
            if method in (b"GET", b"HEAD") else ""
        if path is None:
            self._bad_request(h11.RemoteProtocolError("invalid request target", 400))
            return
        if method not in (b"GET", b"HEAD"):
            status, body, ctype = 405, (b"Method Not Allowed\n",), b"text/plain; charset=utf-8"
            headers.append((b"Allow", b"GET, HEAD"))
        elif path == "/metrics":
            accept = b", ".join(value for name, value in fields
                                if name == b"accept-encoding").decode("latin-1")
            status, ctype = 200, CONTENT_TYPE.encode("ascii")
            gzipped = accepts_gzip(accept)
            body = site.state.answer(gzipped, count=method == b"GET")
            if gzipped:
                headers.append((b"Content-Encoding", b"gzip"))
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
        self._answered_request = True
        connection = b",".join(value for name, value in fields
                               if name == b"connection").decode("latin-1")
        self._start_answer(status, ctype, body, headers,
                           close=not keeps_alive(request.http_version.decode(), connection),
                           head_only=method == b"HEAD")

    def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        self.site.count("bad_request")
        self.server.client_log.warning("%s: %s: malformed request (%s)",
                                       self.site.state.metric_set.name, self.peer, exc)
        if self._answered_request:  # the body of a request already answered went wrong
            self.close()
            return
        status = exc.error_status_hint
        self._start_answer(status, b"text/plain; charset=utf-8",
                           (f"{HTTPStatus(status).phrase}\n".encode(),), [], close=True)

    # -- answers ----------------------------------------------------------------------------

    def _start_answer(self, status: int, ctype: bytes, body: Sequence[bytes],
                      headers: list[tuple[bytes, bytes]], close: bool,
                      head_only: bool = False) -> None:
        length = sum(len(chunk) for chunk in body)
        sent = () if head_only else body
        if not self._nodelay and (not close or any(len(chunk) > _JOIN for chunk in sent)):
            # Without it the last piece of an answer written in several, or an answer that
            # follows another on a kept connection, waits for the client's delayed
            # acknowledgement. A single write that ends the connection goes at once.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._nodelay = True
        head = [_STATUS_LINES[status],
                b"Server: %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                % (_SERVER, self.server.date(), ctype, length)]
        head += [b"%s: %s\r\n" % header for header in headers]
        if close:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        self.answering = True
        self._close_after = close
        self._arm(self.server.limits.write_timeout, "write_timeout")
        self._pending = self._pieces(b"".join(head), sent)
        if self._flush():
            self._answered()  # _process goes on with the next request, if any

    @staticmethod
    def _pieces(head: bytes, body: Sequence[bytes]) -> Iterator[Any]:
        """The answer as the socket gets it: views of the body's chunks (no copy), small ones
        joined with the head so that a small answer is one write."""
        pending = bytearray(head)
        for chunk in body:
            if len(chunk) <= _JOIN:
                pending += chunk
                continue
            if pending:
                yield pending
                pending = bytearray()
            yield chunk
        if pending:
            yield pending

    def _answered(self) -> None:
        self.answering = False
        if self._close_after:
            self.close()
            return
        # A request body still coming has the request deadline; a new cycle gets the idle one.
        self._arm(self.server.limits.header_timeout, "header_timeout")

    # -- deadlines and closing --------------------------------------------------------------

    def _arm(self, seconds: float, reason: Optional[str]) -> None:
        # One loop timer per connection, moved only when a deadline comes earlier: re-arming
        # on every request costs a field write, not a timer.
        self._deadline, self._reason = self.loop.time() + seconds, reason
        if self._opening:
            return
        if self._timer is None or self._deadline < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(self._deadline, self._safely, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._closed:
            return
        if self._deadline > self.loop.time():
            self._timer = self.loop.call_at(self._deadline, self._safely, self._expired)
            return
        if self._reason is not None:
            self.site.count(self._reason)
            self.server.client_log.warning("%s: %s: closed after %s",
                                           self.site.state.metric_set.name, self.peer,
                                           self._reason.replace("_", " "))
        self.close()

    def evict(self) -> None:
        """Close this connection to make room for a new one (it waits for a request)."""
        self.site.count("evicted")
        self.close()

    def close(self) -> None:
        """Close the connection now, dropping whatever is left to write (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._pending = self._out = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._want_read(False)
        self._want_write(False)
        self.sock.close()
        if self.server.forget(self):
            self.site.state.http_connections -= 1
