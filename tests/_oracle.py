"""The scikit-learn oracle: the reference's pipeline, with numpy's rank cut-off."""

from __future__ import annotations

import math

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

EPS = np.finfo(float).eps


def sk_pipeline(degree: int, n_rows: int, n_features: int):
    """StandardScaler -> PolynomialFeatures(degree) -> LinearRegression (min-norm least squares).

    scikit-learn >= 1.7 cuts singular values at ``tol`` (default 1e-6); older versions, the
    reference's, and numpy's lstsq cut near machine precision, so tol is set to numpy's
    rcond=None cut-off where the parameter exists.
    """
    regression = LinearRegression()
    if "tol" in regression.get_params():
        width = math.comb(n_features + degree, degree)
        regression.set_params(tol=EPS * max(n_rows, width))
    if degree == 1:
        return make_pipeline(StandardScaler(), regression)
    return make_pipeline(StandardScaler(), PolynomialFeatures(degree), regression)


def sk_guarded(degree, X: np.ndarray, y: np.ndarray, X_new: np.ndarray,
               rising: bool = True) -> np.ndarray:
    """Guarded predictions written with scikit-learn: the pipeline at X_new clipped into the
    training box, plus a degree-1 pipeline's slope (per raw unit) times the distance outside
    it; the stream-count slope (column 0) is floored at 0 above the box when ``rising``."""
    n, p = X.shape
    # degree: 1-3 for the least-squares pipeline, or a factory of any scikit-learn regressor.
    model = (sk_pipeline(degree, n, p) if isinstance(degree, int) else degree()).fit(X, y)
    line = sk_pipeline(1, n, p).fit(X, y)
    slope = line[-1].coef_ / line[0].scale_
    lo, hi = X.min(axis=0), X.max(axis=0)
    inside = np.clip(X_new, lo, hi)
    delta = X_new - inside
    slopes = np.tile(slope, (len(X_new), 1))
    if rising:
        slopes[:, 0] = np.where(delta[:, 0] > 0, np.maximum(slopes[:, 0], 0.0), slopes[:, 0])
    return model.predict(inside) + (slopes * delta).sum(axis=1)


def sk_oof(degree, X: np.ndarray, y: np.ndarray, labels: np.ndarray,
           rising: bool = True) -> np.ndarray:
    """Out-of-fold guarded predictions (``sk_guarded``) for the given fold labels."""
    out = np.full(len(y), np.nan)
    for f in np.unique(labels):
        test, train = labels == f, labels != f
        out[test] = sk_guarded(degree, X[train], y[train], X[test], rising)
    return out


def pooled_scores(y: np.ndarray, oof: np.ndarray, clamp: bool = True) -> tuple[float, float]:
    """(RMSE, R²) of out-of-fold predictions pooled over all rows (clamped at 0 for power)."""
    pred = np.maximum(oof, 0.0) if clamp else oof
    sse = float(((y - pred) ** 2).sum())
    sst = float(((y - y.mean()) ** 2).sum())
    return math.sqrt(sse / len(y)), (1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0))
