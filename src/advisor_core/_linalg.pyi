"""Type stubs of the compiled least-squares kernels (see advisor_core.linalg for the public API).

Inputs are C-contiguous float64 buffers (numpy arrays or memoryviews); outputs are flat
``array('d')`` values, row-major where they hold a matrix.
"""

from array import array
from typing import Any

def all_finite(x: Any) -> bool: ...
def mean(x: Any) -> float: ...
def scaler_stats(X: Any) -> tuple[array, array]: ...
def poly_expand(X: Any, mono: Any, include_bias: bool) -> array: ...
def fit_pipeline(
    X: Any, y: Any, mono: Any, ncols_tol: int
) -> tuple[array, array, array, float]: ...
def predict_pipeline(
    Xn: Any, mean: Any, scale: Any, mono: Any, coef: Any, intercept: float
) -> array: ...
def r2(y_true: Any, y_pred: Any) -> float: ...
def rmse(y_true: Any, y_pred: Any) -> float: ...
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
