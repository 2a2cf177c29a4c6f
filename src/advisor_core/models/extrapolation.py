"""Guarded extrapolation and leverage: a model evaluated only inside the range it was trained on
and continued by its linear trend beyond it (compiled in ``_guarded.pyx``).

Used by the predictors' prediction intervals (docs/predictions.md): ``leverage`` gives the
prediction variance of a new row over sigma², ``cross_val_predict`` predicts held-out rows the way
a fitted model predicts them.
"""

from __future__ import annotations

from array import array
from typing import Any

from advisor_core.models import _crossval, _guarded
from advisor_core.models.arrays import (
    Rows,
    check_degree,
    design_width,
    float_rows,
    matrix,
    monomials,
    training_data,
)
from advisor_core.models.linalg import PolynomialModel

__all__ = ["TrainedBox", "cross_val_predict", "guarded_predict", "leverage"]


class TrainedBox:
    """The trained range of each feature and the linear trend that continues a model beyond it.

    ``lo``/``hi`` are per-feature minima and maxima of the training rows; ``slope`` is the
    trend's change of the target per unit of each feature (the degree-1 pipeline's
    ``coef / scale``); ``rising`` flags features along which the trend may not fall above the
    box (the stream count, for power and energy). All are array('d') / bytes of one length.
    """

    __slots__ = ("hi", "lo", "rising", "slope")

    def __init__(self, lo: array, hi: array, slope: array, rising: bytes) -> None:
        self.lo, self.hi, self.slope, self.rising = lo, hi, slope, rising

    @classmethod
    def of(cls, X: Any, trend: PolynomialModel, rising: bytes) -> TrainedBox:
        """The box of the rows of X (n, p) with the degree-1 ``trend`` fitted on them."""
        arr = matrix(X)
        n, p = arr.shape
        if trend.degree != 1 or trend.n_features != p or len(rising) != p:
            raise ValueError("the trend must be a degree-1 model of the same features")
        columns = [arr[:, j] for j in range(p)] if not isinstance(arr, memoryview) else [
            [arr[i, j] for i in range(n)] for j in range(p)]
        lo = array("d", [min(c) for c in columns])
        hi = array("d", [max(c) for c in columns])
        slope = array("d", [trend.coef[1 + j] / trend.scale[j] for j in range(p)])
        return cls(lo, hi, slope, bytes(rising))

    def clip(self, X: Any) -> tuple[Rows, array]:
        """(rows of X clipped into the box, the trend's change from each clipped row to it)."""
        arr = matrix(X, "X_new")
        flat, inc = _guarded.clip_continue(arr, self.lo, self.hi, self.rising, self.slope)
        return float_rows(flat, arr.shape[1]), inc


def guarded_predict(model: PolynomialModel, box: TrainedBox, X: Any) -> array:
    """Predictions of ``model`` inside ``box``, continued by its linear trend beyond it.

    Each row is clipped into the trained range, the model is evaluated there, and the trend's
    change from the clipped row to the row is added (``TrainedBox``): no polynomial is ever
    evaluated outside the data it was fitted on, and the stream count never lowers power.
    """
    arr = matrix(X, "X_new")
    if arr.shape[1] != model.n_features:
        raise ValueError(f"X has {arr.shape[1]} features, the model expects {model.n_features}")
    return _guarded.guarded_predict(
        arr, model.mean, model.scale, monomials(model.n_features, model.degree),
        model.coef[1:], model.intercept + model.coef[0], box.lo, box.hi, box.rising, box.slope)


def leverage(X: Any, degree: int, X_new: Any) -> tuple[int, array]:
    """(rank, h): rank of the centred design of the degree-``degree`` pipeline on X, and the
    leverage ``h = 1/n + v'(Zc'Zc)^+ v`` of each row of X_new (prediction variance / sigma²)."""
    degree = check_degree(degree)
    arr = matrix(X)
    new = matrix(X_new, "X_new")
    p = arr.shape[1]
    if new.shape[1] != p:
        raise ValueError(f"X_new has {new.shape[1]} features, X has {p}")
    return _guarded.leverage(arr, monomials(p, degree), design_width(p, degree), new)


def cross_val_predict(X: Any, y: Any, degree: int, fold: Any, rising: bytes) -> array:
    """Out-of-fold predictions (array('d'), NaN where a fold's fit failed) for fold labels
    ``fold`` (int64 buffer, labels 0..k-1), each held-out row predicted like a fitted model
    predicts it (``guarded_predict`` inside its fold's training box)."""
    degree = check_degree(degree)
    arr, yv = training_data(X, y)
    p = arr.shape[1]
    k = max(fold) + 1 if len(fold) else 0
    return _crossval.cv_predict(arr, yv, monomials(p, degree), design_width(p, degree),
                              monomials(p, 1), design_width(p, 1), fold, k, bytes(rising))
