"""QoE metric set: families, labels, validity ranges and values against hand computations."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _process import Exporter, metrics
from advisor_core.data.reader import run_record
from advisor_core.data.scenario import load_results
from exporters._promql import PromClient
from exporters.exposition import render_families
from exporters.qoe import QoEMetrics

DATA_DIR = Path(__file__).parent / "data"
RESULT_FILES = sorted(DATA_DIR.glob("test_results_*.json"))
QOE_FAMILIES = ["qoe_vmaf_score", "qoe_psnr_score", "qoe_ssim_score", "qoe_quality_per_watt",
                "qoe_efficiency_score", "qoe_drop_rate"]


def exposition(scenarios: list) -> tuple[dict, QoEMetrics]:
    metric_set = QoEMetrics()
    run = run_record(Path("test_results_20250101_000000.json"), scenarios)
    body = render_families(metric_set.compute(run, PromClient(None))).decode()
    return {f.name: f for f in text_string_to_metric_families(body)}, metric_set


def value(parsed: dict, family: str, scenario: str) -> float:
    matches = [s.value for s in parsed[family].samples if s.labels["scenario"] == scenario]
    assert len(matches) == 1, (family, scenario, matches)
    return matches[0]


def names(parsed: dict, family: str) -> set:
    return {s.labels["scenario"] for s in parsed[family].samples}


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: p.name)
def test_every_data_file_renders_valid_exposition(path: Path) -> None:
    raw = load_results(path)
    parsed, _ = exposition(raw)
    assert set(QOE_FAMILIES) == set(parsed)
    for name, family in parsed.items():
        label_sets = [tuple(sorted(s.labels.items())) for s in family.samples]
        assert len(label_sets) == len(set(label_sets)), f"{name} repeats a label set"
        for sample in family.samples:
            assert set(sample.labels) == {"scenario", "bitrate", "encoder"}
            assert math.isfinite(sample.value)
    last = {s["name"]: s for s in raw}
    with_vmaf = {n for n, s in last.items() if isinstance(s.get("vmaf_score"), (int, float))
                 and 0 <= s["vmaf_score"] <= 100}
    assert names(parsed, "qoe_vmaf_score") == with_vmaf
    with_frames = {n for n, s in last.items() if isinstance(s.get("total_frames"), int)
                   and s["total_frames"] > 0}
    assert names(parsed, "qoe_drop_rate") == with_frames


def test_extended_file_values(extended_results_path: Path) -> None:
    raw = load_results(extended_results_path)
    parsed, _ = exposition(raw)
    two = [s for s in raw if s["name"] == "2 streams @ 2500k"][-1]
    name = two["name"]
    mean_w = sum(two["power_watts"]) / len(two["power_watts"])
    assert value(parsed, "qoe_vmaf_score", name) == 92.5
    assert value(parsed, "qoe_psnr_score", name) == 42.3
    assert value(parsed, "qoe_ssim_score", name) == 0.985
    assert value(parsed, "qoe_quality_per_watt", name) == pytest.approx(92.5 / mean_w, rel=1e-12)
    assert round(value(parsed, "qoe_quality_per_watt", name), 4) == 2.0056  # the reference
    assert value(parsed, "qoe_drop_rate", name) == pytest.approx(5 / 3612, rel=1e-12)
    assert round(value(parsed, "qoe_drop_rate", name), 6) == 0.001384
    # No fps: the pixels are the scheduler's pixels_processed. Ten samples at 5 s do not span
    # the 120.5 s scenario, so its energy is mean x duration (docs/results-files.md §2.4; the
    # Go reference summed 5 s rectangles of the samples: J.4's 3593280.83).
    joules = mean_w * two["duration"]
    assert value(parsed, "qoe_efficiency_score", name) == pytest.approx(
        two["pixels_processed"] * 0.925 / joules, rel=1e-12)
    labels = next(s.labels for s in parsed["qoe_vmaf_score"].samples
                  if s.labels["scenario"] == name)
    assert labels == {"scenario": name, "bitrate": "2500k", "encoder": "libx264"}
    # a genuine 0 is a valid score (the Go reference dropped it)
    assert value(parsed, "qoe_vmaf_score", "baseline idle") == 0.0
    assert value(parsed, "qoe_quality_per_watt", "baseline idle") == 0.0


def test_power_object_values_match_reference_facts_j6() -> None:
    scenario = {"name": 'A "q" b', "vmaf_score": 80, "power": {"mean_watts": 100.0,
                "total_energy_joules": 5000.0}, "duration": 60, "resolution": "1920x1080",
                "fps": 30}
    parsed, _ = exposition([scenario])
    assert value(parsed, "qoe_quality_per_watt", 'A "q" b') == pytest.approx(0.8, rel=1e-12)
    expected = 1920 * 1080 * 30 * 60 * 0.80 / 5000
    assert value(parsed, "qoe_efficiency_score", 'A "q" b') == pytest.approx(expected, rel=1e-12)
    assert round(value(parsed, "qoe_efficiency_score", 'A "q" b')) == 597197


def test_power_samples_give_mean_and_trapezoid_energy() -> None:
    samples = [40.0, 50.0, 60.0, 50.0]
    scenario = {"name": "s", "vmaf_score": 90.0, "power_watts": samples, "step_seconds": 5,
                "duration": 15, "resolution": "1280x720", "fps": 30}
    parsed, _ = exposition([scenario])
    energy = 5 / 2 * (40 + 50 + 2 * (50 + 60))  # trapezoid, joules
    assert value(parsed, "qoe_quality_per_watt", "s") == pytest.approx(90 / 50, rel=1e-12)
    assert value(parsed, "qoe_efficiency_score", "s") == pytest.approx(
        1280 * 720 * 30 * 15 * 0.9 / energy, rel=1e-12)
    # Without a step the samples cannot be integrated: the energy is mean x duration, and
    # without a duration too only the mean is known.
    no_step = dict(scenario, step_seconds=None)
    parsed, _ = exposition([no_step])
    assert value(parsed, "qoe_quality_per_watt", "s") == pytest.approx(1.8, rel=1e-12)
    assert value(parsed, "qoe_efficiency_score", "s") == pytest.approx(
        1280 * 720 * 30 * 15 * 0.9 / (50 * 15), rel=1e-12)
    no_duration = {k: v for k, v in no_step.items() if k != "duration"}
    parsed, _ = exposition([{**no_duration, "pixels_processed": 10**9}])
    assert parsed["qoe_efficiency_score"].samples == []


def test_out_of_range_and_invalid_scores_are_skipped_and_counted() -> None:
    scenarios = [
        {"name": "vmaf 150", "vmaf_score": 150, "psnr_score": -1, "ssim_score": 1.2,
         "power": {"mean_watts": 100.0, "total_energy_joules": 5000.0}},
        {"name": "strings", "vmaf_score": "90", "psnr_score": "n/a", "ssim_score": True},
        {"name": "edges", "vmaf_score": 100, "psnr_score": 0, "ssim_score": 1},
        {"name": "frames", "total_frames": 10, "dropped_frames": 11},
        {"name": "no frames", "total_frames": 0, "dropped_frames": 0},
    ]
    parsed, metric_set = exposition(scenarios)
    assert names(parsed, "qoe_vmaf_score") == {"edges"}
    assert names(parsed, "qoe_psnr_score") == {"edges"}
    assert names(parsed, "qoe_ssim_score") == {"edges"}
    assert parsed["qoe_quality_per_watt"].samples == []  # VMAF 150 gives no efficiency
    assert parsed["qoe_drop_rate"].samples == []
    # Invalid and out-of-range scores are the reader's to count (one counter for every
    # exporter); more dropped frames than frames is the QoE exporter's.
    run = run_record(Path("test_results_20250101_000000.json"), scenarios)
    assert run.skipped == {
        "vmaf_score_out_of_range": 1, "psnr_score_out_of_range": 1, "ssim_score_out_of_range": 1,
        "vmaf_score_invalid": 1, "psnr_score_invalid": 1, "ssim_score_invalid": 1,
    }
    # Only "edges" has a usable score.
    assert metric_set.skipped() == {"dropped_frames_invalid": 1, "no_quality_score": 4}


def test_scenarios_without_quality_scores_are_counted() -> None:
    scenarios = [
        {"name": "none", "power": {"mean_watts": 10.0}},
        {"name": "nulls", "vmaf_score": None, "psnr_score": None, "ssim_score": None},
        {"name": "psnr only", "psnr_score": 40.0},
        {"name": "bad vmaf", "vmaf_score": "x"},
    ]
    parsed, metric_set = exposition(scenarios)
    assert names(parsed, "qoe_psnr_score") == {"psnr only"}
    # The reader counts the bad VMAF; the exporter, every scenario without a usable score.
    assert metric_set.skipped() == {"no_quality_score": 3}
    run = run_record(Path("test_results_20250101_000000.json"), scenarios)
    assert run.skipped == {"vmaf_score_invalid": 1}


@pytest.mark.slow
def test_a_run_without_quality_scores_is_counted_by_the_exporter_process(tmp_path: Path) -> None:
    """The recorded 15-scenario run has no VMAF, PSNR or SSIM: every scenario is counted."""
    shutil.copy(DATA_DIR / "test_results_20251229_125651.json", tmp_path)
    exporter = Exporter("advisor-qoe-exporter", tmp_path)
    try:
        deadline = time.monotonic() + 30
        while "qoe_vmaf_score" not in (parsed := metrics(exporter.port)):
            assert time.monotonic() < deadline, exporter.output()
            time.sleep(0.1)
        skipped = {s.labels["reason"]: s.value
                   for s in parsed["qoe_exporter_skipped_scenarios"].samples}
        assert skipped == {"no_quality_score": 15.0}
        assert parsed["qoe_vmaf_score"].samples == []
    finally:
        exporter.stop()


@pytest.mark.parametrize("name", ['q"uote', "back\\slash", "new\nline", "ünïcødé ✓ 漢"])
def test_label_values_survive(name: str) -> None:
    parsed, _ = exposition([{"name": name, "vmaf_score": 50, "bitrate": 'b"\\\n',
                             "encoder_type": "é"}])
    sample = parsed["qoe_vmaf_score"].samples[0]
    assert sample.labels == {"scenario": name, "bitrate": 'b"\\\n', "encoder": "é"}
