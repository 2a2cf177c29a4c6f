"""The exporters read a run's ``_analysis.csv`` beside its results file (docs/exporters.md §7)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporters._promql import PromClient
from exporters.cost import CostMetrics
from exporters.publisher import ExporterState
from exporters.refresh import Refresher
from exporters.results import ResultsMetrics
from exporters.settings import parse_settings

DATA = Path(__file__).parent / "data"
RUN = "test_results_20251229_125651"


def samples(state: ExporterState, family: str) -> dict[str, float]:
    """{scenario label: value} of one family of a state's plain body."""
    out: dict[str, float] = {}
    for parsed in text_string_to_metric_families(state.body[0].decode()):
        for sample in parsed.samples:
            if sample.name == family:
                out[sample.labels.get("scenario", "")] = sample.value
    return out


def rows() -> dict[str, dict[str, str]]:
    with open(DATA / f"{RUN}_analysis.csv", newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


@pytest.fixture
def cost_state(tmp_path: Path) -> tuple[ExporterState, Refresher]:
    settings = parse_settings("t", [CostMetrics], ["--results-dir", str(tmp_path),
                                                   "--region", "us-east-1", "--cpu-cost", "0.5"])
    prom = PromClient(None)
    state = ExporterState(CostMetrics(settings), prom)
    return state, Refresher([state], tmp_path, 1.0, prom)


def test_cost_of_a_basic_run_comes_from_its_analysis(tmp_path: Path, cost_state) -> None:
    shutil.copy(DATA / f"{RUN}.json", tmp_path)
    state, refresher = cost_state
    refresher.tick()
    assert samples(state, "cost_energy_load_aware") == {}  # no power in the JSON alone
    shutil.copy(DATA / f"{RUN}_analysis.csv", tmp_path)
    refresher.tick()  # the CSV appearing is a change: the run is loaded again
    energy = samples(state, "cost_energy_load_aware")
    compute = samples(state, "cost_compute_load_aware")
    watch = samples(state, "cost_per_watch_hour")
    hourly = samples(state, "cost_usd_per_hour")
    by_name = rows()
    # The JSON's duration (120 s) wins over the CSV's measured one (120.0009 s).
    duration = {s["name"]: s["duration"]
                for s in json.loads((DATA / f"{RUN}.json").read_text())["scenarios"]}
    assert set(energy) == set(by_name) and len(energy) == 15
    price_kwh, core_hour = 0.12, 0.5  # us-east-1's table price; the flag
    for name, row in by_name.items():
        kwh = float(row["total_energy_wh"]) / 1000
        core_s = float(row["container_cpu_pct"]) / 100 * duration[name]
        total = kwh * price_kwh + core_s * core_hour / 3600
        assert energy[name] == pytest.approx(kwh * price_kwh, rel=1e-12)
        assert compute[name] == pytest.approx(core_s * core_hour / 3600, rel=1e-12)
        streams = int(name.split()[0]) if name[0].isdigit() else 1
        assert watch[name] == pytest.approx(
            total / (duration[name] / 3600 * streams), rel=1e-12)
        assert hourly[name] == pytest.approx(float(row["mean_power_w"]) / 1000 * price_kwh,
                                             rel=1e-12)
    base = float(by_name["Baseline (Idle)"]["mean_power_w"]) / 1000 * price_kwh * 720
    savings = samples(state, "cost_monthly_savings")
    assert savings["8 Streams @ 5000k"] == pytest.approx(base - hourly["8 Streams @ 5000k"] * 720)
    assert state.metric_set.skipped().get("no_load_aware_data", 0) == 0


def test_a_broken_analysis_is_counted_and_the_json_still_served(tmp_path: Path,
                                                                 cost_state) -> None:
    shutil.copy(DATA / f"{RUN}.json", tmp_path)
    (tmp_path / f"{RUN}_analysis.csv").write_bytes(b"\xff\xfe not utf-8")
    state, refresher = cost_state
    refresher.tick()
    assert samples(state, "cost_scenarios_total") == {"": 15.0}
    # Served from the JSON alone, but not as healthy: every power series is missing.
    assert samples(state, "cost_exporter_up") == {"": 0.0}
    failures = samples(state, "cost_exporter_refresh_failures_total")
    assert failures == {"": 1.0}
    body = state.body[0].decode()
    assert 'cost_exporter_refresh_failures_total{reason="analysis_unreadable"} 1.0' in body
    os.unlink(tmp_path / f"{RUN}_analysis.csv")
    os.mkfifo(tmp_path / f"{RUN}_analysis.csv")  # never blocks the refresh
    refresher.tick()
    assert 'refresh_failures_total{reason="analysis_unreadable"} 2.0' in state.body[0].decode()
    assert samples(state, "cost_exporter_up") == {"": 0.0}
    # Once the CSV is usable again, up returns to 1 with its power.
    os.unlink(tmp_path / f"{RUN}_analysis.csv")
    shutil.copy(DATA / f"{RUN}_analysis.csv", tmp_path)
    refresher.tick()
    assert samples(state, "cost_exporter_up") == {"": 1.0}
    assert len(samples(state, "cost_usd_per_hour")) == 15


def test_the_json_s_own_power_wins_over_the_analysis(tmp_path: Path, cost_state) -> None:
    (tmp_path / "test_results_20250101_000000.json").write_text(
        '{"scenarios": [{"name": "2 Streams @ 2500k", "bitrate": "2500k", "duration": 3600,'
        ' "power": {"mean_watts": 100.0, "total_energy_joules": 360000.0}}]}')
    (tmp_path / "test_results_20250101_000000_analysis.csv").write_text(
        "name,mean_power_w,total_energy_wh,container_cpu_pct\n2 Streams @ 2500k,1,1,50\n")
    state, refresher = cost_state
    refresher.tick()
    assert samples(state, "cost_energy_load_aware") == {
        "2 Streams @ 2500k": pytest.approx(0.1 * 0.12)}
    # CPU unknown in the JSON, and the analysis does not reach a scenario with its own power:
    # energy only, no compute, a total of the energy (the samples' rule).
    assert samples(state, "cost_compute_load_aware") == {}
    assert samples(state, "cost_total_load_aware") == {"2 Streams @ 2500k": pytest.approx(0.012)}


def test_results_predictions_train_on_the_joined_rows(tmp_path: Path) -> None:
    shutil.copy(DATA / f"{RUN}.json", tmp_path)
    shutil.copy(DATA / f"{RUN}_analysis.csv", tmp_path)
    prom = PromClient(None)
    state = ExporterState(ResultsMetrics(), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    refresher.tick()
    assert refresher.wait_for_jobs(60)
    refresher.tick()
    mean = samples(state, "results_scenario_mean_power_watts")
    assert mean["8 Streams @ 5000k"] == pytest.approx(34.07)
    predicted = samples(state, "results_scenario_predicted_power_watts")
    assert len(predicted) >= 12
    body = state.body[0].decode()
    # 15 scenarios: the idle baseline and the two ladders have no stream count to learn from.
    assert "\nresults_model_training_rows 12.0\n" in body
    assert f'results_model_info{{model="streams",trained_run_id="{RUN}"}} 1.0' in body
