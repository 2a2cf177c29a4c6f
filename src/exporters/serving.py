"""HTTP: serves a published snapshot (/metrics, /health, /) and nothing else.

One asyncio event loop in one thread serves every listener of the process. The server binds the
listeners, accepts on the loop (``loop.add_reader``) and bounds the open connections
(docs/exporters.md "HTTP serving"): at most ``max_connections``, a new one evicting the oldest
connection that is waiting for a request, else answered 503. Each client is an
``http_connection.Connection`` (h11 in, the snapshot out, every wait under a deadline).
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Optional

from .http_connection import BUSY, Connection, Site
from .http_policy import ClientLog, HttpLimits
from .listeners import bind_listeners, format_address
from .publisher import ExporterState
from .refresh import Refresher

#: Connections accepted per readable event of a listener, so that one busy port cannot hold the
#: loop from the others.
_ACCEPTS_PER_EVENT = 64
#: An accept that failed for lack of a resource is tried again this many seconds later.
_ACCEPT_RETRY = 1.0
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

logger = logging.getLogger("exporters")


class Server:
    """Every listener of a process on one asyncio loop in one thread.

    Each set listens on every address its host resolves to (``bind_listeners``). The sockets
    are bound by the constructor (an error is raised there, before any thread);
    ``start()`` serves, ``stop()`` closes every connection and returns within ~a second.
    """

    def __init__(self, sites: Sequence[tuple[tuple[str, int], ExporterState]],
                 refresher: Refresher, limits: Optional[HttpLimits] = None,
                 listeners: Optional[Sequence[Sequence[socket.socket]]] = None) -> None:
        self.refresher = refresher
        self.limits = HttpLimits() if limits is None else limits
        self.client_log = ClientLog()
        self.sites: list[Site] = []
        try:
            for index, ((host, port), state) in enumerate(sites):
                # ``listeners``: each site's sockets, already bound (runtime binds them first)
                bound = listeners[index] if listeners is not None else bind_listeners(host,
                                                                                      port)
                self.sites.extend(Site(sock, state) for sock in bound)
        except OSError:
            self.close_sockets()
            raise
        self.loop = asyncio.new_event_loop()
        # Insertion order is admission order: the first waiting connection is the oldest.
        self._connections: dict[Connection, None] = {}
        self._thread: Optional[threading.Thread] = None
        self._date = (0, b"")
        self._stopping = False

    @property
    def ports(self) -> dict[str, int]:
        """Bound port of each set, by set name."""
        return {site.state.metric_set.name: site.sock.getsockname()[1] for site in self.sites}

    @property
    def listening(self) -> list[tuple[str, str]]:
        """(set name, ``host:port``) of every listening socket."""
        return [(site.state.metric_set.name, format_address(site.sock.getsockname()))
                for site in self.sites]

    def date(self) -> bytes:
        """The Date header value, formatted once per second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True).encode("ascii"))
        return self._date[1]

    def admit(self, connection: Connection) -> bool:
        """Admit a new connection, evicting the oldest waiting one when at the limit."""
        if len(self._connections) >= self.limits.max_connections:
            victim = next((c for c in self._connections if not c.answering), None)
            if victim is None:
                return False
            victim.evict()
        self._connections[connection] = None
        return True

    def forget(self, connection: Connection) -> bool:
        """Drop a connection from the open set; False when it was not there."""
        return self._connections.pop(connection, False) is None

    def _accept(self, site: Site) -> None:
        """Accept the connections waiting on a listener and start serving each."""
        for _ in range(_ACCEPTS_PER_EVENT):
            try:
                sock, peer = site.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # the client left before it was accepted
                # No descriptor (or memory) for it: the client waits in the backlog.
                site.count("accept_failed")
                self.client_log.warning("http: %s: accept failed: %s; retrying in %.0f s",
                                        site.state.metric_set.name, exc, _ACCEPT_RETRY)
                self.loop.remove_reader(site.sock.fileno())
                self.loop.call_later(_ACCEPT_RETRY, self._listen, site)
                return
            sock.setblocking(False)
            connection = Connection(self, site, sock, peer)
            if not self.admit(connection):
                site.count("over_capacity")
                try:
                    sock.send(BUSY)
                except OSError:
                    pass
                sock.close()
                continue
            connection.open()

    def _listen(self, site: Site) -> None:
        if not self._stopping:
            self.loop.add_reader(site.sock.fileno(), self._accept, site)

    def start(self) -> None:
        """Serve every listener on the loop's thread."""
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            for site in self.sites:
                self._listen(site)
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
            self._stopping = True
            for site in self.sites:
                self.loop.remove_reader(site.sock.fileno())
            for connection in list(self._connections):
                connection.close()
            self.loop.call_soon(self.loop.stop)

        if self.loop.is_running():
            self.loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout)
        self.close_sockets()

    def close_sockets(self) -> None:
        """Close the listening sockets (idempotent)."""
        for site in self.sites:
            site.sock.close()
