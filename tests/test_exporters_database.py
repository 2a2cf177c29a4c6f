"""Hostile database answers: huge, deep, out-of-window and broken ones never make the client
raise, never balloon a process and never change a value (fake database on loopback)."""

from __future__ import annotations

import json
import math
import sys
import time
from array import array
from pathlib import Path

import pytest

from _fakeprom import FakeProm, long_window_value
from _process import Exporter, free_port, metrics
from advisor_core.data.samples import summarise, usable_summary
from exporters import _promql, _promql_answer
from exporters._promql import PromClient
from exporters._promql_answer import (
    MAX_ANSWER_BYTES,
    MAX_DEPTH,
    MAX_PARSE_BYTES,
    BadAnswer,
    WindowPoints,
    parse_answer,
    parse_cost,
)
from exporters.cost import POWER_QUERY

PAST = 1_700_000_000.0  # a window that ended long ago: cacheable
NORMAL = [100.0, 110.0, 120.0]  # what the fake answers for POWER_QUERY from a window's start


@pytest.fixture
def fake():
    with FakeProm() as server:
        yield server


def test_a_flood_of_valid_points_outside_the_window_gives_the_normal_values(fake) -> None:
    client = PromClient(fake.url, timeout=10.0)
    fake.mode = "flood"  # ~4 MiB: 173,000 points in 2001 and 2096, one extra a second after each
    assert client.query_range(POWER_QUERY, PAST, PAST + 10.5, 5.0) == NORMAL
    assert client.dropped_points == 2 * (fake.flood_bytes // 2 // 24) + 3
    assert client.healthy and client.failures == 0


@pytest.mark.parametrize(("mode", "reason"), [("deep", "too_deep"), ("bomb", "too_large")])
def test_deep_or_costly_answers_are_counted_failures_with_backoff(fake, mode, reason) -> None:
    now = [0.0]
    client = PromClient(fake.url, backoff_initial=5.0, clock=lambda: now[0])
    fake.mode = mode
    assert client.query_range(POWER_QUERY, PAST, PAST + 10.5, 5.0) is None  # no exception
    assert client.failure_reasons == {reason: 1} and not client.healthy
    assert client.backing_off()
    sent = len(fake.requests)
    assert client.query_range(POWER_QUERY, PAST + 100, PAST + 110.5, 5.0) is None
    assert len(fake.requests) == sent  # backing off: nothing sent
    fake.mode = "ok"
    now[0] = 5.0  # the backoff is over: the same window is asked again and answered
    assert client.query_range(POWER_QUERY, PAST, PAST + 10.5, 5.0) == NORMAL
    assert client.healthy


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"status":"success","data":{"result":[' + b"[" * 3000 + b"]" * 3000 + b"]}}",
     "too_deep"),  # deeper than json's recursion limit: a RecursionError without the scan
    (b"{" * 10, "bad_json"),
    (b'{"status":"success","data":{"result":[]}', "bad_json"),
    (b"\xff\xfe not utf-8", "bad_json"),
    (b"[1, 2, 3]", "bad_shape"),
    (b'{"status":"success","data":{"result":{}}}', "bad_shape"),
    (b'{"status":"error","error":"x"}', "bad_shape"),
])
def test_any_broken_answer_is_a_counted_failure_not_an_exception(monkeypatch, body,
                                                                 reason) -> None:
    monkeypatch.setattr(PromClient, "_fetch", lambda self, target: (200, body))
    client = PromClient("http://prometheus.invalid", backoff_initial=0.0)
    assert client.query_range(POWER_QUERY, PAST, PAST + 60) is None
    assert client.query("vector(1)", PAST + 1) is None
    assert client.failure_reasons == {reason: 2}
    assert client.incomplete >= 2  # nothing cached: asked again after the backoff


def test_running_out_of_memory_while_parsing_is_a_counted_failure(monkeypatch) -> None:
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(PromClient, "_fetch",
                        lambda self, target: (200, b'{"data":{"result":[]}}'))
    monkeypatch.setattr(_promql_answer.json, "loads", no_memory)
    client = PromClient("http://prometheus.invalid")
    assert client.query_range(POWER_QUERY, PAST, PAST + 60) is None
    assert client.failure_reasons == {"out_of_memory": 1} and client.backing_off()


def test_an_exception_while_reading_the_series_is_a_counted_failure(monkeypatch) -> None:
    def broken(self, series, start, end):
        raise RuntimeError("a bug or a shape nobody thought of")

    monkeypatch.setattr(WindowPoints, "add", broken)
    monkeypatch.setattr(PromClient, "_fetch", lambda self, target: (
        200, b'{"data":{"result":[{"values":[[1700000000,"1"]]}]}}'))
    client = PromClient("http://prometheus.invalid")
    assert client.query_range(POWER_QUERY, PAST, PAST + 60) is None
    assert client.failure_reasons == {"bad_answer": 1}


def test_nesting_is_bounded_exactly_and_brackets_in_strings_never_break_an_answer() -> None:
    def nested(depth: int, text: str = "x") -> bytes:
        return b"[" * (depth - 1) + b'{"a":"%s"}' % text.encode() + b"]" * (depth - 1)

    assert parse_answer(nested(MAX_DEPTH))
    with pytest.raises(BadAnswer) as raised:
        parse_answer(nested(MAX_DEPTH + 1))
    assert raised.value.reason == "too_deep"
    # Unpaired brackets in text leave the depth to json itself: parsed, not refused...
    assert parse_answer(nested(MAX_DEPTH, "]]]}}}[[[[[[")) == [[[[[[[[[[[[[[[
        {"a": "]]]}}}[[[[[["}]]]]]]]]]]]]]]]
    # ...and json's own recursion limit is then the bound, a counted failure like the scan's.
    with pytest.raises(BadAnswer) as raised:
        parse_answer(nested(100_000, "[["))
    assert raised.value.reason == "too_deep"


@pytest.mark.parametrize("body", [
    b'["' + b'\\"' * (4 * 1024 * 1024 - 2),  # a string that never ends: every quote escaped
    b'"' * (8 * 1024 * 1024 - 1),
    b'["a\\' + b"x" * (8 * 1024 * 1024 - 8),
])
def test_the_scan_before_parsing_is_linear_in_any_bytes(body) -> None:
    """A scan that backtracked from every quote took 8.6 s for 40 KB of escaped quotes."""
    started = time.monotonic()
    with pytest.raises(BadAnswer) as raised:
        parse_answer(body)
    assert raised.value.reason in ("bad_json", "too_large")
    assert time.monotonic() - started < 10.0


def test_a_series_keeps_at_most_one_point_per_step_within_its_window() -> None:
    points = WindowPoints(100.0, 120.0, 5.0, 10, 1000)
    points.add({"metric": {}, "values": [
        [90, "1"],  # two steps before the window: dropped
        [95, "2"],  # one step before it (a window moved onto a step grid): dropped
        [99.99, "3"],  # a hundredth of a second before it: dropped
        [100.0, "NaN"], [100.0, None],  # no value: skipped, neither kept nor counted
        [100.0, "4"], [100.0, "5"],  # on the start; then a repeated time: dropped
        [102.5, "6"],  # closer than a step to the previous point: dropped
        [105, True], "junk", [1, 2, 3],  # no point at all: skipped
        [105, "7"], [110, "8"], [115, "9"],
        [120, "10"],  # on the end: kept
        [125, "11"],  # one step after the window: dropped
        ["119", "12"],  # answered late, in time order less than a step after 115: dropped
        [float("nan"), "13"], [None, "14"], [True, "15"], [10**400, "16"],  # no usable time
    ]}, 100.0, 120.0)
    assert list(points.values()) == [4.0, 7.0, 8.0, 9.0, 10.0]
    assert points.dropped == 11
    assert points.limit == 5  # (120 - 100) / 5 + 1: what a step grid can put in the window


def test_the_window_s_ends_are_exact_to_the_millisecond_they_are_sent_with() -> None:
    """The ends travel rounded to the millisecond: a point on a sent end may come back up to
    half a millisecond outside the window; anything further out is no point of it."""
    start, end = 1_705_316_100.0004, 1_705_316_120.0004  # sent as ...100 and ...120
    sent = [float(_promql._format_time(start)), float(_promql._format_time(end))]
    assert sent == [1_705_316_100.0, 1_705_316_120.0]
    points = WindowPoints(start, end, 5.0, 10, 1000)
    points.add({"values": [[sent[0] - 5.0, "1"], [sent[0] - 0.001, "2"], [sent[0], "3"],
                           [sent[0] + 5, "4"], [sent[0] + 10, "5"], [sent[0] + 15, "6"],
                           [sent[1], "7"], [sent[1] + 0.0012, "8"], [sent[1] + 5, "9"]]},
               start, end)
    assert list(points.values()) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert points.dropped == 4 and points.limit == 5


def test_points_beyond_what_the_window_asks_for_are_dropped() -> None:
    points = WindowPoints(0.0, 50.0, 5.0, 10, 1000)
    # A grid moved by 1 s: 10 of its points lie in [0, 50]; twice as dense: still 11 at most.
    points.add({"values": [[t * 5.0 - 4.0, str(t)] for t in range(20)]}, 0.0, 50.0)
    assert len(points.values()) == 10 and points.limit == 11
    assert points.dropped == 10
    dense = WindowPoints(0.0, 50.0, 5.0, 10, 1000)
    dense.add({"values": [[t * 2.5, str(t)] for t in range(-4, 30)]}, 0.0, 50.0)
    assert len(dense.values()) == dense.limit == 11


def test_one_hostile_point_each_side_of_the_window_changes_no_value(fake) -> None:
    """The review's answer: each series with an extra point a step before and a step after the
    window asked. Neither is integrated: the values are the ordinary answer's."""
    client = PromClient(fake.url, timeout=10.0)
    fake.mode = "edges"
    assert client.query_range(POWER_QUERY, PAST, PAST + 10.5, 5.0) == NORMAL
    assert client.dropped_points == 2


@pytest.mark.parametrize("mode", ["shuffled", "split"])
def test_points_out_of_order_or_in_several_entries_give_the_ordinary_values(fake, mode) -> None:
    """The review's answers: 13 points shuffled, or one series split into entries (with a
    repeated time): every point counts once, in time order, as in the ordinary answer."""
    watts = [40.0 + (index * 7) % 5 for index in range(13)]
    fake.range_values = {POWER_QUERY: watts}
    client = PromClient(fake.url, timeout=10.0)
    fake.mode = mode
    answered = client.query_range(POWER_QUERY, PAST, PAST + 60.5, 5.0)
    assert answered == watts and client.healthy
    assert client.dropped_points == (2 if mode == "split" else 0)
    summary = usable_summary(answered, 5.0)
    assert summary is not None and summary.mean == pytest.approx(546 / 13)


def test_more_series_or_points_than_a_query_can_ask_for_fail_it_whole(monkeypatch) -> None:
    series = [{"metric": {"container": str(index)}, "values": [[PAST + 5, "1"]]}
              for index in range(_promql.MAX_SERIES + 1)]
    empty = [{"metric": {"container": f"idle{index}"}, "values": []} for index in range(5000)]
    answers = iter([{"data": {"result": series[:-1] + empty}},  # at the limit: served
                    {"data": {"result": series}}])
    monkeypatch.setattr(PromClient, "_fetch",
                        lambda self, target: (200, json.dumps(next(answers)).encode()))
    client = PromClient("http://prometheus.invalid", backoff_initial=0.0)
    assert client.query_range(POWER_QUERY, PAST, PAST + 10) == [1.0] * _promql.MAX_SERIES
    assert client.query_range(POWER_QUERY, PAST, PAST + 10, 2.0) is None  # not a part of it
    assert client.failure_reasons == {"too_large": 1}
    points = WindowPoints(0.0, 100.0, 1.0, 10, 150)
    points.add({"metric": {"a": "1"}, "values": [[t, "1"] for t in range(100)]}, 0.0, 100.0)
    with pytest.raises(BadAnswer):
        points.add({"metric": {"a": "2"}, "values": [[t, "1"] for t in range(100)]}, 0.0, 100.0)


def test_the_answer_cache_is_bounded_in_bytes(fake, monkeypatch) -> None:
    monkeypatch.setattr(_promql, "CACHE_BYTES", 4096)
    client = PromClient(fake.url)
    for index in range(40):  # 40 finished windows of ~40 points each: ~600 bytes apiece
        start = PAST + 1000 * index
        assert client.query_range("grid", start, start + 100.0, 5.0) is not None
        assert client._cache_bytes <= 4096
    assert 0 < len(client._cache) < 40
    assert client._cache_bytes == sum(_promql._cost(v) for v in client._cache.values())
    # the newest windows are the ones kept
    sent = len(fake.requests)
    client.query_range("grid", PAST + 39_000, PAST + 39_100.0, 5.0)
    assert len(fake.requests) == sent


# -- a real exporter process -----------------------------------------------------------------

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/<pid>/status")


def _write_windows(directory: Path, count: int) -> None:
    """Scenarios without samples of their own: each window is asked of the database."""
    scenarios = [{"name": f"s{index}", "bitrate": "2500k", "start_time": PAST + 1000 * index,
                  "end_time": PAST + 1000 * index + 10} for index in range(count)]
    (directory / "test_results_20250101_000000.json").write_text(
        json.dumps({"scenarios": scenarios}))


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _costs(port: int) -> dict[str, float]:
    family = metrics(port).get("cost_total_load_aware")
    return {s.labels["scenario"]: s.value for s in family.samples} if family else {}


def _wait(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


PRICES = ("--energy-cost", "0.12", "--cpu-cost", "0.5")


@linux
@pytest.mark.slow
def test_an_exporter_fed_answers_at_the_byte_cap_stays_small_and_prices_as_normal(tmp_path) -> None:
    _write_windows(tmp_path, 4)  # 8 range queries of ~4 MiB each, four at a time
    with FakeProm() as fake:
        normal = Exporter("advisor-cost-exporter", tmp_path, "--prometheus-url", fake.url,
                          *PRICES)
        try:
            expected = _wait(lambda: len(_costs(normal.port)) == 4 and _costs(normal.port))
        finally:
            normal.stop()
        fake.mode = "flood"
        exporter = Exporter("advisor-cost-exporter", tmp_path, "--prometheus-url", fake.url,
                            *PRICES)
        try:
            costs = _wait(lambda: len(_costs(exporter.port)) == 4 and _costs(exporter.port))
            assert costs == expected  # bit for bit
            parsed = metrics(exporter.port)
            assert parsed["cost_exporter_up"].samples[0].value == 1.0
            assert parsed["cost_exporter_victoriametrics_up"].samples[0].value == 1.0
            # Eight answers, each with the flood's points outside the window dropped.
            assert parsed["cost_exporter_victoriametrics_dropped_points"].samples[0].value >= (
                8 * 2 * (fake.flood_bytes // 2 // 24))
            assert _peak_rss_mb(exporter.proc.pid) < 200
        finally:
            exporter.stop()
    assert "Traceback" not in exporter.output()


@linux
@pytest.mark.slow
def test_an_exporter_fed_deep_answers_counts_them_and_recovers_without_a_file_change(
        tmp_path) -> None:
    _write_windows(tmp_path, 2)
    with FakeProm() as fake:
        fake.mode = "deep"
        exporter = Exporter("advisor-cost-exporter", tmp_path, "--prometheus-url", fake.url,
                            *PRICES)
        try:
            parsed = metrics(exporter.port)
            assert parsed["cost_exporter_up"].samples[0].value == 1.0  # the file is served
            assert parsed["cost_exporter_victoriametrics_up"].samples[0].value == 0.0
            failures = {s.labels["reason"]: s.value
                        for s in parsed["cost_exporter_victoriametrics_failures"].samples}
            assert failures.get("too_deep", 0) >= 1
            assert _costs(exporter.port) == {}  # no load-aware data: nothing made up
            fake.mode = "ok"
            costs = _wait(lambda: len(_costs(exporter.port)) == 2 and _costs(exporter.port),
                          timeout=30)
            assert all(math.isfinite(value) and value > 0 for value in costs.values())
            assert metrics(exporter.port)[
                "cost_exporter_victoriametrics_up"].samples[0].value == 1.0
        finally:
            exporter.stop()
    assert "Traceback" not in exporter.output()


def _largest_accepted(item: bytes) -> bytes:
    """The biggest answer of repeated ``item`` that both the byte cap and the parse budget let
    through to json.loads (the costliest shapes per byte that are still parsed)."""
    head, tail = b'{"status":"success","data":{"result":[', b'{"values":[]}]}}'
    low, high = 0, MAX_ANSWER_BYTES // len(item)
    while low < high:
        middle = (low + high + 1) // 2
        body = head + item * middle + tail
        if len(body) <= MAX_ANSWER_BYTES and parse_cost(body) <= MAX_PARSE_BYTES:
            low = middle
        else:
            high = middle - 1
    return head + item * low + tail


@linux
@pytest.mark.slow
@pytest.mark.parametrize("item", [b'"ab",', b"[1.5],", '"\u00e9\u00e9",'.encode(),
                                  '"😀",'.encode(), b'"\\ud83d\\ude00",'])
def test_the_costliest_answers_that_are_parsed_keep_an_exporter_small(tmp_path, item) -> None:
    _write_windows(tmp_path, 6)  # 12 range queries, four at a time
    with FakeProm() as fake:
        fake.mode, fake.fixed = "fixed", _largest_accepted(item)
        exporter = Exporter("advisor-cost-exporter", tmp_path, "--prometheus-url", fake.url,
                            *PRICES)
        try:
            _wait(lambda: len([r for r in fake.requests if r[0] == "/api/v1/query_range"]) >= 12)
            parsed = metrics(exporter.port)
            assert parsed["cost_exporter_up"].samples[0].value == 1.0
            assert _peak_rss_mb(exporter.proc.pid) < 200
        finally:
            exporter.stop()
    assert "Traceback" not in exporter.output()


@linux
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["long", "long2"])
def test_long_windows_of_an_honest_database_stay_under_200_mb_with_the_right_values(
        tmp_path, mode) -> None:
    """The review's soak runs: four scenarios of 40 days at a 5 s step (690,001 points a
    series, one or two series an answer), every window asked by cost and results on four
    threads, in the shipped unit's process. Summarised from the doubles, not lists of floats."""
    seconds, step = 3_450_000, 5
    starts = [int(PAST) - 4_000_000 * (index + 1) for index in range(4)]
    scenarios = [{"name": f"s{index}", "bitrate": "2500k", "start_time": start,
                  "end_time": start + seconds} for index, start in enumerate(starts)]
    ports = {name: free_port() for name in ("cost", "qoe", "results")}
    with FakeProm() as fake:
        fake.mode = mode
        exporter = Exporter("advisor-exporters", tmp_path, "--prometheus-url", fake.url,
                            *PRICES, ports=ports)
        try:
            # Written once the ports answer: the windows take a while to ask and summarise.
            (tmp_path / "test_results_20250101_000000.json").write_text(
                json.dumps({"scenarios": scenarios}))
            def powers() -> dict[str, float]:
                family = metrics(ports["results"]).get("results_scenario_mean_power_watts")
                return ({s.labels["scenario"]: s.value for s in family.samples}
                        if family else {})

            served = _wait(lambda: len(powers()) == 4 and powers(), timeout=240)
            _wait(lambda: len(_costs(ports["cost"])) == 4, timeout=240)
            for index, start in enumerate(starts):
                watts = [long_window_value(i)
                         for i in range(start // step, (start + seconds) // step + 1)]
                assert served[f"s{index}"] == math.fsum(watts) / len(watts)
            results = metrics(ports["results"])
            assert {s.value for s in results["results_scenario_container_cpu_percent"].samples
                    } == {2.0}
            for name, port in ports.items():
                assert metrics(port)[f"{name}_exporter_up"].samples[0].value == 1.0
            assert _peak_rss_mb(exporter.proc.pid) < 200
        finally:
            exporter.stop()
    assert "Traceback" not in exporter.output()


@pytest.mark.parametrize("values", [
    [1.0], [2.5, 3.0], [40.0 + (i * 7919) % 13 / 7 for i in range(10_001)], [0.0] * 5,
    [1e308, 1e308], [-1.0, 2.0], [math.nan, 1.0], [math.inf], [1e-320, 5e-324]])
def test_a_database_answer_s_doubles_summarise_as_the_list_of_them(values) -> None:
    """What a range query hands over (array('d'), no float per point kept) is summarised with
    the very numbers of the list: mean, integral, spread, and the one validity rule."""
    assert summarise(array("d", values), 5.0) == summarise(values, 5.0)
    assert summarise(array("d"), 5.0) is None
