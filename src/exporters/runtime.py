"""Process lifecycle: servers and the refresh thread, SIGTERM/SIGINT, malloc tuning, main."""

from __future__ import annotations

import argparse
import logging
import os
import resource
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._promql import PromClient
from .families import BodyBudget
from .http_policy import HttpLimits
from .listeners import bind_listeners, format_address
from .metric_set import MetricSet
from .publisher import ExporterState
from .refresh import ReadLimits, Refresher
from .settings import parse_settings, port_of
from .startup import StartupResponder

if TYPE_CHECKING:
    from .serving import Server

logger = logging.getLogger("exporters")


class Exporters:
    """The running HTTP server and refresh thread; ``stop()`` ends everything."""

    def __init__(self, server: Server, refresher: Refresher, prom: PromClient) -> None:
        self.server = server
        self.refresher = refresher
        self.prom = prom

    @property
    def ports(self) -> dict[str, int]:
        """Bound port of each set, by set name."""
        return self.server.ports

    def start(self) -> None:
        """Start the refresh thread, then serve (/health asks whether it runs)."""
        self.refresher.start()
        self.server.start()

    def stop(self) -> None:
        """Stop serving and refreshing (returns within about a second whatever the clients do)."""
        self.refresher.stop()
        self.server.stop()
        self.refresher.join(timeout=0.3)
        self.prom.close()


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-file limit towards ``wanted`` (within the hard limit); return it."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    return wanted if soft == resource.RLIM_INFINITY else soft


#: Descriptors kept for files, the VictoriaMetrics client, logging and the loop itself.
_RESERVED_FDS = 64


def http_limits(settings: argparse.Namespace) -> HttpLimits:
    """The HTTP bounds of the flags; connections capped by what the fd limit allows."""
    wanted = int(settings.max_connections)
    allowed = raise_fd_limit(wanted + _RESERVED_FDS) - _RESERVED_FDS
    if allowed < wanted:
        logger.warning("open-file limit allows %d connections, not the %d asked for",
                       max(allowed, 1), wanted)
    return HttpLimits(max_connections=max(1, min(wanted, allowed)),
                      header_timeout=settings.header_timeout,
                      idle_timeout=settings.idle_timeout)


class Startup:
    """An exporter process between binding its ports and serving them with the HTTP layer:
    ``StartupResponder`` answers while ``first_refresh`` runs; then ``finish`` or ``abandon``."""

    def __init__(self, metric_sets: Sequence[MetricSet], settings: argparse.Namespace) -> None:
        """Bind every set's port and start answering on it. Raises OSError when a port cannot
        be bound (nothing is left open then)."""
        self.settings = settings
        self.prom = PromClient(getattr(settings, "prometheus_url", None))
        self.states = [ExporterState(metric_set, self.prom) for metric_set in metric_sets]
        for state in self.states:
            state.publish()  # up 0, starting 1: what a scrape gets until the first refresh is done
        self.addresses = [(settings.listen_address, port_of(settings, state.metric_set))
                          for state in self.states]
        self.listeners: list[list[socket.socket]] = []
        try:
            for host, port in self.addresses:
                self.listeners.append(bind_listeners(host, port))
        except OSError:
            for sock in (sock for bound in self.listeners for sock in bound):
                sock.close()
            self.prom.close()
            raise
        self.responder = StartupResponder(list(zip(self.listeners, self.states)))
        self.responder.start()
        limits = ReadLimits(max_bytes=settings.max_file_bytes,
                            max_scenarios=settings.max_scenarios,
                            max_text=settings.max_label_length,
                            max_parse_bytes=settings.max_parse_bytes)
        budget = BodyBudget(label_bytes=settings.max_body_label_bytes, series=settings.max_series)
        for metric_set in metric_sets:
            metric_set.budget = budget
        self.refresher = Refresher(self.states, Path(settings.results_dir),
                                   settings.refresh_interval, self.prom, limits)

    @property
    def listening(self) -> list[tuple[str, str]]:
        """(set name, ``host:port``) of every listening socket."""
        return [(state.metric_set.name, format_address(sock.getsockname()))
                for socks, state in zip(self.listeners, self.states) for sock in socks]

    def first_refresh(self) -> None:
        """Run the first refresh (never raises; it may take minutes with a slow database), then
        stop the responder: on this thread, so that no body of the finished refresh is answered
        by it (its other paths differ from the server proper's)."""
        self.refresher.tick()
        self.responder.stop()

    def finish(self) -> Exporters:
        """Hand the sockets over to the HTTP server and start it with the refresh thread."""
        # The HTTP layer (asyncio and h11: ~1.8 MB of modules) is loaded after the first
        # refresh, into the memory the loaded file left free: peak RSS is the first refresh's,
        # not both stacked (the cost exporter's peak, benchmarks/README.md, was 1.7 MB higher).
        from .serving import Server

        server = Server(list(zip(self.addresses, self.states)), self.refresher,
                        http_limits(self.settings), self.listeners)
        exporters = Exporters(server, self.refresher, self.prom)
        exporters.start()
        return exporters

    def abandon(self) -> None:
        """Stop answering and close the ports, the first refresh left to itself (a stop signal
        came during it)."""
        self.refresher.stop_event.set()
        self.responder.stop()
        for sock in (sock for bound in self.listeners for sock in bound):
            sock.close()
        self.prom.close()


def start_exporters(metric_sets: Sequence[MetricSet], settings: argparse.Namespace) -> Exporters:
    """Bind every set's port, run the first refresh while ``StartupResponder`` answers on the
    ports, then start the HTTP server and the refresh thread on the same sockets.

    The ports answer before the first refresh finishes, however long it takes (a slow
    database): meanwhile a scrape gets ``<set>_exporter_up`` 0 and ``<set>_exporter_starting``
    1. The first refresh never raises: whatever the directory holds, a refresh that failed is
    served as ``up`` 0 with its reason, then retried. Raises OSError when a port cannot be
    bound (before any refresh).
    """
    startup = Startup(metric_sets, settings)
    startup.first_refresh()
    return startup.finish()


#: Signals whose default action (ending the process) an exporter must not take: SIGHUP from a
#: closed terminal or a ``systemctl reload``, SIGUSR1/SIGUSR2 from log tools. The results file
#: is re-read whenever it changes, so there is nothing to reload on request.
IGNORED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGHUP", "SIGUSR1", "SIGUSR2")
                        if hasattr(signal, name))


#: What ``StopSignals.wake`` writes to the signal socket: no signal has the number 0.
_WAKE = b"\0"


def _no_op_handler(signum: int, frame: Any) -> None:
    """Python-level half of a signal that StopSignals receives through its socket."""


class StopSignals:
    """Context manager: SIGTERM/SIGINT become bytes on a socket that ``wait()`` reads, and
    ``ignored`` signals are ignored.

    Python runs a signal handler in the main thread between two bytecodes, also while that
    thread holds a lock; a handler that sets a ``threading.Event`` deadlocks when it interrupts
    the ``Event.wait`` holding the event's lock (a hung SIGTERM in CI). Here the interpreter's
    C-level handler writes the signal number to a socket (``signal.set_wakeup_fd``), the Python
    handler does nothing, and no lock is taken. A signal that arrives before ``wait()`` waits
    in the socket. Main thread only.
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
                 ignored: Sequence[int] = IGNORED_SIGNALS) -> None:
        self.signals = frozenset(int(s) for s in signals)
        self.ignored = frozenset(int(s) for s in ignored)
        self._reader: Optional[socket.socket] = None
        self._writer: Optional[socket.socket] = None
        self._previous_fd = -1
        self._previous_handlers: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in self.signals:
            self._previous_handlers[signum] = signal.signal(signum, _no_op_handler)
        for signum in self.ignored:
            self._previous_handlers[signum] = signal.signal(signum, signal.SIG_IGN)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()
        signal.set_wakeup_fd(self._previous_fd)
        for sock in (self._reader, self._writer):
            if sock is not None:
                sock.close()
        self._reader = self._writer = None

    def wake(self) -> None:
        """End a ``wait()`` under way (or the next one) with None; any thread."""
        writer = self._writer
        if writer is not None:
            try:
                writer.send(_WAKE)
            except OSError:  # full: a wake-up or a signal is pending anyway
                pass

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Block until one of the signals arrives; return its number, or None after timeout (s)
        or ``wake()``."""
        if self._reader is None:
            raise RuntimeError("StopSignals.wait() outside its with block")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._reader], [], [], remaining)
            if not ready:
                return None
            try:
                received = self._reader.recv(256)
            except BlockingIOError:
                continue
            if not received:  # the writer is gone (closed elsewhere): nothing can arrive
                return None
            # Other signals with Python handlers write their numbers to the same socket.
            for signum in received:
                if signum in self.signals:
                    return signum
            if _WAKE[0] in received:
                return None


def run_exporters(metric_sets: Sequence[MetricSet], settings: argparse.Namespace) -> int:
    """Serve the given sets until SIGTERM/SIGINT; return the process exit status.

    A stop signal at any moment ends the process within about a second, during the first
    refresh too (which a slow database can make last minutes; the shipped unit kills a process
    10 s after SIGTERM): the first refresh runs on a daemon thread and is abandoned.
    """
    with StopSignals() as stop_signals:
        try:
            startup = Startup(metric_sets, settings)
        except OSError as exc:
            print(f"cannot listen on {settings.listen_address}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        for name, address in startup.listening:
            logger.info("%s exporter listening on %s", name, address)
        done = threading.Event()
        threading.Thread(target=_first_refresh, args=(startup, stop_signals, done),
                         name="first-refresh", daemon=True).start()
        while not done.is_set():
            if stop_signals.wait() is not None:
                logger.info("abandoning the first refresh")
                startup.abandon()
                logger.info("stopped")
                # The abandoned refresh may be inside a database query or a write to stderr:
                # the interpreter's exit would wait for the query's worker thread or trip over
                # the stream's lock, so the process ends here, its streams flushed.
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
        exporters = startup.finish()
        while stop_signals.wait() is None:  # a wake-up of the first refresh left unread
            pass
        exporters.stop()
    logger.info("stopped")
    return 0


def _first_refresh(startup: Startup, stop_signals: StopSignals, done: threading.Event) -> None:
    """Thread body: the first refresh, then ``done`` set and the main thread's wait woken."""
    try:
        startup.first_refresh()
    finally:
        done.set()  # before the wake-up: a wait that reads it finds done set
        stop_signals.wake()


#: glibc mallopt parameters: M_MMAP_THRESHOLD and M_ARENA_MAX.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8


def tune_malloc() -> bool:
    """Make glibc return big buffers to the OS on free; False where that is not glibc.

    Bodies are rendered in chunks of a few hundred kB. glibc raises its mmap threshold after
    freeing such a chunk, so later ones come from the heap and their pages stay resident after
    the next refresh frees them; a fixed 128 kB threshold keeps every body chunk in its own
    mapping (the results exporter's peak drops by ~6 MB). Two arenas instead of eight per core
    stop the refresh, model and HTTP threads from each pinning their own freed memory.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 128 * 1024) == 1
    return mallopt(_M_ARENA_MAX, 2) == 1 and ok


def exporter_main(
    factories: Sequence[Callable[[argparse.Namespace], MetricSet]],
    prog: str,
    argv: Optional[Sequence[str]] = None,
    description: str = "",
) -> int:
    """Parse flags for the given MetricSet classes, build them and serve until stopped."""
    tune_malloc()
    classes = [f for f in factories if isinstance(f, type)]
    settings = parse_settings(prog, classes, argv, description)
    logging.basicConfig(level=getattr(logging, settings.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        metric_sets = [factory(settings) for factory in factories]
    except ValueError as exc:  # a setting only the set itself can judge
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return run_exporters(metric_sets, settings)
