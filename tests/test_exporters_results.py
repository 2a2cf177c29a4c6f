"""Results exporter: exposition validity, hand-computed values, VictoriaMetrics, ML off the path."""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from advisor_core.data.reader import run_record
from advisor_core.data.scenario import load_results
from exporters import results as results_module
from exporters._promql import PromClient
from exporters.exposition import render_families
from exporters.jobs import BackgroundJobs
from exporters.publisher import ExporterState
from exporters.refresh import Refresher
from exporters.results import LABELS, ResultsMetrics
from exporters.results_model import default_predictor
from exporters.results_victoriametrics import energy_query
from exporters.runtime import start_exporters
from exporters.settings import parse_settings

DATA_DIR = Path(__file__).parent / "data"
EXTENDED = DATA_DIR / "test_results_20240115_103000.json"
REAL = DATA_DIR / "test_results_20251229_125651.json"

# Windows far in the past: the client caches them, and nothing depends on the clock.
T0 = 1735812000.0


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _run(path: Path):
    return run_record(path, load_results(path))


def _write(tmp_path: Path, scenarios: list, stamp: str = "20250102_100000") -> Path:
    path = tmp_path / f"test_results_{stamp}.json"
    path.write_text(json.dumps({"test_date": "2025-01-02T10:00:00", "scenarios": scenarios}),
                    encoding="utf-8")
    return path


def _parse(families: list) -> dict[str, dict[str, dict[str, float]]]:
    """Render, parse strictly, and index samples: family -> scenario -> {sample name: value}.

    Also asserts that no family repeats a label set and that the scenario families carry the
    ten reference labels.
    """
    text = render_families(families).decode("utf-8")
    parsed: dict[str, dict[str, dict[str, float]]] = {}
    for family in text_string_to_metric_families(text):
        seen: set = set()
        by_scenario = parsed.setdefault(family.name, {})
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in seen, f"repeated series {key}"
            seen.add(key)
            if family.name.startswith("results_scenario_"):
                assert set(sample.labels) == set(LABELS), family.name
            scenario = sample.labels.get("scenario", "")
            assert scenario not in by_scenario, f"{family.name} twice for {scenario!r}"
            by_scenario[scenario] = {"value": sample.value, **sample.labels}
    return parsed


def _value(parsed: dict, metric: str, scenario: str) -> Optional[float]:
    entry = parsed.get(metric, {}).get(scenario)
    return None if entry is None else entry["value"]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _sample_stdev(values: list[float]) -> float:
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _trapezoid(values: list[float], step: float) -> float:
    return sum((a + b) / 2 * step for a, b in zip(values, values[1:]))


@pytest.fixture
def metrics() -> ResultsMetrics:
    return ResultsMetrics()


def run_job(metrics: ResultsMetrics) -> bool:
    """Run the background job the last compute asked for, here and now; True when it changed
    the families (False when no job was due)."""
    job = metrics.take_job()
    return job() if job is not None else False


NO_DB = PromClient(None)


# ---------------------------------------------------------------------------------------------
# Fake VictoriaMetrics on loopback
# ---------------------------------------------------------------------------------------------


class FakeVM:
    """Serves /api/v1/query and /api/v1/query_range with fixed answers; records requests."""

    def __init__(self, energy: Optional[str] = "6000", power: Optional[list] = None,
                 cpu: Optional[list] = None) -> None:
        self.energy = energy
        self.power = ["50", "52", "51"] if power is None else power
        self.cpu = ["10", "20"] if cpu is None else cpu
        self.requests: list[tuple[str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                fake.requests.append((parts.path, params))
                body = json.dumps(fake.answer(parts.path, params)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str, params: dict) -> dict:
        query = params.get("query", "")
        if path == "/api/v1/query":
            if "rapl_energy_joules_total" in query and self.energy is not None:
                result = [{"metric": {}, "value": [float(params["time"]), self.energy]}]
            else:
                result = []
            return {"status": "success", "data": {"resultType": "vector", "result": result}}
        values = {"rapl_power_watts": self.power,
                  "docker_containers_total_cpu_percent": self.cpu}
        series = next((v for k, v in values.items() if k in query), [])
        start = float(params["start"])
        result = ([{"metric": {}, "values": [[start + 5 * i, v] for i, v in enumerate(series)]}]
                  if series else [])
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_vm() -> Iterator[FakeVM]:
    vm = FakeVM()
    yield vm
    vm.close()


# ---------------------------------------------------------------------------------------------
# Every real file
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DATA_DIR.glob("test_results_*.json")),
                         ids=lambda p: p.name)
def test_every_data_file_renders_valid_unique_series(path: Path, metrics: ResultsMetrics):
    run = _run(path)
    parsed = _parse(metrics.compute(run, NO_DB))
    kept = {s["name"]: s for s in load_results(path)}.values()  # the last of each name
    names = {s["name"] for s in kept}
    assert names == {s.name for s in run.scenarios}
    # Every scenario here has a duration (measured window or field): one sample each.
    assert set(parsed["results_scenario_duration_seconds"]) == names
    with_power = {s["name"] for s in kept if isinstance(s.get("power_watts"), list)}
    assert set(parsed.get("results_scenario_mean_power_watts", {})) == with_power
    assert metrics.skipped().get("no_power_data", 0) == len(names) - len(with_power)
    with_vmaf = {s["name"] for s in kept if (s.get("vmaf_score") or 0) > 0}
    assert set(parsed.get("results_scenario_vmaf_score", {})) == with_vmaf
    # Never a fake zero for a scenario without power data.
    for family in ("results_scenario_total_energy_joules", "results_scenario_power_stdev",
                   "results_scenario_prediction_confidence_high"):
        assert set(parsed.get(family, {})) <= with_power


def test_real_run_labels_follow_the_reference(metrics: ResultsMetrics):
    parsed = _parse(metrics.compute(_run(REAL), NO_DB))
    labels = parsed["results_scenario_duration_seconds"]["4 Streams @ 2500k"]
    assert {k: labels[k] for k in LABELS} == {
        "run_id": "test_results_20251229_125651", "scenario": "4 Streams @ 2500k",
        "bitrate": "2500k", "resolution": "1280x720", "fps": "30", "streams": "4",
        "output_ladder": "1280x720@30", "encoder_type": "cpu", "encoder": "h264",
        "preset": "veryfast",
    }
    scenario = next(s for s in load_results(REAL) if s["name"] == "4 Streams @ 2500k")
    # The scenario's duration field (the record's one duration), not the measured window.
    assert labels["value"] == scenario["duration"] == 120
    assert abs(scenario["end_time"] - scenario["start_time"] - 120) < 1e-3
    pixels = parsed["results_scenario_total_pixels"]["4 Streams @ 2500k"]["value"]
    assert pixels == pytest.approx(1280 * 720 * 30 * labels["value"], rel=1e-12)


def test_extended_file_matches_hand_computations(metrics: ResultsMetrics):
    run = _run(EXTENDED)
    parsed = _parse(metrics.compute(run, NO_DB))
    name = "2 streams @ 2500k"
    watts = [45.2, 46.1, 45.8, 47, 46.5, 45.9, 46.3, 46.7, 45.5, 46.2]
    cores = [2.1, 2.3, 2.2, 2.4, 2.3, 2.2, 2.3, 2.4, 2.1, 2.2]
    mean, stdev = _mean(watts), _sample_stdev(watts)
    duration = 1705315920.5 - 1705315800
    # Ten samples at 5 s do not span the 120.5 s scenario: its energy is mean x duration
    # (docs/results-files.md §2.4; the reference integrated the 45 s the samples span).
    assert len(watts) * 5.0 < duration - 5.0
    joules = mean * duration
    v = lambda metric: _value(parsed, metric, name)  # noqa: E731
    assert v("results_scenario_duration_seconds") == pytest.approx(120.5)
    assert v("results_scenario_mean_power_watts") == pytest.approx(mean, rel=1e-12)
    assert v("results_scenario_measured_power_watts") == pytest.approx(mean, rel=1e-12)
    assert v("results_scenario_power_stdev") == pytest.approx(stdev, rel=1e-12)
    assert v("results_scenario_total_energy_joules") == pytest.approx(joules, rel=1e-12)
    assert v("results_scenario_total_energy_wh") == pytest.approx(joules / 3600, rel=1e-12)
    assert v("results_scenario_energy_wh_per_min") == pytest.approx(
        joules / 3600 * 60 / duration, rel=1e-12)
    assert v("results_scenario_energy_wh_per_mbps") == pytest.approx(joules / 3600 / 2.5,
                                                                      rel=1e-12)
    assert v("results_scenario_prediction_confidence_high") == pytest.approx(mean + 2 * stdev)
    assert v("results_scenario_prediction_confidence_low") == pytest.approx(mean - 2 * stdev)
    assert v("results_scenario_container_cpu_percent") == pytest.approx(_mean(cores) * 100)
    # Share capped at one core: 2.25 busy cores cannot use more than the package's power.
    assert v("results_scenario_estimated_docker_overhead_watts") == pytest.approx(mean)
    # No fps in the file: the pixels are the scheduler's own pixels_processed count, so the
    # efficiency is pixels per joule; no fps also means no energy per frame.
    assert v("results_scenario_total_pixels") == 8957952000
    assert v("results_scenario_energy_mj_per_frame") is None
    assert v("results_scenario_efficiency_score") == pytest.approx(8957952000 / joules,
                                                                   rel=1e-12)
    assert v("results_scenario_avg_fps") == 29.97
    assert v("results_scenario_dropped_frames") == 5
    assert v("results_scenario_total_frames") == 3612
    assert v("results_scenario_vmaf_score") == 92.5
    assert v("results_scenario_psnr_score") == 42.3
    # Baseline: "baseline idle", its own samples.
    base = _mean([25.3, 25.1, 25.4, 25.2, 25.3, 25, 25.2, 25.4, 25.1, 25.3])
    base_joules = base * 60  # ten samples at 5 s for a 60 s scenario: mean x duration
    assert v("results_scenario_delta_power_watts") == pytest.approx(mean - base, rel=1e-12)
    assert v("results_scenario_net_power_watts") == pytest.approx(mean - base, rel=1e-12)
    assert v("results_scenario_power_pct_increase") == pytest.approx((mean - base) / base * 100)
    assert v("results_scenario_delta_energy_wh") == pytest.approx(
        (joules - base_joules) / 3600, rel=1e-12)
    assert v("results_scenario_net_container_cpu_percent") == pytest.approx(
        _mean(cores) * 100 - 10.0)
    assert _value(parsed, "results_scenario_delta_power_watts", "baseline idle") == 0.0
    labels = parsed["results_scenario_mean_power_watts"][name]
    assert (labels["streams"], labels["encoder_type"], labels["output_ladder"], labels["fps"]) == (
        "2", "libx264", "unknown", "")


def test_extended_families_are_gauges(metrics: ResultsMetrics):
    text = render_families(metrics.compute(_run(EXTENDED), NO_DB)).decode()
    for name in ("avg_fps", "dropped_frames", "total_frames", "vmaf_score", "psnr_score"):
        assert f"# TYPE results_scenario_{name} gauge" in text
    assert "results_scenario_dropped_frames_total" not in text
    # Each of the three series the reference duplicated appears once per scenario.
    stdev_lines = [line for line in text.splitlines()
                   if line.startswith("results_scenario_power_stdev{")
                   and 'scenario="2 streams @ 2500k"' in line]
    assert len(stdev_lines) == 1


# ---------------------------------------------------------------------------------------------
# VictoriaMetrics (a fake server on loopback)
# ---------------------------------------------------------------------------------------------


J1_SCENARIOS = [
    {"name": "Baseline (Idle)", "bitrate": "0k", "resolution": "1280x720", "fps": 30,
     "duration": 120, "start_time": T0, "end_time": T0 + 120.0, "outputs": None},
    {"name": "1 Mbps Stream", "bitrate": "1000k", "resolution": "1280x720", "fps": 30,
     "duration": 300, "start_time": T0 + 200, "end_time": T0 + 500.0, "outputs": None},
]


def test_victoriametrics_stats_and_baseline_deltas(tmp_path: Path, fake_vm: FakeVM,
                                                    metrics: ResultsMetrics):
    prom = PromClient(fake_vm.url)
    try:
        parsed = _parse(metrics.compute(_run(_write(tmp_path, J1_SCENARIOS)), prom))
        first_requests = len(fake_vm.requests)
        metrics.compute(_run(_write(tmp_path, J1_SCENARIOS)), prom)
    finally:
        prom.close()
    v = lambda metric, name: _value(parsed, metric, name)  # noqa: E731
    base, other = "Baseline (Idle)", "1 Mbps Stream"
    assert v("results_scenario_duration_seconds", base) == 120.0
    assert v("results_scenario_mean_power_watts", base) == 50.0
    assert v("results_scenario_measured_power_watts", base) == 50.0
    assert v("results_scenario_estimated_docker_overhead_watts", base) == 7.5
    assert v("results_scenario_total_energy_joules", base) == 6000.0
    assert v("results_scenario_total_energy_wh", base) == pytest.approx(6000 / 3600)
    assert v("results_scenario_container_cpu_percent", base) == 15.0
    assert v("results_scenario_energy_wh_per_min", base) == pytest.approx(6000 / 3600 * 60 / 120)
    assert v("results_scenario_energy_wh_per_mbps", base) is None  # 0k
    assert v("results_scenario_energy_mj_per_frame", base) == pytest.approx(
        6000 / (30 * 120) * 1000)
    assert v("results_scenario_efficiency_score", base) == pytest.approx(552960.0)
    assert v("results_scenario_total_pixels", base) == 1280 * 720 * 30 * 120
    assert v("results_scenario_power_stdev", base) == pytest.approx(1.0)
    assert v("results_scenario_prediction_confidence_high", base) == pytest.approx(52.0)
    assert v("results_scenario_prediction_confidence_low", base) == pytest.approx(48.0)
    for family in ("delta_power_watts", "delta_energy_wh", "power_pct_increase",
                   "net_power_watts", "net_energy_wh", "net_container_cpu_percent"):
        assert v(f"results_scenario_{family}", base) == 0.0
    assert v("results_scenario_mean_power_watts", other) == 20.0
    assert v("results_scenario_estimated_docker_overhead_watts", other) == pytest.approx(3.0)
    assert v("results_scenario_energy_wh_per_min", other) == pytest.approx(1 / 3)
    assert v("results_scenario_energy_wh_per_mbps", other) == pytest.approx(6000 / 3600)
    assert v("results_scenario_energy_mj_per_frame", other) == pytest.approx(
        6000 / (30 * 300) * 1000)
    assert v("results_scenario_efficiency_score", other) == pytest.approx(1382400.0)
    assert v("results_scenario_prediction_confidence_high", other) == pytest.approx(22.0)
    assert v("results_scenario_prediction_confidence_low", other) == pytest.approx(18.0)
    assert v("results_scenario_delta_power_watts", other) == pytest.approx(-30.0)
    assert v("results_scenario_delta_energy_wh", other) == pytest.approx(0.0)
    assert v("results_scenario_power_pct_increase", other) == pytest.approx(-60.0)
    assert v("results_scenario_net_container_cpu_percent", other) == pytest.approx(0.0)
    # 3 requests per scenario (the reference sent 4, plus 4 more for the baseline) ...
    assert first_requests == 6
    cpu = [p for _, p in fake_vm.requests if p["query"] == "docker_containers_total_cpu_percent"]
    assert len(cpu) == 2
    energy = [p for path, p in fake_vm.requests if path == "/api/v1/query"]
    assert sorted(p["query"] for p in energy) == sorted([energy_query(120), energy_query(300)])
    assert 'zone=~"package.*"}[120s]' in energy_query(120)
    assert {float(p["time"]) for p in energy} == {T0 + 120, T0 + 500}
    # ... and finished windows are not asked again.
    assert len(fake_vm.requests) == first_requests


def test_victoriametrics_without_answers_gives_no_fake_zero(tmp_path: Path,
                                                            metrics: ResultsMetrics):
    vm = FakeVM(energy=None, power=[], cpu=[])
    prom = PromClient(vm.url)
    try:
        parsed = _parse(metrics.compute(_run(_write(tmp_path, J1_SCENARIOS)), prom))
    finally:
        prom.close()
        vm.close()
    assert set(parsed["results_scenario_duration_seconds"]) == {"Baseline (Idle)",
                                                                "1 Mbps Stream"}
    for family in parsed:
        if "power" in family or "energy" in family or "cpu" in family or "confidence" in family:
            assert not parsed[family], family
    assert metrics.skipped() == {"no_power_data": 2}


def test_victoriametrics_down_keeps_file_data(tmp_path: Path, metrics: ResultsMetrics):
    vm = FakeVM()
    url = vm.url
    vm.close()  # nothing listens there any more
    # Two samples at 2 s, and the scenario's duration is what they span.
    scenarios = [dict(J1_SCENARIOS[1], power_watts=[10.0, 30.0], step_seconds=2, duration=4)]
    prom = PromClient(url, timeout=0.5)
    try:
        parsed = _parse(metrics.compute(_run(_write(tmp_path, scenarios)), prom))
    finally:
        prom.close()
    assert _value(parsed, "results_scenario_mean_power_watts", "1 Mbps Stream") == 20.0
    assert _value(parsed, "results_scenario_total_energy_joules", "1 Mbps Stream") == 40.0
    assert _value(parsed, "results_scenario_container_cpu_percent", "1 Mbps Stream") is None


def test_energy_without_answer_falls_back_to_power_samples(tmp_path: Path,
                                                           metrics: ResultsMetrics):
    vm = FakeVM(energy=None)
    prom = PromClient(vm.url)
    try:
        parsed = _parse(metrics.compute(_run(_write(tmp_path, J1_SCENARIOS[:1])), prom))
    finally:
        prom.close()
        vm.close()
    assert _value(parsed, "results_scenario_mean_power_watts", "Baseline (Idle)") == 51.0
    assert _value(parsed, "results_scenario_total_energy_joules", "Baseline (Idle)") == 51 * 120


# ---------------------------------------------------------------------------------------------
# Labels, duplicates, bad input
# ---------------------------------------------------------------------------------------------


def test_label_escaping_survives_render_and_parse(tmp_path: Path, metrics: ResultsMetrics):
    name = 'A "q" \\ b\nc ünï 2 streams'
    scenarios = [{"name": name, "bitrate": '2500"k', "resolution": "1280x720", "fps": 30,
                  "start_time": T0, "end_time": T0 + 60, "preset": "a\\b",
                  "power": {"mean_watts": 100, "total_energy_joules": 5000}}]
    parsed = _parse(metrics.compute(_run(_write(tmp_path, scenarios)), NO_DB))
    labels = parsed["results_scenario_mean_power_watts"][name]
    assert (labels["scenario"], labels["bitrate"], labels["preset"], labels["streams"]) == (
        name, '2500"k', "a\\b", "2")
    assert labels["value"] == 100.0


def test_duplicate_names_are_emitted_once_last_wins(tmp_path: Path, metrics: ResultsMetrics):
    scenarios = [
        {"name": "dup", "duration": 10, "power": {"mean_watts": 1.0}},
        {"name": "other", "duration": 10, "power": {"mean_watts": 2.0}},
        {"name": "dup", "duration": 10, "power": {"mean_watts": 3.0}},
    ]
    run = _run(_write(tmp_path, scenarios))
    assert run.duplicates == 1
    parsed = _parse(metrics.compute(run, NO_DB))  # _parse rejects a repeated label set
    assert _value(parsed, "results_scenario_mean_power_watts", "dup") == 3.0
    assert _value(parsed, "results_scenario_total_energy_joules", "dup") == 30.0


def test_bad_scenarios_are_skipped_and_counted_the_rest_exported(tmp_path: Path,
                                                                  metrics: ResultsMetrics):
    good = {"name": "2 streams @ 2500k", "bitrate": "2500k", "resolution": "1280x720", "fps": 30,
            "start_time": T0, "end_time": T0 + 100,
            "power": {"mean_watts": 50, "total_energy_joules": 5000, "stdev_watts": 2}}
    scenarios = [
        {"name": None, "duration": 10},
        {"name": "strings", "start_time": "abc", "end_time": "def", "duration": "x",
         "power": None, "fps": "abc", "resolution": "1920x1080", "bitrate": 2500},
        {"name": "negatives", "power_watts": [-1, 5], "cpu_usage_cores": "x", "start_time": -5,
         "end_time": 10, "duration": -3, "avg_fps": "fast", "total_frames": -1,
         "vmaf_score": 150, "step_seconds": 0},
        {"name": "nested nulls", "power": {"mean_watts": "40", "total_energy_joules": None},
         "container_usage": None, "outputs": [None, {"resolution": None}], "duration": 60,
         "end_time": T0, "start_time": T0 + 10},
        good,
    ]
    run = _run(_write(tmp_path, scenarios))
    # The reader counts each entry it cannot use, and each field a kept record cannot use.
    assert run.skipped == {
        "invalid_name": 1, "avg_fps_invalid": 1, "duration_invalid": 2, "end_time_invalid": 1,
        "fps_invalid": 1, "power_invalid": 1, "power_watts_invalid": 1,
        "cpu_usage_cores_invalid": 1, "start_time_invalid": 2, "step_seconds_invalid": 1,
        "total_frames_invalid": 1, "vmaf_score_out_of_range": 1, "outputs_invalid": 1}
    parsed = _parse(metrics.compute(run, NO_DB))
    assert metrics.skipped() == {"no_duration": 2, "no_power_data": 3}
    name = good["name"]
    assert _value(parsed, "results_scenario_mean_power_watts", name) == 50.0
    assert _value(parsed, "results_scenario_power_stdev", name) == 2.0
    assert _value(parsed, "results_scenario_prediction_confidence_low", name) == 46.0
    assert _value(parsed, "results_scenario_efficiency_score", name) == pytest.approx(
        1280 * 720 * 30 * 100 / 5000)
    # end < start: the duration field stands in.
    assert _value(parsed, "results_scenario_duration_seconds", "nested nulls") == 60.0
    for bad in ("strings", "negatives", "nested nulls"):
        assert _value(parsed, "results_scenario_mean_power_watts", bad) is None
    assert _value(parsed, "results_scenario_vmaf_score", "negatives") is None
    assert parsed["results_scenario_mean_power_watts"][name]["bitrate"] == "2500k"
    assert parsed["results_scenario_duration_seconds"].get("strings") is None


def test_samples_near_the_float_limit_do_not_fail_the_set(tmp_path: Path, metrics: ResultsMetrics):
    # (x - mean)**2 overflows for ~1e154 W and up: that scenario has no spread, the set renders.
    huge = {"name": "huge", "duration": 10, "step_seconds": 5, "power_watts": [1e200, 0.0]}
    plain = {"name": "plain", "duration": 10, "step_seconds": 5, "power_watts": [40.0, 44.0]}
    parsed = _parse(metrics.compute(_run(_write(tmp_path, [huge, plain])), NO_DB))
    assert _value(parsed, "results_scenario_power_stdev", "huge") is None
    assert _value(parsed, "results_scenario_mean_power_watts", "plain") == 42.0
    assert _value(parsed, "results_scenario_power_stdev", "plain") == pytest.approx(math.sqrt(8.0))


def test_empty_run_and_no_file(metrics: ResultsMetrics):
    run = run_record(DATA_DIR / "test_results_20990101_000000.json", [])
    parsed = _parse(metrics.compute(run, NO_DB))
    assert not [f for f in parsed if f.startswith("results_scenario_")]
    assert metrics.skipped() == {}


# ---------------------------------------------------------------------------------------------
# Model: trained in the background, predictions after the re-render
# ---------------------------------------------------------------------------------------------

LINEAR_SCENARIOS = [
    {"name": "Baseline (Idle)", "bitrate": "0k", "duration": 60,
     "power": {"mean_watts": 20.0, "total_energy_joules": 1200.0}},
    *[{"name": f"{n} streams @ {1000 * n}k", "bitrate": f"{1000 * n}k", "duration": 100,
       "encoder_type": "libx264", "power": {"mean_watts": 20.0 + 10.0 * n}}
      for n in (1, 2, 3, 4)],
    # Known stream count, no measurement: gets a prediction only.
    {"name": "6 streams @ 6000k", "bitrate": "6000k", "duration": 100,
     "encoder_type": "libx264"},
]


class GatedFactory:
    """Builds the default predictor, but only once the test releases it; records the thread."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: list[int] = []
        self.sizes: list[int] = []

    def __call__(self, valid_rows: int) -> Any:
        self.threads.append(threading.get_ident())
        self.sizes.append(valid_rows)
        self.started.set()
        assert self.release.wait(10)
        if self.fail:
            raise RuntimeError("boom")
        return default_predictor(valid_rows)


def _predicted(parsed: dict) -> dict:
    return parsed.get("results_scenario_predicted_power_watts", {})


def test_training_runs_off_the_compute_path_then_predictions_appear(tmp_path: Path):
    factory = GatedFactory()
    metrics = ResultsMetrics(predictor_factory=factory)
    done: list = []
    jobs = BackgroundJobs(done.append)
    try:
        run = _run(_write(tmp_path, LINEAR_SCENARIOS))
        began = time.perf_counter()
        parsed = _parse(metrics.compute(run, NO_DB))
        assert not _predicted(parsed)
        jobs.submit("results", metrics.take_job())
        assert factory.started.wait(10)
        # Training is blocked on the job thread: compute still returns, without predictions,
        # and asks for no second training.
        parsed = _parse(metrics.compute(run, NO_DB))
        assert time.perf_counter() - began < 5
        assert not _predicted(parsed)
        assert metrics.take_job() is None
        assert factory.threads == [factory.threads[0]] != [threading.get_ident()]
        assert done == []
        factory.release.set()
        assert jobs.wait_idle(30)
        assert done == ["results"]  # the job asks its owner's re-render
        parsed = _parse(metrics.rerender())
        assert _parse(metrics.compute(run, NO_DB)) == parsed
        assert metrics.take_job() is None  # the predictions fit the rows: nothing more to do
    finally:
        jobs.close()
    assert factory.sizes == [5]  # baseline + four measured scenarios
    predicted = _predicted(parsed)
    assert set(predicted) == {s["name"] for s in LINEAR_SCENARIOS[1:]}
    # Exactly linear data: every model kind reproduces its training points.
    for n in (1, 2, 3, 4):
        assert predicted[f"{n} streams @ {1000 * n}k"]["value"] == pytest.approx(
            20.0 + 10.0 * n, abs=1e-6)
    low = parsed["results_scenario_predicted_power_ci_low_watts"]
    high = parsed["results_scenario_predicted_power_ci_high_watts"]
    energy = parsed["results_scenario_predicted_energy_joules"]
    efficiency = parsed["results_scenario_predicted_efficiency_score"]
    for name, entry in predicted.items():
        assert 0.0 <= low[name]["value"] <= high[name]["value"]
        assert energy[name]["value"] == pytest.approx(entry["value"] * 100)
        streams = int(name.split()[0])
        # No resolution: throughput (Mbps x streams) per predicted watt.
        assert efficiency[name]["value"] == pytest.approx(streams * streams / entry["value"])
    assert parsed["results_model_trainings"][""]["value"] == 1.0
    assert parsed["results_model_training_failures"][""]["value"] == 0.0


NOISY_SCENARIOS = [
    *[{"name": f"{n} streams @ 2500k{tag}", "bitrate": "2500k", "duration": 100,
       "encoder_type": "libx264", "power": {"mean_watts": 20.0 + 10.0 * n + noise}}
      for n, noise, tag in ((1, 1.0, ""), (2, -1.5, ""), (3, 0.7, ""), (4, -0.4, ""),
                            (5, 0.9, ""), (2, 0.6, " (repeat)"))],
    {"name": "12 streams @ 2500k", "bitrate": "2500k", "duration": 100,
     "encoder_type": "libx264"},
]


def test_prediction_interval_and_extrapolation_are_exported(tmp_path: Path):
    metrics = ResultsMetrics()
    run = _run(_write(tmp_path, NOISY_SCENARIOS))
    metrics.compute(run, NO_DB)
    assert run_job(metrics)
    parsed = _parse(metrics.rerender())
    reference = default_predictor(6)
    assert reference.fit(NOISY_SCENARIOS)
    low = parsed["results_scenario_predicted_power_pi_low_watts"]
    high = parsed["results_scenario_predicted_power_pi_high_watts"]
    flag = parsed["results_scenario_prediction_extrapolated"]
    predicted = _predicted(parsed)
    assert set(low) == set(high) == set(flag) == set(predicted) == {
        s["name"] for s in NOISY_SCENARIOS}
    for scenario in NOISY_SCENARIOS:
        name = scenario["name"]
        expected = reference.predict(reference.extract_features(scenario))
        assert low[name]["value"] == pytest.approx(expected["pi_low"], rel=1e-12)
        assert high[name]["value"] == pytest.approx(expected["pi_high"], rel=1e-12)
        assert low[name]["value"] < predicted[name]["value"] < high[name]["value"]
        assert flag[name]["value"] == (1.0 if name.startswith("12 ") else 0.0)


def test_new_run_retrains_once_and_failures_are_counted(tmp_path: Path):
    factory = GatedFactory(fail=True)
    factory.release.set()
    metrics = ResultsMetrics(predictor_factory=factory)
    run = _run(_write(tmp_path, LINEAR_SCENARIOS))
    metrics.compute(run, NO_DB)
    assert run_job(metrics)  # a counted failure changes the families too
    parsed = _parse(metrics.rerender())
    assert _parse(metrics.compute(run, NO_DB)) == parsed
    assert not run_job(metrics)  # not retried for the same run
    assert parsed["results_model_training_failures"][""]["value"] == 1.0
    assert not _predicted(parsed)
    assert len(factory.sizes) == 1
    factory.fail = False
    newer = _run(_write(tmp_path, LINEAR_SCENARIOS, stamp="20250102_110000"))
    metrics.compute(newer, NO_DB)
    assert run_job(metrics)
    parsed = _parse(metrics.compute(newer, NO_DB))
    assert not run_job(metrics)
    assert len(factory.sizes) == 2
    assert parsed["results_model_trainings"][""]["value"] == 1.0
    assert _predicted(parsed)["2 streams @ 2000k"]["run_id"] == "test_results_20250102_110000"
    info = parsed["results_model_info"][""]
    assert (info["model"], info["trained_run_id"]) != ("None", "")
    assert info["trained_run_id"] == "test_results_20250102_110000"


def test_too_few_rows_never_train(tmp_path: Path):
    factory = GatedFactory()
    factory.release.set()
    metrics = ResultsMetrics(predictor_factory=factory)
    metrics.compute(_run(_write(tmp_path, LINEAR_SCENARIOS[:2] + LINEAR_SCENARIOS[5:])), NO_DB)
    assert metrics.take_job() is None
    assert factory.sizes == []


def test_default_predictor_settings():
    predictor = default_predictor(7)
    assert predictor.models == ["linear", "poly2", "poly3"]
    assert (predictor.confidence_level, predictor.n_bootstrap, predictor.cv_folds,
            predictor.random_state) == (0.95, 50, 3, 0)
    assert default_predictor(2).cv_folds == 2


def test_main_uses_the_generic_runner(monkeypatch: pytest.MonkeyPatch):
    calls = []
    monkeypatch.setattr(results_module, "exporter_main",
                        lambda factories, prog, argv, description: calls.append(
                            (factories, prog, argv)) or 0)
    assert results_module.main(["--port", "0"]) == 0
    assert calls == [([ResultsMetrics], "advisor-results-exporter", ["--port", "0"])]
    assert (ResultsMetrics.name, ResultsMetrics.default_port) == ("results", 9502)


# ---------------------------------------------------------------------------------------------
# Inside the infrastructure: refresh thread, re-render hook, HTTP
# ---------------------------------------------------------------------------------------------


def _families_of(body: bytes) -> dict:
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode("utf-8"))}


def test_refresher_rerenders_when_the_model_is_ready(tmp_path: Path):
    _write(tmp_path, LINEAR_SCENARIOS)
    prom = PromClient(None)
    factory = GatedFactory()
    metrics = ResultsMetrics(predictor_factory=factory)
    state = ExporterState(metrics, prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    try:
        refresher.tick()
        first = _families_of(state.body[0])
        assert "results_scenario_predicted_power_watts" not in first
        assert first["results_exporter_up"][0].value == 1.0
        assert first["results_scenarios_total"][0].value == len(LINEAR_SCENARIOS)
        skipped = {s.labels["reason"]: s.value for s in first["results_exporter_skipped_scenarios"]}
        assert skipped == {"no_power_data": 1.0}
        loads = refresher.loads
        refresher.tick()  # nothing new: the model is still training
        assert "results_scenario_predicted_power_watts" not in _families_of(state.body[0])
        factory.release.set()
        assert refresher.wait_for_jobs(30)
        refresher.tick()  # the finished job asks for a re-render without a file change
        second = _families_of(state.body[0])
        assert refresher.loads == loads  # re-rendered from the cached rows: no reload
    finally:
        refresher.stop()
    predicted = {s.labels["scenario"] for s in second["results_scenario_predicted_power_watts"]}
    assert predicted == {s["name"] for s in LINEAR_SCENARIOS[1:]}


@contextlib.contextmanager
def _serving_extended(tmp_path: Path, interval: str) -> Iterator[str]:
    """A results exporter serving the extended file on loopback; yields its /metrics URL."""
    (tmp_path / EXTENDED.name).write_bytes(EXTENDED.read_bytes())
    settings = parse_settings("advisor-results-exporter", [ResultsMetrics],
                              ["--results-dir", str(tmp_path), "--port", "0",
                               "--listen-address", "127.0.0.1", "--refresh-interval", interval])
    metrics = ResultsMetrics(settings)
    exporters = start_exporters([metrics], settings)
    try:
        yield f"http://127.0.0.1:{exporters.ports['results']}/metrics"
    finally:
        exporters.stop()


def test_http_serves_results_metrics(tmp_path: Path):
    with _serving_extended(tmp_path, "0.05") as url:
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(url, timeout=5) as response:
                families = _families_of(response.read())
            if "results_scenario_predicted_power_watts" in families or (
                    time.monotonic() > deadline):
                break
            time.sleep(0.05)
    vmaf = {s.labels["scenario"]: s.value for s in families["results_scenario_vmaf_score"]}
    assert vmaf["2 streams @ 2500k"] == 92.5
    assert "results_scenario_predicted_power_watts" in families


def test_extreme_values_give_no_inf_nan_or_crash(tmp_path: Path, metrics: ResultsMetrics):
    """Valid but extreme inputs whose quotients leave the float range are left out, counted."""
    scenarios = [
        # energy / duration underflows to 0 W: no mean power, so it cannot be the baseline
        {"name": "baseline idle", "duration": 7.5, "power": {"total_energy_joules": 5e-324}},
        {"name": "idle", "duration": 10.0, "power": {"mean_watts": 50.0}},
        # fps x duration underflows to 0 frames (was a ZeroDivisionError: no results at all)
        {"name": "tiny fps", "duration": 0.25, "fps": 5e-324, "bitrate": "2500k",
         "power": {"mean_watts": 60.0}},
        # 10 s x 5e-324 fps is a positive number of frames, the energy per frame overflows
        {"name": "few frames", "duration": 10.0, "fps": 5e-324, "power": {"mean_watts": 60.0}},
        # a huge energy over a tiny mbps: Wh per Mbps overflows
        {"name": "huge energy", "duration": 10.0, "bitrate": "1e-300M",
         "power": {"mean_watts": 1e300, "total_energy_joules": 1e307}},
        # the mean of the cores is finite, x 100 (percent) is not
        {"name": "huge cpu", "duration": 10.0, "power": {"mean_watts": 70.0},
         "cpu_usage_cores": [1.7e308, 1.7e308]},
    ]
    parsed = _parse(metrics.compute(_run(_write(tmp_path, scenarios)), NO_DB))
    for family in parsed.values():
        for entry in family.values():
            assert math.isfinite(entry["value"])
    assert _value(parsed, "results_scenario_mean_power_watts", "baseline idle") is None
    assert _value(parsed, "results_scenario_total_energy_joules", "baseline idle") == 5e-324
    # "idle" is the baseline now: the others' deltas are against its 50 W
    assert _value(parsed, "results_scenario_delta_power_watts", "tiny fps") == 10.0
    assert _value(parsed, "results_scenario_energy_mj_per_frame", "tiny fps") is None
    assert _value(parsed, "results_scenario_total_energy_wh", "tiny fps") == 15.0 / 3600.0
    assert _value(parsed, "results_scenario_energy_mj_per_frame", "few frames") is None
    assert _value(parsed, "results_scenario_total_energy_joules", "few frames") == 600.0
    assert _value(parsed, "results_scenario_energy_wh_per_mbps", "huge energy") is None
    assert _value(parsed, "results_scenario_total_energy_joules", "huge energy") == 1e307
    assert _value(parsed, "results_scenario_container_cpu_percent", "huge cpu") is None
    assert _value(parsed, "results_scenario_mean_power_watts", "huge cpu") == 70.0
    # left out: mJ per frame of "few frames" and Wh per Mbps of "huge energy"
    assert metrics.skipped() == {"non_finite_value": 2}


@pytest.mark.slow
@pytest.mark.parametrize("client", ["curl", "wget"])
def test_single_member_decoders_read_the_whole_gzip_body(tmp_path: Path, client: str):
    """curl --compressed and wget stop after the first gzip member: the body must be one."""
    import shutil
    import subprocess

    binary = shutil.which(client)
    assert binary, f"{client} is installed by .ci/run"
    with _serving_extended(tmp_path, "5") as url:
        if client == "curl":
            command = [binary, "-sS", "--compressed", url]
        else:
            command = [binary, "-q", "-O", "-", "--compression=gzip", url]
        # The client is not what is tested: keep the sanitizer runtime (CI's ASan stage
        # preloads it into this process) out of it.
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}

        def plain_body() -> bytes:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()

        # The body grows once the model worker's predictions arrive: compare a compressed read
        # with plain reads on either side that saw the same body shape.
        deadline = time.monotonic() + 60
        while True:
            before = plain_body()
            decoded = subprocess.run(command, capture_output=True, timeout=30, check=True,
                                     env=env).stdout
            plain = plain_body()
            if before.count(b"\n") == plain.count(b"\n") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    # Self metrics may differ only in their values between reads.
    assert decoded.count(b"\n") == plain.count(b"\n") > 200
    assert _families_of(decoded).keys() == _families_of(plain).keys()


def test_a_float_bitrate_has_one_label_text_in_every_exporter(tmp_path: Path):
    """Series of one scenario join across exporters: 2500.0 is "2500" everywhere."""
    from exporters.cost import CostMetrics
    from exporters.qoe import QoEMetrics

    cost_settings = parse_settings("advisor-cost-exporter", [CostMetrics],
                                   ["--results-dir", str(tmp_path)])

    scenario = {"name": "2 streams @ 2500k", "bitrate": 2500.0, "fps": 30.0, "duration": 60,
                "resolution": "1280x720", "encoder_type": "libx264", "vmaf_score": 90.0,
                "power_watts": [40.0, 42.0, 41.0], "cpu_usage_cores": [1.0, 1.2, 1.1],
                "step_seconds": 5, "start_time": 1.0, "end_time": 61.0}
    run = _run(_write(tmp_path, [scenario]))
    seen = {}
    for metric_set in (CostMetrics(cost_settings), QoEMetrics(), ResultsMetrics()):
        for family in text_string_to_metric_families(
                render_families(metric_set.compute(run, NO_DB)).decode()):
            for sample in family.samples:
                if "bitrate" in sample.labels:
                    seen.setdefault(metric_set.name, set()).add(sample.labels["bitrate"])
    assert set(seen) == {"cost", "qoe", "results"}
    assert all(values == {"2500"} for values in seen.values()), seen


def test_recommendation_families_equal_advisor_recommend(tmp_path: Path, capsys):
    from advisor_core.cli.main import main as advisor

    path = tmp_path / EXTENDED.name
    path.write_bytes(EXTENDED.read_bytes())
    families = ResultsMetrics().compute(_run(path), NO_DB)
    text = render_families(families).decode("utf-8")
    parsed = {f.name: f.samples for f in text_string_to_metric_families(text)}
    assert advisor(["recommend", str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ranks = {(s.labels["scenario"], s.labels["algorithm"]): s.value
             for s in parsed["results_recommendation_efficiency_rank"]}
    expected = {(e["name"], g["algorithm"]): float(e["rank"])
                for g in report["rankings"] for e in g["entries"]}
    assert ranks == expected and ranks
    best = {(s.labels["scenario"], s.labels["algorithm"])
            for s in parsed["results_recommendation_best_per_ladder"]}
    assert best == {(name, entry["algorithm"]) for entry in report["best_per_ladder"]
                    for name in entry["best"]}
    pareto = {s.labels["scenario"]: s.value
              for s in parsed["results_recommendation_pareto_optimal"]}
    assert {name for name, value in pareto.items() if value == 1.0} == {
        p["name"] for p in report["pareto"]["energy"]}
    assert set(pareto) == {e["name"] for g in report["rankings"] for e in g["entries"]
                           if e["vmaf"] is not None}
    for sample in parsed["results_recommendation_pareto_optimal"]:
        assert set(sample.labels) == set(LABELS)


def test_predictions_off_a_single_trained_stream_count_are_left_out_and_counted(
        tmp_path: Path, metrics: ResultsMetrics):
    # Every stream test used one stream: the model has no slope along streams, so the ladders
    # (which have no stream count either way) and any other count get no prediction.
    scenarios = [{"name": "Baseline (Idle)", "bitrate": "0k", "duration": 60,
                  "power": {"mean_watts": 10.2}}]
    scenarios += [{"name": f"1 Streams @ {kbps}k", "bitrate": f"{kbps}k", "duration": 60,
                   "power": {"mean_watts": watts}}
                  for kbps, watts in ((1000, 14.0), (2500, 14.5), (5000, 15.3))]
    scenarios.append({"name": "4 Streams @ 2500k", "bitrate": "2500k", "duration": 60})
    run = _run(_write(tmp_path, scenarios))
    metrics.compute(run, NO_DB)
    assert run_job(metrics)
    parsed = _parse(metrics.rerender())
    predicted = set(parsed.get("results_scenario_predicted_power_watts", {}))
    assert "4 Streams @ 2500k" not in predicted
    assert {"1 Streams @ 1000k", "1 Streams @ 2500k", "1 Streams @ 5000k"} <= predicted
    assert metrics.skipped()["prediction_without_slope"] == 1


def test_bounds_raised_to_the_idle_baseline_are_flagged(metrics: ResultsMetrics):
    from advisor_core.data.reader import read_run

    # The bundled run's idle baseline draws 6.17 W; the model's 1-stream intervals reach below.
    metrics.compute(read_run(REAL), NO_DB)
    assert run_job(metrics)
    parsed = _parse(metrics.rerender())
    floored = parsed["results_scenario_prediction_floored"]
    lows = parsed["results_scenario_predicted_power_pi_low_watts"]
    assert {name for name, sample in floored.items() if sample["value"] == 1.0} == {
        name for name, sample in lows.items() if sample["value"] == 6.17}
    assert any(sample["value"] == 1.0 for sample in floored.values())
    assert all(sample["value"] >= 6.17 for sample in lows.values())  # one stream or more
