"""Type stubs of the compiled kernels (NaN = missing input / no result)."""

from array import array
from typing import Any

ALGO_THROUGHPUT_PER_WATT: int
ALGO_PIXELS_PER_JOULE: int
ALGO_QUALITY_PER_WATT: int
ALGO_QOE_EFFICIENCY: int
COLUMNS: tuple[str, ...]

# Batch tables are flat float64 array.array buffers: row r of [rows, n] at [r*n, (r+1)*n).
_F8 = array[float]
_I8 = array[int]

def score_batch(algo: _I8, table: _F8) -> _F8: ...
def costs_batch(
    table: _F8,
    n: int,
    legacy_viewers: float,
    la_viewers: float,
    viewers_from_field: bool,
    price_kwh: float,
    cpu_hourly: float,
    gpu_hourly: float,
    price_core_s: float,
    price_j: float,
) -> _F8: ...
def optional_list(values: Any) -> list[float | None]: ...
def optional_rows(table: _F8, ok: _I8) -> list[list[float | None]]: ...
