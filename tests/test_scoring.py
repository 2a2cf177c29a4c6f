"""Tests of advisor_core.economics.scoring against the reference's worked scores and independent
arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _domain import anything, random_scenarios
from advisor_core.economics.scoring import ALGORITHMS, SCORE_UNITS, EnergyEfficiencyScorer

LADDER3 = [
    {"resolution": "1920x1080", "fps": 30},
    {"resolution": "1280x720", "fps": 30},
    {"resolution": "854x480", "fps": 30},
]
LADDER3_PIXELS_PER_S = (1920 * 1080 + 1280 * 720 + 854 * 480) * 30


def approx(value, rel=1e-9):
    return pytest.approx(value, rel=rel, abs=0.0)


def power(watts=None, joules=None):
    block = {}
    if watts is not None:
        block["mean_watts"] = watts
    if joules is not None:
        block["total_energy_joules"] = joules
    return block


# ---------------------------------------------------------------------------------------------
# Construction (D.1, D.2, D.22)
# ---------------------------------------------------------------------------------------------

def test_default_algorithm_is_auto():
    assert EnergyEfficiencyScorer().algorithm == "auto"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_supported_algorithms_stored(algorithm):
    assert EnergyEfficiencyScorer(algorithm).algorithm == algorithm


@pytest.mark.parametrize("algorithm", ["invalid_algo", "invalid_qoe_algo", "", None, 3])
def test_unsupported_algorithm(algorithm):
    with pytest.raises(ValueError, match=r"^Unsupported algorithm"):
        EnergyEfficiencyScorer(algorithm)


# ---------------------------------------------------------------------------------------------
# throughput_per_watt (D.3 - D.8, D.10, D.21)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ({"name": "1 Mbps Stream", "bitrate": "1000k", "power": power(50)}, 1.0 / 50),
        ({"name": "4 streams @ 2500k", "bitrate": "2500k", "power": power(100)}, 2.5 * 4 / 100),
        ({"name": "5 Mbps Stream", "bitrate": "5M", "power": power(80),
          "gpu_power": {"mean_watts": 20}}, 5.0 / 100),
        ({"name": "1 Stream @ 2500k", "bitrate": "2500k", "power": power(50)}, 2.5 / 50),
        ({"name": "8 Streams @ 1000k", "bitrate": "1000k", "power": power(50)}, 8 * 1.0 / 50),
        # README difference 1: an unknown count (no name, "Baseline", "multi") is one stream here.
        ({"name": "Baseline", "bitrate": "2500k", "power": power(50)}, 2.5 / 50),
        ({"bitrate": "2500k", "power": power(50)}, 2.5 / 50),
        ({"name": "Multi Stream Test", "bitrate": "2500k", "power": power(50)}, 2.5 / 50),
        # README difference 1: "10 Mbps Stream" is one stream of 10 Mbps.
        ({"name": "10 Mbps Stream", "bitrate": "10M", "power": power(50)}, 10.0 / 50),
        ({"name": "2.5 Mbps Stream", "bitrate": "2500k", "power": power(50)}, 2.5 / 50),
        # README difference 2: "5Mbps" is 5 Mbps (B1 gave 0 and so no score).
        ({"name": "x", "bitrate": "5Mbps", "power": power(50)}, 5.0 / 50),
        # An absurd count (beyond scenario.MAX_STREAMS) is unknown: one stream (difference 1).
        ({"name": "9" * 400 + " streams", "bitrate": "2500k", "power": power(50)}, 2.5 / 50),
    ],
)
def test_throughput_per_watt(scenario, expected):
    for algorithm in ("throughput_per_watt", "auto"):
        assert EnergyEfficiencyScorer(algorithm).compute_score(scenario) == approx(expected)


@pytest.mark.parametrize(
    "scenario",
    [
        {"name": "Baseline (Idle)", "bitrate": "0k", "power": power(30)},
        {"name": "Test Stream", "bitrate": "2500k"},
        {"name": "Test Stream", "bitrate": "2500k", "power": None},
        {"name": "Test Stream", "bitrate": "2500k", "power": {}},
        {"bitrate": "2500k", "power": power(0.0)},
        {"bitrate": "2500k", "power": power(-10)},
        {"bitrate": "2500k", "power": power(-10), "gpu_power": {"mean_watts": 50}},
        {"bitrate": "2500k", "power": power("50")},
        {"bitrate": "2500k", "power": power(math.nan)},
        {"bitrate": "abc", "power": power(50)},
        {"bitrate": None, "power": power(50)},
        {"bitrate": 2500, "power": power(50)},
        {"power": power(50)},
        {"name": "0 streams", "bitrate": "2500k", "power": power(50)},
        {"name": "1 stream", "bitrate": "1e308M", "power": power(1e-300)},
    ],
)
def test_throughput_per_watt_none(scenario):
    assert EnergyEfficiencyScorer("throughput_per_watt").compute_score(scenario) is None


# ---------------------------------------------------------------------------------------------
# pixels_per_joule (D.30 - D.32)
# ---------------------------------------------------------------------------------------------

def test_pixels_per_joule_single():
    scenario = {"resolution": "1280x720", "fps": 30, "duration": 120,
                "power": power(100, 12000)}
    expected = 1280 * 720 * 30 * 120 / 12000
    assert expected == 276480
    assert EnergyEfficiencyScorer("pixels_per_joule").compute_score(scenario) == approx(expected)


def test_pixels_per_joule_ladder():
    scenario = {"outputs": LADDER3[:2], "duration": 120, "power": power(joules=15000)}
    expected = (1920 * 1080 + 1280 * 720) * 30 * 120 / 15000
    assert expected == 718848
    assert EnergyEfficiencyScorer("pixels_per_joule").compute_score(scenario) == approx(expected)


@pytest.mark.parametrize(
    "scenario",
    [
        {"resolution": "1280x720", "fps": 30, "duration": 120, "power": power(100)},
        {"resolution": "1280x720", "fps": 30, "power": power(100, 12000)},
        {"resolution": "1280x720", "fps": 30, "duration": 120, "power": power(100, 0)},
        {"resolution": "1280x720", "fps": 30, "duration": 120, "power": power(100, -5)},
        {"duration": 120, "power": power(100, 12000)},
        {"resolution": "1280x720", "fps": 30, "duration": 120, "power": power(joules=5e-324)},
    ],
)
def test_pixels_per_joule_none(scenario):
    assert EnergyEfficiencyScorer("pixels_per_joule").compute_score(scenario) is None


# ---------------------------------------------------------------------------------------------
# quality_per_watt (D.13 - D.15, D.33)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ({"vmaf_score": 85, "power": power(100)}, 0.85),
        ({"vmaf_score": 90, "power": power(80), "gpu_power": {"mean_watts": 20}}, 0.9),
        ({"vmaf_score": 0, "power": power(100)}, 0.0),
        ({"vmaf_score": 100, "power": power(10)}, 10.0),
    ],
)
def test_quality_per_watt(scenario, expected):
    assert EnergyEfficiencyScorer("quality_per_watt").compute_score(scenario) == approx(expected)


@pytest.mark.parametrize("vmaf", [None, 150, -1, math.nan, "85", True])
def test_quality_per_watt_none(vmaf):
    scenario = {"power": power(100)}
    if vmaf is not None:
        scenario["vmaf_score"] = vmaf
    assert EnergyEfficiencyScorer("quality_per_watt").compute_score(scenario) is None


# ---------------------------------------------------------------------------------------------
# qoe_efficiency_score and auto (D.11, D.16 - D.20)
# ---------------------------------------------------------------------------------------------

HD60 = {"resolution": "1920x1080", "fps": 30, "duration": 60}


def test_qoe_efficiency_single():
    scenario = {"vmaf_score": 80, "power": power(joules=5000), **HD60}
    expected = 1920 * 1080 * 30 * 60 * 0.80 / 5000
    assert EnergyEfficiencyScorer("qoe_efficiency_score").compute_score(scenario) == approx(
        expected)
    assert expected == pytest.approx(597196.8)


def test_qoe_efficiency_ladder():
    scenario = {"vmaf_score": 85, "power": power(joules=10000), "outputs": LADDER3,
                "duration": 60}
    expected = LADDER3_PIXELS_PER_S * 60 * 0.85 / 10000
    assert expected == pytest.approx(520983.36)
    assert EnergyEfficiencyScorer("qoe_efficiency_score").compute_score(scenario) == approx(
        expected)


@pytest.mark.parametrize(
    "scenario",
    [
        {"power": power(joules=5000), **HD60},
        {"vmaf_score": 80, **HD60},
        {"vmaf_score": 80, "power": power(joules=5000)},
        {"vmaf_score": 101, "power": power(joules=5000), **HD60},
    ],
)
def test_qoe_efficiency_none(scenario):
    assert EnergyEfficiencyScorer("qoe_efficiency_score").compute_score(scenario) is None


def test_auto_with_vmaf_uses_qoe():
    scenario = {"vmaf_score": 85, "power": power(50, 5000), "bitrate": "2500k", **HD60}
    expected = 1920 * 1080 * 30 * 60 * 0.85 / 5000
    scorer = EnergyEfficiencyScorer()
    assert scorer.algorithm_for(scenario) == "qoe_efficiency_score"
    assert scorer.compute_score(scenario) == approx(expected)
    assert expected == pytest.approx(634521.6)
    # An out-of-range VMAF still selects QoE, which then has no score (no fallback).
    assert scorer.compute_score(dict(scenario, vmaf_score=150)) is None


def test_auto_with_ladder_uses_pixels_per_joule():
    scenario = {"outputs": LADDER3[:2], "duration": 60, "power": power(50, 5000),
                "bitrate": "2500k"}
    scorer = EnergyEfficiencyScorer()
    assert scorer.algorithm_for(scenario) == "pixels_per_joule"
    assert scorer.compute_score(scenario) == approx((1920 * 1080 + 1280 * 720) * 30 * 60 / 5000)
    assert scorer.compute_score(scenario) == approx(1078272.0)


def test_auto_one_rung_ladder_uses_throughput():
    scenario = {"outputs": LADDER3[1:2], "duration": 60, "power": power(50, 5000),
                "bitrate": "2500k"}
    scorer = EnergyEfficiencyScorer()
    assert scorer.algorithm_for(scenario) == "throughput_per_watt"
    assert scorer.compute_score(scenario) == approx(0.05)
    assert scorer.get_output_ladder(scenario) == "1280x720@30"


def test_quality_adjusted_score():
    scorer = EnergyEfficiencyScorer("throughput_per_watt")
    scenario = {"bitrate": "2500k", "power": power(50, 3000), **HD60}
    result = scorer.compute_quality_adjusted_score(scenario, 85, 40)
    assert result == approx(1920 * 1080 * 30 * 60 * 0.85 / 3000)
    assert result == approx(1057536.0)
    assert "vmaf_score" not in scenario
    assert scorer.compute_quality_adjusted_score(scenario, 150, 40) is None
    assert scorer.compute_quality_adjusted_score(None, 85, 40) is None


def test_not_implemented_scores():
    scorer = EnergyEfficiencyScorer()
    with pytest.raises(NotImplementedError):
        scorer.compute_cost_adjusted_score({}, 1.0)
    with pytest.raises(NotImplementedError):
        scorer.compute_hardware_normalized_score({}, "cpu")


# ---------------------------------------------------------------------------------------------
# Ladder id (D.24 - D.26, D.34) and units
# ---------------------------------------------------------------------------------------------

def test_output_ladder():
    scorer = EnergyEfficiencyScorer()
    assert scorer.get_output_ladder({"resolution": "1280x720", "fps": 30}) == "1280x720@30"
    expected = "1920x1080@30,1280x720@30,854x480@30"
    assert scorer.get_output_ladder({"outputs": LADDER3}) == expected
    assert scorer.get_output_ladder({"outputs": [LADDER3[2], LADDER3[0], LADDER3[1]]}) == expected
    assert scorer.get_output_ladder({"name": "only"}) is None


def test_units():
    assert SCORE_UNITS == {
        "throughput_per_watt": "Mbps/W",
        "pixels_per_joule": "pixels/J",
        "quality_per_watt": "VMAF/W",
        "qoe_efficiency_score": "QoE-pixels/J",
    }
    scorer = EnergyEfficiencyScorer()
    assert scorer.unit_for({"vmaf_score": 90}) == "QoE-pixels/J"
    assert scorer.unit_for({"outputs": LADDER3}) == "pixels/J"
    assert scorer.unit_for({}) == "Mbps/W"
    assert EnergyEfficiencyScorer("quality_per_watt").unit_for({}) == "VMAF/W"


# ---------------------------------------------------------------------------------------------
# Robustness and batch path
# ---------------------------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(scenario=anything, algorithm=st.sampled_from(ALGORITHMS))
def test_score_is_none_or_finite(scenario, algorithm):
    value = EnergyEfficiencyScorer(algorithm).compute_score(scenario)
    assert value is None or (type(value) is float and math.isfinite(value) and value >= 0)


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and a == b)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_score_many_matches_compute_score(seed, algorithm):
    scorer = EnergyEfficiencyScorer(algorithm)
    items = random_scenarios(seed, 300)
    batch = scorer.score_many(items)
    single = [scorer.compute_score(s) for s in items]
    assert len(batch) == len(items)
    assert all(_same(a, b) for a, b in zip(batch, single))
    assert sum(v is not None for v in batch) > 30  # real numbers were compared


@settings(max_examples=200, deadline=None)
@given(items=st.lists(anything, max_size=8), algorithm=st.sampled_from(ALGORITHMS))
def test_score_many_matches_on_arbitrary_input(items, algorithm):
    scorer = EnergyEfficiencyScorer(algorithm)
    batch = scorer.score_many(items)
    assert all(_same(a, b) for a, b in zip(batch, [scorer.compute_score(s) for s in items]))


def test_score_array_and_empty():
    scorer = EnergyEfficiencyScorer()
    array = scorer.score_array([{"bitrate": "2500k", "power": power(50)}, {}])
    assert array.dtype == np.float64 and array[0] == approx(0.05) and np.isnan(array[1])
    assert scorer.score_many([]) == []
    assert scorer.score_many(iter([{"bitrate": "1M", "power": power(10)}])) == [0.1]
