"""A small, defensive client for the Prometheus HTTP query API (VictoriaMetrics).

Used only from the exporters' refresh thread, never on a scrape. Short timeouts, bounded
concurrency, a cache for windows that ended in the past (a finished scenario's window never
changes), and exponential backoff while the database is down (no requests while backing off).
Each request has one overall deadline (a server trickling bytes cannot stall a refresh) and a
size cap. The standard library's http.client only: no third-party HTTP dependency.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import socket
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

logger = logging.getLogger(__name__)

__all__ = ["PromClient"]

T = TypeVar("T")
R = TypeVar("R")

#: A window is "finished" (cacheable) when it ended at least this many seconds ago: samples of
#: the last scrape intervals may still be ingested shortly after the end.
SETTLE_SECONDS = 30.0
#: Cached answers kept at most (oldest evicted first); one per (query, window).
CACHE_ENTRIES = 20_000
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0
#: Without real traffic, the health of the database is probed at most this often (seconds).
PROBE_INTERVAL = 30.0


class _QueryFailed(Exception):
    """The database did not answer usefully (network, HTTP or JSON error)."""


class _QueryRefused(_QueryFailed):
    """The database is up and refuses this query for this window (HTTP 400 or 422): asking again
    gets the same answer, e.g. VictoriaMetrics' 422 for a window of more than 30,000 steps."""


#: The Prometheus HTTP API's answers about one query (400: bad parameters, 422: the expression
#: cannot be executed, e.g. too many points): the database is up and asking again cannot help.
#: Every other 4xx (401/403 credentials, 404 a URL that is no query API, 429 overload...) is about
#: the database or the setup: treated like a server error (down, backoff, nothing cached).
_QUERY_REFUSALS = frozenset((400, 422))


def _format_time(value: float) -> str:
    """Return an epoch time for a query string, keeping sub-second precision (seconds)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _format_step(step: float) -> str:
    return f"{step:g}s"


#: Points per series in one range request (Prometheus' limit; VictoriaMetrics allows 30,000).
MAX_POINTS_PER_REQUEST = 11_000
#: Range requests one window may take (64 x 11,000 points is 40 days at a 5 s step): a window
#: beyond that is a broken timestamp, answered "no data" rather than with thousands of requests.
MAX_PIECES = 64


def _pieces(start: float, end: float, step: float) -> list[tuple[float, float]]:
    """(start, end) of consecutive range requests covering [start, end] on the same step grid."""
    span = step * (MAX_POINTS_PER_REQUEST - 1)
    pieces = []
    first = start
    index = 0
    while first <= end:
        last = min(end, first + span)
        pieces.append((first, last))
        index += 1
        first = start + index * MAX_POINTS_PER_REQUEST * step
    return pieces


#: The largest answer read (bytes): a window's answer is ~0.3 MB; more is a broken server.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


def _remaining(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Give the connection's next socket operation only what is left of the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no complete answer within the deadline")
    if connection.sock is not None:
        connection.sock.settimeout(left)


def _shut(sock: Optional[socket.socket]) -> None:
    """End a blocked read: the request's deadline has passed."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _float_or_none(value: Any) -> Optional[float]:
    if isinstance(value, bool):  # JSON true is no sample value (float(True) would be 1.0)
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class PromClient:
    """Query client for a Prometheus-compatible API; every failure yields None, never raises.

    ``enabled`` is False without a base URL (then every query returns None at once).
    ``healthy`` is True while the last request succeeded.
    """

    def __init__(
        self,
        base_url: Optional[str],
        timeout: float = 2.0,
        max_workers: int = 4,
        *,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        settle_seconds: float = SETTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.enabled = bool(self.base_url)
        self.timeout = timeout
        self.max_workers = max(1, int(max_workers))
        self.healthy = False
        self.requests = 0  #: HTTP requests actually sent (for tests and self-metrics)
        self.failures = 0  #: requests that failed
        #: bumped whenever an answer could not be cached (failure, backoff, unfinished window):
        #: the refresh thread compares it before/after a compute to know a retry is worthwhile.
        self.incomplete = 0
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._settle = settle_seconds
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._delay = 0.0
        self._retry_at = 0.0
        self._last_request = -math.inf
        self._executor: Optional[ThreadPoolExecutor] = None

    # -- state --------------------------------------------------------------------------------

    def backing_off(self) -> bool:
        """Return True while requests are suspended after a failure."""
        with self._lock:
            return self._clock() < self._retry_at

    def _record_success(self) -> None:
        with self._lock:
            self.healthy = True
            self._delay = 0.0
            self._retry_at = 0.0

    def _record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            self.incomplete += 1
            self.healthy = False
            doubled = min(self._delay * 2, self._backoff_max)
            self._delay = self._backoff_initial if self._delay <= 0 else doubled
            self._retry_at = self._clock() + self._delay

    def _bump_incomplete(self) -> None:
        with self._lock:
            self.incomplete += 1

    # -- HTTP ---------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str]) -> Any:
        """GET ``path`` with ``params`` and return the ``data`` member of a success answer."""
        if not self.enabled:
            raise _QueryFailed("no database URL configured")
        if self.backing_off():
            self._bump_incomplete()
            raise _QueryFailed("backing off")
        target = f"{path}?{urllib.parse.urlencode(params)}"
        with self._lock:
            self.requests += 1
            self._last_request = self._clock()
        try:
            status, body = self._fetch(target)
            if status in _QUERY_REFUSALS:
                # The database is up but refuses the query: no backoff, just no data.
                self._record_success()
                logger.warning("query %s rejected: HTTP %d", params.get("query"), status)
                raise _QueryRefused(f"HTTP {status}")
            if status != 200:
                self._record_failure()
                logger.warning("database error on %s: HTTP %d", path, status)
                raise _QueryFailed(f"HTTP {status}")
            document = json.loads(body)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            # refused connections, the overall deadline, resets, oversized or bad JSON
            self._record_failure()
            logger.warning("database unreachable at %s: %s", self.base_url, exc)
            raise _QueryFailed(str(exc)) from exc
        if not isinstance(document, dict) or document.get("status", "success") != "success":
            self._record_failure()
            raise _QueryFailed("unexpected answer")
        data = document.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            self._record_failure()
            raise _QueryFailed("answer without data.result")
        self._record_success()
        return data

    def _fetch(self, target: str) -> tuple[int, bytes]:
        """GET ``target`` (path and query) within one overall deadline of ``timeout`` seconds
        and at most ``MAX_ANSWER_BYTES``; return (status, body). Raises OSError or
        http.client.HTTPException (TimeoutError when the deadline passes, e.g. a trickle)."""
        deadline = time.monotonic() + self.timeout
        parts = urllib.parse.urlsplit(str(self.base_url))
        connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                            else http.client.HTTPConnection)
        connection = connection_class(parts.netloc, timeout=self.timeout)
        watchdog: Optional[threading.Timer] = None
        try:
            connection.request("GET", parts.path + target,
                               headers={"Accept": "application/json"})
            _remaining(connection, deadline)
            # A socket timeout bounds each read, not their sum: a server trickling its head
            # a byte at a time would pass it. At the deadline the socket is shut down.
            watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut,
                                       (connection.sock,))
            watchdog.daemon = True
            watchdog.start()
            response = connection.getresponse()
            declared = response.getheader("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
                raise ValueError(f"answer of {declared} bytes, more than {MAX_ANSWER_BYTES}")
            chunks, size = [], 0
            while True:
                _remaining(connection, deadline)
                chunk = response.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise ValueError(f"answer of more than {MAX_ANSWER_BYTES} bytes")
                chunks.append(chunk)
            return response.status, b"".join(chunks)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            connection.close()

    def _cached(self, key: tuple, end: float, fetch: Callable[[], T]) -> Optional[T]:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            value: Optional[T] = fetch()
        except _QueryRefused:
            # A final answer, "no data", cached like any for a finished window: left uncached
            # it made every refresh interval a full recompute resending the refused requests.
            value = None
        except _QueryFailed:
            return None
        if end <= self._wall() - self._settle:
            with self._lock:
                self._cache[key] = value
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        else:
            self._bump_incomplete()  # the window is still open: worth asking again later
        return value

    # -- public queries -----------------------------------------------------------------------

    def query(self, expr: str, time: float) -> Optional[float]:
        """Return the first sample value of an instant query at ``time`` (epoch s), or None.

        None when the database is disabled, down, backing off, or the result is empty.
        """
        at = _float_or_none(time)
        if at is None or not self.enabled:
            return None

        def fetch() -> Optional[float]:
            data = self._get("/api/v1/query", {"query": expr, "time": _format_time(at)})
            for series in data["result"]:
                value = series.get("value") if isinstance(series, dict) else None
                if isinstance(value, list) and len(value) == 2:
                    return _float_or_none(value[1])
            return None

        return self._cached(("query", expr, at), at, fetch)

    def query_range(
        self, expr: str, start: float, end: float, step: float = 5.0
    ) -> Optional[list[float]]:
        """Return the values of all series of a range query, concatenated in order, or None.

        Unparsable values are skipped; an empty list means the database had no samples;
        None means no answer (disabled, down, backing off, or an invalid window).
        """
        lo, hi, dt = _float_or_none(start), _float_or_none(end), _float_or_none(step)
        if lo is None or hi is None or dt is None or dt <= 0 or hi < lo or not self.enabled:
            return None

        def fetch() -> list[float]:
            # Long windows (a soak test at a 5 s step) are asked in pieces on the same time grid:
            # Prometheus refuses more than 11,000 points per series, VictoriaMetrics 30,000.
            by_series: dict[tuple, list[float]] = {}
            if (hi - lo) / dt >= MAX_PIECES * MAX_POINTS_PER_REQUEST:
                logger.warning("range query %s over %.0f s not sent: window too long", expr,
                               hi - lo)
                raise _QueryRefused("window too long")
            for piece_start, piece_end in _pieces(lo, hi, dt):
                data = self._get(
                    "/api/v1/query_range",
                    {
                        "query": expr,
                        "start": _format_time(piece_start),
                        "end": _format_time(piece_end),
                        "step": _format_step(dt),
                    },
                )
                for series in data["result"]:
                    pairs = series.get("values") if isinstance(series, dict) else None
                    if not isinstance(pairs, list):
                        continue
                    labels = series.get("metric")
                    if not isinstance(labels, dict):
                        key: tuple = ()
                    elif all(isinstance(value, str) for value in labels.values()):
                        key = tuple(sorted(labels.items()))
                    else:  # label values are strings in the API: a broken answer, not a series
                        continue
                    values = by_series.setdefault(key, [])
                    for pair in pairs:
                        if isinstance(pair, list) and len(pair) == 2:
                            number = _float_or_none(pair[1])
                            if number is not None:
                                values.append(number)
            return [value for values in by_series.values() for value in values]

        result = self._cached(("range", expr, lo, hi, dt), hi, fetch)
        return list(result) if result is not None else None

    def map_windows(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Return ``[fn(item) for item in items]``, run on at most ``max_workers`` threads."""
        items = list(items)
        if len(items) <= 1 or not self.enabled:
            return [fn(item) for item in items]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix="promql"
                )
            executor = self._executor
        return list(executor.map(fn, items))

    def probe(self) -> None:
        """Check the database when nothing else asked it lately, to keep ``healthy`` current."""
        if not self.enabled or self.backing_off():
            return
        with self._lock:
            idle = self._clock() - self._last_request >= PROBE_INTERVAL
            retry_due = not self.healthy and self._retry_at > 0
        if idle or retry_due:
            try:
                self._get("/api/v1/query", {"query": "vector(1)"})
            except _QueryFailed:
                pass

    def close(self) -> None:
        """Stop the worker threads."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
