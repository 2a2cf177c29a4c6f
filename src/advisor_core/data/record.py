"""One typed, immutable record per scenario: every field the product uses, read and bounded once.

``read_scenario`` is the only place a scenario's JSON object is read. Each field has one rule
here (type check, size bound, unit); an unusable field becomes None and its reason is kept in
``ScenarioRecord.problems`` (counted by whoever reads the run); an entry that cannot be a
scenario at all raises ``Unusable`` with the reason. Everything below this module (costs,
scores, rankings, features, the exporters, the command) reads records, never dicts. The rules,
the power and energy definition included, are docs/results-files.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple, Optional

from advisor_core.data import samples as _samples
from advisor_core.data.fields import FieldReader, Unusable, finite
from advisor_core.data.scenario import (
    as_number,
    bitrate_mbps,
    detected_encoder_class,
    is_baseline,
    non_negative_number,
    positive_number,
    stream_count,
)

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_PRESET",
    "MAX_TEXT",
    "AnalysisRow",
    "ScenarioRecord",
    "as_record",
    "as_records",
    "idle_baseline",
    "read_scenario",
    "with_measurements",
]

#: Longest text field (characters) a record keeps: every text may become a label value.
MAX_TEXT = 1024
#: The ``encoder`` label when the file names neither ``encoder`` nor ``encoder_type``: the
#: benchmark runner's default (only its files lack both).
DEFAULT_ENCODER = "h264"
#: The ``preset`` label when the file names none (the runner's default).
DEFAULT_PRESET = "veryfast"


class AnalysisRow(NamedTuple):
    """One row of an analysis CSV (``advisor_core.data.analysis``): mean power (W), energy (J) and
    container CPU (percent of one core); None where the row has no usable value."""

    power_w: Optional[float] = None
    energy_j: Optional[float] = None
    cpu_pct: Optional[float] = None


class ScenarioRecord(NamedTuple):
    """One scenario as the product sees it. None means "not known" (see ``problems``).

    Immutable; a NamedTuple rather than a frozen dataclass because a refresh builds thousands of
    them and a tuple is built in a fifth of the time (``_replace`` makes a changed copy).

    Power and energy follow one definition (docs/results-files.md §2.4): ``power_w`` is the
    CPU-package mean plus the GPU mean when measured; ``energy_j`` is measured energy (the
    package's plus GPU mean x duration), never derived from a mean alone.
    """

    name: str
    #: Label texts, as written in the file (a number as Python prints it, whole floats as ints).
    bitrate: Optional[str]
    resolution: Optional[str]
    fps_text: Optional[str]
    bitrate_mbps: Optional[float]
    #: Concurrent streams stated by the name; None when the name does not say.
    streams: Optional[int]
    baseline: bool
    fps: Optional[float]
    #: Valid (width, height, fps) renditions: the ``outputs`` ladder, else the top level.
    renditions: tuple[tuple[int, int, float], ...]
    output_ladder: Optional[str]
    #: Entries of the ``outputs`` list, valid or not (more than one: scored per pixel).
    ladder_entries: int
    encoder: str
    #: The ``encoder_type`` field (an engine: libx264, ffmpeg, nvenc...), None when absent.
    encoder_type: Optional[str]
    preset: str
    hardware: Optional[str]
    #: (start, end) of the measurement window, Unix seconds, end > start.
    window: Optional[tuple[float, float]]
    duration_s: Optional[float]
    pixels: Optional[float]
    viewers: Optional[float]
    power_w: Optional[float]
    gpu_power_w: Optional[float]
    energy_j: Optional[float]
    power_stdev_w: Optional[float]
    #: Container CPU in percent of one core, and the CPU (+ GPU) core-seconds it worked.
    cpu_pct: Optional[float]
    core_s: Optional[float]
    gpu_cores: Optional[float]
    docker_cpu_pct: Optional[float]
    quality_rated: bool
    vmaf: Optional[float]
    psnr: Optional[float]
    ssim: Optional[float]
    avg_fps: Optional[float]
    total_frames: Optional[float]
    dropped_frames: Optional[float]
    declared_efficiency: Optional[float]
    problems: tuple[str, ...] = ()

    @property
    def stream_count(self) -> int:
        """Streams for throughput, labels and audiences: an unknown count is one stream."""
        return 1 if self.streams is None else self.streams

    @property
    def encoder_class(self) -> str:
        """The ``encoder_type`` label: the field, else "gpu"/"cpu" detected from the name."""
        return self.encoder_type or detected_encoder_class(self.name)

    @property
    def throughput_mbps(self) -> Optional[float]:
        """Target bitrate x streams (Mbps) when > 0."""
        mbps = self.bitrate_mbps
        return mbps * self.stream_count if mbps is not None and mbps > 0 else None

    @property
    def audience(self) -> float:
        """Viewers for costs per viewer-hour: ``viewers``, else the stream count."""
        return self.viewers if self.viewers is not None else float(self.stream_count)

    @property
    def energy_or_estimate_j(self) -> Optional[float]:
        """Measured energy (J), else mean power x duration."""
        if self.energy_j is not None:
            return self.energy_j
        if self.power_w is None or self.duration_s is None:
            return None
        return finite(self.power_w * self.duration_s)

    @property
    def cores(self) -> Optional[float]:
        """Mean CPU cores in use plus mean GPU cores (priced like CPU cores)."""
        cpu = None if self.cpu_pct is None else self.cpu_pct / 100.0
        if self.gpu_cores is None:
            return cpu
        return (cpu or 0.0) + self.gpu_cores


def _window(reader: FieldReader) -> Optional[tuple[float, float]]:
    start = reader.number("start_time", positive_number)
    end = reader.number("end_time", positive_number)
    if start is None or end is None or end <= start:
        return None
    return start, end


def read_scenario(entry: Any, analysis: Optional[AnalysisRow] = None,
                  max_text: int = MAX_TEXT, named: bool = True) -> ScenarioRecord:
    """The record of one results-file entry (``analysis``: its analysis CSV row, used where the
    JSON has no power of its own). Raises Unusable(reason) for an entry that is not a scenario:
    not an object, or (``named``) without a string ``name``, which a file's entries need."""
    if not isinstance(entry, dict):
        raise Unusable("not_an_object")
    name = entry.get("name")
    if not isinstance(name, str):
        if named:
            raise Unusable("invalid_name")
        name = ""
    read = FieldReader(entry, max_text)
    name = read.bounded(name)
    if analysis is not None and _has_own_power(entry):
        analysis = None  # the JSON's own power (and CPU) always wins
    bitrate = read.number_label("bitrate")
    # Only text is a bitrate ("2500k"; a bare number in text is kbps): a JSON number has no
    # unit to read, so it labels the scenario but prices and scores nothing.
    mbps = bitrate_mbps(entry.get("bitrate"))
    fps = read.number("fps", positive_number)
    renditions, ladder, ladder_entries = read.renditions(fps)
    window = _window(read)
    # The scenario's length: its ``duration`` field (what the advisor library and the Go
    # exporters read), else the measured window (what the Python results exporter read).
    duration = read.number("duration", positive_number)
    if duration is None and window is not None:
        duration = window[1] - window[0]
    pixels = None
    if duration is not None and renditions:
        pixels = finite(float(sum(w * h * f for w, h, f in renditions) * duration))
    if pixels is None:
        # Scheduler files write 0 for jobs that produced nothing: no count, not a bad one.
        pixels = read.number("pixels_processed", non_negative_number) or None
    step = read.number("step_seconds", positive_number)
    power, energy, stdev = _power(read, step, duration, analysis)
    raw_gpu = entry.get("gpu_power")
    gpu_power = read.nested("gpu_power")
    gpu = read.number("mean_watts", non_negative_number, gpu_power, _GPU_UNKNOWN)
    if gpu is None and (gpu_power.get("mean_watts") is not None
                        or not isinstance(raw_gpu, (dict, type(None)))):
        power = energy = None  # a GPU was measured, but not usably: the total is unknown
    else:
        power, energy = _plus_gpu(power, energy, gpu, duration)
    cpu_pct, core_s, gpu_cores = _cpu(read, step, duration, analysis)
    encoder_type = read.text("encoder_type")
    encoder = read.text("encoder") or encoder_type or DEFAULT_ENCODER
    return ScenarioRecord(
        name=name,
        bitrate=bitrate,
        resolution=read.text("resolution"),
        fps_text=read.number_label("fps", counted=True),
        bitrate_mbps=mbps,
        streams=stream_count(name),
        baseline=is_baseline(name),
        fps=fps,
        renditions=renditions,
        output_ladder=ladder,
        ladder_entries=ladder_entries,
        encoder=encoder,
        encoder_type=encoder_type,
        preset=read.text("preset") or DEFAULT_PRESET,
        hardware=read.text("cpu_model", read.nested("hardware")),
        window=window,
        duration_s=duration,
        pixels=pixels,
        viewers=read.number("viewers", positive_number),
        power_w=power,
        gpu_power_w=gpu,
        energy_j=energy,
        power_stdev_w=stdev if power is not None else None,
        cpu_pct=cpu_pct,
        core_s=core_s,
        gpu_cores=gpu_cores,
        docker_cpu_pct=read.number("cpu_percent", non_negative_number,
                                   read.nested("docker_overhead"),
                                   "docker_overhead_invalid"),
        quality_rated=entry.get("vmaf_score") is not None,
        vmaf=read.score("vmaf_score", 0.0, 100.0),
        psnr=read.score("psnr_score", 0.0, math.inf),
        ssim=read.score("ssim_score", 0.0, 1.0),
        avg_fps=read.number("avg_fps", non_negative_number) or None,  # 0: nothing encoded
        total_frames=read.number("total_frames", non_negative_number),
        dropped_frames=read.number("dropped_frames", non_negative_number),
        declared_efficiency=read.number("efficiency_score", as_number),
        problems=tuple(read.problems),
    )


def _has_own_power(entry: dict) -> bool:
    """A usable mean or energy in the ``power`` object, or a non-empty ``power_watts`` list."""
    power = entry.get("power")
    if isinstance(power, dict) and (
            non_negative_number(power.get("mean_watts")) is not None
            or positive_number(power.get("total_energy_joules")) is not None):
        return True
    samples = entry.get("power_watts")
    return isinstance(samples, list) and bool(samples)


def _power(read: FieldReader, step: Optional[float], duration: Optional[float],
           analysis: Optional[AnalysisRow]) -> tuple[Optional[float], Optional[float],
                                                     Optional[float]]:
    """Package power: (mean W, energy J, stdev W), all from one source: the ``power`` object
    when it has a usable mean or energy, else the ``power_watts`` samples, else the analysis
    CSV row (docs/results-files.md §2.4)."""
    power = read.nested("power")
    mean = read.number("mean_watts", non_negative_number, power, "power_invalid")
    energy = read.number("total_energy_joules", positive_number, power, "power_invalid")
    stdev = read.number("stdev_watts", non_negative_number, power, "power_invalid")
    if mean is None and energy is None:
        stdev = None
        sampled = read.series("power_watts", step, spread=True)
        if isinstance(sampled, _samples.SampleSummary):
            mean, energy, stdev = sampled.mean, sampled.over(step, duration), sampled.stdev
        elif analysis is not None:
            mean, energy = analysis.power_w, analysis.energy_j
    if mean is None and energy is not None and duration is not None:
        mean = positive_number(energy / duration)
    return mean, energy, stdev


def _cpu(read: FieldReader, step: Optional[float], duration: Optional[float],
         analysis: Optional[AnalysisRow]) -> tuple[Optional[float], Optional[float],
                                                   Optional[float]]:
    """(container CPU %, core-seconds incl. GPU, mean GPU cores), from one source:
    ``container_usage``, else the ``cpu_usage_cores`` samples, else the analysis CSV; GPU
    samples add their cores."""
    usage = read.nested("container_usage")
    percent = read.number("cpu_percent", non_negative_number, usage, "container_usage_invalid")
    core_s = None
    if percent is None:
        cpu = read.series("cpu_usage_cores", step)
        if isinstance(cpu, _samples.SampleSummary):
            percent = finite(cpu.mean * 100.0)
            core_s = cpu.over(step, duration)
        elif analysis is not None and cpu is None:
            percent = analysis.cpu_pct
    if core_s is None and percent is not None and duration is not None:
        core_s = finite(percent / 100.0 * duration)
    gpu = read.series("gpu_usage_cores", step)
    gpu_cores = None
    if isinstance(gpu, _samples.SampleSummary):
        gpu_cores = gpu.mean
        gpu_s = gpu.over(step, duration)
        core_s = None if core_s is None or gpu_s is None else core_s + gpu_s
    elif gpu is _samples.INVALID and isinstance(read.entry.get("gpu_usage_cores"), list):
        core_s = None  # part of the work is unknown, so is its total (a non-list is no GPU)
    return percent, core_s, gpu_cores


#: The problem of a record whose GPU drew power that the file does not say: no total power.
_GPU_UNKNOWN = "gpu_power_invalid"


def _plus_gpu(package_w: Optional[float], package_j: Optional[float], gpu_w: Optional[float],
              duration: Optional[float]) -> tuple[Optional[float], Optional[float]]:
    """Power (W) and energy (J) of CPU package + GPU (``gpu_w`` None: no GPU measured); the
    GPU's energy is its mean power x the duration (docs/results-files.md §2.4)."""
    if gpu_w is None:
        return package_w, package_j
    power = None if package_w is None else finite(package_w + gpu_w)
    energy = None if package_j is None or duration is None else finite(package_j + gpu_w * duration)
    return power, energy


def with_measurements(record: ScenarioRecord, power_w: Optional[float] = None,
                      energy_j: Optional[float] = None, stdev_w: Optional[float] = None,
                      cpu_pct: Optional[float] = None,
                      core_s: Optional[float] = None) -> ScenarioRecord:
    """The record with the quantities it lacks filled in from another source (VictoriaMetrics):
    a value the record already has is kept; GPU power is added as the reader adds it."""
    changes: dict[str, Any] = {}
    if record.power_w is None and power_w is not None and _GPU_UNKNOWN not in record.problems:
        power, energy = _plus_gpu(power_w, energy_j, record.gpu_power_w, record.duration_s)
        changes["power_w"] = power
        if record.energy_j is None:
            changes["energy_j"] = energy
    if record.power_stdev_w is None and stdev_w is not None and \
            (record.power_w is not None or power_w is not None):
        changes["power_stdev_w"] = stdev_w
    if record.cpu_pct is None and cpu_pct is not None:
        changes["cpu_pct"] = cpu_pct
    if record.core_s is None and core_s is not None:
        changes["core_s"] = core_s
    return record._replace(**changes) if changes else record


def as_record(scenario: Any) -> Optional[ScenarioRecord]:
    """A record for a public API that takes a scenario dict: the record itself, a dict read by
    ``read_scenario`` (a dict without a name is a scenario named ""), or None for anything
    that cannot be one."""
    if isinstance(scenario, ScenarioRecord):
        return scenario
    try:
        return read_scenario(scenario, max_text=_UNBOUNDED_TEXT, named=False)
    except Unusable:
        return None


def idle_baseline(records: Iterable[Optional[ScenarioRecord]]) -> Optional[ScenarioRecord]:
    """The run's idle baseline: the first record, in file order, whose name marks a baseline
    (``scenario.is_baseline``) and that has a power; None without one."""
    return next((record for record in records
                 if record is not None and record.baseline and record.power_w is not None),
                None)


def as_records(scenarios: Optional[Iterable[Any]]) -> list[Optional[ScenarioRecord]]:
    """``as_record`` of each scenario (None: no scenarios)."""
    # Records pass as they are without a call: the product's hot paths hand records over.
    return [scenario if type(scenario) is ScenarioRecord else as_record(scenario)
            for scenario in (scenarios or ())]


# A caller's own dict (not a file) has no label-size budget: its texts are not label values.
_UNBOUNDED_TEXT = 1 << 62
