"""Type stubs of the compiled least-squares kernels (see advisor_core.linalg for the public API)."""

from typing import Any, Optional

import numpy as np

def lstsq(X: Any, y: Any, rcond: Optional[float] = ...) -> np.ndarray: ...
def scaler_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def poly_expand(X: np.ndarray, mono: np.ndarray, include_bias: bool) -> np.ndarray: ...
def fit_pipeline(
    X: np.ndarray, y: np.ndarray, mono: np.ndarray, ncols_tol: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]: ...
def predict_pipeline(
    Xn: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    mono: np.ndarray,
    coef: np.ndarray,
    intercept: float,
) -> np.ndarray: ...
def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float: ...
def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float: ...
def cv_r2(
    X: np.ndarray, y: np.ndarray, mono: np.ndarray, ncols_tol: int, folds: int
) -> np.ndarray: ...
def bootstrap(
    X: np.ndarray,
    y: np.ndarray,
    mono: np.ndarray,
    ncols_tol: int,
    Xn: np.ndarray,
    idx: np.ndarray,
) -> np.ndarray: ...
