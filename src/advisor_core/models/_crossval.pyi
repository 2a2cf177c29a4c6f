"""Type stub of the compiled out-of-fold predictions (see advisor_core.models.extrapolation).

Inputs are C-contiguous float64 buffers (numpy arrays or memoryviews); outputs are flat
``array('d')`` values, row-major where they hold a matrix.
"""

from array import array
from typing import Any

def cv_predict(
    X: Any,
    y: Any,
    mono: Any,
    ncols_tol: int,
    lin_mono: Any,
    lin_ncols_tol: int,
    fold: Any,
    k: int,
    rising: Any,
) -> array: ...
