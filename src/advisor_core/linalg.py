"""Minimum-norm least squares and the polynomial regression pipeline (compiled kernels).

The public functions take array-likes and return float64 numpy arrays; the numerics live in
``_linalg.pyx``. The model pipeline itself does not need numpy: ``PolynomialModel`` keeps its
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

import itertools
import math
from array import array
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Optional

from advisor_core import _linalg

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

_MAX_PIPELINE_DEGREE = 3

#: The numpy-facing solver (advisor_core._lstsq), bound on the first lstsq call.
_solver: Optional[Callable[..., Any]] = None


def lstsq(X: Any, y: Any, rcond: Optional[float] = None) -> np.ndarray:
    """Minimum-norm least-squares solution b of X b ≈ y (= numpy.linalg.lstsq(X, y)[0]).

    X is (m, n), y is (m,) or (m, k); the result is (n,) or (n, k). Raises ValueError for
    non-finite values or mismatched shapes.
    """
    global _solver
    if _solver is None:
        from advisor_core._lstsq import lstsq as solve

        _solver = solve
    return _solver(X, y, rcond)


# A 2-D C-contiguous buffer (a cast memoryview or a numpy array): typed Any because typeshed
# declares memoryview.shape Optional (it is None only on a released view, never here).
Rows = Any


@lru_cache(maxsize=64)
def _monomials(n_features: int, degree: int) -> Rows:
    """Read-only (J, degree) int32 table of the feature indices of each non-bias monomial."""
    flat = array("i", [
        index
        for d in range(1, degree + 1)
        for combo in itertools.combinations_with_replacement(range(n_features), d)
        for index in combo + (-1,) * (degree - d)
    ])
    return memoryview(flat).cast("B").cast("i", (len(flat) // degree, degree)).toreadonly()


def _is_float_buffer(X: Any, ndim: int) -> bool:
    """True for a C-contiguous float64 memoryview/array('d') of ndim dimensions, none empty."""
    if isinstance(X, array):
        return ndim == 1 and X.typecode == "d"
    return (isinstance(X, memoryview) and X.format == "d" and X.ndim == ndim
            and X.c_contiguous and 0 not in (X.shape or (0,)))


def _finite_buffer(X: Any) -> bool:
    """True when a C-contiguous float64 buffer (array, memoryview, numpy array) is all finite."""
    flat: Any
    if isinstance(X, memoryview):
        flat = X.cast("B").cast("d") if X.ndim > 1 else X
    else:
        flat = X if isinstance(X, array) else X.ravel()
    return bool(_linalg.all_finite(flat))


def _numpy_float(X: Any, ndim: int, name: str) -> Any:
    """X as a C-contiguous float64 numpy array of ``ndim`` dimensions, or ValueError."""
    import numpy as np

    try:
        arr = np.ascontiguousarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric {ndim}-D array") from exc
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got {arr.ndim}-D")
    return arr


def _matrix(X: Any, name: str = "X") -> Any:
    """X as a C-contiguous float64 2-D buffer of finite values, or ValueError."""
    if _is_float_buffer(X, 2):
        arr = X
    else:
        arr = _numpy_float(X, 2, name)
        if arr.shape[1] == 0:
            raise ValueError(f"{name} must have at least one column")
    if not _finite_buffer(arr):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _vector(y: Any, n: int, name: str = "y") -> Any:
    """y as a contiguous float64 1-D buffer of n finite values (n < 0: any length)."""
    arr = y if _is_float_buffer(y, 1) else _numpy_float(y, 1, name)
    if n >= 0 and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values, expected {n}")
    if not _finite_buffer(arr):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def _training_data(X: Any, y: Any) -> tuple[Any, Any]:
    """(X, y) as finite float64 buffers: X (n >= 1, p), y (n,); ValueError otherwise."""
    arr = _matrix(X)
    if arr.shape[0] == 0:
        raise ValueError("X must have at least one row")
    return arr, _vector(y, arr.shape[0])


def float_rows(flat: array, width: int) -> Rows:
    """A row-major array('d') as a 2-D (len // width, width) memoryview; non-empty input only."""
    return memoryview(flat).cast("B").cast("d", (len(flat) // width, width))


def _check_degree(degree: Any) -> int:
    if isinstance(degree, bool) or not hasattr(degree, "__index__"):
        raise ValueError(f"degree must be an integer, got {degree!r}")
    if not 1 <= degree <= _MAX_PIPELINE_DEGREE:
        raise ValueError(f"degree must be 1, 2 or 3, got {degree}")
    return int(degree)


def _design_width(n_features: int, degree: int) -> int:
    """Columns scikit-learn's LinearRegression sees (bias column included for degree >= 2)."""
    if degree == 1:
        return n_features
    return math.comb(n_features + degree, degree)


def _as_numpy(values: array, shape: Optional[tuple[int, ...]] = None) -> np.ndarray:
    """A numpy view of a kernel result (no copy), reshaped when ``shape`` is given."""
    import numpy as np

    out = np.frombuffer(values, dtype=np.float64) if len(values) else np.zeros(0)
    return out.reshape(shape) if shape is not None else out


def polynomial_features(X: Any, degree: int, include_bias: bool = True) -> np.ndarray:
    """Polynomial expansion of X in scikit-learn's PolynomialFeatures column order."""
    if isinstance(degree, bool) or not hasattr(degree, "__index__") or degree < 0:
        raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
    if degree == 0 and not include_bias:
        raise ValueError("degree 0 without the bias column would produce no columns")
    arr = _matrix(X)
    n, p = arr.shape
    degree = int(degree)
    if degree == 0:
        import numpy as np

        mono = np.zeros((0, 1), dtype=np.int32)
        width = 1
    else:
        mono = _monomials(p, degree)
        width = mono.shape[0] + (1 if include_bias else 0)
    return _as_numpy(_linalg.poly_expand(arr, mono, bool(include_bias)), (n, width))


def standard_scaler(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Column means and population standard deviations of X (zero-variance columns: scale 1)."""
    arr = _matrix(X)
    if arr.shape[0] == 0:
        raise ValueError("X must have at least one row")
    mean, scale = _linalg.scaler_stats(arr)
    return _as_numpy(mean), _as_numpy(scale)


def mean(values: Any) -> float:
    """Arithmetic mean with numpy's pairwise summation (bit for bit ``np.mean``); NaN if empty."""
    return float(_linalg.mean(_vector(values, -1, "values")))


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination (scikit-learn semantics); NaN for fewer than 2 samples."""
    yt = _vector(y_true, -1, "y_true")
    yp = _vector(y_pred, len(yt), "y_pred")
    return float(_linalg.r2(yt, yp))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error, in the unit of y; NaN when empty."""
    yt = _vector(y_true, -1, "y_true")
    yp = _vector(y_pred, len(yt), "y_pred")
    return float(_linalg.rmse(yt, yp))


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
        degree = _check_degree(degree)
        arr, yv = _training_data(X, y)
        p = arr.shape[1]
        mean, scale, coef, intercept = _linalg.fit_pipeline(
            arr, yv, _monomials(p, degree), _design_width(p, degree)
        )
        coef.insert(0, 0.0)
        return cls(degree, mean, scale, coef, float(intercept))

    @property
    def n_features(self) -> int:
        """Number of input features the model expects."""
        return len(self.mean)

    def predict_values(self, X: Any) -> array:
        """Predictions for the rows of X (n, p) as array('d'), in the unit of the target."""
        arr = _matrix(X)
        if arr.shape[1] != self.n_features:
            raise ValueError(f"X has {arr.shape[1]} features, the model expects {self.n_features}")
        return _linalg.predict_pipeline(
            arr,
            self.mean,
            self.scale,
            _monomials(self.n_features, self.degree),
            self.coef[1:],
            self.intercept + self.coef[0],
        )

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for the rows of X (n, p) as a numpy array, in the unit of the target."""
        return _as_numpy(self.predict_values(X))

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
        p = len(mean)
        if p == 0:
            raise ValueError("mean must not be empty")
        if len(scale) != p:
            raise ValueError("mean and scale lengths differ")
        if 0.0 in scale:
            raise ValueError("scale must be non-zero")
        terms = 1 + _monomials(p, degree).shape[0]
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
