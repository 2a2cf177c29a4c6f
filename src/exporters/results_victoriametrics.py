"""The results exporter's VictoriaMetrics step: fills in what a results file lacks.

One request per missing quantity and scenario window (docs/exporters.md §3): the package energy
increase when the file has no power, power samples for the standard deviation, and the mean
container CPU. Run on the refresh thread; the client's caching and backoff keep it off the scrape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advisor_core.data.record import ScenarioRecord, with_measurements
from advisor_core.data.samples import usable_summary
from advisor_core.data.scenario import positive_number

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


def fill_from_victoriametrics(records: Sequence[ScenarioRecord],
                              prom: PromClient) -> list[ScenarioRecord]:
    """The records with what VictoriaMetrics knows of their windows filled in where the file
    has nothing: energy (joules), mean and standard deviation (watts), CPU (percent)."""
    filled = list(records)
    if not prom.enabled:
        return filled
    wanted: list[tuple[int, ScenarioRecord, bool, bool, bool]] = []
    for index, record in enumerate(records):
        if record.window is None:
            continue
        need_energy = record.power_w is None and record.energy_j is None
        need_samples = need_energy or (record.power_stdev_w is None
                                       and record.power_w is not None)
        need_cpu = record.cpu_pct is None
        if need_energy or need_samples or need_cpu:
            wanted.append((index, record, need_energy, need_samples, need_cpu))

    def fetch(item: tuple[int, ScenarioRecord, bool, bool, bool]) -> tuple[Any, Any, Any]:
        # Summarised on the worker thread: a window's points (up to 1.4 million doubles) are
        # not kept once its summary is known. The database's samples obey the file's rule for
        # sample lists (advisor_core.data.samples).
        _, record, need_energy, need_samples, need_cpu = item
        start, end = record.window  # type: ignore[misc]
        energy = prom.query(energy_query(end - start), end) if need_energy else None
        power = (usable_summary(prom.query_range_doubles(
            POWER_QUERY, start, end, QUERY_STEP_SECONDS), QUERY_STEP_SECONDS)
            if need_samples else None)
        cpu = (usable_summary(prom.query_range_doubles(
            CONTAINER_CPU_QUERY, start, end, QUERY_STEP_SECONDS), QUERY_STEP_SECONDS)
            if need_cpu else None)
        return energy, power, cpu

    for (index, record, need_energy, _, _), (energy, samples, cpu_samples) in zip(
        wanted, prom.map_windows(fetch, wanted)
    ):
        start, end = record.window  # type: ignore[misc]
        watts = joules = None
        if need_energy:
            joules = positive_number(energy)
            watts = None if joules is None else positive_number(joules / (end - start))
            if watts is None and samples is not None and samples.mean > 0:
                watts, joules = samples.mean, positive_number(samples.mean * (end - start))
        filled[index] = with_measurements(
            record, power_w=watts, energy_j=joules,
            stdev_w=None if samples is None else samples.stdev,
            cpu_pct=None if cpu_samples is None else cpu_samples.mean)
    return filled
