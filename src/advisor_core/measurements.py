"""What a results file measured for one scenario: window, duration, power statistics, throughput.

One reading of each rule for every consumer (the results exporter, its model and the command):
power comes from ``advisor_core.cost.scenario_power`` (a ``power`` object, else ``power_watts``
samples), container CPU from ``container_usage.cpu_percent``, else the mean of
``cpu_usage_cores`` x 100 (docker-stats percent: 100 % = one core). See docs/results-files.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from advisor_core.cost import sample_series, sample_stdev, scenario_power
from advisor_core.scenario import (
    as_number,
    bitrate_mbps,
    measured_duration,
    positive_number,
    stream_count,
)

__all__ = [
    "PowerStats",
    "efficiency_score",
    "file_power_stats",
    "scenario_duration",
    "scenario_window",
    "throughput_mbps",
    "training_copy",
]

#: Per-sample fields summarized into PowerStats (not needed by the model).
_SAMPLE_ARRAYS = frozenset(("power_watts", "cpu_usage_cores"))


def scenario_window(scenario: dict) -> Optional[tuple[float, float]]:
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


def efficiency_score(watts: Optional[float], joules: Optional[float],
                     duration: Optional[float], pixels: Optional[float],
                     throughput: Optional[float]) -> Optional[float]:
    """Results efficiency: pixels per joule when the scenario delivers pixels, else throughput
    (Mbps x streams) per watt; None unless power (W), energy (J) and duration (s) are > 0.

    The results exporter scores measured power with it and, with joules = predicted W x
    duration, predicted power (docs/exporters.md §2).
    """
    if watts is None or watts <= 0 or joules is None or joules <= 0:
        return None
    if duration is None or duration <= 0:
        return None
    if pixels is not None and pixels > 0:
        return pixels / joules
    return throughput / watts if throughput is not None else None


def throughput_mbps(scenario: dict) -> Optional[float]:
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
