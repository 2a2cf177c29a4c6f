"""Minimum-norm least squares and the polynomial regression pipeline (compiled kernels).

Everything here is float64 numpy in, numpy out; the numerics live in ``_linalg.pyx``.

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

The pipeline (``PolynomialModel``, ``cross_val_r2``, ``bootstrap_predictions``) is scikit-learn's
``StandardScaler -> PolynomialFeatures(degree) -> LinearRegression`` with one difference: the
rank cut-off of the final least squares is ``eps * max(rows, design columns)`` (numpy's
default), where scikit-learn >= 1.7 passes ``cond=1e-6`` to scipy and older versions
``cond=eps``. Exact shortcuts, all in compiled code:

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

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Optional

import numpy as np

from advisor_core import _linalg

__all__ = [
    "PolynomialModel",
    "bootstrap_predictions",
    "cross_val_r2",
    "lstsq",
    "percentile_interval",
    "polynomial_features",
    "r2_score",
    "rmse",
    "standard_scaler",
]

_MAX_PIPELINE_DEGREE = 3


def lstsq(X: Any, y: Any, rcond: Optional[float] = None) -> np.ndarray:
    """Minimum-norm least-squares solution b of X b ≈ y (= numpy.linalg.lstsq(X, y)[0]).

    X is (m, n), y is (m,) or (m, k); the result is (n,) or (n, k). Raises ValueError for
    non-finite values or mismatched shapes.
    """
    return _linalg.lstsq(X, y, rcond)


@lru_cache(maxsize=64)
def _monomials(n_features: int, degree: int) -> np.ndarray:
    """Read-only (J, degree) table of feature indices of each non-bias monomial, -1 padded."""
    rows = [
        combo + (-1,) * (degree - d)
        for d in range(1, degree + 1)
        for combo in itertools.combinations_with_replacement(range(n_features), d)
    ]
    table = np.array(rows, dtype=np.int32).reshape(len(rows), degree)
    table.flags.writeable = False
    return table


def _matrix(X: Any, name: str = "X") -> np.ndarray:
    """X as a C-contiguous float64 2-D array of finite values, or ValueError."""
    try:
        arr = np.ascontiguousarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric 2-D array") from exc
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {arr.ndim}-D")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _vector(y: Any, n: int, name: str = "y") -> np.ndarray:
    """y as a contiguous float64 1-D array of n finite values, or ValueError."""
    try:
        arr = np.ascontiguousarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric 1-D array") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got {arr.ndim}-D")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values, expected {n}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _check_degree(degree: Any) -> int:
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)):
        raise ValueError(f"degree must be an integer, got {degree!r}")
    if not 1 <= degree <= _MAX_PIPELINE_DEGREE:
        raise ValueError(f"degree must be 1, 2 or 3, got {degree}")
    return int(degree)


def _design_width(n_features: int, degree: int) -> int:
    """Columns scikit-learn's LinearRegression sees (bias column included for degree >= 2)."""
    if degree == 1:
        return n_features
    return math.comb(n_features + degree, degree)


def polynomial_features(X: Any, degree: int, include_bias: bool = True) -> np.ndarray:
    """Polynomial expansion of X in scikit-learn's PolynomialFeatures column order."""
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
        raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
    if degree == 0 and not include_bias:
        raise ValueError("degree 0 without the bias column would produce no columns")
    arr = _matrix(X)
    return _linalg.poly_expand(arr, _monomials(arr.shape[1], int(degree)), bool(include_bias))


def standard_scaler(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations of X (zero-variance columns: scale 1)."""
    arr = _matrix(X)
    if arr.shape[0] == 0:
        raise ValueError("X must have at least one row")
    return _linalg.scaler_stats(arr)


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination (scikit-learn semantics); NaN for fewer than 2 samples."""
    yt = _vector(y_true, np.shape(y_true)[0] if np.ndim(y_true) else -1, "y_true")
    yp = _vector(y_pred, yt.shape[0], "y_pred")
    return float(_linalg.r2(yt, yp))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the unit of y; NaN when empty."""
    yt = _vector(y_true, np.shape(y_true)[0] if np.ndim(y_true) else -1, "y_true")
    yp = _vector(y_pred, yt.shape[0], "y_pred")
    return float(_linalg.rmse(yt, yp))


class PolynomialModel:
    """A fitted StandardScaler -> PolynomialFeatures(degree) -> LinearRegression pipeline.

    ``coef`` is indexed like ``polynomial_features(scaled, degree, include_bias=True)``
    (``coef[0]``, the bias column's coefficient, is 0 after fitting: the intercept carries it).
    """

    __slots__ = ("coef", "degree", "intercept", "mean", "scale")

    def __init__(
        self,
        degree: int,
        mean: np.ndarray,
        scale: np.ndarray,
        coef: np.ndarray,
        intercept: float,
    ) -> None:
        self.degree = degree
        self.mean = mean
        self.scale = scale
        self.coef = coef
        self.intercept = intercept

    @classmethod
    def fit(cls, X: Any, y: Any, degree: int) -> PolynomialModel:
        """Fit the pipeline on X (n, p) and y (n,); ValueError on invalid input."""
        degree = _check_degree(degree)
        arr = _matrix(X)
        if arr.shape[0] == 0:
            raise ValueError("X must have at least one row")
        yv = _vector(y, arr.shape[0])
        p = arr.shape[1]
        mean, scale, coef, intercept = _linalg.fit_pipeline(
            arr, yv, _monomials(p, degree), _design_width(p, degree)
        )
        return cls(degree, mean, scale, np.concatenate(([0.0], coef)), float(intercept))

    @property
    def n_features(self) -> int:
        """Number of input features the model expects."""
        return int(self.mean.shape[0])

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for the rows of X (n, p), in the unit of the training target."""
        arr = _matrix(X)
        if arr.shape[1] != self.n_features:
            raise ValueError(f"X has {arr.shape[1]} features, the model expects {self.n_features}")
        return _linalg.predict_pipeline(
            arr,
            self.mean,
            self.scale,
            _monomials(self.n_features, self.degree),
            self.coef[1:],
            self.intercept + float(self.coef[0]),
        )

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
            degree = _check_degree(d["degree"])
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
        p = mean.shape[0]
        if scale.shape[0] != p:
            raise ValueError("mean and scale lengths differ")
        if np.any(scale == 0.0):
            raise ValueError("scale must be non-zero")
        if coef.shape[0] != 1 + _monomials(p, degree).shape[0]:
            raise ValueError(f"coef must have {1 + _monomials(p, degree).shape[0]} entries")
        return cls(degree, mean, scale, coef, intercept)

    def __repr__(self) -> str:
        return f"PolynomialModel(degree={self.degree}, n_features={self.n_features})"


def _float_list(values: Any, name: str) -> np.ndarray:
    if not isinstance(values, (list, tuple)) or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in values
    ):
        raise ValueError(f"{name} must be a list of numbers")
    arr = np.array(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must contain only finite numbers")
    return arr


def cross_val_r2(X: Any, y: Any, degree: int, folds: int) -> np.ndarray:
    """Per-fold R² of k = min(folds, n) contiguous unshuffled folds (NaN where undefined)."""
    degree = _check_degree(degree)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    arr = _matrix(X)
    if arr.shape[0] == 0:
        raise ValueError("X must have at least one row")
    yv = _vector(y, arr.shape[0])
    p = arr.shape[1]
    return _linalg.cv_r2(arr, yv, _monomials(p, degree), _design_width(p, degree), int(folds))


#: Bootstrap work (rows x design columns x resamples) from which the resamples are split over
#: threads: below it, starting threads costs more than it saves.
PARALLEL_BOOTSTRAP_WORK = 1_000_000


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def bootstrap_predictions(
    X: Any,
    y: Any,
    degree: int,
    X_new: Any,
    n_bootstrap: int,
    random_state: Optional[int] = 0,
    n_jobs: Optional[int] = None,
) -> np.ndarray:
    """Predictions (n_successful, len(X_new)) of pipelines refitted on row resamples.

    Resample indices come from ``np.random.default_rng(random_state).integers(0, n,
    size=(n_bootstrap, n))``, so a seed reproduces the result. A 1-D X_new is one row.
    ``n_jobs`` threads share the resamples (None: the usable cores, for large problems only);
    the result does not depend on it.
    """
    degree = _check_degree(degree)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)):
        raise ValueError(f"n_bootstrap must be an integer, got {n_bootstrap!r}")
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)
                               or n_jobs < 1):
        raise ValueError(f"n_jobs must be None or an integer >= 1, got {n_jobs!r}")
    arr = _matrix(X)
    n, p = arr.shape
    if n == 0:
        raise ValueError("X must have at least one row")
    yv = _vector(y, n)
    new = np.asarray(X_new, dtype=np.float64)
    new = _matrix(new.reshape(1, -1) if new.ndim == 1 else new, "X_new")
    if new.shape[1] != p:
        raise ValueError(f"X_new has {new.shape[1]} features, X has {p}")
    idx = np.random.default_rng(random_state).integers(0, n, size=(int(n_bootstrap), n))
    mono, width = _monomials(p, degree), _design_width(p, degree)
    if n_jobs is None:
        n_jobs = _usable_cores() if n * width * n_bootstrap >= PARALLEL_BOOTSTRAP_WORK else 1
    n_jobs = min(n_jobs, int(n_bootstrap))
    if n_jobs <= 1:
        return _linalg.bootstrap(arr, yv, mono, width, new, idx)
    # The compiled loop releases the GIL and allocates its own buffers, so contiguous blocks of
    # resamples run in parallel; concatenating them in order gives the sequential result.
    blocks = [np.ascontiguousarray(block) for block in np.array_split(idx, n_jobs)]
    with ThreadPoolExecutor(n_jobs) as pool:
        parts = list(pool.map(lambda block: _linalg.bootstrap(arr, yv, mono, width, new, block),
                              blocks))
    return np.concatenate(parts)


def percentile_interval(preds: Any, confidence_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central percentile interval over axis 0 (numpy linear interpolation); zeros when empty."""
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    arr = np.asarray(preds, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError("preds must be a 1-D or 2-D array")
    if arr.shape[0] == 0:
        zeros = np.zeros(arr.shape[1])
        return zeros, zeros.copy()
    alpha = 1.0 - confidence_level
    low, high = np.percentile(arr, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)], axis=0)
    return low, high
