"""A small, defensive client for the Prometheus HTTP query API (VictoriaMetrics).

Used only from the exporters' refresh thread, never on a scrape. Short timeouts, bounded
concurrency, a cache bounded in bytes for windows that ended in the past (a finished scenario's
window never changes), and exponential backoff while the database is down or answers nonsense
(no requests while backing off). Each request has one overall deadline and a size cap, and an
answer is checked before it is parsed (``exporters._promql_answer``); a range query keeps only
the points its window asks for. Nothing a server sends makes a query raise: every failure is
counted by reason. The standard library's http.client only: no third-party HTTP dependency.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import math
import threading
import time
import urllib.parse
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar, Union

from ._promql_answer import (
    SMALL_ANSWER_BYTES,
    BadAnswer,
    WindowPoints,
    fetch,
    finite_float,
    parse_answer,
)

logger = logging.getLogger(__name__)

__all__ = ["PromClient"]

T = TypeVar("T")
R = TypeVar("R")

#: A window is "finished" (cacheable) when it ended at least this many seconds ago: samples of
#: the last scrape intervals may still be ingested shortly after the end.
SETTLE_SECONDS = 30.0
#: Cached answers kept at most (oldest evicted first); one per (query, window).
CACHE_ENTRIES = 20_000
#: What the cached answers may take (bytes, estimated as ``_ENTRY_BYTES`` per answer plus 8 per
#: value); the oldest are evicted first.
CACHE_BYTES = 16 * 1024 * 1024
_ENTRY_BYTES = 256
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
#: Series with points in one range query's answer (the queries sent ask for a sum, or one series
#: per container), and points kept in all (two series over the longest window): an answer with
#: more is a failed query, not data to trust in part.
MAX_SERIES = 1000
MAX_QUERY_POINTS = 2 * MAX_PIECES * MAX_POINTS_PER_REQUEST


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



def _reason(exc: BaseException) -> str:
    """The counted reason of a failed request."""
    if isinstance(exc, BadAnswer):
        return exc.reason
    if isinstance(exc, MemoryError):
        return "out_of_memory"
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return "unreachable"  # refused, reset, the overall deadline, a broken HTTP answer
    return "bad_answer"


#: A cached answer: no data, an instant value, or a range query's values.
_Cached = Union[None, float, "array[float]"]


def _cost(value: Any) -> int:
    """Estimated bytes of one cache entry."""
    return _ENTRY_BYTES + (8 * len(value) if isinstance(value, array) else 0)


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
        #: failed requests by reason: unreachable, http_error, too_large, too_deep, bad_json,
        #: bad_shape, bad_answer, out_of_memory
        self.failure_reasons: dict[str, int] = {}
        #: points of range answers dropped: outside the window asked, or more than one a step
        self.dropped_points = 0
        #: bumped whenever an answer could not be cached (failure, backoff, unfinished window):
        #: the refresh thread compares it before/after a compute to know a retry is worthwhile.
        self.incomplete = 0
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._settle = settle_seconds
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, _Cached] = OrderedDict()
        self._cache_bytes = 0
        # Held while an answer over SMALL_ANSWER_BYTES is read and parsed (_promql_answer);
        # ``_held.big`` says whether this thread holds it.
        self._big = threading.Lock()
        self._held = threading.local()
        # Held while a window of more than one request is asked and summarised: its points
        # (up to MAX_QUERY_POINTS, ~33 MB with their copies) are alive for one window at a time.
        self._long = threading.Lock()
        # Requests are sent until this time (``self._clock``; ``spend``): a refresh's database
        # time is bounded however many windows a file has and however slowly the database
        # answers within each request's deadline.
        self._spend_until = math.inf
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

    def spend(self, seconds: float) -> None:
        """Send requests for ``seconds`` from now (math.inf: no limit); past that, a query
        answers no data without a request, counted as the failure reason ``time_budget``
        (no backoff: the database is not at fault)."""
        with self._lock:
            self._spend_until = self._clock() + seconds

    def _record_failure(self, reason: str) -> None:
        with self._lock:
            self.failures += 1
            self.failure_reasons[reason] = self.failure_reasons.get(reason, 0) + 1
            self.incomplete += 1
            self.healthy = False
            doubled = min(self._delay * 2, self._backoff_max)
            self._delay = self._backoff_initial if self._delay <= 0 else doubled
            self._retry_at = self._clock() + self._delay

    def _bump_incomplete(self) -> None:
        with self._lock:
            self.incomplete += 1

    # -- HTTP ---------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str], extract: Callable[[dict], T]) -> T:
        """GET ``path`` with ``params`` and return ``extract`` of the ``data`` member of a
        success answer (run while the parsed answer is alive, so that for a big answer no
        other is parsed meanwhile). Raises _QueryFailed, every failure counted."""
        if not self.enabled:
            raise _QueryFailed("no database URL configured")
        if self.backing_off():
            self._bump_incomplete()
            raise _QueryFailed("backing off")
        if self._clock() > self._spend_until:
            # Not counted as incomplete: the rest is asked at the next recompute or file change,
            # not at once again (a file of 20,000 windows would keep the refresh busy).
            with self._lock:
                self.failure_reasons["time_budget"] = (
                    self.failure_reasons.get("time_budget", 0) + 1)
            raise _QueryFailed("the refresh's database time is spent")
        target = f"{path}?{urllib.parse.urlencode(params)}"
        with self._lock:
            self.requests += 1
            self._last_request = self._clock()
        self._held.big = False
        try:
            status, body = self._fetch(target)
            if status in _QUERY_REFUSALS:
                # The database is up but refuses the query: no backoff, just no data.
                self._record_success()
                logger.warning("query %s rejected: HTTP %d", params.get("query"), status)
                raise _QueryRefused(f"HTTP {status}")
            if status != 200:
                self._record_failure("http_error")
                logger.warning("database error on %s: HTTP %d", path, status)
                raise _QueryFailed(f"HTTP {status}")
            if len(body) > SMALL_ANSWER_BYTES and not self._held.big:
                self._hold_big()
            document = parse_answer(body)
            del body
            if not isinstance(document, dict) or document.get("status", "success") != "success":
                raise BadAnswer("unexpected answer", "bad_shape")
            data = document.get("data")
            if not isinstance(data, dict) or not isinstance(data.get("result"), list):
                raise BadAnswer("answer without data.result", "bad_shape")
            value = extract(data)
            del document, data  # before another big answer may be parsed
        except _QueryFailed:
            raise
        except Exception as exc:  # whatever a server sends is a failed query
            # refused connections, the overall deadline, resets, an oversized, deep or broken
            # answer, and what parsing it could not allocate
            reason = _reason(exc)
            self._record_failure(reason)
            logger.warning("query to %s failed (%s): %s", self.base_url, reason, exc)
            raise _QueryFailed(str(exc)) from exc
        finally:
            if self._held.big:
                self._held.big = False
                self._big.release()
        self._record_success()
        return value

    def _hold_big(self) -> None:
        """Wait until no other big answer is read or parsed (bounded: both always end)."""
        self._big.acquire()
        self._held.big = True

    def _fetch(self, target: str) -> tuple[int, bytearray]:
        """GET ``target`` (path and query) of the database (``_promql_answer.fetch``)."""
        return fetch(str(self.base_url), target, self.timeout, self._hold_big)

    def _cached(self, key: tuple, end: float, fetch: Callable[[], _Cached]) -> _Cached:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            value = fetch()
        except _QueryRefused:
            # A final answer, "no data", cached like any for a finished window: left uncached
            # it made every refresh interval a full recompute resending the refused requests.
            value = None
        except _QueryFailed:
            return None
        except Exception as exc:  # a query never raises (class docstring)
            self._record_failure(_reason(exc))
            logger.warning("query %s failed: %s", key[1], exc)
            return None
        if end <= self._wall() - self._settle:
            self._remember(key, value)
        else:
            self._bump_incomplete()  # the window is still open: worth asking again later
        return value

    def _remember(self, key: tuple, value: _Cached) -> None:
        """Cache an answer, evicting the oldest beyond CACHE_ENTRIES or CACHE_BYTES."""
        cost = _cost(value)
        if cost > CACHE_BYTES:
            return
        with self._lock:
            if key in self._cache:
                self._cache_bytes -= _cost(self._cache.pop(key))
            self._cache[key] = value
            self._cache_bytes += cost
            while len(self._cache) > CACHE_ENTRIES or self._cache_bytes > CACHE_BYTES:
                self._cache_bytes -= _cost(self._cache.popitem(last=False)[1])

    # -- public queries -----------------------------------------------------------------------

    def query(self, expr: str, time: float) -> Optional[float]:
        """Return the first sample value of an instant query at ``time`` (epoch s), or None.

        None when the database is disabled, down, backing off, or the result is empty.
        """
        at = finite_float(time)
        if at is None or not self.enabled:
            return None

        def first_value(data: dict) -> Optional[float]:
            for series in data["result"]:
                value = series.get("value") if isinstance(series, dict) else None
                if isinstance(value, list) and len(value) == 2:
                    return finite_float(value[1])
            return None

        def fetch() -> Optional[float]:
            return self._get("/api/v1/query", {"query": expr, "time": _format_time(at)},
                             first_value)

        value = self._cached(("query", expr, at), at, fetch)
        return value if isinstance(value, float) else None

    def query_range(
        self, expr: str, start: float, end: float, step: float = 5.0
    ) -> Optional[list[float]]:
        """Return the values of all series of a range query, concatenated in order, or None.

        Only points the window and step ask for are kept (``WindowPoints``); unparsable values
        are skipped; an empty list means the database had no samples; None means no answer
        (disabled, down, backing off, a failed answer, or an invalid window).
        """
        result = self.query_range_doubles(expr, start, end, step)
        return None if result is None else list(result)

    def query_range_doubles(
        self, expr: str, start: float, end: float, step: float = 5.0
    ) -> Optional[array[float]]:
        """``query_range`` as the doubles themselves (8 bytes a point, no float objects; shared
        with the answer cache: read, never change)."""
        lo, hi, dt = finite_float(start), finite_float(end), finite_float(step)
        if lo is None or hi is None or dt is None or dt <= 0 or hi < lo or not self.enabled:
            return None

        def fetch() -> array[float]:
            # Long windows (a soak test at a 5 s step) are asked in pieces on the same time grid:
            # Prometheus refuses more than 11,000 points per series, VictoriaMetrics 30,000.
            if (hi - lo) / dt >= MAX_PIECES * MAX_POINTS_PER_REQUEST:
                logger.warning("range query %s over %.0f s not sent: window too long", expr,
                               hi - lo)
                raise _QueryRefused("window too long")
            pieces = _pieces(lo, hi, dt)
            with self._long if len(pieces) > 1 else contextlib.nullcontext():
                return collect(pieces)

        def collect(pieces: list[tuple[float, float]]) -> array[float]:
            points = WindowPoints(lo, hi, dt, MAX_SERIES, MAX_QUERY_POINTS)
            try:
                for piece_start, piece_end in pieces:

                    def take(data: dict, first: float = piece_start,
                             last: float = piece_end) -> None:
                        for series in data["result"]:
                            points.add(series, first, last)

                    self._get(
                        "/api/v1/query_range",
                        {
                            "query": expr,
                            "start": _format_time(piece_start),
                            "end": _format_time(piece_end),
                            "step": _format_step(dt),
                        },
                        take,
                    )
                return points.values()  # drops what is too close in time order: counted below
            finally:
                if points.dropped:
                    with self._lock:
                        self.dropped_points += points.dropped

        result = self._cached(("range", expr, lo, hi, dt), hi, fetch)
        return result if isinstance(result, array) else None

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

    def probe(self, idle_seconds: float = PROBE_INTERVAL) -> None:
        """Check the database when nothing asked it for ``idle_seconds``, or when its backoff
        after a failure is over, to keep ``healthy`` current."""
        if self.probe_delay(idle_seconds) <= 0:
            try:
                self._get("/api/v1/query", {"query": "vector(1)"}, lambda data: None)
            except _QueryFailed:
                pass

    def probe_delay(self, idle_seconds: float = PROBE_INTERVAL) -> float:
        """Seconds until ``probe(idle_seconds)`` would ask the database (inf without a URL)."""
        if not self.enabled:
            return math.inf
        with self._lock:
            now = self._clock()
            if now < self._retry_at:  # backing off: ask once the backoff is over
                return self._retry_at - now
            if not self.healthy and self._retry_at > 0:  # a failure whose backoff is over
                return 0.0
            return self._last_request + idle_seconds - now

    def close(self) -> None:
        """Stop the worker threads."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
