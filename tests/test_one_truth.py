"""One scenario, one power: 100 W of CPU package and 50 W of GPU over one hour is 150 W in every
figure the product derives from it (library costs and scores, every exporter family, the
command's JSON), and hostile fields are stopped at the reader, in real processes too."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _process import Exporter, free_port, metrics, request
from advisor_core.cli.main import main
from advisor_core.data.reader import run_record
from advisor_core.economics.cost import CostModel
from advisor_core.economics.recommender import TranscodingRecommender
from advisor_core.economics.scoring import EnergyEfficiencyScorer
from advisor_core.models.features import training_target
from exporters._promql import PromClient
from exporters.cost import CostMetrics
from exporters.exposition import render_families
from exporters.qoe import QoEMetrics
from exporters.results import ResultsMetrics

WATTS = 150.0  # 100 W package + 50 W GPU
HOUR = 3600.0
T0 = 1_735_812_000.0
PX = 1280 * 720 * 30  # pixels per second
VMAF = 90.0
PRICE_KWH = 0.12  # us-east-1 in the built-in table
INTENSITY = 390.0  # gCO2/kWh, us-east-1


def gpu_scenario(**extra: object) -> dict:
    return {"name": "4 Streams @ 2500k", "bitrate": "2500k", "resolution": "1280x720", "fps": 30,
            "duration": HOUR, "start_time": T0, "end_time": T0 + HOUR, "vmaf_score": VMAF,
            "power": {"mean_watts": 100.0, "total_energy_joules": 100.0 * HOUR},
            "gpu_power": {"mean_watts": 50.0}, **extra}


def baseline() -> dict:
    return {"name": "Baseline (Idle)", "bitrate": "0k", "duration": HOUR,
            "power": {"mean_watts": 20.0, "total_energy_joules": 20.0 * HOUR}}


def test_the_library_sees_one_power():
    scenario = gpu_scenario()
    model = CostModel(energy_cost_per_kwh=PRICE_KWH)
    assert model.compute_energy_cost(scenario) / PRICE_KWH * 1000 == pytest.approx(WATTS)
    joules = model.compute_energy_cost_load_aware(scenario) / model.price_per_joule
    assert joules / HOUR == pytest.approx(WATTS)
    assert EnergyEfficiencyScorer("throughput_per_watt").compute_score(scenario) == (
        pytest.approx(10.0 / WATTS))
    assert EnergyEfficiencyScorer("quality_per_watt").compute_score(scenario) == (
        pytest.approx(VMAF / WATTS))
    assert EnergyEfficiencyScorer("pixels_per_joule").compute_score(scenario) == (
        pytest.approx(PX * HOUR / (WATTS * HOUR)))
    assert EnergyEfficiencyScorer("qoe_efficiency_score").compute_score(scenario) == (
        pytest.approx(PX * HOUR * VMAF / 100 / (WATTS * HOUR)))
    assert training_target(scenario, "mean_power_watts") == WATTS
    assert training_target(scenario, "total_energy_joules") == WATTS * HOUR
    summary = TranscodingRecommender().get_recommendation_summary([scenario])
    assert summary["power_range"] == (WATTS, WATTS)
    other = {**gpu_scenario(), "name": "1 Stream @ 2500k", "gpu_power": None,
             "power": {"mean_watts": 20.0, "total_energy_joules": 20.0 * HOUR}}
    comparison = TranscodingRecommender().compare_configurations(scenario, other)
    assert comparison["power_diff"] == pytest.approx(WATTS - 20.0)


def _parsed(metric_set, scenarios) -> dict:
    run = run_record(Path("test_results_20250101_000000.json"), scenarios)
    body = render_families(metric_set.compute(run, PromClient(None))).decode()
    return {f.name: f for f in text_string_to_metric_families(body)}


def _value(parsed: dict, family: str, name: str = "4 Streams @ 2500k") -> float:
    found = [s.value for s in parsed[family].samples if s.labels["scenario"] == name]
    assert len(found) == 1, (family, found)
    return found[0]


def test_every_exporter_family_sees_one_power():
    settings = argparse.Namespace(currency="USD", region="us-east-1", pricing_config=None,
                                  electricity_maps_token=None, energy_cost=0.0, cpu_cost=0.0,
                                  gpu_cost=0.0, disable_load_aware=True)
    cost = _parsed(CostMetrics(settings), [baseline(), gpu_scenario()])
    per_joule = PRICE_KWH / 3_600_000
    implied = {
        "cost_energy_load_aware": _value(cost, "cost_energy_load_aware") / per_joule / HOUR,
        "cost_total_load_aware": _value(cost, "cost_total_load_aware") / per_joule / HOUR,
        "cost_usd_per_hour": _value(cost, "cost_usd_per_hour") / PRICE_KWH * 1000,
        "cost_monthly_projection": _value(cost, "cost_monthly_projection") / 720 / PRICE_KWH
        * 1000,
        "cost_monthly_savings": 20.0 - _value(cost, "cost_monthly_savings") / 720 / PRICE_KWH
        * 1000,
        "co2_emissions_kg_per_hour": _value(cost, "co2_emissions_kg_per_hour") / INTENSITY * 1e6,
        "co2_monthly_projection": _value(cost, "co2_monthly_projection") / 720 / INTENSITY
        * 1e6,
    }
    qoe = _parsed(QoEMetrics(), [gpu_scenario()])
    implied["qoe_quality_per_watt"] = VMAF / _value(qoe, "qoe_quality_per_watt")
    implied["qoe_efficiency_score"] = PX * HOUR * VMAF / 100 / _value(
        qoe, "qoe_efficiency_score") / HOUR
    results = _parsed(ResultsMetrics(), [baseline(), gpu_scenario()])
    for family in ("results_scenario_mean_power_watts", "results_scenario_measured_power_watts"):
        implied[family] = _value(results, family)
    implied["results_scenario_total_energy_joules"] = _value(
        results, "results_scenario_total_energy_joules") / HOUR
    implied["results_scenario_total_energy_wh"] = _value(results,
                                                          "results_scenario_total_energy_wh")
    implied["results_scenario_delta_power_watts"] = 20.0 + _value(
        results, "results_scenario_delta_power_watts")
    implied["results_scenario_efficiency_score"] = PX * HOUR / _value(
        results, "results_scenario_efficiency_score") / HOUR
    for family, watts in implied.items():
        assert watts == pytest.approx(WATTS, rel=1e-12), family
    # The encoder label is the same scenario's in all three exporters.
    encoders = {parsed[family].samples[0].labels["encoder"] for parsed, family in (
        (cost, "cost_usd_per_hour"), (qoe, "qoe_vmaf_score"),
        (results, "results_scenario_mean_power_watts"))}
    assert encoders == {"h264"}


def test_the_command_sees_one_power(tmp_path: Path, capsys):
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": [baseline(), gpu_scenario()]}))
    assert main(["recommend", str(path), "--format", "json", "--region", "us-east-1"]) == 0
    report = json.loads(capsys.readouterr().out)
    entries = [e for group in report["rankings"] for e in group["entries"]
               if e["name"] == "4 Streams @ 2500k"]
    assert entries and all(e["mean_power_watts"] == WATTS for e in entries)
    assert entries[0]["cost_per_hour"] == pytest.approx(WATTS / 1000 * PRICE_KWH)
    assert entries[0]["co2_grams_per_hour"] == pytest.approx(WATTS / 1000 * INTENSITY)


# -- hostile fields, with real exporters -------------------------------------------------------


def _hostile_runs(directory: Path) -> tuple[Path, Path]:
    """A small run whose ladder output has a 4,301-digit width, and a 1.2 MB one whose bitrate
    is a list of 200,000 zeros: both were read late and broke the exporters."""
    good = {"name": "1 Stream @ 1000k", "bitrate": "1000k", "duration": 60,
            "power": {"mean_watts": 10.0, "total_energy_joules": 600.0}}
    wide = {"name": "ladder", "bitrate": "2500k", "duration": 60,
            "outputs": [{"resolution": "1" * 4301 + "x1080", "fps": 30},
                        {"resolution": "1280x720", "fps": 30}],
            "power": {"mean_watts": 30.0, "total_energy_joules": 1800.0}}
    listed = {"name": "list bitrate", "bitrate": [0] * 200_000, "duration": 60,
              "power": {"mean_watts": 40.0, "total_energy_joules": 2400.0}}
    first = directory / "test_results_20250101_000000.json"
    first.write_text(json.dumps({"scenarios": [good, wide]}))
    second = directory / "test_results_20250102_000000.json"
    second.write_text(json.dumps({"scenarios": [good, listed]}))
    return first, second


def _skipped(parsed: dict, name: str) -> dict[str, float]:
    return {s.labels["reason"]: s.value
            for s in parsed[f"{name}_exporter_skipped_scenarios"].samples}


@pytest.mark.slow
def test_exporters_started_with_hostile_fields_serve_and_count_them(tmp_path: Path):
    _, second = _hostile_runs(tmp_path)
    later = tmp_path / "later.json"  # not a results file name: only the first at start-up
    second.rename(later)
    ports = {name: free_port() for name in ("cost", "qoe", "results")}
    exporter = Exporter("advisor-exporters", tmp_path, ports=ports)
    try:
        cost = metrics(ports["cost"])
        assert cost["cost_exporter_up"].samples[0].value == 1.0
        assert _skipped(cost, "cost") == {"outputs_invalid": 1.0}
        results = metrics(ports["results"])
        ladder = [s for s in results["results_scenario_mean_power_watts"].samples
                  if s.labels["scenario"] == "ladder"]
        assert [s.labels["output_ladder"] for s in ladder] == ["1280x720@30"]
        # The newer run arrives: its list-valued bitrate is no label and no bitrate.
        later.rename(second)
        deadline = time.monotonic() + 10
        while "bitrate_invalid" not in _skipped(cost, "cost") and time.monotonic() < deadline:
            time.sleep(0.1)
            cost = metrics(ports["cost"])
        assert _skipped(cost, "cost") == {"bitrate_invalid": 1.0, "missing_bitrate": 1.0}
        assert cost["cost_exporter_up"].samples[0].value == 1.0
        for port in ports.values():
            status, _, body = request(port, "/metrics")
            assert status == 200 and len(body) < 64 * 1024  # no 600 kB label anywhere
        results = metrics(ports["results"])
        listed = [s for s in results["results_scenario_mean_power_watts"].samples
                  if s.labels["scenario"] == "list bitrate"]
        assert [(s.labels["bitrate"], s.value) for s in listed] == [("", 40.0)]
    finally:
        exporter.stop()
