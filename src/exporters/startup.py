"""Answers on the bound ports while the first refresh runs, before the HTTP layer is loaded.

The ports are bound before the first refresh (however long it takes, a scrape must get a body,
not a refused connection), but the HTTP layer (asyncio and h11, ~1.8 MB resident) is imported
after it, into the memory the loaded file left free: loaded first, it stacks on the refresh's
peak (benchmarks/README.md, the cost exporter's 35 MB target). Meanwhile this thread answers
each connection once and closes it: ``/metrics`` gets the set's body (``<set>_exporter_up`` 0,
``<set>_exporter_starting`` 1; gzip when accepted), ``/health`` 200, another path 404, a
method other than GET or HEAD 405, a request line it cannot read 400.

Connections are served together on non-blocking sockets (``selectors``), so a slow or silent
client never holds up another: each has 1 s from its accept to send its request head (up to
16 KiB, CRLF or bare LF line ends) and take its answer, then it is closed; at most
``max_clients`` are open, the oldest closed to make room. ``stop()`` accepts no more clients,
gives those accepted 0.2 s to be answered, closes the rest and returns; the listening sockets
stay open, and connections waiting in their backlog are then the server proper's.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from typing import Optional

from .exposition import CONTENT_TYPE
from .http_policy import accepts_gzip, request_path
from .publisher import ExporterState

__all__ = ["StartupResponder"]

logger = logging.getLogger("exporters")

#: Time a client has from its accept to its answer sent (seconds).
_CLIENT_SECONDS = 1.0
_MAX_HEAD = 16 * 1024
#: Connections open at once; the oldest is closed to make room for a new one.
MAX_CLIENTS = 256
#: Connections accepted per listening socket and wake-up (the rest wait in the backlog).
_ACCEPTS_PER_WAKE = 64
#: At ``stop()``, how long the clients already accepted may still be answered (seconds).
_DRAIN_SECONDS = 0.2
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TEXT = b"text/plain; charset=utf-8"


class _Client:
    """One accepted connection: its request head so far, then the answer still to send."""

    __slots__ = ("deadline", "head", "out", "sock", "state")

    def __init__(self, sock: socket.socket, state: ExporterState, deadline: float) -> None:
        self.sock, self.state, self.deadline = sock, state, deadline
        self.head = bytearray()
        self.out: Optional[memoryview] = None


def answer(head: bytes, state: ExporterState) -> bytes:
    """The whole HTTP answer (status line to body) to a request head of the start-up phase."""
    lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
    words = lines[0].split()
    ctype, extra = _TEXT, b""
    path = None
    if len(words) == 3:  # a method not served gets 405 whatever its target, as in the server
        path = request_path(words[1].decode("latin-1")) if words[0] in (b"GET", b"HEAD") else ""
    if path is None or not words[2].startswith(b"HTTP/"):
        status, body = b"400 Bad Request", b"Bad Request\n"
    elif words[0] not in (b"GET", b"HEAD"):
        status, body, extra = b"405 Method Not Allowed", b"Method Not Allowed\n", \
            b"Allow: GET, HEAD\r\n"
    else:
        if path == "/metrics":
            accept = b", ".join(line.split(b":", 1)[1].strip() for line in lines[1:]
                                if line.lower().startswith(b"accept-encoding:"))
            gzipped = accepts_gzip(accept.decode("latin-1"))
            status, body = b"200 OK", b"".join(state.answer(gzipped, count=words[0] == b"GET"))
            ctype = CONTENT_TYPE.encode("ascii")
            extra = b"Content-Encoding: gzip\r\n" if gzipped else b""
        elif path == "/health":
            status, body = b"200 OK", b"OK\n"
        else:
            status, body = b"404 Not Found", b"Not Found\n"
        if words[0] == b"HEAD":
            return (b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s"
                    b"Connection: close\r\n\r\n" % (status, ctype, len(body), extra))
    return (b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s"
            b"Connection: close\r\n\r\n%s" % (status, ctype, len(body), extra, body))


class StartupResponder(threading.Thread):
    """Serves ``sites`` ((listening sockets, state) pairs) until ``stop()``."""

    def __init__(self, sites: Sequence[tuple[Sequence[socket.socket], ExporterState]],
                 max_clients: int = MAX_CLIENTS) -> None:
        super().__init__(name="http-startup", daemon=True)
        self._sites = [(sock, state) for socks, state in sites for sock in socks]
        self._max_clients = max(1, max_clients)
        self._read, self._write = os.pipe()
        self._stop_lock = threading.Lock()
        self._clients: dict[int, _Client] = {}  # by descriptor, oldest first

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._read, selectors.EVENT_READ, None)
            for sock, state in self._sites:
                selector.register(sock, selectors.EVENT_READ, state)
            draining: Optional[float] = None  # monotonic end of the hand-over's grace
            while draining is None or (self._clients and time.monotonic() < draining):
                now = time.monotonic()
                for fd in [fd for fd, client in self._clients.items() if client.deadline <= now]:
                    self._close(selector, fd)  # too slow: the whole request had a second
                due = [c.deadline for c in self._clients.values()]
                if draining is not None:
                    due.append(draining)
                timeout = min(due) - now if due else None
                for key, _ in selector.select(timeout):
                    if key.fileobj == self._read:
                        # Stop: no new client; those accepted get a moment to be answered
                        # (a scrape at the hand-over is answered, not reset), then closed.
                        draining = time.monotonic() + _DRAIN_SECONDS
                        selector.unregister(self._read)
                        for sock, _ in self._sites:
                            selector.unregister(sock)
                        continue
                    if isinstance(key.data, ExporterState) and draining is None:
                        self._accept(selector, key.fileobj, key.data)  # type: ignore[arg-type]
                    elif key.fd in self._clients:
                        self._serve(selector, key.fd)
        except Exception:  # never the process: the server proper takes the sockets over
            logger.exception("start-up responder failed")
        finally:
            for fd in list(self._clients):
                self._close(selector, fd)
            selector.close()
            os.close(self._read)

    def _accept(self, selector: selectors.BaseSelector, listener: socket.socket,
                state: ExporterState) -> None:
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                sock, _ = listener.accept()
            except OSError:  # none left, gone before accepted, or no descriptor: it waits
                return
            sock.setblocking(False)
            if len(self._clients) >= self._max_clients:
                self._close(selector, next(iter(self._clients)))
            client = _Client(sock, state, time.monotonic() + _CLIENT_SECONDS)
            self._clients[sock.fileno()] = client
            selector.register(sock, selectors.EVENT_READ, client)

    def _serve(self, selector: selectors.BaseSelector, fd: int) -> None:
        """Read what a client sent, or send what it is owed; close it when done or broken."""
        client = self._clients[fd]
        try:
            if client.out is None:
                data = client.sock.recv(4096)
                if not data:
                    self._close(selector, fd)
                    return
                client.head += data
                end = _HEAD_END.search(client.head)
                if end is None and len(client.head) < _MAX_HEAD:
                    return
                head = bytes(client.head[:end.start()] if end else client.head)
                client.out = memoryview(
                    answer(head, client.state) if end else
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n")
                selector.modify(client.sock, selectors.EVENT_WRITE, client)
            sent = client.sock.send(client.out)
            client.out = client.out[sent:]
            if not client.out:
                self._close(selector, fd)
        except BlockingIOError:
            pass
        except Exception as exc:  # a client that misbehaves or leaves: never the thread
            logger.debug("start-up answer failed: %r", exc)
            self._close(selector, fd)

    def _close(self, selector: selectors.BaseSelector, fd: int) -> None:
        client = self._clients.pop(fd)
        try:
            selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()

    def stop(self) -> None:
        """End the thread within 0.2 s (the clients accepted are answered or closed), and leave
        the listening sockets open (idempotent; any thread)."""
        with self._stop_lock:
            if self._write < 0:
                return
            os.write(self._write, b"!")
            self.join()
            os.close(self._write)
            self._write = -1
