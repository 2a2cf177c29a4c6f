"""Results exporter (port 9502): measured power, energy, efficiency, baseline deltas, predictions.

Families and label names are the Python reference's plus the Go rewrite's extended families; the
rules (power sources, baseline, skips, predictions, labels) are docs/exporters.md §2 and the
README's "Differences from the reference" 10-17. The measured quantities come from
``advisor_core.measurements``, the model from ``exporters.results_model``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from advisor_core.cost import sample_series, sample_stdev
from advisor_core.measurements import (
    PowerStats,
    efficiency_score,
    file_power_stats,
    scenario_duration,
    scenario_window,
    throughput_mbps,
)
from advisor_core.scenario import (
    as_number,
    bitrate_mbps,
    encoder_class,
    is_baseline,
    output_ladder,
    positive_number,
    stream_count,
    total_pixels,
)

from ._promql import PromClient
from .families import Family, LabelSchema, LabelSet, TableFamily, label_text
from .jobs import Job
from .metric_set import MetricSet, Run
from .results_model import ModelInput, ResultsModel, default_predictor
from .results_recommendation import recommendation_families
from .runtime import exporter_main

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

__all__ = [
    "CONTAINER_CPU_QUERY",
    "LABELS",
    "POWER_QUERY",
    "ResultsMetrics",
    "energy_query",
    "main",
]

#: Queries of the reference results exporter (docs/exporters.md §3).
POWER_QUERY = 'sum(rapl_power_watts{zone=~"package.*"})'
CONTAINER_CPU_QUERY = "docker_containers_total_cpu_percent"
QUERY_STEP_SECONDS = 5.0


JOULES_PER_WH = 3600.0

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
))

# (key, metric name, help) in the reference's declaration order, new families last.
_FAMILIES = (
    ("duration", "results_scenario_duration_seconds",
     "Scenario length: measured window end - start, else the file's duration field (seconds)"),
    ("mean_power", "results_scenario_mean_power_watts",
     "Mean CPU-package power over the scenario window (watts)"),
    ("measured_power", "results_scenario_measured_power_watts",
     "Same value as results_scenario_mean_power_watts (watts)"),
    ("docker_overhead", "results_scenario_estimated_docker_overhead_watts",
     "Container CPU share x mean power (watts)"),
    ("energy_j", "results_scenario_total_energy_joules",
     "CPU-package energy over the scenario window (joules)"),
    ("energy_wh", "results_scenario_total_energy_wh",
     "CPU-package energy over the scenario window (watt-hours)"),
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
    ("avg_fps", "results_scenario_avg_fps", "Achieved average encoding rate (frames/second)"),
    ("dropped_frames", "results_scenario_dropped_frames",
     "Frames dropped in the scenario (frames; per file, not a counter)"),
    ("total_frames", "results_scenario_total_frames",
     "Frames processed in the scenario (frames; per file, not a counter)"),
    ("vmaf", "results_scenario_vmaf_score", "VMAF quality of the output (0-100)"),
    ("psnr", "results_scenario_psnr_score", "PSNR quality of the output (dB)"),
)


def energy_query(window_seconds: float) -> str:
    """Return the reference's package-energy increase query over a window (joules)."""
    window = max(1, int(window_seconds))
    return f'sum(increase(rapl_energy_joules_total{{zone=~"package.*"}}[{window}s]))'


# ---------------------------------------------------------------------------------------------
# Per-scenario inputs
# ---------------------------------------------------------------------------------------------


def _field_or(scenario: dict, key: str, default: str) -> str:
    value = scenario.get(key)
    return value if isinstance(value, str) and value else default


def scenario_labels(run_id: str, scenario: dict) -> tuple[str, ...]:
    """Return the ten label values of a scenario in ``LABELS`` order (docs/exporters.md §1)."""
    streams = stream_count(scenario.get("name"))
    return (
        run_id,
        label_text(scenario.get("name")),
        label_text(scenario.get("bitrate")),
        label_text(scenario.get("resolution")),
        label_text(scenario.get("fps")),
        str(1 if streams is None else streams),
        output_ladder(scenario) or "unknown",
        encoder_class(scenario),
        _field_or(scenario, "encoder", "h264"),
        _field_or(scenario, "preset", "veryfast"),
    )


@dataclass
class _Row:
    """Everything compute needs about one scenario."""

    scenario: dict
    name: str
    labels: LabelSet
    duration: Optional[float]
    window: Optional[tuple[float, float]]
    stats: PowerStats


def _fill_from_victoriametrics(rows: list[_Row], prom: PromClient) -> None:
    """Ask VictoriaMetrics for what the file lacks (one request per missing quantity)."""
    if not prom.enabled:
        return
    wanted: list[tuple[_Row, float, float, bool, bool, bool]] = []
    for row in rows:
        if row.window is None:
            continue
        stats = row.stats
        need_energy = not stats.has_power
        need_samples = need_energy or (stats.stdev_w is None and stats.mean_w is not None)
        need_cpu = stats.cpu_pct is None
        if need_energy or need_samples or need_cpu:
            wanted.append((row, *row.window, need_energy, need_samples, need_cpu))

    def fetch(item: tuple[_Row, float, float, bool, bool, bool]) -> tuple[Any, Any, Any]:
        _, start, end, need_energy, need_samples, need_cpu = item
        energy = prom.query(energy_query(end - start), end) if need_energy else None
        power = (prom.query_range(POWER_QUERY, start, end, QUERY_STEP_SECONDS)
                 if need_samples else None)
        cpu = (prom.query_range(CONTAINER_CPU_QUERY, start, end, QUERY_STEP_SECONDS)
               if need_cpu else None)
        return energy, power, cpu

    for (row, start, end, need_energy, _, _), (energy, power, cpu) in zip(
        wanted, prom.map_windows(fetch, wanted)
    ):
        stats = row.stats
        samples = sample_series(power)
        if need_energy:
            joules = positive_number(energy)
            watts = None if joules is None else positive_number(joules / (end - start))
            if watts is not None:
                stats.energy_j, stats.mean_w = joules, watts
            elif samples is not None and samples[1] > 0:
                stats.mean_w = samples[1]
                stats.energy_j = positive_number(stats.mean_w * (end - start))
        if stats.stdev_w is None and stats.mean_w is not None and samples is not None:
            stats.stdev_w = sample_stdev(*samples)
        if stats.cpu_pct is None:
            cpu_samples = sample_series(cpu)
            if cpu_samples is not None:
                stats.cpu_pct = cpu_samples[1]


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

    def skipped(self) -> dict[str, int]:
        """Scenarios left without some samples in the last render, by reason."""
        return dict(self._skipped)

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
        rows = []
        for scenario in run.scenarios:
            duration = scenario_duration(scenario)
            rows.append(_Row(
                scenario=scenario,
                name=scenario["name"],
                labels=_SCHEMA(scenario_labels(run.run_id, scenario)),
                duration=duration,
                window=scenario_window(scenario),
                stats=file_power_stats(scenario, duration),
            ))
        _fill_from_victoriametrics(rows, prom)

        baseline: Optional[PowerStats] = None
        for row in rows:
            if row.stats.mean_w is not None and is_baseline(row.name):
                baseline = row.stats
                break
        # Within one run (one file) only the scenario set, durations and the CPU filled in from
        # VictoriaMetrics can change the model's features between refreshes.
        signature = (run.run_id,
                     tuple((row.name, row.duration, row.stats.cpu_pct) for row in rows))
        job = self.model.job_for(
            run.run_id,
            [ModelInput(row.name, row.scenario, row.duration, row.stats) for row in rows],
            signature,
        )
        if job is not None:
            self._job = job  # else a job asked for earlier and not taken yet stays

        skipped: dict[str, int] = {}
        measured = {key: TableFamily(name, doc) for key, name, doc in _FAMILIES
                    if key not in _PREDICTED}
        sinks = {key: (family.keys.append, family.values.append)
                 for key, family in measured.items()}
        rows_basis = []
        for row in rows:
            if row.duration is None:
                _count(skipped, "no_duration")
            if not row.stats.has_power:
                _count(skipped, "no_power_data")
            samples, basis = _row_values(row, baseline)
            _add_finite(row.labels, samples, sinks, skipped)
            rows_basis.append((row.name, row.labels, basis))
        # Assigned once complete: the cache always matches the last compute that succeeded.
        recommendation = recommendation_families(
            run.scenarios, {row.name: row.labels.values for row in rows}, LABELS)
        self._cached = _Cached(signature=signature, measured=measured, rows=tuple(rows_basis),
                               skipped=skipped, recommendation=recommendation)
        return self._render(self._cached)

    def _render(self, cached: _Cached) -> list[Family]:
        by_name = self.model.predictions_for(cached.signature)
        skipped = dict(cached.skipped)
        predicted = {key: TableFamily(name, doc) for key, name, doc in _FAMILIES
                     if key in _PREDICTED}
        sinks = {key: (family.keys.append, family.values.append)
                 for key, family in predicted.items()}
        if by_name:
            for name, labels, basis in cached.rows:
                prediction = by_name.get(name)
                if prediction is not None:
                    _add_finite(labels, _prediction_values(prediction, *basis), sinks, skipped)
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


def _row_values(row: _Row, baseline: Optional[PowerStats]) -> tuple[list[tuple[str, float]], tuple]:
    """The measured (family key, value) samples of one scenario and its prediction basis."""
    scenario, duration, stats = row.scenario, row.duration, row.stats
    out: list[tuple[str, float]] = []
    add = out.append
    mean, energy = stats.mean_w, stats.energy_j
    if duration is not None:
        add(("duration", duration))
    if mean is not None:
        add(("mean_power", mean))
        add(("measured_power", mean))
        if stats.cpu_pct is not None:
            # A share above one (several busy cores) would claim more than the whole package.
            add(("docker_overhead", min(1.0, stats.cpu_pct / 100.0) * mean))
    energy_wh = None
    if energy is not None:
        energy_wh = energy / JOULES_PER_WH
        add(("energy_j", energy))
        add(("energy_wh", energy_wh))
    if stats.cpu_pct is not None:
        add(("container_cpu", stats.cpu_pct))
    if energy_wh is not None and energy_wh != 0:
        if duration is not None:
            add(("wh_per_min", energy_wh * 60.0 / duration))
        mbps = bitrate_mbps(scenario.get("bitrate"))
        if mbps is not None and mbps > 0:
            add(("wh_per_mbps", energy_wh / mbps))
        fps = positive_number(scenario.get("fps"))
        frames = fps * duration if fps is not None and duration is not None else 0.0
        if frames > 0:  # the product of two tiny positives can underflow to 0
            add(("mj_per_frame", energy / frames * 1000.0))  # type: ignore[operator]
    if baseline is not None and mean is not None:
        delta = mean - baseline.mean_w  # type: ignore[operator]
        add(("net_power", delta))
        add(("delta_power", delta))
        add(("pct_increase", delta / baseline.mean_w * 100.0))  # type: ignore[operator]
        if energy_wh is not None and baseline.energy_j is not None:
            delta_wh = energy_wh - baseline.energy_j / JOULES_PER_WH
            add(("net_energy", delta_wh))
            add(("delta_energy", delta_wh))
        if stats.cpu_pct is not None and baseline.cpu_pct is not None:
            add(("net_cpu", stats.cpu_pct - baseline.cpu_pct))
    pixels = total_pixels(scenario, duration=duration) if duration is not None else None
    if pixels is not None and pixels > 0:
        add(("pixels", pixels))
    # Only scenarios without pixels are scored (and predicted) by throughput.
    throughput = throughput_mbps(scenario) if pixels is None or pixels <= 0 else None
    score = efficiency_score(mean, energy, duration, pixels, throughput)
    if score is not None:
        add(("efficiency", score))
    if mean is not None and stats.stdev_w is not None:
        add(("confidence_low", max(0.0, mean - 2.0 * stats.stdev_w)))
        add(("confidence_high", mean + 2.0 * stats.stdev_w))
    if stats.stdev_w is not None:
        add(("stdev", stats.stdev_w))
    _extended_values(scenario, add)
    return out, (duration, pixels, throughput)


def _prediction_values(prediction: dict, duration: Optional[float], pixels: Optional[float],
                       throughput: Optional[float]) -> list[tuple[str, float]]:
    """The prediction samples of one scenario (``throughput``: Mbps x streams)."""
    out: list[tuple[str, float]] = []
    add = out.append
    watts = as_number(prediction.get("mean"))
    if watts is None:
        return out
    add(("predicted_power", watts))
    if duration is not None:
        add(("predicted_energy", watts * duration))
    score = efficiency_score(watts, None if duration is None else watts * duration, duration,
                             pixels, throughput)
    if score is not None:
        add(("predicted_efficiency", score))
    low, high = as_number(prediction.get("ci_low")), as_number(prediction.get("ci_high"))
    if low is not None and high is not None:
        add(("predicted_ci_low", low))
        add(("predicted_ci_high", high))
    low, high = as_number(prediction.get("pi_low")), as_number(prediction.get("pi_high"))
    if low is not None and high is not None:
        add(("predicted_pi_low", low))
        add(("predicted_pi_high", high))
    extrapolated = prediction.get("extrapolated")
    if isinstance(extrapolated, bool):
        add(("prediction_extrapolated", 1.0 if extrapolated else 0.0))
    return out


def _extended_values(scenario: dict, add: Callable[[tuple[str, float]], None]) -> None:
    """The Go rewrite's per-scenario extras (docs/exporters.md §2), same emptiness rules."""
    avg_fps = positive_number(scenario.get("avg_fps"))
    if avg_fps is not None:
        add(("avg_fps", avg_fps))
    total = positive_number(scenario.get("total_frames"))
    if total is not None:
        add(("total_frames", total))
        dropped = as_number(scenario.get("dropped_frames"))
        if dropped is not None and dropped >= 0:
            add(("dropped_frames", dropped))
    vmaf = positive_number(scenario.get("vmaf_score"))
    if vmaf is not None and vmaf <= 100:
        add(("vmaf", vmaf))
    psnr = positive_number(scenario.get("psnr_score"))
    if psnr is not None:
        add(("psnr", psnr))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``advisor-results-exporter``: serve results metrics until SIGTERM."""
    return exporter_main([ResultsMetrics], "advisor-results-exporter", argv,
                         "Prometheus exporter of measured power, energy, efficiency and "
                         "model predictions per benchmark scenario.")


if __name__ == "__main__":
    sys.exit(main())
