"""What a database answer may cost while read, before and after it is parsed
(docs/exporters.md §9).

An answer is bytes from a server that may be broken or hostile. It is read within one overall
deadline and a byte cap (a server trickling bytes cannot stall a refresh). Before
``json.loads`` sees it, counts of its bytes (no copy per token) bound the nesting depth
(``json`` recurses per level and raises RecursionError deep down) and what the parsed objects
would take: 8 MiB of ``[],[],...`` is ~180 MB of lists, of ``"ab",...`` ~100 MB of strings, of
ordinary points ~60 MB. After parsing, a range query keeps of each series only the points its
window and step ask for.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
import urllib.parse
from array import array
from typing import Any, Callable, Optional

# The one estimate of what parsed JSON takes, for results files and answers alike.
from advisor_core.data.results_files import json_parse_cost as parse_cost

__all__ = ["EDGE_SECONDS", "MAX_ANSWER_BYTES", "MAX_DEPTH", "MAX_PARSE_BYTES", "SMALL_ANSWER_BYTES",
           "BadAnswer", "WindowPoints", "fetch", "finite_float", "parse_answer", "parse_cost"]

#: The largest answer read (bytes): a window's answer is ~0.3 MB a series at most (11,000
#: points); more than a dozen series' worth is a broken server. Parsed, 4 MiB of points take
#: ~35 MB, which is what an exporter serving a 20,000-scenario run has left under its 200 MB
#: goal (docs/exporters.md §9; 8 MiB took it to 213 MB).
MAX_ANSWER_BYTES = 4 * 1024 * 1024
#: Deepest nesting of an answer (a range query's is 6: answer, data, result, series, values,
#: point).
MAX_DEPTH = 16
#: What the parsed objects of one answer may take, as estimated before parsing (bytes): room
#: for 4 MiB of ordinary points (~49 MiB estimated, ~35 MB in fact); a hostile shape of the
#: same size is estimated at several times that and refused.
MAX_PARSE_BYTES = 56 * 1024 * 1024
#: An answer bigger than this (bytes) is read and parsed while no other big one is, so that one
#: big answer's bytes and objects are alive at a time; waiting for that does not count against
#: the request's deadline.
SMALL_ANSWER_BYTES = 1024 * 1024

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BadAnswer(ValueError):
    """An answer that is not used; ``reason`` names why (``too_large``, ``too_deep``,
    ``bad_json``, ``bad_shape``), for counting."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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


def _watch(connection: http.client.HTTPConnection, deadline: float) -> threading.Timer:
    """A timer that shuts the connection's socket down at ``deadline`` (monotonic seconds)."""
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, (connection.sock,))
    watchdog.daemon = True
    watchdog.start()
    return watchdog


def fetch(base_url: str, target: str, timeout: float,
          on_big: Optional[Callable[[], None]] = None) -> tuple[int, bytearray]:
    """GET ``base_url`` + ``target`` (path and query) within one overall deadline of
    ``timeout`` seconds and at most ``MAX_ANSWER_BYTES``; return (status, body). ``on_big`` is
    called once the body passes ``SMALL_ANSWER_BYTES`` (it may wait: the deadline moves by
    the wait). Raises OSError, http.client.HTTPException (TimeoutError when the deadline
    passes, e.g. a trickle) or BadAnswer (too large)."""
    deadline = time.monotonic() + timeout
    parts = urllib.parse.urlsplit(base_url)
    connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                        else http.client.HTTPConnection)
    connection = connection_class(parts.netloc, timeout=timeout)
    watchdog: Optional[threading.Timer] = None
    try:
        connection.request("GET", parts.path + target,
                           headers={"Accept": "application/json"})
        _remaining(connection, deadline)
        # A socket timeout bounds each read, not their sum: a server trickling its head
        # a byte at a time would pass it. At the deadline the socket is shut down.
        watchdog = _watch(connection, deadline)
        response = connection.getresponse()
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
            raise BadAnswer(f"answer of {declared} bytes, more than {MAX_ANSWER_BYTES}",
                            "too_large")
        body = bytearray()
        while True:
            _remaining(connection, deadline)
            chunk = response.read1(65536)
            if not chunk:
                break
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise BadAnswer(f"answer of more than {MAX_ANSWER_BYTES} bytes",
                                "too_large")
            if on_big is not None and len(body) > SMALL_ANSWER_BYTES:
                watchdog.cancel()
                waited = time.monotonic()
                on_big()
                on_big = None
                deadline += time.monotonic() - waited
                watchdog = _watch(connection, deadline)
        return response.status, body
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


def _nesting_within(brackets: bytes | bytearray, limit: int) -> Optional[bool]:
    """True when balanced brackets nest at most ``limit`` deep, False when deeper, None when
    they do not pair up. Each pass removes the innermost pairs, at C speed."""
    for _ in range(limit):
        if not brackets:
            return True
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(brackets):
            return None
        brackets = shorter
    return False if brackets else True


def parse_answer(body: bytes | bytearray) -> Any:
    """The JSON document of an answer whose depth and parsed size are within budget.

    Raises BadAnswer: ``too_deep`` beyond ``MAX_DEPTH``, ``too_large`` when the parsed objects
    would take more than ``MAX_PARSE_BYTES``, ``bad_json`` when it is not JSON.
    """
    estimate = parse_cost(body)
    if estimate > MAX_PARSE_BYTES:
        raise BadAnswer(f"answer of {len(body)} bytes would take ~{estimate >> 20} MiB parsed, "
                        f"more than {MAX_PARSE_BYTES >> 20} MiB", "too_large")
    # Brackets inside strings count here too: unpaired, json itself decides (its recursion
    # is then the bound); paired, they can only make an answer look deeper than it is.
    if _nesting_within(body.translate(None, _NOT_BRACKETS), MAX_DEPTH) is False:
        raise BadAnswer(f"answer nested more than {MAX_DEPTH} deep", "too_deep")
    try:
        return json.loads(body)
    except RecursionError as exc:  # not reached within MAX_DEPTH; kept as the last line
        raise BadAnswer("answer nested too deep for the parser", "too_deep") from exc
    except ValueError as exc:  # includes UnicodeDecodeError
        raise BadAnswer(f"answer is not JSON: {exc}", "bad_json") from exc


def finite_float(value: Any) -> Optional[float]:
    """A finite float of a JSON number or numeric text, else None (JSON true is no number)."""
    if isinstance(value, bool):  # float(True) would be 1.0
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


#: How far outside a window asked a point may lie and still be on it (seconds): the window's
#: ends are sent rounded to the millisecond (``_promql._format_time``), so a point on them may
#: come back up to half a millisecond outside; plus the error of a float at epoch seconds.
EDGE_SECONDS = 0.0005 + 1e-6


_SORTING = threading.Lock()


class WindowPoints:
    """The values of a range query's series, only where its window and step ask for them.

    A point is kept when its time lies within the window asked, [start, end] (``EDGE_SECONDS``
    at either end for the rounding of the times sent), and at least one step after the
    series' previous point in time order; a series keeps at most ``(end - start) / step + 1``
    points, what a step grid can put in the window. Points are put in time order first: an
    answer may list them in any order and one series in several entries (the same labels);
    of points at the same time the first one answered is kept. VictoriaMetrics may move a long
    window's ends onto its own step grid: its points outside the window asked are dropped like
    any other. Everything dropped is counted in ``dropped``. More than ``max_series`` series
    with points, or more than ``max_points`` points within the windows in all, is no answer to
    trust: ``add`` raises BadAnswer (``too_large``) rather than keep part of it.
    """

    def __init__(self, start: float, end: float, step: float, max_series: int,
                 max_points: int) -> None:
        self.step = step
        self.limit = int((end - start + 2 * EDGE_SECONDS) // step) + 1
        self.max_series, self.max_points = max_series, max_points
        self._gap = step * (1 - 1e-9)  # float times on the grid are not exact
        # label key -> (times, values, [time of the last point kept, still in order]): the
        # points within the window as doubles (8 bytes each). While a series comes in time
        # order (what a database sends) the step rule is applied as it comes, so what is
        # kept is what is served; from its first point out of order every point in the
        # window is taken, and the rule is applied once they are sorted.
        self._series: dict[tuple, tuple[array[float], array[float], list]] = {}
        self._kept = 0
        self.dropped = 0

    def add(self, series: Any, start: float, end: float) -> None:
        """Take the points of one series of the answer to the request for [start, end]."""
        pairs = series.get("values") if isinstance(series, dict) else None
        if not isinstance(pairs, list):
            return
        labels = series.get("metric")
        if not isinstance(labels, dict):
            key: tuple = ()
        elif all(isinstance(value, str) for value in labels.values()):
            key = tuple(sorted(labels.items()))
        else:  # label values are strings in the API: a broken answer, not a series
            self.dropped += len(pairs)
            return
        known = self._series.get(key)
        times, values, state = (known if known is not None
                                else (array("d"), array("d"), [-math.inf, True]))
        earliest, latest = start - EDGE_SECONDS, end + EDGE_SECONDS
        gap, limit, before = self._gap, self.limit, len(values)
        previous, ordered = state
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2:
                continue
            at = pair[0]
            if type(at) is not float and type(at) is not int:
                at = finite_float(at)  # text, or no time at all
                if at is None:
                    self.dropped += 1
                    continue
            # NaN and infinities fail the window test; so does a huge integer.
            if not earliest <= at <= latest:
                self.dropped += 1
                continue
            number = finite_float(pair[1])
            if number is None:
                continue  # no value: neither a point nor an excess
            if ordered:
                if at < previous:
                    ordered = False  # sorted at the end
                elif at - previous < gap or len(values) >= limit:
                    self.dropped += 1
                    continue
                else:
                    previous = at
            times.append(at)
            values.append(number)
        state[0], state[1] = previous, ordered
        self._kept += len(values) - before
        if known is None and values:
            if len(self._series) >= self.max_series:
                raise BadAnswer(f"more than {self.max_series} series", "too_large")
            self._series[key] = (times, values, state)
        if self._kept > self.max_points:
            raise BadAnswer(f"more than {self.max_points} points", "too_large")

    def values(self) -> array[float]:
        """Every kept value, series by series, each in time order. Called once: the points
        taken are let go."""
        series, self._series = list(self._series.values()), {}
        if len(series) == 1 and series[0][2][1]:
            return series[0][1]  # one series, in order: kept as it came, no copy
        kept: array[float] = array("d")
        gap, limit = self._gap, self.limit
        while series:
            times, values, (_, ordered) = series.pop(0)
            if ordered:
                kept.extend(values)
                continue
            # A stable sort (the first of equal times stays first), in C on the doubles:
            # 8 bytes a point rather than a Python int and float per point. numpy only here:
            # an answer out of order is rare, and the cost exporter otherwise never loads it.
            # One sort at a time in the process: its temporaries (~5 copies of a series) are
            # alive on one worker thread, not on all of them.
            import numpy

            with _SORTING:
                at = numpy.frombuffer(times, dtype=numpy.float64)
                order = numpy.argsort(at, kind="stable")
                times = array("d", at[order].tobytes())
                values = array("d", numpy.frombuffer(values, dtype=numpy.float64)[order]
                               .tobytes())
                del at, order
            previous = -math.inf
            taken = 0
            for at_time, value in zip(times, values):
                if at_time - previous < gap or taken >= limit:
                    continue
                previous = at_time
                kept.append(value)
                taken += 1
            self.dropped += len(times) - taken
        return kept
