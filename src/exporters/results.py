"""Results exporter (port 9502): measured power, energy, efficiency, baseline deltas, predictions.

Families and label names are the Python reference's plus the Go rewrite's extended families; the
rules (power sources, baseline, skips, predictions, labels) are docs/exporters.md §2 and the
README's "Differences from the reference" 10-17. This module declares the families and their
labels and runs the compute; the samples of one scenario are ``exporters.results_values``,
what VictoriaMetrics fills in ``exporters.results_victoriametrics``, the model
``exporters.results_model``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from advisor_core.data.record import ScenarioRecord, idle_baseline

from ._promql import PromClient
from .families import Family, FamilySpec, LabelSchema, LabelSet, table_families
from .jobs import Job
from .metric_set import MetricSet, Run
from .results_model import ResultsModel, default_predictor
from .results_recommendation import recommendation_families
from .results_values import measured_values, prediction_values
from .results_victoriametrics import fill_from_victoriametrics
from .runtime import exporter_main

logger = logging.getLogger(__name__)

__all__ = ["LABELS", "ResultsMetrics", "main", "scenario_labels"]

LABELS = (
    "run_id",
    "scenario",
    "bitrate",
    "resolution",
    "fps",
    "streams",
    "output_ladder",
    "encoder_type",
    "encoder",
    "preset",
)

_SCHEMA = LabelSchema(LABELS)

#: Families of the model's predictions (rebuilt when new predictions arrive).
_PREDICTED = frozenset((
    "predicted_power", "predicted_energy", "predicted_efficiency", "predicted_ci_low",
    "predicted_ci_high", "predicted_pi_low", "predicted_pi_high", "prediction_extrapolated",
    "prediction_floored",
))

# (key, metric name, help) in the reference's declaration order, new families last.
_FAMILIES: tuple[FamilySpec, ...] = (
    ("duration", "results_scenario_duration_seconds",
     "Scenario length: the file's duration field, else measured window end - start (seconds)"),
    ("mean_power", "results_scenario_mean_power_watts",
     "Mean power over the scenario: CPU package + GPU when measured (watts)"),
    ("measured_power", "results_scenario_measured_power_watts",
     "Same value as results_scenario_mean_power_watts (watts)"),
    ("docker_overhead", "results_scenario_estimated_docker_overhead_watts",
     "Container CPU share x mean power (watts)"),
    ("energy_j", "results_scenario_total_energy_joules",
     "Energy of the scenario (CPU package + GPU): measured, else mean power x duration "
     "(joules)"),
    ("energy_wh", "results_scenario_total_energy_wh",
     "Energy of the scenario (CPU package + GPU): measured, else mean power x duration "
     "(watt-hours)"),
    ("container_cpu", "results_scenario_container_cpu_percent",
     "Mean total container CPU (percent, 100 = one core)"),
    ("wh_per_min", "results_scenario_energy_wh_per_min", "Energy per minute (watt-hours/minute)"),
    ("wh_per_mbps", "results_scenario_energy_wh_per_mbps",
     "Energy per Mbps of target bitrate (watt-hours/Mbps)"),
    ("mj_per_frame", "results_scenario_energy_mj_per_frame",
     "Energy per output frame (millijoules/frame)"),
    ("net_power", "results_scenario_net_power_watts",
     "Mean power minus the baseline's mean power (watts)"),
    ("net_energy", "results_scenario_net_energy_wh",
     "Energy minus the baseline's energy (watt-hours)"),
    ("net_cpu", "results_scenario_net_container_cpu_percent",
     "Container CPU minus the baseline's container CPU (percentage points)"),
    ("delta_power", "results_scenario_delta_power_watts",
     "Mean power minus the baseline's mean power (watts)"),
    ("delta_energy", "results_scenario_delta_energy_wh",
     "Energy minus the baseline's energy (watt-hours)"),
    ("pct_increase", "results_scenario_power_pct_increase",
     "Mean power increase over the baseline (percent of the baseline's mean power)"),
    ("efficiency", "results_scenario_efficiency_score",
     "Pixels per joule when the scenario delivers pixels, else Mbps x streams per watt"),
    ("pixels", "results_scenario_total_pixels",
     "Pixels delivered: sum of width x height x fps x duration over the renditions"),
    ("predicted_power", "results_scenario_predicted_power_watts",
     "Model prediction of the mean power (watts)"),
    ("predicted_energy", "results_scenario_predicted_energy_joules",
     "Predicted mean power x duration (joules)"),
    ("predicted_efficiency", "results_scenario_predicted_efficiency_score",
     "Efficiency score with the predicted mean power: pixels/J or Mbps x streams per watt"),
    ("confidence_low", "results_scenario_prediction_confidence_low",
     "Measured mean power - 2 standard deviations, at least 0 (watts)"),
    ("confidence_high", "results_scenario_prediction_confidence_high",
     "Measured mean power + 2 standard deviations (watts)"),
    ("stdev", "results_scenario_power_stdev",
     "Sample standard deviation of the power samples (watts)"),
    ("predicted_ci_low", "results_scenario_predicted_power_ci_low_watts",
     "Lower bound of the model's bootstrap interval for the mean power (watts)"),
    ("predicted_ci_high", "results_scenario_predicted_power_ci_high_watts",
     "Upper bound of the model's bootstrap interval for the mean power (watts)"),
    ("predicted_pi_low", "results_scenario_predicted_power_pi_low_watts",
     "Lower bound of the 95% prediction interval for one new measurement (watts)"),
    ("predicted_pi_high", "results_scenario_predicted_power_pi_high_watts",
     "Upper bound of the 95% prediction interval for one new measurement (watts)"),
    ("prediction_extrapolated", "results_scenario_prediction_extrapolated",
     "1 when the prediction lies outside the trained range of a feature or has an unseen "
     "category (the model then continues its linear trend), else 0"),
    ("prediction_floored", "results_scenario_prediction_floored",
     "1 when the prediction or a bound of its intervals was raised to the run's idle baseline "
     "(or 0 W) because the fitted curve fell below it there, else 0"),
    ("avg_fps", "results_scenario_avg_fps", "Achieved average encoding rate (frames/second)"),
    ("dropped_frames", "results_scenario_dropped_frames",
     "Frames dropped in the scenario (frames; per file, not a counter)"),
    ("total_frames", "results_scenario_total_frames",
     "Frames processed in the scenario (frames; per file, not a counter)"),
    ("vmaf", "results_scenario_vmaf_score", "VMAF quality of the output (0-100)"),
    ("psnr", "results_scenario_psnr_score", "PSNR quality of the output (dB)"),
)


# ---------------------------------------------------------------------------------------------
# Per-scenario inputs
# ---------------------------------------------------------------------------------------------


def scenario_labels(run_id: str, record: ScenarioRecord) -> tuple[str, ...]:
    """Return the ten label values of a record in ``LABELS`` order (docs/exporters.md §1)."""
    return (
        run_id,
        record.name,
        record.bitrate or "",
        record.resolution or "",
        record.fps_text or "",
        str(record.stream_count),
        record.output_ladder or "unknown",
        record.encoder_class,
        record.encoder,
        record.preset,
    )


@dataclass(frozen=True)
class _Cached:
    """What the last compute rendered, minus predictions: enough to render again without it."""

    signature: tuple
    #: The measured families by key (rendered again as they are).
    measured: dict
    #: (scenario name, labels, prediction basis) of every row
    rows: tuple
    skipped: dict
    #: The recommendation families (exporters.results_recommendation)
    recommendation: list


def _count(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


# ---------------------------------------------------------------------------------------------
# The metric set
# ---------------------------------------------------------------------------------------------


class ResultsMetrics(MetricSet):
    """Results families (docs/exporters.md §2) computed from a Run."""

    name = "results"
    default_port = 9502
    # The measured and predicted families, rank, best per ladder and Pareto; the ranked label
    # set adds ``algorithm``.
    rows_per_scenario = len(_FAMILIES) + 3
    label_overhead = 170

    def __init__(
        self,
        settings: Optional[argparse.Namespace] = None,
        predictor_factory: Callable[[int], Any] = default_predictor,
    ) -> None:
        # ``settings`` (the parsed flags) is accepted for the runner's factory call; the results
        # set has no settings of its own.
        self.model = ResultsModel(predictor_factory)
        self._skipped: dict[str, int] = {}
        self._job: Optional[Job] = None
        self._cached = _Cached(signature=(), measured={}, rows=(), skipped={}, recommendation=[])

    # -- MetricSet hooks ------------------------------------------------------------------------

    def take_job(self) -> Optional[Job]:
        """The model training/prediction the last compute asked for (None when nothing is due)."""
        job, self._job = self._job, None
        return job

    def rerender(self) -> list[Family]:
        """The last compute's families with the model's current predictions."""
        return self._render(self._cached)

    # -- compute --------------------------------------------------------------------------------

    def compute(self, run: Run, prom: PromClient) -> list[Family]:
        """Return the results families for a run (refresh thread only; never trains)."""
        records = fill_from_victoriametrics(run.scenarios, prom)
        # The baseline, the model's training rows and the rankings are the whole run's; only
        # the served scenarios get series (docs/exporters.md §9).
        baseline = idle_baseline(records)
        served = [record for record in records if self.serves(record.name)]
        labels = [_SCHEMA(scenario_labels(run.run_id, record)) for record in served]
        # Within one run (one file) only the scenario set, durations and the CPU filled in from
        # VictoriaMetrics can change the model's features between refreshes.
        signature = (run.run_id,
                     tuple((record.name, record.duration_s, record.cpu_pct) for record in records))
        job = self.model.job_for(run.run_id, records, signature, served)
        if job is not None:
            self._job = job  # else a job asked for earlier and not taken yet stays

        skipped: dict[str, int] = {}
        measured = table_families([spec for spec in _FAMILIES if spec[0] not in _PREDICTED])
        sinks = {key: (family.keys.append, family.values.append)
                 for key, family in measured.items()}
        rows_basis = []
        for record, label_set in zip(served, labels):
            if record.duration_s is None:
                _count(skipped, "no_duration")
            if record.power_w is None and record.energy_j is None:
                _count(skipped, "no_power_data")
            samples, basis = measured_values(record, baseline)
            _add_finite(label_set, samples, sinks, skipped)
            rows_basis.append((record.name, label_set, basis))
        # Assigned once complete: the cache always matches the last compute that succeeded.
        recommendation = recommendation_families(
            run, {record.name: label_set.values for record, label_set in zip(served, labels)},
            LABELS)
        self._cached = _Cached(signature=signature, measured=measured, rows=tuple(rows_basis),
                               skipped=skipped, recommendation=recommendation)
        return self._render(self._cached)

    def _render(self, cached: _Cached) -> list[Family]:
        by_name = self.model.predictions_for(cached.signature)
        skipped = dict(cached.skipped)
        predicted = table_families([spec for spec in _FAMILIES if spec[0] in _PREDICTED])
        sinks = {key: (family.keys.append, family.values.append)
                 for key, family in predicted.items()}
        if by_name:
            for name, labels, basis in cached.rows:
                prediction = by_name.get(name)
                if prediction is not None and prediction.get("no_interval"):
                    # Off the one value a feature was trained on: no slope, so no prediction
                    # (docs/predictions.md); counted, not served as a confident number.
                    _count(skipped, "prediction_without_slope")
                elif prediction is not None:
                    _add_finite(labels, prediction_values(prediction, *basis), sinks, skipped)
        self._skipped = skipped
        families = {**cached.measured, **predicted}
        result: list[Family] = [families[key] for key, _, _ in _FAMILIES if len(families[key])]
        result.extend(cached.recommendation)
        result.extend(self.model.families())
        return result


def _add_finite(labels: LabelSet, samples: list[tuple[str, float]], sinks: dict,
                skipped: dict[str, int]) -> None:
    """Append a scenario's samples to their families; non-finite ones are counted instead."""
    for key, value in samples:
        if not math.isfinite(value):
            # A quotient or product of valid but extreme inputs (1e-320 J, 1e300 W) left the
            # float range: no number is better than inf or NaN.
            _count(skipped, "non_finite_value")
            continue
        add_key, add_value = sinks[key]
        add_key(labels)  # escaped once, shared by the scenario's samples
        add_value(value)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``advisor-results-exporter``: serve results metrics until SIGTERM."""
    return exporter_main([ResultsMetrics], "advisor-results-exporter", argv,
                         "Prometheus exporter of measured power, energy, efficiency and "
                         "model predictions per benchmark scenario.")


if __name__ == "__main__":
    sys.exit(main())
