"""One failure model for a refresh: whatever fails is counted by reason, up goes to 0 for the
sets it touches, the last good metrics stay and the refresh is retried with backoff, also at
start-up and without a file change."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client.core import GaugeMetricFamily

from _process import Exporter, metrics
from exporters import refresh as refresh_module
from exporters._promql import PromClient
from exporters.metric_set import MetricSet, Run
from exporters.publisher import ExporterState
from exporters.refresh import RETRY_INITIAL_SECONDS, RETRY_MAX_SECONDS, Refresher


def name_and_value(scenario) -> tuple[str, float]:
    """A scenario's name and ``viewers`` (a dict before the record rework, a record after)."""
    if isinstance(scenario, dict):
        return scenario["name"], float(scenario.get("viewers", 0))
    return scenario.name, float(scenario.viewers or 0)


class Valued(MetricSet):
    """One gauge per scenario holding its ``viewers``; raises ``failure`` while it is set."""

    name = "demo"
    default_port = 9999

    def __init__(self, name: str = "demo") -> None:
        self.name = name
        self.failure: BaseException | None = None
        self.calls = 0

    def compute(self, run: Run, prom: PromClient) -> list:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        family = GaugeMetricFamily(f"{self.name}_value", "viewers", labels=["scenario"])
        for scenario in run.scenarios:
            name, value = name_and_value(scenario)
            family.add_metric([name], value)
        return [family]


def write(directory: Path, name: str, scenarios: list) -> Path:
    path = directory / name
    path.write_text(json.dumps({"scenarios": scenarios}), encoding="utf-8")
    return path


def served(state: ExporterState) -> tuple[list, float, dict]:
    """(value samples, up, refresh failures by reason) of the body a scrape gets."""
    from prometheus_client.parser import text_string_to_metric_families

    parsed = {f.name: f.samples for f in text_string_to_metric_families(state.body[0].decode())}
    name = state.metric_set.name
    failures = {s.labels["reason"]: s.value for s in parsed[f"{name}_exporter_refresh_failures"]}
    return ([(s.labels["scenario"], s.value) for s in parsed.get(f"{name}_value", [])],
            parsed[f"{name}_exporter_up"][0].value, failures)


class Clock:
    """time.monotonic for the refresh module, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(refresh_module.time, "monotonic", fake)
    return fake


@pytest.mark.parametrize(("failure", "reason"), [
    (RuntimeError("a bug"), "compute_failed"),
    (ValueError("Exceeds the limit (4300 digits) for integer string conversion"),
     "compute_failed"),
    (MemoryError(), "out_of_memory"),
    (RecursionError(), "too_deep"),
])
def test_a_compute_that_raises_keeps_the_last_good_data_and_is_retried_with_backoff(
        tmp_path, clock, failure, reason) -> None:
    write(tmp_path, "test_results_20250101_000000.json", [{"name": "a", "viewers": 7}])
    prom = PromClient(None)
    failing, other = Valued("broken"), Valued("fine")
    states = [ExporterState(failing, prom), ExporterState(other, prom)]
    refresher = Refresher(states, tmp_path, 1.0, prom)
    refresher.tick()
    assert served(states[0]) == ([("a", 7.0)], 1.0, {})
    failing.failure = failure
    write(tmp_path, "test_results_20250102_000000.json", [{"name": "b", "viewers": 9}])
    refresher.tick()
    assert served(states[0]) == ([("a", 7.0)], 0.0, {reason: 1.0})  # last good data kept
    assert served(states[1]) == ([("b", 9.0)], 1.0, {})  # the other set is not touched
    calls = failing.calls
    refresher.tick()  # before the retry delay: not tried again
    assert failing.calls == calls
    delays = []
    for _ in range(8):  # still failing: tried again after 1, 2, 4 ... s, at most 60 s apart
        started = clock.now
        while failing.calls == calls:
            clock.now += 0.25
            refresher.tick()
        calls = failing.calls
        delays.append(clock.now - started)
    assert delays[:3] == [RETRY_INITIAL_SECONDS, 2 * RETRY_INITIAL_SECONDS,
                          4 * RETRY_INITIAL_SECONDS]
    assert max(delays) == RETRY_MAX_SECONDS
    assert served(states[0]) == ([("a", 7.0)], 0.0, {reason: 9.0})  # each try counted
    failing.failure = None  # the cause is gone; the file did not change
    clock.now += RETRY_MAX_SECONDS
    refresher.tick()
    assert served(states[0]) == ([("b", 9.0)], 1.0, {reason: 9.0})
    calls = failing.calls
    clock.now += 2 * RETRY_MAX_SECONDS  # a refresh that worked: no more retries
    refresher.tick()
    assert failing.calls == calls


@pytest.mark.parametrize(("failure", "reason"), [
    (ValueError("a field the reader let through"), "load_failed"),
    (MemoryError(), "out_of_memory"),
])
def test_a_load_that_raises_outside_the_file_handler_is_counted_for_every_set(
        tmp_path, clock, monkeypatch, failure, reason) -> None:
    write(tmp_path, "test_results_20250101_000000.json", [{"name": "a", "viewers": 7}])
    prom = PromClient(None)
    states = [ExporterState(Valued("one"), prom), ExporterState(Valued("two"), prom)]
    refresher = Refresher(states, tmp_path, 1.0, prom)
    refresher.tick()
    real = Refresher._refresh
    attempts = []

    def broken(self, signature):
        attempts.append(signature)
        raise failure

    monkeypatch.setattr(Refresher, "_refresh", broken)
    write(tmp_path, "test_results_20250102_000000.json", [{"name": "b", "viewers": 9}])
    refresher.tick()
    for state in states:
        assert served(state) == ([("a", 7.0)], 0.0, {reason: 1.0})
    clock.now += RETRY_INITIAL_SECONDS
    refresher.tick()  # retried without a file change
    assert len(attempts) == 2
    monkeypatch.setattr(Refresher, "_refresh", real)
    clock.now += 2 * RETRY_INITIAL_SECONDS
    refresher.tick()
    for state in states:
        assert served(state) == ([("b", 9.0)], 1.0, {reason: 2.0})


def test_the_first_refresh_never_raises(tmp_path, monkeypatch) -> None:
    write(tmp_path, "test_results_20250101_000000.json", [{"name": "a", "viewers": 7}])
    monkeypatch.setattr(Refresher, "_refresh", lambda self, signature: 1 / 0)
    prom = PromClient(None)
    state = ExporterState(Valued(), prom)
    Refresher([state], tmp_path, 1.0, prom).tick()  # no exception
    assert served(state) == ([], 0.0, {"load_failed": 1.0})


# -- real processes --------------------------------------------------------------------------

#: The QoE exporter with a fault switched on by a file beside the results: FAIL_COMPUTE makes
#: its compute raise, FAIL_LOAD makes the whole refresh raise (outside any file handler).
LAUNCHER = textwrap.dedent('''
    import sys
    from pathlib import Path

    from exporters import qoe, refresh

    compute, load = qoe.QoEMetrics.compute, refresh.Refresher._refresh

    def faulty_compute(self, run, prom):
        if (Path(run.path).parent / "FAIL_COMPUTE").exists():
            raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")
        return compute(self, run, prom)

    def faulty_load(self, signature):
        if (self.results_dir / "FAIL_LOAD").exists():
            raise MemoryError()
        return load(self, signature)

    qoe.QoEMetrics.compute = faulty_compute
    refresh.Refresher._refresh = faulty_load
    sys.exit(qoe.main())
''')

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")


@pytest.fixture
def faulty(tmp_path, monkeypatch) -> str:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "faulty_qoe.py").write_text(LAUNCHER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path / "code"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return "faulty_qoe"


def _state(port: int) -> tuple[dict, float, dict]:
    parsed = metrics(port)
    family = parsed.get("qoe_vmaf_score")
    scores = {s.labels["scenario"]: s.value for s in family.samples} if family else {}
    failures = {s.labels["reason"]: s.value
                for s in parsed["qoe_exporter_refresh_failures"].samples}
    return scores, parsed["qoe_exporter_up"].samples[0].value, failures


def _until(port: int, check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        state = _state(port)
        if check(*state):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def _scenario(name: str, vmaf: float) -> dict:
    return {"name": name, "bitrate": "1000k", "vmaf_score": vmaf}


@linux
@pytest.mark.slow
@pytest.mark.parametrize(("flag", "reason"), [("FAIL_COMPUTE", "compute_failed"),
                                              ("FAIL_LOAD", "out_of_memory")])
def test_a_process_whose_first_refresh_fails_serves_up_0_and_recovers_by_itself(
        tmp_path, faulty, flag, reason) -> None:
    results = tmp_path / "results"
    results.mkdir()
    write(results, "test_results_20250101_000000.json", [_scenario("a", 80.0)])
    (results / flag).touch()
    exporter = Exporter(faulty, results)  # binds and serves: data never stops a process
    try:
        scores, up, failures = _state(exporter.port)
        assert (scores, up) == ({}, 0.0) and failures[reason] >= 1
        (results / flag).unlink()  # no results file changes: the retry brings it back
        _until(exporter.port, lambda s, u, f: s == {"a": 80.0} and u == 1.0)
    finally:
        exporter.stop()
    assert exporter.proc.returncode == 0


@linux
@pytest.mark.slow
@pytest.mark.parametrize(("flag", "reason"), [("FAIL_COMPUTE", "compute_failed"),
                                              ("FAIL_LOAD", "out_of_memory")])
def test_a_process_whose_refresh_fails_while_running_keeps_its_data_and_retries(
        tmp_path, faulty, flag, reason) -> None:
    results = tmp_path / "results"
    results.mkdir()
    write(results, "test_results_20250101_000000.json", [_scenario("a", 80.0)])
    exporter = Exporter(faulty, results)
    try:
        assert _state(exporter.port) == ({"a": 80.0}, 1.0, {})
        (results / flag).touch()
        write(results, "test_results_20250102_000000.json", [_scenario("b", 90.0)])
        _, _, failures = _until(exporter.port, lambda s, u, f: s == {"a": 80.0} and u == 0.0)
        assert failures[reason] >= 1
        time.sleep(2.0)
        retried = _state(exporter.port)[2][reason]
        assert retried > failures[reason]  # tried again although no file changed
        (results / flag).unlink()
        _until(exporter.port, lambda s, u, f: s == {"b": 90.0} and u == 1.0)
    finally:
        exporter.stop()
    assert "Traceback" in exporter.output()  # the cause is logged once, with its stack
    assert exporter.output().count("Traceback") <= 4
