"""The model kinds of ``MultivariatePredictor``: fitting, out-of-fold predictions, and guarded
predictions with their intervals.

Kinds, simplest first: ``streams`` (the least-squares line of the stream count alone, the
reference's power model), ``linear``, ``poly2``, ``poly3`` (scaler -> polynomial -> min-norm
least squares, compiled in ``advisor_core.models.linalg``), ``rf`` and ``gbm`` (scikit-learn, the
``trees`` extra). Every kind predicts through the same guard: inside the trained range of each
feature the model itself, beyond it the value at the nearest trained point continued by the
kind's linear trend (``extrapolation.guarded_predict``). Cross-validation predicts held-out rows the
same way, so a kind is judged as it will be used.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
from array import array
from dataclasses import dataclass
from typing import Any, Optional

from advisor_core.models import extrapolation, linalg, resampling
from advisor_core.models.arrays import Rows
from advisor_core.models.intervals import conformal_half_width, extrapolated_half_width, half_width

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_DESIGN_CELLS",
    "MAX_DESIGN_WORK",
    "NATIVE_DEGREES",
    "SIMPLICITY",
    "TREE_KINDS",
    "KindFit",
    "available_model_kinds",
    "describe",
    "fit_kind",
    "interval_problem",
    "oof_predictions",
    "predict_rows",
    "terms",
    "too_costly",
    "trees_available",
]

NATIVE_DEGREES = {"streams": 1, "linear": 1, "poly2": 2, "poly3": 3}
TREE_KINDS = ("rf", "gbm")
#: Simplicity order: model selection prefers the earlier of two kinds it cannot tell apart.
SIMPLICITY = ("streams", "linear", "poly2", "poly3", "rf", "gbm")
#: Kinds that read only the stream count (column 0 of the feature matrix).
_STREAM_ONLY = frozenset({"streams"})

TREES_EXTRA_HINT = "install the 'trees' extra: pip install 'advisor-core[trees]'"


def trees_available() -> bool:
    """True when scikit-learn is importable, so the 'rf' and 'gbm' model kinds can be used."""
    return importlib.util.find_spec("sklearn") is not None


def available_model_kinds() -> list[str]:
    """Model kinds usable here: linear, poly2, poly3, plus rf and gbm with scikit-learn."""
    kinds = ["linear", "poly2", "poly3"]
    if trees_available():
        kinds.extend(TREE_KINDS)
    return kinds


def tree_pipeline(kind: str) -> Any:
    """An unfitted scikit-learn pipeline (scaler + trees) with the reference's settings."""
    # scikit-learn is optional: imported only when a tree model is actually used.
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "rf":
        regressor: Any = RandomForestRegressor(
            n_estimators=100, max_depth=10, random_state=42, n_jobs=-1)
    else:
        regressor = GradientBoostingRegressor(
            n_estimators=100, max_depth=5, learning_rate=0.1, random_state=42)
    return Pipeline([("scaler", StandardScaler()), ("model", regressor)])


def kind_columns(kind: str, X: Rows) -> Rows:
    """The columns of the feature matrix a kind reads (all, or the stream count alone)."""
    if kind not in _STREAM_ONLY:
        return X
    return linalg.float_rows(array("d", [X[i, 0] for i in range(X.shape[0])]), 1)


def terms(kind: str, X: Rows) -> Optional[int]:
    """Coefficients of a least-squares kind on X, intercept included (None for trees).

    Features constant over the rows add none: the fit gives them no coefficient.
    """
    degree = NATIVE_DEGREES.get(kind)
    if degree is None:
        return None
    Xk = kind_columns(kind, X)
    n, p = Xk.shape
    active = sum(1 for j in range(p) if any(Xk[i, j] != Xk[0, j] for i in range(n)))
    return math.comb(active + degree, degree)


#: Cells (rows x coefficients) of a least-squares kind's design matrix: 16 MB of doubles a copy.
#: A kind past it is not trained (a polynomial over many one-hot columns has tens of thousands
#: of coefficients; docs/predictions.md "Limits").
MAX_DESIGN_CELLS = 2_000_000
#: Work of one factorisation of a design matrix, rows x coefficients x the smaller of the two:
#: a fit is factorised ~55 times (folds, the fit, 50 bootstrap refits, leverages), so 990
#: coefficients on 2,000 rows (2e9) made a background job of 20 s.
MAX_DESIGN_WORK = 200_000_000


def too_costly(count: Optional[int], rows: int) -> Optional[str]:
    """Why a kind of ``count`` coefficients (``terms``; None: trees) is not trained on ``rows``
    rows (its design matrix past MAX_DESIGN_CELLS or MAX_DESIGN_WORK), or None."""
    if count is None:
        return None
    if rows * count > MAX_DESIGN_CELLS:
        return (f"{count} coefficients on {rows} rows: more than the {MAX_DESIGN_CELLS:,} "
                "cells a design matrix may have")
    if rows * count * min(rows, count) > MAX_DESIGN_WORK:
        return (f"{count} coefficients on {rows} rows: more than the {MAX_DESIGN_WORK:,} "
                "operations a factorisation may take")
    return None


def _tree_predict(model: Any, X: Any) -> list[float]:
    import numpy as np

    with np.errstate(all="ignore"):
        return np.asarray(model.predict(np.asarray(X)), dtype=np.float64).tolist()


def _residual_stats(X: Rows, y: array, degree: int, fitted: Any) -> tuple[int, float]:
    """(residual degrees of freedom, residual variance) of a least-squares fit."""
    first = linalg.float_rows(array("d", [X[0, j] for j in range(X.shape[1])]), X.shape[1])
    rank, _ = extrapolation.leverage(X, degree, first)
    df = len(y) - rank - 1
    if df < 1:
        return df, math.nan
    try:
        variance = math.fsum((t - f) * (t - f) for t, f in zip(y, fitted)) / df
    except OverflowError:  # an intermediate sum beyond the float range
        return df, math.nan
    # Watts near the float limit square to inf, and residuals of 1e-160 or less square to 0 or
    # a subnormal: no variance, so no interval (never inf bounds, nor a zero-width interval
    # around data that are not on the curve). Residuals all exactly 0 are a true variance 0.
    if not math.isfinite(variance) or (
            variance < sys.float_info.min and any(t != f for t, f in zip(y, fitted))):
        return df, math.nan
    return df, variance


@dataclass(frozen=True)
class KindFit:
    """One fitted kind and what its guarded predictions and intervals need."""

    kind: str
    model: Any  # linalg.PolynomialModel or a scikit-learn pipeline
    X: Rows  # the training rows, in the kind's columns
    y: array
    box: extrapolation.TrainedBox
    trend_df: int
    trend_sigma2: float
    df: int
    sigma2: float
    residuals: tuple  # out-of-fold residuals (the trees' interval), () when unknown
    degree: Optional[int]  # polynomial degree of a least-squares kind, None for trees


def describe(kind: str, model: Any, X: Rows, y: array, rising: bytes,
             residuals: tuple = (), degree: Optional[int] = None) -> KindFit:
    """The KindFit of an already fitted model on the full feature matrix X: its rank, residual
    degrees of freedom and variance, trained box and continuing trend. ``degree`` overrides the
    kind's own (``PowerPredictor``'s stream-count quadratic)."""
    Xk = kind_columns(kind, X)
    if degree is None:
        degree = NATIVE_DEGREES.get(kind)
    trend = model if degree == 1 else linalg.PolynomialModel.fit(Xk, y, 1)
    box = extrapolation.TrainedBox.of(Xk, trend, rising[:Xk.shape[1]])
    trend_df, trend_sigma2 = _residual_stats(Xk, y, 1, trend.predict_values(Xk))
    if degree is None:
        df, sigma2 = 0, math.nan
    elif degree == 1:
        df, sigma2 = trend_df, trend_sigma2
    else:
        df, sigma2 = _residual_stats(Xk, y, degree, model.predict_values(Xk))
    return KindFit(kind, model, Xk, y, box, trend_df, trend_sigma2, df, sigma2, residuals,
                   degree)


def fit_kind(kind: str, X: Rows, y: array, rising: bytes, residuals: tuple = ()) -> KindFit:
    """Fit a kind on the full feature matrix X (rows x features) and targets y."""
    Xk = kind_columns(kind, X)
    degree = NATIVE_DEGREES.get(kind)
    if degree is not None:
        model: Any = linalg.PolynomialModel.fit(Xk, y, degree)
    else:
        import numpy as np

        model = tree_pipeline(kind).fit(np.asarray(Xk), np.asarray(y))
    return describe(kind, model, X, y, rising, residuals)


def oof_predictions(kind: str, X: Rows, y: array, fold: array, rising: bytes) -> array:
    """Out-of-fold guarded predictions of a kind for fold labels ``fold`` (0..k-1)."""
    Xk = kind_columns(kind, X)
    rising = rising[:Xk.shape[1]]
    degree = NATIVE_DEGREES.get(kind)
    if degree is not None:
        return extrapolation.cross_val_predict(Xk, y, degree, fold, rising)
    import numpy as np

    Xa, ya, labels = np.asarray(Xk), np.asarray(y), np.asarray(fold)
    out = array("d", [math.nan]) * len(y)
    for f in range(int(labels.max()) + 1):
        test = np.flatnonzero(labels == f)
        train = np.flatnonzero(labels != f)
        if len(test) == 0 or len(train) == 0:
            continue
        X_train = linalg.float_rows(array("d", Xa[train].ravel().tolist()), Xa.shape[1])
        y_train = array("d", ya[train].tolist())
        trend = linalg.PolynomialModel.fit(X_train, y_train, 1)
        box = extrapolation.TrainedBox.of(X_train, trend, rising)
        inside, change = box.clip(Xa[test])
        model = tree_pipeline(kind).fit(Xa[train], ya[train])
        for i, value, delta in zip(test, _tree_predict(model, inside), change):
            out[int(i)] = value + delta
    return out


@dataclass(frozen=True)
class RowPrediction:
    """Guarded prediction of one row (target unit, unclamped) and its interval half-width."""

    mean: float
    half_width: Optional[float]
    clipped: tuple  # the row clipped into the kind's trained box
    change: float  # the trend's change from the clipped row to the row


def predict_rows(fit: KindFit, X_new: Rows, level: Optional[float]) -> list[RowPrediction]:
    """Guarded predictions of X_new (full feature rows); with ``level``, interval half-widths."""
    Xk = kind_columns(fit.kind, X_new)
    inside, change = fit.box.clip(Xk)
    if fit.degree is not None:
        means = extrapolation.guarded_predict(fit.model, fit.box, Xk).tolist()
    else:
        means = [v + d for v, d in zip(_tree_predict(fit.model, inside), change)]
    halves: list[Optional[float]] = [None] * len(means)
    if level is not None:
        halves = _half_widths(fit, Xk, inside, level)
    p = inside.shape[1]
    return [RowPrediction(m, h, tuple(inside[i, j] for j in range(p)), change[i])
            for i, (m, h) in enumerate(zip(means, halves))]


def _half_widths(fit: KindFit, Xk: Rows, inside: Rows,
                 level: float) -> list[Optional[float]]:
    n_rows, p = Xk.shape
    moved = [any(Xk[i, j] != inside[i, j] for j in range(p)) for i in range(n_rows)]
    if fit.degree is not None:
        _, h = extrapolation.leverage(fit.X, fit.degree, inside)
        model_half = [half_width(fit.sigma2, fit.df, v, level) for v in h]
    else:
        model_half = [conformal_half_width(fit.residuals, level)] * n_rows
    if not any(moved):
        return model_half
    _, h_trend = extrapolation.leverage(fit.X, 1, Xk)
    return [extrapolated_half_width(m, half_width(fit.trend_sigma2, fit.trend_df, ht, level))
            if out else m for m, ht, out in zip(model_half, h_trend, moved)]


#: Why a row of a fitted kind has no prediction interval (``interval_problem``).
NO_RESIDUAL_DF = "no residual degree of freedom (no more rows than the model has coefficients)"
VARIANCE_OUT_OF_RANGE = ("the residual variance is outside the float range (residuals too large "
                         "or too small to square)")
TOO_FEW_RESIDUALS = "too few out-of-fold residuals for a conformal interval at this level"
WIDTH_OUT_OF_RANGE = "the interval's half-width is outside the float range"


def interval_problem(fit: KindFit, row: RowPrediction, level: float) -> Optional[str]:
    """Why ``row`` (a prediction of ``fit`` asked at ``level``) has no interval; None when it
    has one."""
    if row.half_width is not None:
        return None
    if fit.degree is None and conformal_half_width(fit.residuals, level) is None:
        return TOO_FEW_RESIDUALS
    stats = [(fit.trend_df, fit.trend_sigma2)]  # the trend line's count beyond the trained box
    if fit.degree is not None:
        stats.insert(0, (fit.df, fit.sigma2))
    for df, sigma2 in stats:
        if df < 1:
            return NO_RESIDUAL_DF
        if not math.isfinite(sigma2):
            return VARIANCE_OUT_OF_RANGE
    return WIDTH_OUT_OF_RANGE


def bootstrap_bounds(fit: KindFit, rows: list[RowPrediction], n_bootstrap: int,
                     confidence_level: float, random_state: Any,
                     n_jobs: Optional[int]) -> Optional[tuple[list[float], list[float]]]:
    """Bootstrap percentile interval of the mean per row (the trend's change added), or None."""
    p = fit.X.shape[1]
    flat = array("d", [v for r in rows for v in r.clipped])
    inside = linalg.float_rows(flat, p)
    if fit.degree is not None:
        bounds = resampling.bootstrap_interval(fit.X, fit.y, fit.degree, inside, n_bootstrap,
                                           confidence_level, random_state, n_jobs)
        if bounds is None:
            return None
        low, high = bounds[0].tolist(), bounds[1].tolist()
    else:
        tree = _tree_interval(fit.kind, fit.X, fit.y, inside, n_bootstrap, confidence_level,
                              random_state)
        if tree is None:
            return None
        low, high = list(tree[0]), list(tree[1])
    return ([v + r.change for v, r in zip(low, rows)], [v + r.change for v, r in zip(high, rows)])


def _tree_interval(kind: str, X: Rows, y: array, X_new: Rows, n_bootstrap: int,
                   confidence_level: float, random_state: Any) -> Optional[tuple[Any, Any]]:
    """Bootstrap percentile interval of a tree model (refits with scikit-learn); None if none."""
    import numpy as np

    Xa, ya, new = np.asarray(X), np.asarray(y), np.asarray(X_new)
    rng = np.random.default_rng(random_state)
    n = len(y)
    predictions = []
    with np.errstate(all="ignore"):
        for _ in range(n_bootstrap):
            rows = rng.integers(0, n, n)
            try:
                predictions.append(tree_pipeline(kind).fit(Xa[rows], ya[rows]).predict(new))
            except ValueError as exc:
                logger.debug("bootstrap refit of %s skipped: %s", kind, exc)
        if not predictions:
            return None
        return resampling.percentile_interval(np.array(predictions, dtype=np.float64),
                                          confidence_level)
