"""advisor_core.economics.decision on small hand-made runs: every expected number worked out by
hand."""

from __future__ import annotations

import random

import pytest

from advisor_core.economics.decision import (
    NO_LADDER,
    Prices,
    best_per_ladder,
    evaluate,
    pareto_front,
    ranking_groups,
)

PRICES = Prices(energy_per_kwh=0.2, cpu_core_per_hour=0.5, gpu_per_hour=1.0, co2_g_per_kwh=400.0)


def stream(name: str, kbps: int, watts: float, **extra) -> dict:
    return {"name": name, "bitrate": f"{kbps}k", "duration": 10, "resolution": "1280x720",
            "fps": 30, "power": {"mean_watts": watts, "total_energy_joules": watts * 10}, **extra}


LADDER_OUTPUTS = [{"resolution": "1280x720", "fps": 30}, {"resolution": "640x360", "fps": 30}]

# Mbps x streams / W: 3/10 = 0.3; 2 x 2/20 = 0.2; 4 x 2/40 = 0.2 (a tie); pixels/J:
# (1280x720 + 640x360) x 30 x 10 s / 500 J = 691,200 and / 400 J = 864,000.
MIXED = [
    stream("2 streams @ 2000k", 2000, 20.0, container_usage={"cpu_percent": 150.0}),
    stream("4 streams @ 2000k", 2000, 40.0),
    stream("1 stream @ 3000k", 3000, 10.0),
    {"name": "ladder A", "bitrate": "3000k", "duration": 10, "outputs": LADDER_OUTPUTS,
     "power": {"mean_watts": 50.0, "total_energy_joules": 500.0}},
    {"name": "ladder B", "bitrate": "3000k", "duration": 10, "outputs": LADDER_OUTPUTS,
     "power": {"mean_watts": 40.0, "total_energy_joules": 400.0}},
    {"name": "no power", "bitrate": "1000k"},
    "not a scenario",
    stream("1 stream @ 3000k", 3000, 10.0),  # a repeat: the last one wins
]


def test_rankings_compare_like_with_like_and_ties_share_a_rank():
    evaluations = evaluate(MIXED, PRICES)
    assert evaluations.duplicates == 1
    assert evaluations.skipped == {"not_an_object": 1, "no_power_data": 1}
    groups = ranking_groups(evaluations.items)
    assert [(g.algorithm, g.unit) for g in groups] == [
        ("throughput_per_watt", "Mbps/W"), ("pixels_per_joule", "pixels/J")]
    streams, ladders = groups
    assert [i.name for i in streams.items] == [
        "1 stream @ 3000k", "2 streams @ 2000k", "4 streams @ 2000k"]
    assert [i.score for i in streams.items] == pytest.approx([0.3, 0.2, 0.2])
    assert streams.ranks == [1, 2, 2]
    assert [i.name for i in ladders.items] == ["ladder B", "ladder A"]
    assert [i.score for i in ladders.items] == pytest.approx([864000.0, 691200.0])
    assert ladders.ranks == [1, 2]


def test_costs_per_hour_and_per_stream_hour_and_co2():
    item = evaluate(MIXED, PRICES).by_name("2 streams @ 2000k")
    assert item is not None and item.streams == 2
    assert item.cpu_cores == pytest.approx(1.5)
    assert item.energy_cost_per_hour == pytest.approx(20 / 1000 * 0.2)  # 0.004
    assert item.compute_cost_per_hour == pytest.approx(1.5 * 0.5)  # measured cores
    assert item.cost_per_hour == pytest.approx(0.754)
    assert item.cost_per_stream_hour == pytest.approx(0.377)
    assert item.co2_grams_per_hour == pytest.approx(8.0)
    assert item.power_per_stream_watts == pytest.approx(10.0)
    # Without measured cores: one instance at the CPU + GPU hourly prices.
    other = evaluate(MIXED, PRICES).by_name("4 streams @ 2000k")
    assert other is not None and other.compute_cost_per_hour == pytest.approx(1.5)
    assert other.cost_per_stream_hour == pytest.approx((0.008 + 1.5) / 4)


def test_best_per_ladder_ranks_within_each_ladder_and_unit():
    best = best_per_ladder(evaluate(MIXED, PRICES).items)
    summary = [(ladder, g.algorithm, [i.name for i, r in zip(g.items, g.ranks) if r == 1])
               for ladder, g in best]
    assert summary == [
        ("1280x720@30", "throughput_per_watt", ["1 stream @ 3000k"]),
        ("1280x720@30,640x360@30", "pixels_per_joule", ["ladder B"]),
    ]
    assert NO_LADDER == "_no_ladder_"


QUALITY = [
    stream("A", 2000, 10.0, vmaf_score=90.0),
    stream("B", 2000, 20.0, vmaf_score=95.0),
    stream("C", 2000, 15.0, vmaf_score=85.0),  # A is better on both: dominated
    stream("D", 2000, 10.0, vmaf_score=90.0),  # equal to A: both on the front
    stream("E", 2000, 20.0, vmaf_score=94.0),  # B has the same power and more VMAF
    stream("F", 2000, 5.0),  # no VMAF: not a candidate
]


def test_pareto_front_keeps_equal_points_and_drops_dominated_ones():
    items = evaluate(QUALITY, PRICES).items
    front = pareto_front(items, lambda e: e.power_per_stream_watts)
    assert [i.name for i in front] == ["A", "D", "B"]
    by_cost = pareto_front(items, lambda e: e.cost_per_stream_hour)
    assert [i.name for i in by_cost] == ["A", "D", "B"]  # one stream each: cost follows power


def test_pareto_front_equals_the_pairwise_definition_on_random_runs_with_ties():
    rng = random.Random(7)
    for _ in range(200):
        # Few distinct values: many equal costs, equal VMAFs and equal points.
        run = [stream(f"s{i}", 2000, float(rng.randint(1, 6)),
                      vmaf_score=float(rng.randint(80, 84)))
               for i in range(rng.randint(1, 25))]
        items = evaluate(run, PRICES).items
        power = [(i.power_per_stream_watts, i.vmaf) for i in items]
        expected = [
            item for item, (c, q) in zip(items, power)
            if not any(oc <= c and oq >= q and (oc < c or oq > q) for oc, oq in power)
        ]
        expected.sort(key=lambda e: (e.power_per_stream_watts, -e.vmaf, e.index))
        assert pareto_front(items, lambda e: e.power_per_stream_watts) == expected


def test_nothing_to_rank_gives_empty_results():
    evaluations = evaluate([{"name": "idle", "power": {"mean_watts": 5.0}}], PRICES)
    assert len(evaluations.items) == 1 and evaluations.items[0].score is None
    assert ranking_groups(evaluations.items) == []
    assert pareto_front(evaluations.items, lambda e: e.power_per_stream_watts) == []
