"""Minimum-norm least squares and the polynomial regression pipeline (compiled kernels).

The public functions take array-likes and return float64 numpy arrays; the numerics live in
``_pipeline.pyx``. The model pipeline itself does not need numpy: ``PolynomialModel`` keeps its
coefficients in ``array('d')`` buffers and also accepts 2-D float64 ``memoryview`` inputs, which
is how ``MultivariatePredictor`` trains and predicts (the results exporter never loads numpy).
numpy is imported on the first call that needs it.

Least squares (``lstsq``) returns what ``numpy.linalg.lstsq(X, y, rcond=None)[0]`` returns: the
minimum-norm solution with singular values ``<= rcond * sigma_max`` treated as zero (default
``rcond = eps * max(m, n)``). No LAPACK is available at runtime, so the solver is our own,
LAPACK ``gelsy``'s algorithm with an SVD safety net:

1. Householder QR with column pivoting (LAPACK ``dlaqp2``, with its safe column-norm
   downdating) of the tall orientation: ``X`` itself when ``m >= n``, ``X^T`` when ``m < n``
   (then the Householder vectors run along the long side, which is what vectorises, and the
   row pivoting of ``X`` is as rank revealing as column pivoting). ``Q^T y`` is formed on the
   way.
2. The factorisation stops as soon as the trailing block's Frobenius norm, an upper bound of
   every remaining singular value, is below the smallest possible cut-off (``rcond`` times the
   largest column norm, a lower bound of ``sigma_max``): rank-deficient designs, the normal case
   for the predictors, cost only as many steps as their rank. The kept part is accepted when
   its last pivot is three orders of magnitude above the largest possible cut-off
   (``rcond * ||X||_F``) or when ``1 / ||R11^-1||_F``, a lower bound of its smallest singular
   value, is above it.
3. Unambiguous rank ``r``: complete orthogonal decomposition (LAPACK ``dlatrz``: ``[R11 R12]``
   -> ``[T 0] Z``), one triangular solve, and the reflectors applied back. Otherwise (a singular
   value near the cut-off, or a user ``rcond`` that cuts into the spectrum) the QR is completed
   and the SVD of the triangular factor is computed by one-sided Jacobi (accurate, and quick to
   converge after pivoted QR), so the rank is decided on singular values exactly like numpy.

Pivoted QR costs a fraction of numpy's divide-and-conquer SVD, and the entry point reads the
arrays through numpy's C API with a single allocation, which is what makes the small problems
of the predictors an order of magnitude faster than ``numpy.linalg.lstsq``. The Householder
update, where the time goes, is written in C (four columns per pass sharing the loads of the
reflector, with the LAPACK norm downdate fused in while the column is in L1) and compiled
twice with GCC on glibc x86-64: baseline SSE2 and x86-64-v3 (AVX2/FMA), chosen at import by CPU
features, so wheels stay portable. The factorisation is unblocked: a blocked variant (LAPACK
``dlaqps``, trailing update once per 16 steps) was measured no faster on these sizes (up to a
few hundred columns, the trailing matrix stays in L2), and 5000 x 30 is already faster than
numpy without row chunking.

The pipeline (``PolynomialModel`` here; ``extrapolation.cross_val_predict`` and
``resampling.bootstrap_predictions`` refit it) is
scikit-learn's ``StandardScaler -> PolynomialFeatures(degree) -> LinearRegression`` with one
difference: the rank cut-off of the final least squares is ``eps * max(rows, design
columns)`` (numpy's default), where scikit-learn >= 1.7 passes ``cond=1e-6`` to scipy and
older versions ``cond=eps``. Exact shortcuts, all in compiled code:

* columns the scaler finds constant (scikit-learn's own bound) scale to zero, so their monomials
  are never built: they would be zero columns with coefficient exactly 0 in the minimum-norm
  solution; the bias column is never built either (it is zero after centring);
* a bootstrap resample is fitted on its distinct rows weighted by ``sqrt(multiplicity)`` (same
  least-squares objective, same solution set, same singular values as the duplicated design);
  the scaler still sees the duplicated rows in resample order, like scikit-learn;
* cross-validation and bootstrap loops, refits and predictions included, run without the GIL
  in preallocated buffers; nothing happens in Python per fold or per resample.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any, Callable, Optional

from advisor_core.models import _pipeline
from advisor_core.models.arrays import Rows as Rows  # features.py reads the alias here
from advisor_core.models.arrays import (
    as_numpy,
    check_degree,
    design_width,
    float_rows,
    matrix,
    monomials,
    training_data,
    vector,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "PolynomialModel",
    "float_rows",
    "lstsq",
    "mean",
    "polynomial_features",
    "r2_score",
    "rmse",
    "standard_scaler",
]

#: The numpy-facing solver (advisor_core.models._lstsq), bound on the first lstsq call.
_numpy_lstsq: Optional[Callable[..., Any]] = None


def lstsq(X: Any, y: Any, rcond: Optional[float] = None) -> np.ndarray:
    """Minimum-norm least-squares solution b of X b ≈ y (= numpy.linalg.lstsq(X, y)[0]).

    X is (m, n), y is (m,) or (m, k); the result is (n,) or (n, k). Raises ValueError for
    non-finite values or mismatched shapes.
    """
    global _numpy_lstsq
    if _numpy_lstsq is None:
        from advisor_core.models._lstsq import lstsq as solve

        _numpy_lstsq = solve
    return _numpy_lstsq(X, y, rcond)


def polynomial_features(X: Any, degree: int, include_bias: bool = True) -> np.ndarray:
    """Polynomial expansion of X in scikit-learn's PolynomialFeatures column order."""
    if isinstance(degree, bool) or not hasattr(degree, "__index__") or degree < 0:
        raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
    if degree == 0 and not include_bias:
        raise ValueError("degree 0 without the bias column would produce no columns")
    arr = matrix(X)
    n, p = arr.shape
    degree = int(degree)
    if degree == 0:
        import numpy as np

        mono = np.zeros((0, 1), dtype=np.int32)
        width = 1
    else:
        mono = monomials(p, degree)
        width = mono.shape[0] + (1 if include_bias else 0)
    return as_numpy(_pipeline.poly_expand(arr, mono, bool(include_bias)), (n, width))


def standard_scaler(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations of X (zero-variance columns: scale 1)."""
    arr = matrix(X)
    if arr.shape[0] == 0:
        raise ValueError("X must have at least one row")
    mean, scale = _pipeline.scaler_stats(arr)
    return as_numpy(mean), as_numpy(scale)


def mean(values: Any) -> float:
    """Arithmetic mean with numpy's pairwise summation (bit for bit ``np.mean``); NaN if empty."""
    return float(_pipeline.mean(vector(values, -1, "values")))


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination (scikit-learn semantics); NaN for fewer than 2 samples."""
    yt = vector(y_true, -1, "y_true")
    yp = vector(y_pred, len(yt), "y_pred")
    return float(_pipeline.r2(yt, yp))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the unit of y; NaN when empty."""
    yt = vector(y_true, -1, "y_true")
    yp = vector(y_pred, len(yt), "y_pred")
    return float(_pipeline.rmse(yt, yp))


# Per degree, the monomial table and design columns of a one-feature pipeline.
_COLUMN_TERMS = {d: (monomials(1, d), design_width(1, d)) for d in (1, 2, 3)}


class PolynomialModel:
    """A fitted StandardScaler -> PolynomialFeatures(degree) -> LinearRegression pipeline.

    ``mean`` and ``scale`` (per input feature) and ``coef`` (indexed like
    ``polynomial_features(scaled, degree, include_bias=True)``; ``coef[0]``, the bias column's
    coefficient, is 0 after fitting: the intercept carries it) are ``array('d')`` buffers;
    ``numpy.asarray`` views them without a copy.
    """

    __slots__ = ("coef", "degree", "intercept", "mean", "scale")

    def __init__(self, degree: int, mean: array, scale: array, coef: array,
                 intercept: float) -> None:
        self.degree = degree
        self.mean = mean
        self.scale = scale
        self.coef = coef
        self.intercept = intercept

    @classmethod
    def fit(cls, X: Any, y: Any, degree: int) -> PolynomialModel:
        """Fit the pipeline on X (n, p) and y (n,); ValueError on invalid input."""
        degree = check_degree(degree)
        arr, yv = training_data(X, y)
        p = arr.shape[1]
        mean, scale, coef, intercept = _pipeline.fit_pipeline(
            arr, yv, monomials(p, degree), design_width(p, degree)
        )
        coef.insert(0, 0.0)
        return cls(degree, mean, scale, coef, float(intercept))

    @classmethod
    def fit_column(cls, x: Any, y: Any, degree: int) -> PolynomialModel:
        """Fit the pipeline on one feature: x and y C-contiguous float64 1-D buffers
        (``array('d')``) of the same n >= 1 finite values (the stream-count curve, where the
        fit is mostly call overhead); ValueError on invalid input."""
        if type(degree) is not int or degree not in _COLUMN_TERMS:
            degree = check_degree(degree)
        try:
            mean, scale, coef, intercept = _pipeline.fit_column(x, y, *_COLUMN_TERMS[degree])
        except TypeError as exc:
            raise ValueError("x and y must be float64 1-D buffers") from exc
        coef.insert(0, 0.0)
        return cls(degree, mean, scale, coef, float(intercept))

    @property
    def n_features(self) -> int:
        """Number of input features the model expects."""
        return len(self.mean)

    def predict_values(self, X: Any) -> array:
        """Predictions for the rows of X (n, p) as array('d'), in the unit of the target."""
        arr = matrix(X)
        if arr.shape[1] != self.n_features:
            raise ValueError(f"X has {arr.shape[1]} features, the model expects {self.n_features}")
        return _pipeline.predict_pipeline(
            arr,
            self.mean,
            self.scale,
            monomials(self.n_features, self.degree),
            self.coef[1:],
            self.intercept + self.coef[0],
        )

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for the rows of X (n, p) as a numpy array, in the unit of the target."""
        return as_numpy(self.predict_values(X))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (plain lists and floats)."""
        return {
            "degree": self.degree,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, d: Any) -> PolynomialModel:
        """Rebuild a model from ``to_dict`` output; ValueError when anything is inconsistent."""
        if not isinstance(d, dict):
            raise ValueError("model description must be a dict")
        try:
            degree = check_degree(d["degree"])
            mean = _float_list(d["mean"], "mean")
            scale = _float_list(d["scale"], "scale")
            coef = _float_list(d["coef"], "coef")
            intercept = d["intercept"]
        except KeyError as exc:
            raise ValueError(f"model description lacks {exc.args[0]!r}") from None
        if isinstance(intercept, bool) or not isinstance(intercept, (int, float)):
            raise ValueError("intercept must be a number")
        intercept = float(intercept)
        if not math.isfinite(intercept):
            raise ValueError("intercept must be finite")
        p = len(mean)
        if p == 0:
            raise ValueError("mean must not be empty")
        if len(scale) != p:
            raise ValueError("mean and scale lengths differ")
        if 0.0 in scale:
            raise ValueError("scale must be non-zero")
        terms = 1 + monomials(p, degree).shape[0]
        if len(coef) != terms:
            raise ValueError(f"coef must have {terms} entries")
        return cls(degree, mean, scale, coef, intercept)

    def __repr__(self) -> str:
        return f"PolynomialModel(degree={self.degree}, n_features={self.n_features})"


def _float_list(values: Any, name: str) -> array:
    if not isinstance(values, (list, tuple)) or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in values
    ):
        raise ValueError(f"{name} must be a list of numbers")
    arr = array("d", values)
    if not all(math.isfinite(v) for v in arr):
        raise ValueError(f"{name} must contain only finite numbers")
    return arr
