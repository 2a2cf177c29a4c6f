"""Results exporter (port 9502): measured power, energy, efficiency, baseline deltas, predictions.

Families and label names are the Python reference's plus the Go rewrite's extended families
(docs/exporters.md), with the README's "Differences from the reference" 10-17 applied:

* **No work on a scrape** (item 10): ``compute`` runs in the refresh thread; model training
  and the bootstrap are a background job (``take_job``) that the refresh runs on its job thread
  (``exporters.jobs``: one job at a time, the newest request replaces a waiting one). A refresh
  renders with the predictions already valid for the current data (none right after a new run
  appears); once the job has new ones the refresh re-renders this exporter alone from the rows
  the compute cached.
* **Each series once** (items 12, 14): the infrastructure removes duplicate names (last wins);
  ``power_stdev`` and both confidence bounds are written once, not twice.
* **Power statistics** (item 14) come from the file when it carries them: a ``power`` object
  (``mean_watts``, ``total_energy_joules``, ``stdev_watts``), else ``power_watts`` samples
  (``advisor_core.cost.scenario_power``, the rule the predictor trains with: mean, trapezoid
  energy over a valid
  ``step_seconds``, else mean x duration; sample standard deviation); container CPU from
  ``container_usage.cpu_percent``, else the mean of ``cpu_usage_cores`` x 100 (docker-stats
  percent: 100 % = one core). The docker-overhead estimate is the reference's container-CPU
  share x mean power with the share capped at 1 (several busy cores would otherwise claim more
  than the whole package's power). What the file lacks is asked from VictoriaMetrics with the
  reference's queries, the container-CPU query once (not twice). A scenario without data from
  either source gets **no** power-derived samples (the reference printed ``0``, a wrong number)
  and is counted in ``results_exporter_skipped_scenarios{reason="no_power_data"}``.
  A VictoriaMetrics energy increase <= 0 counts as no data (a running package never uses 0 J);
  without an energy answer but with power samples, mean = sample mean and energy = mean x window.
* **No inf or NaN**: valid but extreme inputs (a subnormal energy, 1e300 W over a tiny bitrate)
  can push a quotient or product out of the float range. A derived mean power or energy that
  overflows, or underflows to 0, counts as unknown; any other such value is left out and counted
  in ``results_exporter_skipped_scenarios{reason="non_finite_value"}``.
* **Duration** = measured window ``end_time - start_time`` when both are valid epoch times and
  end > start, else the ``duration`` field (the reference ignored scenarios without timestamps;
  the Go rewrite always used the field). Scenarios with neither are counted as
  ``reason="no_duration"`` and get no duration-derived samples.
* **Standard deviation** is emitted only when known (>= 2 samples or ``power.stdev_watts``); the
  reference printed 0 for fewer than two samples. The confidence bounds (measured mean ± 2σ, low
  clamped at 0 – reference meaning, kept for dashboards) need both mean and σ.
* **Baseline** = the first scenario, in file order, for which
  :func:`advisor_core.scenario.is_baseline` holds (``baseline`` or ``idle``) and that has a mean
  power. Without one the six delta/net families get no samples (the reference printed ``0``);
  the baseline itself gets true zeros. Net/delta CPU and energy need the value on both sides.
* **Model interval and predicted efficiency** are new: ``results_scenario_predicted_power_ci_low_
  watts`` / ``_ci_high_watts`` carry the bootstrap interval the reference computed and dropped;
  ``results_scenario_predicted_efficiency_score`` is the scenario's efficiency formula with the
  predicted mean power in place of the measured one: pixels / (predicted W x duration) when the
  scenario delivers pixels, else throughput (Mbps x streams) / predicted W.
  ``results_scenario_predicted_power_pi_low_watts`` / ``_pi_high_watts`` are the model's 95 %
  prediction interval for one new measurement (``docs/predictions.md``; absent when the run has
  too few rows for one) and ``results_scenario_prediction_extrapolated`` is 1 for a scenario
  outside the trained range of a feature (the model then continues its linear trend), else 0.
* **Labels** of numbers: a whole float is written as an integer (``2500``, not ``2500.0``), the
  rule of all three exporters (``exporters.families.label_text``), so their series join.
* **Extended families** (``avg_fps``, ``dropped_frames``, ``total_frames``, ``vmaf_score``,
  ``psnr_score``) carry the full label set and are **gauges**: they are per-file values that drop
  when a new file appears (the Go rewrite typed two of them as counters, defect 9).
  ``results_scenarios_total`` is the infrastructure's self-metric.
* **Labels**: missing or null text fields are ``""`` (the reference printed ``None`` for null).
* The ML model list is ``linear, poly2, poly3`` (the reference's ``rf`` needs scikit-learn, an
  optional extra) with the stream-count line as a candidate, chosen on out-of-fold errors,
  50 bootstrap samples, seeded; the predictor is trained once per run (again only
  when the number of usable rows of that run changes), never on a scrape.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from advisor_core.cost import sample_series, sample_stdev, scenario_power
from advisor_core.scenario import (
    as_number,
    bitrate_mbps,
    encoder_class,
    is_baseline,
    measured_duration,
    output_ladder,
    positive_number,
    stream_count,
    total_pixels,
)

from ._promql import PromClient
from .families import Family, LabelSchema, LabelSet, TableFamily, label_text
from .metric_set import MetricSet, Run
from .runtime import exporter_main

if TYPE_CHECKING:
    from advisor_core.modeling import MultivariatePredictor

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

ML_MODELS = ("linear", "poly2", "poly3")
ML_CONFIDENCE = 0.95
ML_BOOTSTRAP = 50
MIN_TRAINING_ROWS = 3

JOULES_PER_WH = 3600.0
#: Per-sample fields summarized into PowerStats (not needed by the model).
_SAMPLE_ARRAYS = frozenset(("power_watts", "cpu_usage_cores"))

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


def _window(scenario: dict) -> Optional[tuple[float, float]]:
    """The measurement window (start, end) in epoch seconds when valid and end > start."""
    start = positive_number(scenario.get("start_time"))
    end = positive_number(scenario.get("end_time"))
    if start is None or end is None or end <= start:
        return None
    return start, end


def scenario_duration(scenario: dict) -> Optional[float]:
    """Return the measured window length, else the ``duration`` field (seconds), else None."""
    measured = measured_duration(scenario)
    if measured is not None and measured > 0:
        return measured
    return positive_number(scenario.get("duration"))


@dataclass
class PowerStats:
    """Measured power statistics of one scenario; None where no source had the value."""

    energy_j: Optional[float] = None
    mean_w: Optional[float] = None
    stdev_w: Optional[float] = None
    cpu_pct: Optional[float] = None

    @property
    def has_power(self) -> bool:
        """True when the mean power or the energy is known."""
        return self.mean_w is not None or self.energy_j is not None


def file_power_stats(scenario: dict, duration: Optional[float]) -> PowerStats:
    """Power statistics carried by the results file itself (watts, joules, percent)."""
    stats = PowerStats()
    power = scenario.get("power")
    sampled = not (isinstance(power, dict) and power)
    series = None
    if sampled:
        # Validated once: the summary and the standard deviation both read these samples.
        series = sample_series(scenario.get("power_watts"))
    # The library's one rule for every schema (the predictor trains with the same one).
    power = scenario_power(scenario, series)
    if power is not None:
        mean = positive_number(power.get("mean_watts"))
        energy = positive_number(power.get("total_energy_joules"))
        # Derived values obey the fields' own rule: one that overflowed to inf or underflowed
        # to 0 is unknown.
        if mean is None and energy is not None and duration is not None:
            mean = positive_number(energy / duration)
        if energy is None and mean is not None and duration is not None:
            energy = positive_number(mean * duration)
        stats.mean_w, stats.energy_j = mean, energy
        stdev = as_number(power.get("stdev_watts"))
        if stdev is not None and stdev >= 0 and mean is not None:
            stats.stdev_w = stdev
    if stats.stdev_w is None and stats.mean_w is not None:
        if not sampled:
            series = sample_series(scenario.get("power_watts"))
        if series is not None:
            stats.stdev_w = sample_stdev(*series)
    usage = scenario.get("container_usage")
    if isinstance(usage, dict):
        percent = as_number(usage.get("cpu_percent"))
        if percent is not None and percent >= 0:
            stats.cpu_pct = percent
    if stats.cpu_pct is None:
        cores = sample_series(scenario.get("cpu_usage_cores"))
        if cores is not None:
            stats.cpu_pct = as_number(cores[1] * 100.0)  # None when x 100 overflows
    return stats


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


def _efficiency(scenario: dict, duration: Optional[float], pixels: Optional[float],
                watts: Optional[float], joules: Optional[float]) -> Optional[float]:
    """Pixels per joule when the scenario delivers pixels, else Mbps x streams per watt."""
    if watts is None or watts <= 0 or joules is None or joules <= 0:
        return None
    if duration is None or duration <= 0:
        return None
    if pixels is not None and pixels > 0:
        return pixels / joules
    throughput = _throughput(scenario)
    return throughput / watts if throughput is not None else None


def _throughput(scenario: dict) -> Optional[float]:
    """Target bitrate x stream count (Mbps) when > 0; unknown stream counts are one stream."""
    mbps = bitrate_mbps(scenario.get("bitrate"))
    if mbps is None or mbps <= 0:
        return None
    streams = stream_count(scenario.get("name"))
    return mbps * (1 if streams is None else streams)


def training_copy(scenario: dict, duration: Optional[float], stats: PowerStats) -> dict:
    """The reference's ML copy of a scenario (docs/results-files.md §2.3) with measured values.

    The sample arrays are left out: the model reads the summaries put in ``power`` and
    ``container_usage``, and the copies outlive the run while the worker trains.
    """
    # A C-level copy minus two keys: a filtering comprehension costs 5x more per refresh.
    copy = dict(scenario)
    for key in _SAMPLE_ARRAYS:
        copy.pop(key, None)
    power: dict[str, float] = {}
    if stats.mean_w is not None:
        power["mean_watts"] = stats.mean_w
    if stats.energy_j is not None:
        power["total_energy_joules"] = stats.energy_j
    copy["power"] = power
    copy["container_usage"] = {"cpu_percent": 0.0 if stats.cpu_pct is None else stats.cpu_pct}
    copy["docker_overhead"] = {"cpu_percent": 0.0}
    if duration is not None:
        copy["duration"] = duration
    return copy


# ---------------------------------------------------------------------------------------------
# Model state and the background job
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    predictor: Any
    token: int
    run_id: str


@dataclass(frozen=True)
class _Predictions:
    token: int
    signature: tuple
    by_name: dict


@dataclass(frozen=True)
class _Request:
    run_id: str
    train_key: Optional[tuple]
    training: tuple
    names: tuple
    prediction: tuple
    signature: tuple


@dataclass(frozen=True)
class _Cached:
    """What the last compute rendered, minus predictions: enough to render again without it."""

    signature: tuple
    #: (scenario name, labels, measured (family key, value) samples, prediction basis)
    rows: tuple
    skipped: dict


def default_predictor(valid_rows: int) -> MultivariatePredictor:
    """The results exporter's predictor: linear/poly2/poly3, 95 % interval, 50 bootstraps."""
    # Imported on the first training, which a file with too few usable rows never needs. The
    # native models train without numpy (advisor_core.linalg works on array('d') buffers), so
    # this process never loads numpy.
    from advisor_core.modeling import MultivariatePredictor

    return MultivariatePredictor(
        models=list(ML_MODELS),
        confidence_level=ML_CONFIDENCE,
        n_bootstrap=ML_BOOTSTRAP,
        cv_folds=min(3, valid_rows),
        random_state=0,
        # Background work beside a serving process: one core and one set of buffers.
        n_jobs=1,
    )


def _count(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def _finite(samples: list[tuple[str, float]], skipped: dict[str, int]) -> list[tuple[str, float]]:
    """The finite samples; the others counted as ``non_finite_value``."""
    kept = [sample for sample in samples if math.isfinite(sample[1])]
    if len(kept) != len(samples):
        # A quotient or product of valid but extreme inputs (1e-320 J, 1e300 W) left the
        # float range: no number is better than inf or NaN.
        skipped["non_finite_value"] = skipped.get("non_finite_value", 0) + len(samples) - len(kept)
    return kept


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
        self._predictor_factory = predictor_factory
        self._skipped: dict[str, int] = {}
        # The model state is written by the job thread and read by compute and rerender.
        self._lock = threading.Lock()
        self._model: Optional[_Model] = None
        self._predictions: Optional[_Predictions] = None
        self._attempted_train_key: Optional[tuple] = None
        self._submitted: Optional[tuple] = None
        self._tokens = 0
        self._trainings = 0
        self._training_failures = 0
        self._job: Optional[_Request] = None
        self._cached = _Cached(signature=(), rows=(), skipped={})

    # -- MetricSet hooks ------------------------------------------------------------------------

    def skipped(self) -> dict[str, int]:
        """Scenarios left without some samples in the last render, by reason."""
        return dict(self._skipped)

    def take_job(self) -> Optional[Callable[[], bool]]:
        """The model training/prediction the last compute asked for (None when nothing is due)."""
        request, self._job = self._job, None
        if request is None:
            return None
        return functools.partial(self._handle, request)

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
                window=_window(scenario),
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
        self._ask_for_job(run.run_id, rows, signature)

        skipped: dict[str, int] = {}
        cached = []
        for row in rows:
            if row.duration is None:
                _count(skipped, "no_duration")
            if not row.stats.has_power:
                _count(skipped, "no_power_data")
            measured, basis = _row_values(row, baseline)
            cached.append((row.name, row.labels, _finite(measured, skipped), basis))
        # Assigned once complete: the cache always matches the last compute that succeeded.
        self._cached = _Cached(signature=signature, rows=tuple(cached), skipped=skipped)
        return self._render(self._cached)

    def _render(self, cached: _Cached) -> list[Family]:
        with self._lock:
            predictions = self._predictions
        by_name = (predictions.by_name
                   if predictions is not None and predictions.signature == cached.signature
                   else {})
        skipped = dict(cached.skipped)
        families = {key: TableFamily(name, doc) for key, name, doc in _FAMILIES}
        sinks = {key: (family.keys.append, family.values.append)
                 for key, family in families.items()}
        for name, labels, measured, basis in cached.rows:
            prediction = by_name.get(name)
            samples = (measured if prediction is None
                       else measured + _finite(_prediction_values(prediction, *basis), skipped))
            for key, value in samples:
                add_key, add_value = sinks[key]
                add_key(labels)  # escaped once, shared by the scenario's samples
                add_value(value)
        self._skipped = skipped
        result: list[Family] = [f for f in families.values() if len(f)]
        result.extend(self._model_families())
        return result

    def _model_families(self) -> list[Family]:
        with self._lock:
            trainings, failures = self._trainings, self._training_failures
            model = self._model
        done = CounterMetricFamily("results_model_trainings",
                                   "Successful trainings of the power model")
        done.add_metric([], float(trainings))
        failed = CounterMetricFamily("results_model_training_failures",
                                     "Trainings of the power model that failed")
        failed.add_metric([], float(failures))
        families: list[Family] = [done, failed]
        if model is not None:
            info = GaugeMetricFamily("results_model_info",
                                     "The power model in use: best kind and the run it learnt",
                                     labels=["model", "trained_run_id"])
            info.add_metric([str(model.predictor.best_model_name), model.run_id], 1.0)
            families.append(info)
        return families

    # -- the background job -----------------------------------------------------------------------

    def _ask_for_job(self, run_id: str, rows: list[_Row], signature: tuple) -> None:
        """Ask for a training and/or prediction job when the current ones do not fit the rows."""
        valid = [row for row in rows if row.stats.mean_w]
        train_key = (run_id, len(valid)) if len(valid) >= MIN_TRAINING_ROWS else None
        with self._lock:
            model, predictions = self._model, self._predictions
            need_train = train_key is not None and train_key != self._attempted_train_key
            need_predict = model is not None and (
                predictions is None or (predictions.token, predictions.signature)
                != (model.token, signature)
            )
            request_key = (train_key if need_train else None, signature,
                           model.token if model is not None else None)
            submit = (need_train or need_predict) and request_key != self._submitted
            if submit:
                self._submitted = request_key
        if not submit:
            return
        copies = {id(r): training_copy(r.scenario, r.duration, r.stats) for r in rows}
        self._job = _Request(
            run_id=run_id,
            train_key=train_key if need_train else None,
            training=tuple(copies[id(r)] for r in valid) if need_train else (),
            names=tuple(row.name for row in rows),
            prediction=tuple(copies.values()),
            signature=signature,
        )

    def _handle(self, request: _Request) -> bool:
        """Job thread: train when due, then predict every scenario with one bootstrap."""
        changed = False
        if request.train_key is not None:
            with self._lock:
                self._attempted_train_key = request.train_key
            self._train(request)
            changed = True  # a new model or one more counted failure
        with self._lock:
            model = self._model
        if model is None:
            return changed
        try:
            predictor = model.predictor
            features = [predictor.extract_features(c) for c in request.prediction]
            index = [i for i, f in enumerate(features) if f is not None]
            results = (predictor.predict_batch([features[i] for i in index],
                                               return_confidence=True) if index else [])
            by_name = {request.names[i]: r for i, r in zip(index, results)}
        except Exception:
            logger.exception("results: predicting power failed")
            by_name = {}
        with self._lock:
            if self._model is not model:
                return changed
            self._predictions = _Predictions(model.token, request.signature, by_name)
        return True

    def _train(self, request: _Request) -> None:
        try:
            predictor = self._predictor_factory(len(request.training))
            trained = bool(predictor.fit(list(request.training), target="mean_power_watts"))
        except Exception:
            logger.exception("results: training the power model on %s failed", request.run_id)
            trained = False
        with self._lock:
            if trained:
                self._tokens += 1
                self._model = _Model(predictor, self._tokens, request.run_id)
                self._trainings += 1
            else:
                self._training_failures += 1
        if not trained:
            logger.warning("results: no power model for %s (training failed)", request.run_id)


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
    score = _efficiency(scenario, duration, pixels, mean, energy)
    if score is not None:
        add(("efficiency", score))
    if mean is not None and stats.stdev_w is not None:
        add(("confidence_low", max(0.0, mean - 2.0 * stats.stdev_w)))
        add(("confidence_high", mean + 2.0 * stats.stdev_w))
    if stats.stdev_w is not None:
        add(("stdev", stats.stdev_w))
    _extended_values(scenario, add)
    return out, (duration, pixels, _throughput(scenario))


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
    if watts > 0:
        if pixels is not None and pixels > 0 and duration is not None:
            joules = watts * duration
            if joules > 0:
                add(("predicted_efficiency", pixels / joules))
        elif throughput is not None:
            add(("predicted_efficiency", throughput / watts))
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
