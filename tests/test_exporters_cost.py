"""Cost metric set: families, labels and values against hand computations and the
reference exporter's printed values."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from advisor_core.data.reader import run_record
from advisor_core.data.scenario import load_results
from exporters._promql import PromClient
from exporters.cost import CostMetrics
from exporters.exposition import render_families

DATA_DIR = Path(__file__).parent / "data"
RESULT_FILES = sorted(DATA_DIR.glob("test_results_*.json"))
COST_FAMILIES = [
    "cost_total_load_aware", "cost_energy_load_aware", "cost_compute_load_aware",
    "cost_per_pixel", "cost_per_watch_hour", "cost_usd_per_hour", "cost_monthly_projection",
    "cost_monthly_savings", "co2_emissions_kg_per_hour", "co2_monthly_projection",
    "co2_monthly_avoided",
]
LABEL_NAMES = {"scenario", "currency", "streams", "bitrate", "encoder", "service"}


def settings(**overrides) -> argparse.Namespace:
    values = dict(currency="USD", region="us-east-1", pricing_config=None,
                  electricity_maps_token=None, energy_cost=0.0, cpu_cost=0.50, gpu_cost=0.0,
                  disable_load_aware=False)
    values.update(overrides)
    return argparse.Namespace(**values)


def exposition(scenarios: list, **overrides) -> tuple[dict, CostMetrics]:
    metric_set = CostMetrics(settings(**overrides))
    run = run_record(Path("test_results_20250101_000000.json"), scenarios)
    body = render_families(metric_set.compute(run, PromClient(None))).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(body)}
    return parsed, metric_set


def value(parsed: dict, family: str, scenario: str) -> float:
    matches = [s.value for s in parsed[family].samples if s.labels["scenario"] == scenario]
    assert len(matches) == 1, (family, scenario, matches)
    return matches[0]


def trapezoid(values: list, step: float) -> float:
    """Independent trapezoid rule (reference: one sample -> v0*step)."""
    if len(values) == 1:
        return values[0] * step
    return step / 2 * (values[0] + values[-1] + 2 * math.fsum(values[1:-1]))


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: p.name)
def test_every_data_file_renders_valid_exposition(path: Path) -> None:
    parsed, metric_set = exposition(load_results(path))
    for name, family in parsed.items():
        assert family.type == "gauge", name
        label_sets = [tuple(sorted(s.labels.items())) for s in family.samples]
        assert len(label_sets) == len(set(label_sets)), f"{name} repeats a label set"
        for sample in family.samples:
            if name != "cost_exporter_alive":
                assert set(sample.labels) == LABEL_NAMES
            assert math.isfinite(sample.value)
    assert set(COST_FAMILIES) <= set(parsed)
    assert parsed["cost_exporter_alive"].samples[0].value == 1.0
    raw = load_results(path)
    with_samples = {s["name"] for s in raw
                    if isinstance(s.get("power_watts"), list) and s.get("bitrate")}
    assert {s.labels["scenario"] for s in parsed["cost_total_load_aware"].samples} == with_samples
    # every scenario without samples is counted, none is given a fake 0 cost
    unique = {s["name"] for s in raw if s.get("bitrate")}
    assert metric_set.skipped().get("no_load_aware_data", 0) == len(unique - with_samples)


def test_extended_file_matches_reference_facts_j2_with_one_energy(
        extended_results_path: Path) -> None:
    scenarios = load_results(extended_results_path)
    parsed, _ = exposition(scenarios)
    two = next(s for s in scenarios if s["name"] == "2 streams @ 2500k")
    base = next(s for s in scenarios if s["name"] == "baseline idle")
    price_kwh, price_core_hour, intensity = 0.12, 0.50, 390.0  # us-east-1 table
    # 10 samples at 5 s for a 120.5 s scenario: its energy and CPU work are mean x duration
    # (the reference integrated the 45 s the samples span: 0.01420119 total, 0.00006925
    # energy; docs/results-files.md §2.4).
    mean_w = sum(two["power_watts"]) / len(two["power_watts"])
    cores = sum(two["cpu_usage_cores"]) / len(two["cpu_usage_cores"])
    energy = mean_w * two["duration"] * price_kwh / 3_600_000
    compute = cores * two["duration"] * price_core_hour / 3600
    base_w = sum(base["power_watts"]) / len(base["power_watts"])
    hourly = mean_w / 1000 * price_kwh
    kg_hour = intensity * (mean_w / 1000) / 1000
    name = "2 streams @ 2500k"
    rel = 1e-12
    assert value(parsed, "cost_total_load_aware", name) == pytest.approx(energy + compute, rel=rel)
    assert value(parsed, "cost_energy_load_aware", name) == pytest.approx(energy, rel=rel)
    # The energy cost is the hourly cost's power over the scenario's duration.
    assert value(parsed, "cost_energy_load_aware", name) == pytest.approx(
        value(parsed, "cost_usd_per_hour", name) * two["duration"] / 3600, rel=rel)
    assert value(parsed, "cost_compute_load_aware", name) == pytest.approx(compute, rel=rel)
    assert value(parsed, "cost_usd_per_hour", name) == pytest.approx(hourly, rel=rel)
    assert value(parsed, "cost_usd_per_hour", name) == pytest.approx(0.00553440, abs=5e-9)
    assert value(parsed, "cost_monthly_projection", name) == pytest.approx(hourly * 720, rel=rel)
    assert value(parsed, "cost_monthly_savings", name) == pytest.approx(
        (base_w / 1000 * price_kwh - hourly) * 720, rel=1e-9)
    assert round(value(parsed, "cost_monthly_savings", name), 2) == -1.80
    assert value(parsed, "co2_emissions_kg_per_hour", name) == pytest.approx(kg_hour, rel=rel)
    assert round(value(parsed, "co2_emissions_kg_per_hour", name), 6) == 0.017987
    assert round(value(parsed, "co2_monthly_projection", name), 2) == 12.95
    assert round(value(parsed, "co2_monthly_avoided", name), 2) == -5.87
    # No fps, so no rendition: the cost per pixel divides by the scheduler's pixels_processed
    # (the Go reference's rule, J.3); no viewers -> the audience is the stream count (Go's rule).
    assert value(parsed, "cost_per_pixel", name) == pytest.approx(
        (energy + compute) / 8957952000, rel=rel)
    assert "viewers" not in two
    assert value(parsed, "cost_per_watch_hour", name) == pytest.approx(
        (energy + compute) / (two["duration"] / 3600 * 2), rel=rel)
    labels = next(s.labels for s in parsed["cost_total_load_aware"].samples
                  if s.labels["scenario"] == name)
    assert labels == {"scenario": name, "currency": "USD", "streams": "2", "bitrate": "2500k",
                      "encoder": "libx264", "service": "cost-analysis"}
    # the baseline saves nothing against itself
    assert value(parsed, "cost_monthly_savings", "baseline idle") == 0.0


def test_pixel_watch_hour_and_tiny_values_keep_full_precision() -> None:
    scenario = {"name": "4 streams @ 2500k (720p30)", "bitrate": "2500k",
                "resolution": "1280x720", "fps": 30, "duration": 120, "viewers": 400,
                "step_seconds": 5, "power_watts": [136.0] * 24, "cpu_usage_cores": [5.6] * 24}
    parsed, _ = exposition([scenario], energy_cost=0.12)
    total = (trapezoid([136.0] * 24, 5) * 0.12 / 3_600_000
             + trapezoid([5.6] * 24, 5) * 0.5 / 3600)
    pixels = 1280 * 720 * 30 * 120
    name = scenario["name"]
    assert value(parsed, "cost_per_pixel", name) == pytest.approx(total / pixels, rel=1e-12)
    assert value(parsed, "cost_per_pixel", name) < 1e-10  # printed, not rounded to 0
    assert value(parsed, "cost_per_watch_hour", name) == pytest.approx(
        total / (120 / 3600 * 400), rel=1e-12)
    assert value(parsed, "cost_total_load_aware", name) == pytest.approx(total, rel=1e-12)


def test_energy_price_zero_means_region_and_explicit_price_wins() -> None:
    scenario = {"name": "1 stream", "bitrate": "1000k", "step_seconds": 10,
                "power_watts": [100.0, 100.0], "cpu_usage_cores": [1.0, 1.0]}
    regional, _ = exposition([scenario], region="eu-central-1", cpu_cost=0.0)
    explicit, _ = exposition([scenario], region="eu-central-1", energy_cost=0.5, cpu_cost=0.0)
    joules = 1000.0  # two samples 10 s apart
    assert value(regional, "cost_energy_load_aware", "1 stream") == pytest.approx(
        joules * 0.28 / 3_600_000, rel=1e-12)
    assert value(explicit, "cost_energy_load_aware", "1 stream") == pytest.approx(
        joules * 0.5 / 3_600_000, rel=1e-12)
    assert value(regional, "co2_emissions_kg_per_hour", "1 stream") == pytest.approx(
        380 * 0.1 / 1000, rel=1e-12)


def test_pricing_config_and_currency_labels(tmp_path: Path) -> None:
    config = tmp_path / "pricing.json"
    config.write_text(json.dumps({"electricity_prices": {"us-east-1": 0.08},
                                  "co2_intensity": {"us-east-1": 300}}))
    scenario = {"name": "x", "bitrate": "1M", "step_seconds": 10,
                "power_watts": [50.0], "cpu_usage_cores": [1.0]}
    parsed, metric_set = exposition([scenario], pricing_config=str(config), currency="EUR")
    assert value(parsed, "cost_usd_per_hour", "x") == pytest.approx(0.05 * 0.08, rel=1e-12)
    assert value(parsed, "co2_emissions_kg_per_hour", "x") == pytest.approx(
        300 * 0.05 / 1000, rel=1e-12)
    assert {s.labels["currency"] for s in parsed["cost_total_load_aware"].samples} == {"EUR"}
    assert "EUR" in parsed["cost_total_load_aware"].documentation
    assert metric_set.info_labels() == {"region": "us-east-1", "currency": "EUR"}


def test_skips_are_counted_not_zeroed() -> None:
    scenarios = [
        {"name": "no bitrate", "power_watts": [1.0], "cpu_usage_cores": [1.0],
         "step_seconds": 5},
        {"name": "null bitrate", "bitrate": None},
        {"name": "no samples", "bitrate": "1000k", "duration": 60},
        {"name": "bad samples", "bitrate": "1000k", "step_seconds": 5,
         "power_watts": ["x", 2], "cpu_usage_cores": [None]},
        {"name": "no step", "bitrate": "1000k", "power_watts": [10.0], "cpu_usage_cores": [1.0]},
    ]
    parsed, metric_set = exposition(scenarios)
    # Unusable sample lists are the reader's to count (one counter for every exporter): they
    # leave the scenario without measured energy, as a missing list or step does.
    assert metric_set.skipped() == {"missing_bitrate": 2, "no_load_aware_data": 3}
    run = run_record(Path("test_results_20250101_000000.json"), scenarios)
    assert run.skipped == {"power_watts_invalid": 1, "cpu_usage_cores_invalid": 1}
    for family in COST_FAMILIES[:5]:
        assert parsed[family].samples == [], family
    # a valid power series without a step still gives the hourly energy family
    assert value(parsed, "cost_usd_per_hour", "no step") == pytest.approx(0.01 * 0.12, rel=1e-12)


def test_baseline_rule_and_first_baseline_wins() -> None:
    scenarios = [
        {"name": "Idle run", "bitrate": "0k", "step_seconds": 5, "power_watts": [20.0],
         "cpu_usage_cores": [0.1]},
        {"name": "Baseline (Idle)", "bitrate": "0k", "step_seconds": 5, "power_watts": [30.0],
         "cpu_usage_cores": [0.1]},
        {"name": "2 streams", "bitrate": "2500k", "step_seconds": 5, "power_watts": [50.0],
         "cpu_usage_cores": [2.0]},
    ]
    parsed, _ = exposition(scenarios)
    expected = 20 / 1000 * 0.12 * 720 - 50 / 1000 * 0.12 * 720
    assert value(parsed, "cost_monthly_savings", "2 streams") == pytest.approx(expected, rel=1e-12)
    assert value(parsed, "co2_monthly_avoided", "2 streams") == pytest.approx(
        (390 * 0.02 / 1000 - 390 * 0.05 / 1000) * 720, rel=1e-9)


def test_extreme_power_gives_no_infinite_sample_but_a_counted_skip() -> None:
    scenarios = [{"name": "Baseline (Idle)", "bitrate": "0k", "power": {"mean_watts": 1.0}},
                 {"name": "4 Streams @ 2500k", "bitrate": "2500k", "duration": 60,
                  "power": {"mean_watts": 1.7e308}}]
    parsed, metric_set = exposition(scenarios, energy_cost=2.0)
    for family in parsed.values():
        for sample in family.samples:
            assert math.isfinite(sample.value), (family.name, sample)
    assert metric_set.skipped()["non_finite_value"] >= 2  # monthly and savings overflow
