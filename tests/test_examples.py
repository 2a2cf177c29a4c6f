"""The README quick start: ``advisor-exporters --results-dir examples/results`` serves the newest
bundled run, the recorded 15-scenario run with its analysis CSV."""

from __future__ import annotations

import csv
import time
from pathlib import Path

from _process import Exporter, free_port, metrics

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "results"
NEWEST = "test_results_20251229_125651"


def _names(families: dict, family: str) -> set[str]:
    return {s.labels["scenario"] for s in families[family].samples}


def test_the_quick_start_serves_the_recorded_run_with_its_analysis() -> None:
    assert max(p.name for p in EXAMPLES.glob("test_results_*.json")) == f"{NEWEST}.json"
    with open(EXAMPLES / f"{NEWEST}_analysis.csv", newline="") as handle:
        with_power = {row["name"] for row in csv.DictReader(handle) if row["mean_power_w"]}
    assert len(with_power) == 15
    ports = {"cost": free_port(), "qoe": free_port(), "results": free_port()}
    exporter = Exporter("advisor-exporters", EXAMPLES, ports=ports)
    try:
        cost = metrics(ports["cost"])
        assert cost["cost_scenarios_total"].samples[0].value == 15
        for family in ("cost_total_load_aware", "cost_energy_load_aware",
                       "cost_compute_load_aware", "cost_per_watch_hour", "cost_usd_per_hour",
                       "co2_emissions_kg_per_hour", "co2_monthly_projection"):
            assert _names(cost, family) == with_power, family
        assert all(s.value > 0 for s in cost["cost_total_load_aware"].samples)
        deadline = time.monotonic() + 60
        while True:  # the model trains in the background after the first refresh
            results = metrics(ports["results"])
            if "results_model_training_rows" in results or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert results["results_model_training_rows"].samples[0].value == 12
        assert _names(results, "results_scenario_mean_power_watts") == with_power
        predicted = _names(results, "results_scenario_predicted_power_watts")
        assert len(predicted) >= 12 and predicted <= with_power
        assert _names(results, "results_scenario_predicted_power_pi_high_watts") == predicted
        assert metrics(ports["qoe"])["qoe_scenarios_total"].samples[0].value == 15
        assert exporter.stop() < 1.0
    finally:
        if exporter.proc.poll() is None:
            exporter.kill()
