"""Type stubs of the compiled bootstrap and percentile loops (see advisor_core.models.resampling).

Inputs are C-contiguous float64 buffers (numpy arrays or memoryviews); outputs are flat
``array('d')`` values, row-major where they hold a matrix.
"""

from array import array
from typing import Any

def bootstrap(
    X: Any,
    y: Any,
    mono: Any,
    ncols_tol: int,
    Xn: Any,
    idx: Any,
    out: Any,
    ok: Any,
    start: int,
    stop: int,
) -> None: ...
def percentile_pair(
    values: Any, ok: Any, cols: int, q_low: float, q_high: float
) -> tuple[array, array]: ...
