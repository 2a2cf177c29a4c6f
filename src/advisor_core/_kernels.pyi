"""Type stubs of the compiled kernels (NaN = missing input / no result)."""

from typing import Any

import numpy as np
import numpy.typing as npt

ALGO_THROUGHPUT_PER_WATT: int
ALGO_PIXELS_PER_JOULE: int
ALGO_QUALITY_PER_WATT: int
ALGO_QOE_EFFICIENCY: int
SERIES_ABSENT: int
SERIES_VALID: int
SERIES_INVALID: int

_F8 = npt.NDArray[np.float64]

def trapezoid(values: Any, step: float) -> float: ...
def series_integral(item: Any, step: float) -> tuple[int, float]: ...
def score(
    algo: int,
    bitrate: float,
    streams: float,
    watts: float,
    energy: float,
    pixels: float,
    vmaf: float,
) -> float: ...
def score_batch(
    algo: npt.NDArray[np.int8],
    bitrate: _F8,
    streams: _F8,
    watts: _F8,
    energy: _F8,
    pixels: _F8,
    vmaf: _F8,
) -> _F8: ...
def energy_cost(watts: float, duration: float, price_kwh: float) -> float: ...
def compute_cost(duration: float, cpu_hourly: float, gpu_hourly: float) -> float: ...
def total_cost(energy: float, compute: float) -> float: ...
def cost_per_pixel(total: float, pixels: float) -> float: ...
def cost_per_watch_hour(total: float, duration: float, viewers: float) -> float: ...
def load_aware_compute_cost(cpu_core_s: float, gpu_core_s: float, price_core_s: float) -> float: ...
def load_aware_energy_cost(joules: float, price_j: float) -> float: ...
def costs_batch(
    fields: _F8,
    legacy_viewers: float,
    la_viewers: float,
    viewers_from_field: bool,
    price_kwh: float,
    cpu_hourly: float,
    gpu_hourly: float,
    price_core_s: float,
    price_j: float,
) -> _F8: ...
def gather_cost_fields(
    scenarios: list[Any], resolution: Any
) -> tuple[npt.NDArray[np.uint8], _F8]: ...
def gather_score_fields(
    scenarios: list[Any], fixed_algo: int, bitrate_mbps: Any, stream_count: Any, resolution: Any
) -> tuple[npt.NDArray[np.int8], _F8]: ...
def optional_list(values: _F8) -> list[float | None]: ...
def scored_copies(scenarios: list[dict], scores: _F8) -> list[dict]: ...
def ranked_order(copies: list[dict], scores: _F8) -> list[dict]: ...
