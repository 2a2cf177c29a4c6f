"""PromClient and cost enrichment against a fake Prometheus HTTP API on loopback."""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from _fakeprom import FakeProm
from exporters._promql import PromClient
from exporters.cost import CPU_QUERY, POWER_QUERY, CostMetrics
from exporters.publisher import ExporterState
from exporters.refresh import Refresher

PAST = 1_700_000_000.0  # a window that ended long ago: cacheable


@pytest.fixture
def fake():
    with FakeProm() as server:
        yield server


def test_query_range_parses_and_sends_expected_parameters(fake: FakeProm) -> None:
    client = PromClient(fake.url)
    values = client.query_range(POWER_QUERY, PAST, PAST + 10.5, 5.0)
    assert values == [100.0, 110.0, 120.0]  # unparsable values of other series skipped
    path, params = fake.requests[0]
    assert path == "/api/v1/query_range"
    assert params == {"query": POWER_QUERY, "start": "1700000000", "end": "1700000010.5",
                      "step": "5s"}
    assert client.healthy


def test_instant_query(fake: FakeProm) -> None:
    client = PromClient(fake.url)
    expr = 'sum(increase(rapl_energy_joules_total{zone=~"package.*"}[120s]))'
    assert client.query(expr, PAST) == 42.5
    assert fake.requests[0] == ("/api/v1/query", {"query": expr, "time": "1700000000"})


def test_finished_windows_are_cached_open_windows_are_not(fake: FakeProm) -> None:
    client = PromClient(fake.url)
    for _ in range(3):
        assert client.query_range(CPU_QUERY, PAST, PAST + 60) == [2.0, 3.0, 4.0]
        assert client.query("vector(1)", PAST) == 42.5
    assert len(fake.requests) == 2
    now = time.time()
    incomplete = client.incomplete
    for _ in range(2):
        client.query_range(CPU_QUERY, now - 60, now)
    assert len(fake.requests) == 4  # a window still open is asked again
    assert client.incomplete == incomplete + 2


@pytest.mark.parametrize("status", [400, 422])
def test_refused_query_is_a_final_answer_for_a_finished_window(fake: FakeProm,
                                                               status: int) -> None:
    # VictoriaMetrics answers 422 to a range query of more than 30,000 steps (a window of
    # more than ~41.7 h at 5 s), 400 to bad parameters: asking again cannot help, and must not
    # trigger refreshes.
    fake.mode, fake.error_status = "error", status
    client = PromClient(fake.url)
    incomplete = client.incomplete
    for _ in range(3):
        assert client.query_range(CPU_QUERY, PAST - 2 * 86400, PAST) is None
    assert len(fake.requests) == 1
    assert client.incomplete == incomplete  # nothing left to retry
    assert client.healthy and not client.backing_off()
    now = time.time()
    for _ in range(2):  # a window still open may get another answer later
        assert client.query_range(CPU_QUERY, now - 60, now) is None
    assert len(fake.requests) == 3
    assert client.incomplete == incomplete + 2


@pytest.mark.parametrize("status", [401, 403, 404, 405, 429, 503])
def test_outage_overload_or_wrong_setup_backs_off(fake: FakeProm, status: int) -> None:
    """Only 400/422 are about one query; a 404 (no query API at that URL) is not "up"."""
    fake.mode, fake.error_status = "error", status
    client = PromClient(fake.url, backoff_initial=1.0)
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) is None
    assert not client.healthy and client.backing_off()
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) is None
    assert len(fake.requests) == 1
    assert client.failures == 1 and client.incomplete >= 2  # nothing cached: asked again later


def test_server_error_backs_off_and_recovers(fake: FakeProm) -> None:
    clock = [1000.0]
    client = PromClient(fake.url, backoff_initial=1.0, clock=lambda: clock[0])
    fake.mode = "error"
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) is None
    assert not client.healthy and client.backing_off()
    for _ in range(5):  # no requests at all while backing off
        assert client.query_range(POWER_QUERY, PAST, PAST + 60) is None
    assert len(fake.requests) == 1
    clock[0] += 1.5
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) is None  # second failure
    assert len(fake.requests) == 2
    clock[0] += 1.5  # the delay doubled to 2 s
    assert client.backing_off()
    clock[0] += 1.0
    fake.mode = "ok"
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) == [2.0, 3.0, 4.0]
    assert client.healthy and not client.backing_off()


def test_timeout_marks_unhealthy(fake: FakeProm) -> None:
    fake.mode = "slow"
    client = PromClient(fake.url, timeout=0.1)
    started = time.perf_counter()
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) is None
    assert time.perf_counter() - started < 0.45
    assert not client.healthy and client.backing_off()


@pytest.mark.parametrize("mode", ["hang", "trickle", "huge", "huge_unannounced"])
def test_a_stalling_or_flooding_database_costs_one_deadline_then_recovers(
        fake: FakeProm, mode: str) -> None:
    client = PromClient(fake.url, timeout=0.5, backoff_initial=0.0)
    assert client.query("vector(1)", PAST) == 42.5 and client.healthy
    fake.mode = mode
    started = time.monotonic()
    assert client.query("vector(1)", PAST + 1) is None
    assert time.monotonic() - started < 1.0  # one overall deadline, however the bytes come
    assert not client.healthy  # victoriametrics_up 0
    fake.mode = "ok"
    assert client.query("vector(1)", PAST + 2) == 42.5 and client.healthy


def test_down_database_is_a_none_not_an_exception() -> None:
    client = PromClient("http://127.0.0.1:9")  # discard port: connection refused
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) is None
    assert client.query("x", PAST) is None
    assert not client.healthy
    assert PromClient(None).query("x", PAST) is None
    assert not PromClient(None).enabled


def test_map_windows_is_bounded_and_ordered(fake: FakeProm) -> None:
    client = PromClient(fake.url, max_workers=4)
    active, peak = [0], [0]
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return i * i

    assert client.map_windows(work, range(12)) == [i * i for i in range(12)]
    assert 1 < peak[0] <= 4
    client.close()


# -- enrichment in the cost set, through the refresh thread ----------------------------------


def cost_settings(tmp_path: Path, url: str | None, **extra) -> argparse.Namespace:
    values = dict(currency="USD", region="us-east-1", pricing_config=None,
                  electricity_maps_token=None, energy_cost=0.0, cpu_cost=0.50, gpu_cost=0.0,
                  disable_load_aware=False, results_dir=str(tmp_path), prometheus_url=url)
    values.update(extra)
    return argparse.Namespace(**values)


def write_run(tmp_path: Path) -> None:
    scenarios = [
        {"name": "2 streams @ 2500k", "bitrate": "2500k", "start_time": PAST,
         "end_time": PAST + 10},
        {"name": "own samples", "bitrate": "1000k", "start_time": PAST, "end_time": PAST + 10,
         "step_seconds": 5, "power_watts": [50.0, 50.0], "cpu_usage_cores": [1.0, 1.0]},
        {"name": "no window", "bitrate": "1000k"},
    ]
    (tmp_path / "test_results_20250101_000000.json").write_text(
        json.dumps({"scenarios": scenarios}))


def parse(body: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_cost_enrichment_queries_only_scenarios_without_samples(tmp_path: Path,
                                                                fake: FakeProm) -> None:
    write_run(tmp_path)
    prom = PromClient(fake.url)
    state = ExporterState(CostMetrics(cost_settings(tmp_path, fake.url)), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    refresher.tick()
    queries = sorted(p["query"] for path, p in fake.requests if path == "/api/v1/query_range")
    assert queries == sorted([CPU_QUERY, POWER_QUERY])
    parsed = parse(state.body[0])
    total = {s.labels["scenario"]: s.value for s in parsed["cost_total_load_aware"].samples}
    energy = 5 / 2 * (100 + 120 + 2 * 110) * 0.12 / 3_600_000
    compute = 5 / 2 * (2 + 4 + 2 * 3) * 0.5 / 3600
    assert total["2 streams @ 2500k"] == pytest.approx(energy + compute, rel=1e-12)
    assert "no window" not in total
    assert parsed["cost_exporter_victoriametrics_up"].samples[0].value == 1.0
    # a finished window is never asked again, even when the file changes
    count = len(fake.requests)
    (tmp_path / "test_results_20250102_000000.json").write_bytes(
        (tmp_path / "test_results_20250101_000000.json").read_bytes())
    refresher.tick()
    assert len([r for r in fake.requests[count:] if r[0] == "/api/v1/query_range"]) == 0


def test_database_down_keeps_serving_with_gauge_zero(tmp_path: Path, fake: FakeProm) -> None:
    write_run(tmp_path)
    fake.mode = "error"
    prom = PromClient(fake.url, backoff_initial=60.0)
    state = ExporterState(CostMetrics(cost_settings(tmp_path, fake.url)), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    refresher.tick()
    parsed = parse(state.body[0])
    assert parsed["cost_exporter_victoriametrics_up"].samples[0].value == 0.0
    served = {s.labels["scenario"] for s in parsed["cost_total_load_aware"].samples}
    assert served == {"own samples"}  # the file's own samples still priced
    sent = len(fake.requests)
    assert sent == 1  # first failure starts the backoff; the other query is not sent
    for _ in range(3):
        refresher.tick()
    assert len(fake.requests) == sent  # backing off: nothing sent


def test_disable_load_aware_sends_nothing(tmp_path: Path, fake: FakeProm) -> None:
    write_run(tmp_path)
    prom = PromClient(fake.url)
    metric_set = CostMetrics(cost_settings(tmp_path, fake.url, disable_load_aware=True))
    state = ExporterState(metric_set, prom)
    Refresher([state], tmp_path, 1.0, prom).tick()
    assert not [r for r in fake.requests if r[0] == "/api/v1/query_range"]
    assert metric_set.skipped() == {"no_load_aware_data": 2}


def test_long_windows_are_asked_in_pieces_on_the_same_grid():
    with FakeProm() as fake:
        client = PromClient(fake.url, timeout=2.0)
        start = PAST - 3 * 86400
        end = PAST  # 51,841 points at 5 s: one request would be refused
        values = client.query_range("grid", start, end, 5.0)
        ranges = [p for path, p in fake.requests if path == "/api/v1/query_range"]
        assert len(ranges) == 5
        grid = [start + 5.0 * i for i in range(51_841)]
        assert values == grid + [-t for t in grid]  # series by series, each in time order
        # Pieces start on the grid and do not overlap
        starts = [float(p["start"]) for p in ranges]
        assert starts == [start + 5.0 * 11_000 * i for i in range(5)]
        assert all(float(p["end"]) < nxt for p, nxt in zip(ranges, starts[1:]))
        assert client.query_range("grid", start, end, 5.0) == values  # cached: finished window
        assert len([1 for path, _ in fake.requests if path == "/api/v1/query_range"]) == 5
        short = client.query_range("grid", start, start + 50.0, 5.0)
        points = [start + 5.0 * i for i in range(11)]
        assert short == points + [-t for t in points]


def test_long_windows_are_asked_one_at_a_time():
    """The points of a long window (up to ~33 MB) are alive for one window at a time."""
    with FakeProm() as fake:
        client = PromClient(fake.url, timeout=2.0, max_workers=4)
        day = 86400.0
        windows = [(PAST - (4 * k + 3) * day, PAST - 4 * k * day) for k in range(4)]
        windows += [(PAST + k * 100.0, PAST + k * 100.0 + 50.0) for k in range(1, 5)]
        answers = client.map_windows(lambda w: client.query_range("grid", w[0], w[1], 5.0),
                                     windows)
        assert all(len(values) == 2 * (int((end - start) // 5.0) + 1)
                   for values, (start, end) in zip(answers, windows))
        asked = [float(p["start"]) for path, p in fake.requests if path == "/api/v1/query_range"]
        owner = [next(index for index, (start, end) in enumerate(windows) if start <= at <= end)
                 for at in asked]
        long_order = [index for index in owner if index < 4]
        assert len(long_order) == 4 * 5
        # Each long window's five requests follow one another: no two are in flight at once.
        assert all(long_order[i] == long_order[i - 1] for i in range(1, len(long_order))
                   if i % 5), long_order
        client.close()


def test_past_its_time_a_query_sends_nothing_and_the_database_stays_healthy(
        fake: FakeProm) -> None:
    client = PromClient(fake.url)
    client.spend(0.0)
    time.sleep(0.01)
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) is None
    assert client.query("vector(1)", PAST) is None
    assert fake.requests == []
    assert client.failure_reasons == {"time_budget": 2}
    assert client.failures == 0 and not client.backing_off()
    client.spend(math.inf)
    assert client.query_range(CPU_QUERY, PAST, PAST + 60) == [2.0, 3.0, 4.0]
    assert client.healthy
    client.close()


def test_a_refresh_spends_at_most_its_database_time(tmp_path: Path, fake: FakeProm,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A database answering every request in 0.5 s, within its deadline, and a file of 40
    windows: the refresh ends after its database time, with the windows asked priced, the
    rest without load-aware data, and up 1."""
    monkeypatch.setattr("exporters.refresh.DATABASE_SECONDS", 1.0)
    scenarios = [{"name": f"{i} streams @ 2500k", "bitrate": "2500k",
                  "start_time": PAST + 100 * i, "end_time": PAST + 100 * i + 10}
                 for i in range(1, 41)]
    (tmp_path / "test_results_20250101_000000.json").write_text(
        json.dumps({"scenarios": scenarios}))
    fake.mode = "slow"
    prom = PromClient(fake.url, max_workers=4)
    state = ExporterState(CostMetrics(cost_settings(tmp_path, fake.url)), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    started = time.monotonic()
    refresher.tick()
    # 1 s of database time, then the requests under way end (0.5 s each).
    assert time.monotonic() - started < 3.0
    parsed = parse(state.body[0])
    priced = {s.labels["scenario"] for s in parsed["cost_total_load_aware"].samples}
    assert 0 < len(priced) < 40
    assert parsed["cost_exporter_up"].samples[0].value == 1.0
    reasons = {s.labels["reason"]: s.value
               for s in parsed["cost_exporter_victoriametrics_failures"].samples}
    assert reasons["time_budget"] > 0
    # Between refreshes the database is asked again (probes are not refused).
    assert prom.query("vector(1)", PAST) == 42.5
    prom.close()


def test_absurd_windows_send_no_request_and_answer_no_data():
    with FakeProm() as fake:
        client = PromClient(fake.url, timeout=2.0)
        # A start time of 0 (a broken timestamp): 340 million points at 5 s
        assert client.query_range("grid", 0.0, PAST, 5.0) is None
        assert not [1 for path, _ in fake.requests if path == "/api/v1/query_range"]
        assert client.failures == 0  # a refusal is not an outage
        # 40 days is still asked, in 64 pieces
        values = client.query_range("grid", PAST - 64 * 11_000 * 5.0 + 5.0, PAST, 5.0)
        assert len(values) == 2 * 64 * 11_000


_JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=4),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)
_PAIR = st.lists(_JSON | st.sampled_from(["1e308", "NaN", "+Inf", "-1", "5e-324", "12.5"]),
                 min_size=2, max_size=2)
_SERIES = st.fixed_dictionaries({
    "metric": st.dictionaries(st.text(max_size=3), _JSON | st.text(max_size=3), max_size=2)
    | _JSON,
    "values": st.lists(_PAIR, min_size=1, max_size=3) | _JSON,
    "value": _PAIR | _JSON,
})
_ANSWER = _JSON | st.fixed_dictionaries({}, optional={
    "status": st.sampled_from(["success", "error"]) | _JSON,
    "data": _JSON | st.fixed_dictionaries({}, optional={
        "resultType": _JSON, "result": st.lists(_SERIES | _JSON, max_size=3) | _JSON}),
})


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=_ANSWER)
def test_any_json_answer_gives_finite_floats_or_none(monkeypatch, answer) -> None:
    """A broken or hostile answer is "no data" or a failure, never an exception or inf/NaN."""
    try:
        body = json.dumps(answer).encode()
    except ValueError:  # circular or unserialisable: not an answer a server can send
        return
    monkeypatch.setattr(PromClient, "_fetch", lambda self, target: (200, body))
    client = PromClient("http://prometheus.invalid", backoff_initial=0.0)
    values = client.query_range(CPU_QUERY, PAST, PAST + 60)
    assert values is None or all(type(v) is float and math.isfinite(v) for v in values)
    value = client.query("vector(1)", PAST)
    assert value is None or (type(value) is float and math.isfinite(value))


def test_series_with_non_text_label_values_are_skipped(monkeypatch) -> None:
    answer = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"zone": ["package-0"]}, "values": [[PAST, "99"]]},
        {"metric": {"zone": "package-0"}, "values": [[PAST, "1.5"], [PAST + 5, True]]},
        {"values": [[PAST, "2.5"]]},
    ]}}
    body = json.dumps(answer).encode()
    monkeypatch.setattr(PromClient, "_fetch", lambda self, target: (200, body))
    assert PromClient("http://prometheus.invalid").query_range(CPU_QUERY, PAST, PAST + 60) == [
        1.5, 2.5]
