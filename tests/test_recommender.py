"""Tests of advisor_core.economics.recommender against the reference's ranking examples."""

from __future__ import annotations

import copy
import math
import random
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _domain import anything, random_scenarios
from advisor_core.economics import recommender
from advisor_core.economics.cost import COST_KEYS, CostModel
from advisor_core.economics.recommender import NO_LADDER, TranscodingRecommender
from advisor_core.economics.scoring import ALGORITHMS, EnergyEfficiencyScorer

HD720 = {"resolution": "1280x720", "fps": 30}
LADDER3 = [
    {"resolution": "1920x1080", "fps": 30},
    {"resolution": "1280x720", "fps": 30},
    {"resolution": "854x480", "fps": 30},
]
LADDER3_ID = "1920x1080@30,1280x720@30,854x480@30"


def approx(value, rel=1e-9):
    return pytest.approx(value, rel=rel, abs=0.0)


def r5():
    rows = [
        ("Baseline (Idle)", "0k", 30),
        ("1 Mbps Stream", "1000k", 50),
        ("2.5 Mbps Stream", "2500k", 60),
        ("5 Mbps Stream", "5M", 80),
        ("4 streams @ 2500k", "2500k", 150),
    ]
    return [{"name": n, "bitrate": b, "power": {"mean_watts": w}, **HD720} for n, b, w in rows]


def ladder_set():
    def item(name, kbps, watts, joules, outputs=None):
        s = {"name": name, "bitrate": f"{kbps}k", "duration": 120,
             "power": {"mean_watts": watts, "total_energy_joules": joules}, **HD720}
        if outputs:
            s["outputs"] = outputs
        return s

    return [
        item("Single 720p @ 2500k", 2500, 60, 7200),
        item("Single 720p @ 5000k", 5000, 80, 9600),
        item("Multi-res ladder @ 2500k", 2500, 100, 12000, LADDER3),
        item("Multi-res ladder @ 5000k", 5000, 150, 18000, LADDER3),
    ]


# ---------------------------------------------------------------------------------------------
# Construction and ranking (E.1 - E.7)
# ---------------------------------------------------------------------------------------------

def test_scorer_default_and_supplied():
    assert isinstance(TranscodingRecommender().scorer, EnergyEfficiencyScorer)
    scorer = EnergyEfficiencyScorer("pixels_per_joule")
    assert TranscodingRecommender(scorer).scorer is scorer


def test_rank_r5():
    ranked = TranscodingRecommender().analyze_and_rank(r5())
    assert [c["name"] for c in ranked] == [
        "4 streams @ 2500k", "5 Mbps Stream", "2.5 Mbps Stream", "1 Mbps Stream",
        "Baseline (Idle)"]
    assert [c.get("efficiency_rank") for c in ranked] == [1, 2, 3, 4, None]
    assert "efficiency_rank" not in ranked[4]
    assert [c["efficiency_score"] for c in ranked[:4]] == [
        approx(2.5 * 4 / 150), approx(5.0 / 80), approx(2.5 / 60), approx(1.0 / 50)]
    assert ranked[4]["efficiency_score"] is None


def test_rank_does_not_touch_input():
    items = r5()
    before = copy.deepcopy(items)
    ranked = TranscodingRecommender().analyze_and_rank(items)
    assert items == before
    assert all("efficiency_score" not in s for s in items)
    assert all(c is not s for c in ranked for s in items)


def test_rank_ties_keep_input_order():
    items = [{"name": f"t{i}", "bitrate": "1000k", "power": {"mean_watts": 10}} for i in range(5)]
    items.insert(2, {"name": "best", "bitrate": "5000k", "power": {"mean_watts": 10}})
    ranked = TranscodingRecommender().analyze_and_rank(items)
    assert [c["name"] for c in ranked] == ["best", "t0", "t1", "t2", "t3", "t4"]


def test_best_configuration():
    best = TranscodingRecommender().get_best_configuration(r5())
    assert best["name"] == "4 streams @ 2500k" and best["efficiency_rank"] == 1
    assert best["efficiency_score"] == approx((2.5 * 4) / 150)
    baseline_only = [{"name": "Baseline (Idle)", "bitrate": "0k", "power": {"mean_watts": 30}}]
    assert TranscodingRecommender().get_best_configuration(baseline_only) is None
    assert TranscodingRecommender().get_best_configuration([]) is None


def test_top_n():
    recommender = TranscodingRecommender()
    assert [c["efficiency_rank"] for c in recommender.get_top_n(r5(), 3)] == [1, 2, 3]
    assert len(recommender.get_top_n(r5(), 10)) == 4
    assert len(recommender.get_top_n(r5())) == 4
    assert recommender.get_top_n(r5(), 0) == []
    assert recommender.get_top_n(r5(), -1) == []


def test_summary():
    summary = TranscodingRecommender().get_recommendation_summary(r5())
    assert set(summary) == {"best_config", "top_5", "total_analyzed", "scorable",
                            "efficiency_range", "power_range"}
    assert summary["total_analyzed"] == 5 and summary["scorable"] == 4
    assert summary["best_config"]["name"] == "4 streams @ 2500k"
    assert len(summary["top_5"]) == 4
    low, high = summary["efficiency_range"]
    assert low == approx(0.02) and high == approx(2.5 * 4 / 150)
    assert summary["power_range"] == (30.0, 150.0)  # includes the unscored baseline


def test_summary_empty():
    summary = TranscodingRecommender().get_recommendation_summary([])
    assert summary == {"best_config": None, "top_5": [], "total_analyzed": 0, "scorable": 0,
                       "efficiency_range": None, "power_range": None}


# ---------------------------------------------------------------------------------------------
# Comparison (E.8, E.9, E.19 and the unit fix)
# ---------------------------------------------------------------------------------------------

def test_compare_r5():
    items = r5()
    recommender = TranscodingRecommender()
    result = recommender.compare_configurations(items[1], items[2])
    sa, sb = 1.0 / 50, 2.5 / 60
    assert result["winner"] == "config_b"
    assert result["efficiency_diff"] == approx(sa - sb)
    assert result["efficiency_pct_diff"] == approx((sa - sb) / ((sa + sb) / 2) * 100)
    assert result["efficiency_pct_diff"] == pytest.approx(-70.2703, rel=1e-6)
    assert result["power_diff"] == -10.0
    assert result["justification"] == (
        "2.5 Mbps Stream is 70.3% more efficient (0.0417 Mbps/W vs 0.0200 Mbps/W)")
    reverse = recommender.compare_configurations(items[2], items[1])
    assert reverse["winner"] == "config_a"
    assert reverse["justification"] == result["justification"]
    assert reverse["power_diff"] == 10.0


def test_compare_missing_data():
    result = TranscodingRecommender().compare_configurations(
        {"name": "Config A", "bitrate": "0k", "power": {"mean_watts": 30}},
        {"name": "Config B", "bitrate": "2500k"},
    )
    assert result == {"winner": "tie", "efficiency_diff": None, "efficiency_pct_diff": None,
                      "power_diff": None,
                      "justification": "Cannot compare: missing efficiency data"}


def test_compare_identical():
    item = r5()[1]
    result = TranscodingRecommender().compare_configurations(item, dict(item))
    assert result["winner"] == "tie"
    assert result["efficiency_diff"] == 0.0 and result["efficiency_pct_diff"] == 0.0
    assert result["power_diff"] == 0.0
    assert result["justification"] == "Configurations are equally efficient (both 0.0200 Mbps/W)"


def test_compare_uses_the_unit_of_the_algorithm():
    # Reference defect fixed (README, further differences): the unit was always "Mbps/W".
    a = {"name": "Low power 720p", "duration": 120, "vmaf_score": 90,
         "power": {"mean_watts": 50, "total_energy_joules": 6000}, **HD720}
    b = dict(a, name="High power 720p", power={"mean_watts": 100, "total_energy_joules": 12000})
    for algorithm, unit, sa, sb in [
        ("pixels_per_joule", "pixels/J", 1280 * 720 * 30 * 120 / 6000,
         1280 * 720 * 30 * 120 / 12000),
        ("qoe_efficiency_score", "QoE-pixels/J", 1280 * 720 * 30 * 120 * 0.9 / 6000,
         1280 * 720 * 30 * 120 * 0.9 / 12000),
        ("quality_per_watt", "VMAF/W", 90 / 50, 90 / 100),
    ]:
        result = TranscodingRecommender(EnergyEfficiencyScorer(algorithm)).compare_configurations(
            a, b)
        assert result["winner"] == "config_a"
        pct = (sa - sb) / ((sa + sb) / 2) * 100
        assert result["justification"] == (
            f"Low power 720p is {abs(pct):.1f}% more efficient ({sa:.4f} {unit} vs {sb:.4f} {unit})"
        )
    auto = TranscodingRecommender().compare_configurations(a, b)
    assert "QoE-pixels/J" in auto["justification"] and "Mbps/W" not in auto["justification"]


def test_compare_different_algorithms_cannot_compare():
    with_vmaf = {"name": "q", "duration": 60, "vmaf_score": 90,
                 "power": {"mean_watts": 50, "total_energy_joules": 3000}, **HD720}
    plain = {"name": "t", "bitrate": "2500k", "power": {"mean_watts": 50}}
    result = TranscodingRecommender().compare_configurations(with_vmaf, plain)
    assert result["winner"] == "tie" and result["efficiency_diff"] is None
    assert result["justification"] == (
        "Cannot compare: different efficiency metrics (QoE-pixels/J vs Mbps/W)")


def test_compare_winner_without_name():
    a = {"bitrate": "5M", "power": {"mean_watts": 50}}
    b = {"bitrate": "1M", "power": {"mean_watts": 50}}
    result = TranscodingRecommender().compare_configurations(a, b)
    assert result["winner"] == "config_a"
    assert result["justification"].startswith("config_a is ")


def test_cli_report_not_implemented():
    with pytest.raises(NotImplementedError):
        TranscodingRecommender().generate_cli_report(r5())


# ---------------------------------------------------------------------------------------------
# Ladder grouping (E.11 - E.17, E.20)
# ---------------------------------------------------------------------------------------------

def test_rank_by_ladder():
    groups = TranscodingRecommender().analyze_and_rank_by_ladder(ladder_set())
    assert list(groups) == ["1280x720@30", LADDER3_ID]
    single, multi = groups["1280x720@30"], groups[LADDER3_ID]
    assert [c["name"] for c in single] == ["Single 720p @ 5000k", "Single 720p @ 2500k"]
    assert [c["efficiency_score"] for c in single] == [approx(5.0 / 80), approx(2.5 / 60)]
    pixels = (1920 * 1080 + 1280 * 720 + 854 * 480) * 30 * 120
    assert [c["name"] for c in multi] == ["Multi-res ladder @ 2500k", "Multi-res ladder @ 5000k"]
    assert [c["efficiency_score"] for c in multi] == [approx(pixels / 12000),
                                                     approx(pixels / 18000)]
    assert multi[0]["efficiency_score"] == approx(1021536.0)
    for key, members in groups.items():
        assert [c["efficiency_rank"] for c in members] == list(range(1, len(members) + 1))
        assert all(c["output_ladder"] == key for c in members)


def test_best_per_ladder():
    best = TranscodingRecommender().get_best_per_ladder(ladder_set())
    assert len(best) == 2
    assert best["1280x720@30"]["name"] == "Single 720p @ 5000k"
    assert best[LADDER3_ID]["name"] == "Multi-res ladder @ 2500k"
    assert all(b["efficiency_rank"] == 1 for b in best.values())


def test_groups_for_simple_inputs():
    recommender = TranscodingRecommender()
    single = {"name": "t", "bitrate": "2500k", "power": {"mean_watts": 60}, **HD720}
    assert list(recommender.analyze_and_rank_by_ladder([single])) == ["1280x720@30"]
    two = dict(single, outputs=LADDER3[:2])
    assert len(recommender.analyze_and_rank_by_ladder([single, two])) == 2


def test_no_ladder_group():
    bare = {"name": "bare", "bitrate": "2500k", "power": {"mean_watts": 60}}
    baseline = {"name": "Baseline", "bitrate": "0k", "power": {"mean_watts": 30}}
    groups = TranscodingRecommender().analyze_and_rank_by_ladder([baseline, bare])
    assert list(groups) == [NO_LADDER]
    assert [c["name"] for c in groups[NO_LADDER]] == ["bare", "Baseline"]
    assert all(c["output_ladder"] is None for c in groups[NO_LADDER])
    assert groups[NO_LADDER][0]["efficiency_rank"] == 1
    best = TranscodingRecommender().get_best_per_ladder([baseline])
    assert best == {NO_LADDER: None}


def test_pixels_per_joule_scorer_ranking():
    low = {"name": "Low power 720p", "duration": 120,
           "power": {"mean_watts": 50, "total_energy_joules": 6000}, **HD720}
    high = dict(low, name="High power 720p",
                power={"mean_watts": 100, "total_energy_joules": 12000})
    ranked = TranscodingRecommender(EnergyEfficiencyScorer("pixels_per_joule")).analyze_and_rank(
        [high, low])
    assert [c["name"] for c in ranked] == ["Low power 720p", "High power 720p"]
    assert ranked[0]["efficiency_score"] == approx(552960.0)
    assert ranked[1]["efficiency_score"] == approx(276480.0)


def test_default_and_pixels_scorers_differ():
    scenario = {"name": "Scenario A", "bitrate": "2500k", "duration": 120,
                "power": {"mean_watts": 60, "total_energy_joules": 7200}, **HD720}
    default = TranscodingRecommender().analyze_and_rank([scenario])[0]["efficiency_score"]
    pixels = TranscodingRecommender(EnergyEfficiencyScorer("pixels_per_joule")).analyze_and_rank(
        [scenario])[0]["efficiency_score"]
    assert default == approx(2.5 / 60) and pixels == approx(460800.0)


# ---------------------------------------------------------------------------------------------
# Batch path, overrides, robustness
# ---------------------------------------------------------------------------------------------

class HalfScorer(EnergyEfficiencyScorer):
    def compute_score(self, scenario):
        value = super().compute_score(scenario)
        return None if value is None else value / 2


def test_overridden_compute_score_is_honoured():
    ranked = TranscodingRecommender(HalfScorer()).analyze_and_rank(r5())
    assert ranked[0]["efficiency_score"] == approx(2.5 * 4 / 150 / 2)


@pytest.mark.parametrize("seed", range(3))
def test_rank_matches_per_scenario_reference_procedure(seed):
    items = [s for s in random_scenarios(seed, 400) if isinstance(s, dict)]
    scorer = EnergyEfficiencyScorer()
    scores = [scorer.compute_score(s) for s in items]
    scored = sorted((i for i, v in enumerate(scores) if v is not None),
                    key=lambda i: -scores[i])  # sorted() is stable
    expected = scored + [i for i, v in enumerate(scores) if v is None]
    ranked = TranscodingRecommender(scorer).analyze_and_rank(items)
    assert [c["name"] for c in ranked] == [items[i]["name"] for i in expected]
    assert [c["efficiency_score"] for c in ranked] == [scores[i] for i in expected]


# ---------------------------------------------------------------------------------------------
# analyze_and_rank_with_costs == (analyze_and_rank, compute_costs_many)
# ---------------------------------------------------------------------------------------------

COST_MODELS = [
    CostModel(),
    CostModel(0.12, 0.50, 1.00, price_per_core_second=0.0001, price_per_joule=1e-7),
]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("viewers", [None, 10, "x"])
def test_rank_with_costs_equals_the_two_calls(seed, algorithm, viewers):
    items = random_scenarios(seed, 300)
    before = copy.deepcopy(items)
    recommender = TranscodingRecommender(EnergyEfficiencyScorer(algorithm))
    for model in COST_MODELS:
        ranked, costs = recommender.analyze_and_rank_with_costs(items, model, viewers)
        expected = recommender.analyze_and_rank(items)
        assert [c["name"] for c in ranked] == [c["name"] for c in expected]
        assert ranked == expected
        assert costs == model.compute_costs_many(items, viewers)
        assert list(costs) == list(COST_KEYS)
        assert repr(items) == repr(before)  # inputs untouched (repr: NaN != NaN)
    # the comparison covers real numbers, not only Nones
    assert sum(c["efficiency_score"] is not None for c in ranked) > 30
    assert sum(v is not None for v in costs["cost_per_pixel_load_aware"]) > 100


@settings(max_examples=150, deadline=None)
@given(items=st.lists(anything, max_size=8), viewers=st.one_of(st.none(), st.integers(-1, 50)))
def test_rank_with_costs_equals_the_two_calls_on_arbitrary_input(items, viewers):
    recommender, model = TranscodingRecommender(), COST_MODELS[1]
    ranked, costs = recommender.analyze_and_rank_with_costs(items, model, viewers)
    assert repr(ranked) == repr(recommender.analyze_and_rank(items))
    assert costs == model.compute_costs_many(items, viewers)


def test_rank_with_costs_iterables_and_fallbacks():
    model = COST_MODELS[1]
    recommender = TranscodingRecommender()
    items = [*r5(), None]
    expected = (recommender.analyze_and_rank(items), model.compute_costs_many(items))
    assert recommender.analyze_and_rank_with_costs(iter(items), model) == expected
    assert recommender.analyze_and_rank_with_costs(tuple(items), model) == expected
    assert recommender.analyze_and_rank_with_costs(None, model) == (
        [], {key: [] for key in COST_KEYS})
    # An overridden compute_score is honoured, and any object with compute_costs_many works.
    half = TranscodingRecommender(HalfScorer())
    ranked, costs = half.analyze_and_rank_with_costs(items, model)
    assert ranked == half.analyze_and_rank(items) and costs == expected[1]
    assert ranked[0]["efficiency_score"] == approx(2.5 * 4 / 150 / 2)

    class FlatCosts:
        def compute_costs_many(self, scenarios, viewers=None):
            return {"n": len(scenarios), "viewers": viewers}

    assert recommender.analyze_and_rank_with_costs(iter(items), FlatCosts(), 3) == (
        expected[0], {"n": 6, "viewers": 3})


@settings(max_examples=150, deadline=None)
@given(items=st.lists(anything, max_size=8))
def test_recommender_never_raises(items):
    recommender = TranscodingRecommender()
    ranked = recommender.analyze_and_rank(items)
    assert len(ranked) == sum(isinstance(s, dict) for s in items)
    for c in ranked:
        v = c["efficiency_score"]
        assert v is None or math.isfinite(v)
    recommender.analyze_and_rank_by_ladder(items)
    recommender.get_recommendation_summary(items)
    if len(items) >= 2:
        recommender.compare_configurations(items[0], items[1])


# ---------------------------------------------------------------------------------------------
# Real results files (tests/data)
# ---------------------------------------------------------------------------------------------

def test_real_run_ranking(joined_real_scenarios):
    # The real run, ranked as the reference ranks it: baselines have no score, scored ones are
    # > 0, ranked.
    ranked = TranscodingRecommender().analyze_and_rank(joined_real_scenarios)
    assert len(ranked) == len(joined_real_scenarios)
    scored = [c for c in ranked if c["efficiency_score"] is not None]
    assert scored and all(c["efficiency_score"] > 0 for c in scored)
    assert [c["efficiency_rank"] for c in scored] == list(range(1, len(scored) + 1))
    assert all(
        a["efficiency_score"] >= b["efficiency_score"] for a, b in zip(scored, scored[1:]))
    for c in ranked:
        if "baseline" in c["name"].lower():
            assert c["efficiency_score"] is None and "efficiency_rank" not in c
        elif c.get("outputs"):  # the ladders: pixels per joule (1080p+720p+480p at 30 fps)
            pixels = (1920 * 1080 + 1280 * 720 + 854 * 480) * 30 * c["duration"]
            assert c["efficiency_score"] == approx(pixels / c["power"]["total_energy_joules"])
        else:  # "N Streams @ Rk": throughput per watt, written out independently of the parsers
            mbps = float(c["bitrate"][:-1]) / 1000
            streams = int(c["name"].split()[0])
            assert c["efficiency_score"] == approx(mbps * streams / c["power"]["mean_watts"])


@pytest.mark.parametrize("size", [0, 1, 2, 15, 16, 17, 33, 100, 257, 1000])
def test_ranked_order_is_a_stable_descending_sort(size):
    # Few distinct values (many ties) and NaNs: exactly the order of Python's stable sorted()
    # of the negated scores, with unscored entries last in input order.
    rng = random.Random(size)
    scores = [rng.choice([math.nan, 0.0, 1.5, 2.0, 2.0, 7.25, -0.0]) for _ in range(size)]
    copies = [{"i": i} for i in range(size)]
    ranked = recommender._ranked(copies, array("d", scores))
    scored = sorted((i for i in range(size) if not math.isnan(scores[i])), key=lambda i: -scores[i])
    expected = scored + [i for i in range(size) if math.isnan(scores[i])]
    assert [c["i"] for c in ranked] == expected
    assert [c.get("efficiency_rank") for c in ranked] == (
        list(range(1, len(scored) + 1)) + [None] * (size - len(scored))
    )
