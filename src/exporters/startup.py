"""Answers on the bound ports while the first refresh runs, before the HTTP layer is loaded.

The ports are bound before the first refresh (however long it takes, a scrape must get a body,
not a refused connection), but the HTTP layer (asyncio and h11, ~1.8 MB resident) is imported
after it, into the memory the loaded file left free: loaded first, it stacks on the refresh's
peak (benchmarks/README.md, the cost exporter's 35 MB target). Meanwhile this thread answers
each connection once and closes it: ``/metrics`` gets the set's body (``<set>_exporter_up`` 0,
``<set>_exporter_starting`` 1; gzip when accepted), ``/health`` 200, anything else 404. Every
read and write has a 1 s deadline, and a request head is read up to 16 KiB; the thread ends as
soon as the server proper takes the same sockets over (connections waiting in the backlog are
then its own).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from collections.abc import Sequence

from .exposition import CONTENT_TYPE
from .http_policy import accepts_gzip
from .publisher import ExporterState

__all__ = ["StartupResponder"]

logger = logging.getLogger("exporters")

#: Deadline of each read and write of one client (seconds).
_CLIENT_SECONDS = 1.0
_MAX_HEAD = 16 * 1024


class StartupResponder(threading.Thread):
    """Serves ``sites`` ((listening sockets, state) pairs) until ``stop()``."""

    def __init__(self, sites: Sequence[tuple[Sequence[socket.socket], ExporterState]]) -> None:
        super().__init__(name="http-startup", daemon=True)
        self._listeners = {sock.fileno(): (sock, state) for socks, state in sites
                           for sock in socks}
        self._read, self._write = os.pipe()

    def run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([*self._listeners, self._read], [], [])
                if self._read in ready:
                    return
                for fd in ready:
                    sock, state = self._listeners[fd]
                    try:
                        client, _ = sock.accept()
                    except OSError:  # gone before accepted, or no descriptor: it waits
                        continue
                    self._answer(client, state)
        finally:
            os.close(self._read)

    @staticmethod
    def _answer(client: socket.socket, state: ExporterState) -> None:
        """Read one request head and answer it; always closes ``client``."""
        try:
            client.settimeout(_CLIENT_SECONDS)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < _MAX_HEAD:
                data = client.recv(4096)
                if not data:
                    break
                head += data
            lines = head.split(b"\r\n")
            words = lines[0].split()
            path = words[1].split(b"?")[0] if len(words) == 3 else b""
            ctype, extra = b"text/plain; charset=utf-8", b""
            if path == b"/metrics":
                accept = b", ".join(line.split(b":", 1)[1].strip() for line in lines[1:]
                                    if line.lower().startswith(b"accept-encoding:"))
                gzipped = accepts_gzip(accept.decode("latin-1"))
                status, body = b"200 OK", b"".join(state.answer(gzipped))
                ctype = CONTENT_TYPE.encode("ascii")
                extra = b"Content-Encoding: gzip\r\n" if gzipped else b""
            elif path == b"/health":
                status, body = b"200 OK", b"OK\n"
            else:
                status, body = b"404 Not Found", b"Not Found\n"
            if words[:1] == [b"HEAD"]:
                body = b""
            client.sendall(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s"
                           b"Connection: close\r\n\r\n%s" % (status, ctype, len(body), extra, body))
        except Exception as exc:  # a client that misbehaves or leaves: never the process
            logger.debug("start-up answer failed: %r", exc)
        finally:
            client.close()

    def stop(self) -> None:
        """End the thread (within a client's deadline) and leave the sockets open."""
        os.write(self._write, b"!")
        self.join()
        os.close(self._write)
