"""The per-scenario samples of the results families: measured, baseline deltas, predictions.

Each function returns (family key, value) pairs in ``exporters.results``' declaration; the
emptiness rules are docs/exporters.md §2. The quantities themselves (power, energy, CPU,
throughput, pixels) are the record's (``advisor_core.data.record``).
"""

from __future__ import annotations

from typing import Callable, Optional

from advisor_core.data.record import ScenarioRecord
from advisor_core.data.scenario import as_number

__all__ = ["JOULES_PER_WH", "efficiency_score", "measured_values", "prediction_values"]

JOULES_PER_WH = 3600.0


def efficiency_score(watts: Optional[float], joules: Optional[float],
                     duration: Optional[float], pixels: Optional[float],
                     throughput: Optional[float]) -> Optional[float]:
    """Results efficiency: pixels per joule when the scenario delivers pixels, else throughput
    (Mbps x streams) per watt; None unless power (W), energy (J) and duration (s) are > 0.

    Scores measured power and, with joules = predicted W x duration, predicted power
    (docs/exporters.md §2).
    """
    if watts is None or watts <= 0 or joules is None or joules <= 0:
        return None
    if duration is None or duration <= 0:
        return None
    if pixels is not None and pixels > 0:
        return pixels / joules
    return throughput / watts if throughput is not None else None


def measured_values(record: ScenarioRecord, baseline: Optional[ScenarioRecord]
                    ) -> tuple[list[tuple[str, float]], tuple]:
    """The measured (family key, value) samples of one record and its prediction basis
    (duration in s, pixels, throughput in Mbps x streams)."""
    out: list[tuple[str, float]] = []
    add = out.append
    duration, mean, cpu_pct = record.duration_s, record.power_w, record.cpu_pct
    energy = record.energy_or_estimate_j
    if duration is not None:
        add(("duration", duration))
    if mean is not None:
        add(("mean_power", mean))
        add(("measured_power", mean))
        if cpu_pct is not None:
            # A share above one (several busy cores) would claim more than the whole package.
            add(("docker_overhead", min(1.0, cpu_pct / 100.0) * mean))
    energy_wh = None
    if energy is not None:
        energy_wh = energy / JOULES_PER_WH
        add(("energy_j", energy))
        add(("energy_wh", energy_wh))
    if cpu_pct is not None:
        add(("container_cpu", cpu_pct))
    if energy_wh is not None and energy_wh != 0:
        if duration is not None:
            add(("wh_per_min", energy_wh * 60.0 / duration))
        mbps = record.bitrate_mbps
        if mbps is not None and mbps > 0:
            add(("wh_per_mbps", energy_wh / mbps))
        fps = record.fps
        frames = fps * duration if fps is not None and duration is not None else 0.0
        if frames > 0:  # the product of two tiny positives can underflow to 0
            add(("mj_per_frame", energy / frames * 1000.0))  # type: ignore[operator]
    if baseline is not None and baseline.power_w is not None and mean is not None:
        delta = mean - baseline.power_w
        add(("net_power", delta))
        add(("delta_power", delta))
        if baseline.power_w > 0:
            add(("pct_increase", delta / baseline.power_w * 100.0))
        baseline_energy = baseline.energy_or_estimate_j
        if energy_wh is not None and baseline_energy is not None:
            delta_wh = energy_wh - baseline_energy / JOULES_PER_WH
            add(("net_energy", delta_wh))
            add(("delta_energy", delta_wh))
        if cpu_pct is not None and baseline.cpu_pct is not None:
            add(("net_cpu", cpu_pct - baseline.cpu_pct))
    pixels = record.pixels
    if pixels is not None and pixels > 0:
        add(("pixels", pixels))
    # Only scenarios without pixels are scored (and predicted) by throughput.
    throughput = record.throughput_mbps if pixels is None or pixels <= 0 else None
    score = efficiency_score(mean, energy, duration, pixels, throughput)
    if score is not None:
        add(("efficiency", score))
    stdev = record.power_stdev_w
    if mean is not None and stdev is not None:
        add(("confidence_low", max(0.0, mean - 2.0 * stdev)))
        add(("confidence_high", mean + 2.0 * stdev))
        add(("stdev", stdev))
    _extended_values(record, add)
    return out, (duration, pixels, throughput)


def prediction_values(prediction: dict, duration: Optional[float], pixels: Optional[float],
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
    # A cut to a floor is said, not silent (docs/predictions.md).
    add(("prediction_floored", 1.0 if prediction.get("floored") else 0.0))
    return out


def _extended_values(record: ScenarioRecord, add: Callable[[tuple[str, float]], None]) -> None:
    """The Go rewrite's per-scenario extras (docs/exporters.md §2), same emptiness rules."""
    if record.avg_fps is not None:
        add(("avg_fps", record.avg_fps))
    total = record.total_frames
    if total is not None and total > 0:
        add(("total_frames", total))
        if record.dropped_frames is not None:
            add(("dropped_frames", record.dropped_frames))
    if record.vmaf is not None and record.vmaf > 0:
        add(("vmaf", record.vmaf))
    if record.psnr is not None and record.psnr > 0:
        add(("psnr", record.psnr))
