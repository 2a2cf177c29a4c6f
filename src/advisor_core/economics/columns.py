"""Records as typed columns for the compiled kernels (``_kernels.score_batch``, ``costs_batch``).

The record reader (``advisor_core.data.record``) has read and validated every field; this module
only lays the numbers out, column after column, with NaN for "not known". The kernels do arithmetic
on them (scikit-learn's wrapper/kernel split). The columns are flat ``array.array`` buffers, not
numpy arrays: the cost and QoE exporters never import numpy.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

from advisor_core.data.record import ScenarioRecord
from advisor_core.economics import _kernels

__all__ = ["COLUMNS", "ScenarioColumns", "auto_algorithm", "read_columns"]

_NAN = math.nan

#: Row names of ``ScenarioColumns.table``, in order (units: W, s, pixels, viewers, core-s,
#: Mbps, streams, J, VMAF points). The kernels' layout, so defined there.
COLUMNS: tuple[str, ...] = _kernels.COLUMNS


class ScenarioColumns(NamedTuple):
    """n scenarios as columns: ``ok`` (uint8, 1 for a record), ``auto`` (int8, the score
    algorithm ``auto`` picks) and ``table`` (float64, row r of COLUMNS at [r * n, (r + 1) * n))."""

    n: int
    ok: Any
    auto: Any
    table: Any


def auto_algorithm(record: Optional[ScenarioRecord]) -> int:
    """The kernel code of the score ``auto`` picks: a VMAF score in the file (valid or not) ->
    QoE efficiency, an ``outputs`` list of more than one entry -> pixels per joule, else
    throughput per watt."""
    if record is None:
        return _kernels.ALGO_THROUGHPUT_PER_WATT
    if record.quality_rated:
        return _kernels.ALGO_QOE_EFFICIENCY
    if record.ladder_entries > 1:
        return _kernels.ALGO_PIXELS_PER_JOULE
    return _kernels.ALGO_THROUGHPUT_PER_WATT


def _nan(value: Optional[float]) -> float:
    return _NAN if value is None else value


def _row(record: ScenarioRecord) -> tuple[float, ...]:
    # COLUMNS order.
    return (
        _nan(record.power_w),
        _nan(record.duration_s),
        _nan(record.pixels),
        _nan(record.viewers),
        _nan(record.core_s),
        _nan(record.bitrate_mbps),
        float(record.stream_count),
        _nan(record.energy_j),
        _nan(record.vmaf),
    )


_MISSING_ROW = (_NAN,) * len(COLUMNS)


def read_columns(records: Sequence[Optional[ScenarioRecord]]) -> ScenarioColumns:
    """Lay records out as typed columns (None: a row of NaN with ok 0)."""
    n = len(records)
    ok = array("B", bytes(n))
    auto = array("b", bytes(n))
    rows = []
    for i, record in enumerate(records):
        auto[i] = auto_algorithm(record)
        if record is None:
            rows.append(_MISSING_ROW)
        else:
            rows.append(_row(record))
            ok[i] = 1
    table = array("d")
    for column in zip(*rows):  # one tuple per column: the table is column after column
        table.extend(column)
    return ScenarioColumns(n, ok, auto, table)
