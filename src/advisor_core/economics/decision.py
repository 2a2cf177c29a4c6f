"""What to run and what it costs: per-configuration figures, rankings of like with like, the best
configuration per output ladder and the quality/energy Pareto front.

``evaluate`` turns a run's records (``advisor_core.data.reader``: one per scenario name, the last
entry wins) into one ``Evaluation`` per configuration. Scores are only compared within one
score algorithm, which fixes their unit (``advisor_core.economics.scoring``): a ladder scored in
pixels/J is never ranked against stream tests scored in Mbps/W. The rules are docs/decisions.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Union

from advisor_core.data.reader import Records, read_records
from advisor_core.data.record import ScenarioRecord
from advisor_core.economics.columns import read_columns
from advisor_core.economics.regional_pricing import RegionalPricing
from advisor_core.economics.scoring import SCORE_UNITS, EnergyEfficiencyScorer

__all__ = [
    "Evaluation",
    "Evaluations",
    "Prices",
    "RankingGroup",
    "best_per_ladder",
    "evaluate",
    "pareto_front",
    "ranking_groups",
]

#: A scenario with no ``outputs`` and no resolution has no ladder; its group is this key.
NO_LADDER = "_no_ladder_"


@dataclass(frozen=True)
class Prices:
    """Prices of a decision: electricity (currency/kWh), compute (currency per CPU-core hour and
    per GPU hour) and the grid's carbon intensity (gCO2/kWh)."""

    energy_per_kwh: float
    cpu_core_per_hour: float = 0.0
    gpu_per_hour: float = 0.0
    co2_g_per_kwh: Optional[float] = None
    currency: str = "USD"
    region: str = "default"

    @classmethod
    def for_region(cls, pricing: RegionalPricing, energy_per_kwh: float = 0.0,
                   cpu_core_per_hour: float = 0.0, gpu_per_hour: float = 0.0,
                   currency: str = "USD") -> Prices:
        """Prices of a region: an electricity price of 0 means the region's (USD/kWh)."""
        energy = energy_per_kwh if energy_per_kwh > 0 else pricing.get_electricity_price()
        return cls(energy_per_kwh=float(energy), cpu_core_per_hour=float(cpu_core_per_hour),
                   gpu_per_hour=float(gpu_per_hour), co2_g_per_kwh=pricing.get_co2_intensity(),
                   currency=currency, region=pricing.region)


@dataclass(frozen=True)
class Evaluation:
    """One configuration's figures; None where the run does not say.

    Power in W, costs in the prices' currency per hour of running the configuration, CO2 in
    grams per hour; ``per_stream_hour`` divides by the configuration's concurrent streams.
    """

    name: str
    index: int  # position among the evaluated scenarios (file order)
    streams: int  # concurrent streams (an unknown count is one stream)
    output_ladder: Optional[str]
    algorithm: str  # the score algorithm, which fixes the score's unit
    unit: str
    score: Optional[float]
    mean_power_watts: Optional[float]
    cpu_cores: Optional[float]  # mean CPU cores in use, when measured
    vmaf: Optional[float]
    energy_cost_per_hour: Optional[float]
    compute_cost_per_hour: Optional[float]
    cost_per_hour: Optional[float]
    cost_per_stream_hour: Optional[float]
    co2_grams_per_hour: Optional[float]
    power_per_stream_watts: Optional[float]

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain data (JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class Evaluations:
    """The evaluated configurations of a run and what was left out of them (counts)."""

    items: list[Evaluation]
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def by_name(self, name: str) -> Optional[Evaluation]:
        """The configuration of this scenario name, or None."""
        return next((item for item in self.items if item.name == name), None)


@dataclass(frozen=True)
class RankingGroup:
    """Configurations scored with one algorithm (one unit), best first.

    ``ranks[i]`` is the competition rank of ``items[i]``: one more than the number of strictly
    better scores, so equal scores share a rank (1, 1, 3).
    """

    algorithm: str
    unit: str
    items: list[Evaluation]
    ranks: list[int]


def _finite(value: Optional[float]) -> Optional[float]:
    return value if value is not None and value == value and abs(value) != float("inf") else None


def _evaluation(index: int, record: ScenarioRecord, algorithm: str, score: Optional[float],
                prices: Prices) -> Evaluation:
    watts = record.power_w
    streams = max(1, record.stream_count)
    cores = record.cores
    energy = None if watts is None else _finite(watts / 1000.0 * prices.energy_per_kwh)
    # Compute: the measured cores at the per-core-hour price; without a measurement the
    # instance's hourly prices (CPU + GPU), as the reference's duration-based compute cost.
    if cores is not None:
        compute = _finite(cores * prices.cpu_core_per_hour)
    else:
        compute = prices.cpu_core_per_hour + prices.gpu_per_hour
    total = None if energy is None else _finite(energy + (compute or 0.0))
    co2 = (None if watts is None or prices.co2_g_per_kwh is None
           else _finite(watts / 1000.0 * prices.co2_g_per_kwh))
    return Evaluation(
        name=record.name,
        index=index,
        streams=streams,
        output_ladder=record.output_ladder,
        algorithm=algorithm,
        unit=SCORE_UNITS[algorithm],
        score=score,
        mean_power_watts=watts,
        cpu_cores=cores,
        vmaf=record.vmaf if record.vmaf is not None and record.vmaf > 0 else None,
        energy_cost_per_hour=energy,
        compute_cost_per_hour=compute,
        cost_per_hour=total,
        cost_per_stream_hour=None if total is None else total / streams,
        co2_grams_per_hour=co2,
        power_per_stream_watts=None if watts is None else watts / streams,
    )


def evaluate(run: Union[Records, Iterable[Any]], prices: Prices) -> Evaluations:
    """One Evaluation per record of a run (scenario dicts are read with
    ``advisor_core.data.reader.read_records`` first); skips counted by reason.

    A record without a power (``power_w``) is counted as ``no_power_data`` and left out.
    """
    if not isinstance(run, Records):
        run = read_records(run)
    skipped = dict(run.skipped)
    scorer = EnergyEfficiencyScorer("auto")
    records = run.scenarios
    # One batch for the scores (the compiled kernel): equal to compute_score of each.
    scores = scorer.score_columns(read_columns(records))
    items: list[Evaluation] = []
    for record, score in zip(records, scores):
        if record.power_w is None:
            skipped["no_power_data"] = skipped.get("no_power_data", 0) + 1
            continue
        items.append(_evaluation(len(items), record, scorer.algorithm_for(record),
                                 None if score != score else score, prices))
    return Evaluations(items, run.duplicates, skipped)


def _competition_ranks(scores: Sequence[float]) -> list[int]:
    """Ranks of scores sorted best first: equal scores share the rank of the first of them."""
    ranks: list[int] = []
    for position, score in enumerate(scores):
        ranks.append(ranks[-1] if position and score == scores[position - 1] else position + 1)
    return ranks


def ranking_groups(items: Iterable[Evaluation]) -> list[RankingGroup]:
    """One ranking per score algorithm (unit), best first; unscored items are left out.

    Groups are ordered by the first appearance of their algorithm; within a group equal
    scores keep file order and share a rank.
    """
    grouped: dict[str, list[Evaluation]] = {}
    for item in items:
        if item.score is not None:
            grouped.setdefault(item.algorithm, []).append(item)
    groups = []
    for algorithm, members in grouped.items():
        ordered = sorted(members, key=lambda e: -e.score)  # type: ignore[operator]
        ranks = _competition_ranks([e.score for e in ordered])  # type: ignore[misc]
        groups.append(RankingGroup(algorithm, SCORE_UNITS[algorithm], ordered, ranks))
    return groups


def best_per_ladder(items: Iterable[Evaluation]) -> list[tuple[str, RankingGroup]]:
    """For each output ladder, its configurations ranked per score algorithm.

    Returns (ladder id or ``NO_LADDER``, ranking) pairs in order of first appearance; the best
    configuration of a pair is ``ranking.items[0]`` (several when they share rank 1).
    """
    by_ladder: dict[str, list[Evaluation]] = {}
    for item in items:
        by_ladder.setdefault(item.output_ladder or NO_LADDER, []).append(item)
    return [(ladder, group) for ladder, members in by_ladder.items()
            for group in ranking_groups(members)]


def pareto_front(items: Iterable[Evaluation],
                 cost: Callable[[Evaluation], Optional[float]]) -> list[Evaluation]:
    """Configurations with a VMAF score that no other beats on both quality and ``cost``.

    ``cost`` is what to minimise (e.g. power per stream in W, or cost per stream-hour). An item
    is dominated when another has VMAF >= and cost <= with at least one strict; equal points
    are all on the front. Sorted by ascending cost (then descending VMAF, then file order).
    """
    points = [(c, item.vmaf, item) for item in items
              if item.vmaf is not None and (c := cost(item)) is not None]
    # Sweep by ascending cost, best VMAF first within a cost: a point is on the front when it
    # has the best VMAF of its cost and beats every VMAF seen at a strictly lower cost.
    points.sort(key=lambda p: (p[0], -p[1], p[2].index))  # type: ignore[operator]
    front: list[tuple[float, float, Evaluation]] = []
    best_below = -math.inf  # the best VMAF among strictly lower costs
    position = 0
    while position < len(points):
        cost_here, top = points[position][0], points[position][1]
        end = position
        while end < len(points) and points[end][0] == cost_here:
            end += 1
        if top > best_below:  # type: ignore[operator]
            front.extend(p for p in points[position:end] if p[1] == top)
            best_below = top  # type: ignore[assignment]
        position = end
    return [item for _, _, item in front]
