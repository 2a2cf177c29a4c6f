"""A run's scenarios as typed columns: every field read once, by its one rule, for the kernels.

Python reads and validates here, with the field rules of ``scenario.py`` and the power and
energy rules below; the compiled kernels (``_kernels.score_batch``, ``_kernels.costs_batch``)
only do arithmetic on the float64 columns this builds (scikit-learn's wrapper/kernel split).
The one exception is a sample list (``power_watts``, ``cpu_usage_cores``): its values are
checked and integrated by ``_kernels.series_integral`` in one compiled pass, the conversion of
a list of numbers into a typed buffer that numpy's ``asarray`` would otherwise do.

NaN means "missing". The columns are flat ``array.array`` buffers, not numpy arrays: the cost
and QoE exporters never import numpy.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Any, NamedTuple, Optional

from . import _kernels
from .scenario import (
    as_number,
    bitrate_mbps,
    non_negative_number,
    positive_number,
    stream_count,
    total_pixels,
)

__all__ = [
    "COLUMNS",
    "ScenarioColumns",
    "auto_algorithm",
    "energy_joules",
    "mean_power_watts",
    "read_columns",
]

_NAN = math.nan

#: Row names of ``ScenarioColumns.table``, in order; units: W, s, pixels, viewers, core-s,
#: core-s, J (integrated ``power_watts``), Mbps, streams, J (``power.total_energy_joules``),
#: VMAF points. The kernels' layout, so defined there.
COLUMNS: tuple[str, ...] = _kernels.COLUMNS


class ScenarioColumns(NamedTuple):
    """n scenarios as columns: ``ok`` (uint8, 1 for a dict), ``auto`` (int8, the score algorithm
    ``auto`` picks) and ``table`` (float64, row r of COLUMNS at [r * n, (r + 1) * n))."""

    n: int
    ok: Any
    auto: Any
    table: Any


def mean_power_watts(scenario: Any) -> Optional[float]:
    """Return ``power.mean_watts`` + ``gpu_power.mean_watts`` in watts, or None.

    A missing, null or empty ``power`` object, or a mean that is not a finite number >= 0, is
    None; a ``gpu_power`` object that is absent or null adds nothing, one holding an invalid
    mean makes the whole value None.
    """
    if not isinstance(scenario, dict):
        return None
    power = scenario.get("power")
    if not isinstance(power, dict) or not power:
        return None
    watts = non_negative_number(power.get("mean_watts"))
    if watts is None:
        return None
    gpu = scenario.get("gpu_power")
    if isinstance(gpu, dict):
        raw = gpu.get("mean_watts")
        if raw is not None:
            gpu_watts = non_negative_number(raw)
            if gpu_watts is None:
                return None
            watts += gpu_watts
            if not math.isfinite(watts):
                return None
    return watts


def energy_joules(scenario: Any) -> Optional[float]:
    """Return ``power.total_energy_joules`` in joules when it is a finite number > 0, else None."""
    if not isinstance(scenario, dict):
        return None
    power = scenario.get("power")
    if not isinstance(power, dict):
        return None
    return positive_number(power.get("total_energy_joules"))


def auto_algorithm(scenario: Any) -> int:
    """The kernel code of the score ``auto`` picks: a non-null ``vmaf_score`` -> QoE efficiency,
    an ``outputs`` list of more than one entry -> pixels per joule, else throughput per watt."""
    if not isinstance(scenario, dict):
        return _kernels.ALGO_THROUGHPUT_PER_WATT
    if scenario.get("vmaf_score") is not None:
        return _kernels.ALGO_QOE_EFFICIENCY
    outputs = scenario.get("outputs")
    if isinstance(outputs, list) and len(outputs) > 1:
        return _kernels.ALGO_PIXELS_PER_JOULE
    return _kernels.ALGO_THROUGHPUT_PER_WATT


def _row(scenario: dict) -> tuple[float, ...]:
    # One scenario's values in COLUMNS order (NaN for None: ``x if x is not None else _NAN``
    # inline, as this runs for every scenario of every refresh).
    step = positive_number(scenario.get("step_seconds"))
    if step is None:
        step = _NAN
    # Integrals of sample lists (the one validity rule of sample_series), NaN when invalid.
    _, cpu = _kernels.series_integral(scenario.get("cpu_usage_cores"), step)
    gpu_state, gpu = _kernels.series_integral(scenario.get("gpu_usage_cores"), step)
    _, joules = _kernels.series_integral(scenario.get("power_watts"), step)
    duration = positive_number(scenario.get("duration"))
    watts = mean_power_watts(scenario)
    pixels = total_pixels(scenario, duration) if duration is not None else total_pixels(scenario)
    viewers = positive_number(scenario.get("viewers"))
    bitrate = bitrate_mbps(scenario.get("bitrate", "0k"))
    count = stream_count(scenario.get("name"))
    energy = energy_joules(scenario)
    vmaf = as_number(scenario.get("vmaf_score"))
    return (
        _NAN if watts is None else watts,
        _NAN if duration is None else duration,
        _NAN if pixels is None else pixels,
        _NAN if viewers is None else viewers,
        cpu,
        0.0 if gpu_state == _kernels.SERIES_ABSENT else gpu,
        joules,
        _NAN if bitrate is None else bitrate,
        # Unknown stream count = one stream for throughput (README differences, item 1).
        1.0 if count is None else float(count),
        _NAN if energy is None else energy,
        _NAN if vmaf is None else vmaf,
    )


_MISSING_ROW = (_NAN,) * len(COLUMNS)


def read_columns(scenarios: Iterable[Any]) -> ScenarioColumns:
    """Read scenarios (dicts; anything else is a row of NaN with ok 0) into typed columns."""
    items = scenarios if isinstance(scenarios, list) else list(scenarios or ())
    rows = []
    ok = array("B", bytes(len(items)))
    auto = array("b", bytes(len(items)))
    for i, scenario in enumerate(items):
        auto[i] = auto_algorithm(scenario)
        if isinstance(scenario, dict):
            rows.append(_row(scenario))
            ok[i] = 1
        else:
            rows.append(_MISSING_ROW)
    n = len(rows)
    table = array("d")
    for column in zip(*rows):  # one tuple per column: the table is column after column
        table.extend(column)
    return ScenarioColumns(n, ok, auto, table)
