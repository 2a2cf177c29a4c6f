"""The per-scenario samples of the results families: measured, baseline deltas, predictions.

Each function returns (family key, value) pairs in ``exporters.results``' declaration; the
emptiness rules are docs/exporters.md §2. The quantities themselves (power statistics,
efficiency, throughput, pixels) come from ``advisor_core``.
"""

from __future__ import annotations

from typing import Callable, Optional

from advisor_core.measurements import PowerStats, efficiency_score, throughput_mbps
from advisor_core.scenario import as_number, bitrate_mbps, positive_number, total_pixels

__all__ = ["JOULES_PER_WH", "measured_values", "prediction_values"]

JOULES_PER_WH = 3600.0


def measured_values(scenario: dict, duration: Optional[float], stats: PowerStats,
                    baseline: Optional[PowerStats]) -> tuple[list[tuple[str, float]], tuple]:
    """The measured (family key, value) samples of one scenario (``duration`` in seconds) and
    its prediction basis (duration, pixels, throughput in Mbps x streams)."""
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
