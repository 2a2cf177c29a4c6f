"""The results exporter's recommendation families (docs/exporters.md §2): the rank of each
configuration within its score unit, the best configuration per output ladder and membership of
the VMAF / power-per-stream Pareto front, from ``advisor_core.economics.decision``.

They read the run's records as the file gives them, not the VictoriaMetrics enrichment, so they
equal what ``advisor recommend`` says for the same file.
"""

from __future__ import annotations

from collections.abc import Sequence

from advisor_core.data.reader import Records
from advisor_core.economics.decision import (
    Prices,
    best_per_ladder,
    evaluate,
    pareto_front,
    ranking_groups,
)

from .families import LabelSchema, LabelSet, TableFamily

__all__ = ["recommendation_families"]

#: Costs play no part in these families: no prices needed.
_NO_PRICES = Prices(energy_per_kwh=0.0)


def recommendation_families(run: Records, labels: dict[str, tuple[str, ...]],
                            names: Sequence[str]) -> list[TableFamily]:
    """Rank, best-per-ladder and Pareto families; ``labels``: the usual label values by name of
    the scenarios served (ranks and fronts are the whole run's; others get no series).

    ``names`` (the scenario label names) plus ``algorithm`` label the ranked families.
    """
    ranked_schema = LabelSchema((*names, "algorithm"))
    plain_schema = LabelSchema(names)
    items = evaluate(run, _NO_PRICES).items
    rank = TableFamily("results_recommendation_efficiency_rank",
                       "Rank of the configuration among those scored with the same algorithm "
                       "(unit); 1 = best, equal scores share a rank")
    best = TableFamily("results_recommendation_best_per_ladder",
                       "1 for the best configuration of its output ladder within one score "
                       "algorithm (several when they tie)")
    pareto = TableFamily("results_recommendation_pareto_optimal",
                         "1 when no other configuration has both a higher or equal VMAF and a "
                         "lower or equal power per stream (one strictly), else 0")
    # A configuration has one algorithm: its ranked label set serves both families.
    ranked: dict[str, LabelSet] = {}
    for group in ranking_groups(items):
        for item, position in zip(group.items, group.ranks):
            if item.name in labels:
                ranked_set = ranked[item.name] = ranked_schema(
                    (*labels[item.name], group.algorithm))
                rank.add(ranked_set, float(position))
    for _, group in best_per_ladder(items):
        for item, position in zip(group.items, group.ranks):
            if position == 1 and item.name in ranked:
                best.add(ranked[item.name], 1.0)
    front = {id(item) for item in pareto_front(items, lambda e: e.power_per_stream_watts)}
    for item in items:
        if (item.vmaf is not None and item.power_per_stream_watts is not None
                and item.name in labels):
            block: LabelSet = plain_schema(labels[item.name])
            pareto.add(block, 1.0 if id(item) in front else 0.0)
    return [family for family in (rank, best, pareto) if len(family)]
