"""Type stubs of the compiled leverage and guarded prediction (see
advisor_core.models.extrapolation).

Inputs are C-contiguous float64 buffers (numpy arrays or memoryviews); outputs are flat
``array('d')`` values, row-major where they hold a matrix.
"""

from array import array
from typing import Any

def clip_continue(
    Xn: Any, lo: Any, hi: Any, rising: Any, slope: Any
) -> tuple[array, array]: ...
def leverage(X: Any, mono: Any, ncols_tol: int, Xn: Any) -> tuple[int, array]: ...
def guarded_predict(
    Xn: Any,
    mean: Any,
    scale: Any,
    mono: Any,
    coef: Any,
    intercept: float,
    lo: Any,
    hi: Any,
    rising: Any,
    slope: Any,
) -> array: ...
