"""Rank transcoding scenarios by energy efficiency, per run or per output ladder.

Scenarios are dicts (the reference's API, read into records at the entry) or records
(``advisor_core.data.record``, read once already: the fast path). Inputs are never modified: results
are dicts, shallow copies (a record's fields) with ``efficiency_score`` (and, for scored copies,
``efficiency_rank``; for ladder grouping, ``output_ladder``) added. Scores come from the scorer's
batch path; entries that are neither are ignored.

Differences from the reference: the comparison text names the unit of the algorithm actually
used (Mbps/W, pixels/J, VMAF/W, QoE-pixels/J) instead of always "Mbps/W"; two scenarios that
``auto`` scores with different algorithms are "Cannot compare" (their scores have different
units); a winner without a name is called "config_a"/"config_b" instead of raising; power in the
summary's range and in comparisons is the record's one power (package + GPU,
docs/results-files.md §2.4), invalid values left out.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Iterable
from typing import Any, NoReturn, Optional

from advisor_core.data.record import ScenarioRecord, as_record, as_records
from advisor_core.data.scenario import non_negative_number
from advisor_core.economics.columns import ScenarioColumns, read_columns
from advisor_core.economics.cost import CostModel
from advisor_core.economics.scoring import EnergyEfficiencyScorer

logger = logging.getLogger(__name__)

__all__ = ["NO_LADDER", "TranscodingRecommender"]

#: Group key of scenarios without an output ladder.
NO_LADDER = "_no_ladder_"


def _scenarios(scenarios: Optional[Iterable[Any]]) -> list[Any]:
    """The scenario dicts and records of ``scenarios`` (the list itself when it holds only
    those: it is only read, never returned)."""
    if scenarios is None:
        return []
    if type(scenarios) is list and all(isinstance(s, (dict, ScenarioRecord)) for s in scenarios):
        return scenarios
    return [s for s in scenarios if isinstance(s, (dict, ScenarioRecord))]


def _copies_with_scores(scenarios: list[Any], scores: array) -> list[dict]:
    """Shallow copies of the scenarios (a record's fields as a dict) with ``efficiency_score``
    set (None for NaN)."""
    if len(scores) != len(scenarios):
        raise ValueError("one score per scenario expected")
    copies = []
    for scenario, score in zip(scenarios, scores):
        copy = dict(scenario) if isinstance(scenario, dict) else scenario._asdict()
        copy["efficiency_score"] = None if math.isnan(score) else score
        copies.append(copy)
    return copies


def _ranked(copies: list[dict], scores: array) -> list[dict]:
    """Copies best score first with ``efficiency_rank`` 1..k, then the unscored (NaN) ones.

    list.sort is stable, also with reverse=True: equal scores keep their input order, and the
    unscored copies follow in input order.
    """
    if len(scores) != len(copies):
        raise ValueError("one score per copy expected")
    scored = [i for i, score in enumerate(scores) if not math.isnan(score)]
    scored.sort(key=scores.__getitem__, reverse=True)
    ranked = [copies[i] for i in scored]
    for rank, copy in enumerate(ranked, 1):
        copy["efficiency_rank"] = rank
    ranked.extend(copies[i] for i, score in enumerate(scores) if math.isnan(score))
    return ranked


def _name(config: Any) -> Optional[str]:
    record = as_record(config)
    return record.name if record is not None and record.name else None


class TranscodingRecommender:
    """Ranks scenarios, picks the best ones and compares two configurations."""

    def __init__(self, scorer: Optional[EnergyEfficiencyScorer] = None) -> None:
        """Use ``scorer`` as given, or a new ``EnergyEfficiencyScorer("auto")``."""
        self.scorer = scorer if scorer is not None else EnergyEfficiencyScorer()

    def _batch_scorer(self) -> Optional[EnergyEfficiencyScorer]:
        """The scorer when the compiled kernels may score for it (compute_score not overridden)."""
        scorer = self.scorer
        if (
            isinstance(scorer, EnergyEfficiencyScorer)
            and type(scorer).compute_score is EnergyEfficiencyScorer.compute_score
        ):
            return scorer
        return None

    def _scores(self, scenarios: list[dict], columns: Optional[ScenarioColumns] = None) -> array:
        """Scores as float64 array.array (NaN = none): the batch path unless compute_score is
        overridden (``columns``: the scenarios already read, for the batch path)."""
        scorer = self._batch_scorer()
        if scorer is not None:
            if columns is None:
                columns = read_columns(as_records(scenarios))
            return scorer.score_columns(columns)
        values = [self.scorer.compute_score(s) for s in scenarios]
        return array("d", [math.nan if v is None else v for v in values])

    def _scored_copies(self, scenarios: list[dict]) -> tuple[list[dict], array]:
        scores = self._scores(scenarios)
        return _copies_with_scores(scenarios, scores), scores

    def analyze_and_rank(self, scenarios: Iterable[Any]) -> list[dict]:
        """Scored copies best first (``efficiency_rank`` 1, 2, ...), then unscored copies."""
        copies, scores = self._scored_copies(_scenarios(scenarios))
        # Stable: equal scores keep input order; unscored copies follow, unranked.
        return _ranked(copies, scores)

    def analyze_and_rank_with_costs(
        self, scenarios: Iterable[Any], cost_model: CostModel, viewers: Any = None
    ) -> tuple[list[dict], dict[str, list[Optional[float]]]]:
        """``(analyze_and_rank(scenarios), cost_model.compute_costs_many(scenarios, viewers))``.

        The scenarios are read into columns once for both (currency units as in CostModel).
        """
        if not isinstance(scenarios, list):
            scenarios = [] if scenarios is None else list(scenarios)
        if (
            not isinstance(cost_model, CostModel)
            or type(cost_model).compute_costs_many is not CostModel.compute_costs_many
        ):
            return self.analyze_and_rank(scenarios), cost_model.compute_costs_many(
                scenarios, viewers
            )
        columns = read_columns(as_records(scenarios))
        items = _scenarios(scenarios)
        # Entries that are no scenario are costed (as None) but never ranked: read them apart.
        scores = self._scores(items, columns if len(items) == columns.n else None)
        ranked = _ranked(_copies_with_scores(items, scores), scores)
        return ranked, cost_model.cost_lists(columns, viewers)

    def analyze_and_rank_by_ladder(self, scenarios: Iterable[Any]) -> dict[str, list[dict]]:
        """Copies grouped by output ladder id (``_no_ladder_`` when none), ranked per group.

        Groups appear in order of first occurrence; ranks restart at 1 in each group.
        """
        items = _scenarios(scenarios)
        copies, scores = self._scored_copies(items)
        groups: dict[str, list[int]] = {}
        for index, (item, copy) in enumerate(zip(items, copies)):
            ladder = self.scorer.get_output_ladder(item)
            copy["output_ladder"] = ladder
            groups.setdefault(NO_LADDER if ladder is None else ladder, []).append(index)
        return {
            key: _ranked(
                [copies[i] for i in members], array("d", [scores[i] for i in members])
            )
            for key, members in groups.items()
        }

    def get_best_per_ladder(self, scenarios: Iterable[Any]) -> dict[str, Optional[dict]]:
        """Best scored copy of each ladder group, or None for a group without scores."""
        return {
            key: (ranked[0] if ranked and ranked[0].get("efficiency_score") is not None else None)
            for key, ranked in self.analyze_and_rank_by_ladder(scenarios).items()
        }

    def get_best_configuration(self, scenarios: Iterable[Any]) -> Optional[dict]:
        """Best scored copy (rank 1), or None when nothing can be scored."""
        ranked = self.analyze_and_rank(scenarios)
        if ranked and ranked[0].get("efficiency_score") is not None:
            return ranked[0]
        logger.warning("no scenario could be scored")
        return None

    def get_top_n(self, scenarios: Iterable[Any], n: int = 5) -> list[dict]:
        """The ``n`` best scored copies in rank order (fewer when fewer are scored)."""
        count = non_negative_number(n)
        if count is None:
            return []
        ranked = self.analyze_and_rank(scenarios)
        return [c for c in ranked if c.get("efficiency_score") is not None][: int(count)]

    def get_recommendation_summary(self, scenarios: Iterable[Any]) -> dict:
        """Best config, top 5, counts, score range and power range (W) of a run."""
        items = _scenarios(scenarios)
        ranked = self.analyze_and_rank(items)
        scored = [c for c in ranked if c.get("efficiency_score") is not None]
        values = [c["efficiency_score"] for c in scored]
        watts = [record.power_w for record in as_records(items)
                 if record is not None and record.power_w is not None]
        return {
            "best_config": scored[0] if scored else None,
            "top_5": scored[:5],
            "total_analyzed": len(items),
            "scorable": len(scored),
            "efficiency_range": (min(values), max(values)) if values else None,
            "power_range": (min(watts), max(watts)) if watts else None,
        }

    def compare_configurations(self, config_a: Any, config_b: Any) -> dict:
        """Compare two scenarios' scores: winner, difference, % difference, power difference (W).

        The justification names the unit of the algorithm used; scenarios scored with different
        algorithms (``auto``) cannot be compared.
        """
        score_a = self.scorer.compute_score(config_a)
        score_b = self.scorer.compute_score(config_b)
        unit_a, unit_b = self._unit(config_a), self._unit(config_b)
        if score_a is None or score_b is None or unit_a != unit_b:
            reason = (
                "missing efficiency data"
                if score_a is None or score_b is None
                else f"different efficiency metrics ({unit_a} vs {unit_b})"
            )
            return {
                "winner": "tie",
                "efficiency_diff": None,
                "efficiency_pct_diff": None,
                "power_diff": None,
                "justification": f"Cannot compare: {reason}",
            }
        diff = score_a - score_b
        average = (score_a + score_b) / 2
        pct = diff / average * 100 if average > 0 else 0.0
        if diff > 0:
            winner, name, best, other = "config_a", _name(config_a), score_a, score_b
        elif diff < 0:
            winner, name, best, other = "config_b", _name(config_b), score_b, score_a
        else:
            winner = "tie"
        if winner == "tie":
            text = f"Configurations are equally efficient (both {score_a:.4f} {unit_a})"
        else:
            label = name if isinstance(name, str) else winner
            text = (
                f"{label} is {abs(pct):.1f}% more efficient "
                f"({best:.4f} {unit_a} vs {other:.4f} {unit_a})"
            )
        return {
            "winner": winner,
            "efficiency_diff": diff,
            "efficiency_pct_diff": pct,
            "power_diff": self._power_diff(config_a, config_b),
            "justification": text,
        }

    def generate_cli_report(self, scenarios: Iterable[Any]) -> NoReturn:
        """Always raises NotImplementedError: kept because the reference library's public API
        lists this method as not implemented (``advisor recommend`` prints the report)."""
        raise NotImplementedError("CLI report generation is not implemented")

    def _unit(self, scenario: Any) -> str:
        unit_for = getattr(self.scorer, "unit_for", None)
        return unit_for(scenario) if callable(unit_for) else "Mbps/W"

    @staticmethod
    def _power_diff(config_a: Any, config_b: Any) -> Optional[float]:
        """Power of a minus power of b (W, the records' one power rule), or None."""
        a, b = as_record(config_a), as_record(config_b)
        if a is None or b is None or a.power_w is None or b.power_w is None:
            return None
        return a.power_w - b.power_w
