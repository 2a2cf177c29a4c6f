"""The results exporter's VictoriaMetrics step: fills in what a results file lacks.

One request per missing quantity and scenario window (docs/exporters.md §3): the package energy
increase when the file has no power, power samples for the standard deviation, and the mean
container CPU. Run on the refresh thread; the client's caching and backoff keep it off the scrape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from advisor_core.cost import sample_series, sample_stdev
from advisor_core.measurements import PowerStats
from advisor_core.scenario import positive_number

from ._promql import PromClient

__all__ = ["CONTAINER_CPU_QUERY", "POWER_QUERY", "QUERY_STEP_SECONDS", "energy_query",
           "fill_from_victoriametrics"]

#: Queries of the reference results exporter (docs/exporters.md §3).
POWER_QUERY = 'sum(rapl_power_watts{zone=~"package.*"})'
CONTAINER_CPU_QUERY = "docker_containers_total_cpu_percent"
QUERY_STEP_SECONDS = 5.0


def energy_query(window_seconds: float) -> str:
    """Return the reference's package-energy increase query over a window (joules)."""
    window = max(1, int(window_seconds))
    return f'sum(increase(rapl_energy_joules_total{{zone=~"package.*"}}[{window}s]))'


def fill_from_victoriametrics(windows: Sequence[tuple[Optional[tuple[float, float]], PowerStats]],
                              prom: PromClient) -> None:
    """Complete each (scenario window in Unix seconds, power statistics) pair in place from
    VictoriaMetrics: energy (joules), mean and standard deviation (watts), CPU (percent)."""
    if not prom.enabled:
        return
    wanted: list[tuple[PowerStats, float, float, bool, bool, bool]] = []
    for window, stats in windows:
        if window is None:
            continue
        need_energy = not stats.has_power
        need_samples = need_energy or (stats.stdev_w is None and stats.mean_w is not None)
        need_cpu = stats.cpu_pct is None
        if need_energy or need_samples or need_cpu:
            wanted.append((stats, *window, need_energy, need_samples, need_cpu))

    def fetch(item: tuple[PowerStats, float, float, bool, bool, bool]) -> tuple[Any, Any, Any]:
        _, start, end, need_energy, need_samples, need_cpu = item
        energy = prom.query(energy_query(end - start), end) if need_energy else None
        power = (prom.query_range(POWER_QUERY, start, end, QUERY_STEP_SECONDS)
                 if need_samples else None)
        cpu = (prom.query_range(CONTAINER_CPU_QUERY, start, end, QUERY_STEP_SECONDS)
               if need_cpu else None)
        return energy, power, cpu

    for (stats, start, end, need_energy, _, _), (energy, power, cpu) in zip(
        wanted, prom.map_windows(fetch, wanted)
    ):
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
