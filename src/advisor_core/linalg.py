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

The pipeline (``PolynomialModel``, ``cross_val_predict``, ``bootstrap_predictions``) is
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
import os
import random
from array import array
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Optional

from advisor_core import _linalg

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "PolynomialModel",
    "TrainedBox",
    "bootstrap_interval",
    "bootstrap_predictions",
    "cross_val_predict",
    "float_rows",
    "leverage",
    "lstsq",
    "mean",
    "percentile_interval",
    "polynomial_features",
    "r2_score",
    "resample_indices",
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


#: Bootstrap work (rows x design columns x resamples) from which the resamples are split over
#: threads: below it, starting threads costs more than it saves.
PARALLEL_BOOTSTRAP_WORK = 1_000_000


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resample_indices(n: int, n_bootstrap: int, random_state: Any = 0) -> Any:
    """Row indices of n_bootstrap resamples of n rows, flat (resample-major) int64 buffer.

    A non-negative int seed (reproducible) or None (fresh entropy) draws with the standard
    library's Mersenne Twister into an ``array('q')``, without numpy; a numpy Generator or
    SeedSequence draws ``integers(0, n, size=(n_bootstrap, n))`` with numpy. The bootstrap
    needs a seeded, uniform stream, not a particular generator's.
    """
    for name, value in (("n", n), ("n_bootstrap", n_bootstrap)):
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    n, n_bootstrap = int(n), int(n_bootstrap)
    if n < 1:
        raise ValueError("n must be >= 1")
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    if random_state is None or (hasattr(random_state, "__index__")
                                and not isinstance(random_state, bool)):
        seed = None if random_state is None else int(random_state)
        if seed is not None and seed < 0:
            raise ValueError("random_state must be a non-negative int, None or a numpy Generator")
        draws = random.Random(seed).choices(range(n), k=n * n_bootstrap)
        return array("q", draws)
    import numpy as np

    return np.random.default_rng(random_state).integers(0, n, size=(n_bootstrap, n)).ravel()


def _bootstrap(X: Any, y: Any, degree: int, X_new: Any, n_bootstrap: Any,
               random_state: Any, n_jobs: Optional[int]) -> tuple[array, bytearray, int]:
    """Resampled refits' predictions: (row-major values, per-resample success flags, columns)."""
    degree = _check_degree(degree)
    if isinstance(n_bootstrap, bool) or not hasattr(n_bootstrap, "__index__"):
        raise ValueError(f"n_bootstrap must be an integer, got {n_bootstrap!r}")
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)
                               or n_jobs < 1):
        raise ValueError(f"n_jobs must be None or an integer >= 1, got {n_jobs!r}")
    arr, yv = _training_data(X, y)
    n, p = arr.shape
    new = X_new if _is_float_buffer(X_new, 2) else _new_rows(X_new)
    new = _matrix(new, "X_new")
    if new.shape[1] != p:
        raise ValueError(f"X_new has {new.shape[1]} features, X has {p}")
    cols = int(new.shape[0])
    idx = resample_indices(n, n_bootstrap, random_state)
    mono, width = _monomials(p, degree), _design_width(p, degree)
    out = array("d", [0.0]) * (n_bootstrap * cols)
    ok = bytearray(n_bootstrap)
    if n_jobs is None:
        n_jobs = _usable_cores() if n * width * n_bootstrap >= PARALLEL_BOOTSTRAP_WORK else 1
    n_jobs = max(1, min(n_jobs, n_bootstrap))

    def run(block: tuple[int, int]) -> None:
        _linalg.bootstrap(arr, yv, mono, width, new, idx, out, ok, block[0], block[1])

    # The compiled loop releases the GIL and each thread fills its own rows of the shared
    # buffers, so the result does not depend on the number of threads.
    bounds = [n_bootstrap * j // n_jobs for j in range(n_jobs + 1)]
    blocks = list(zip(bounds, bounds[1:]))
    if n_jobs == 1:
        run(blocks[0])
    else:
        with ThreadPoolExecutor(n_jobs) as pool:
            list(pool.map(run, blocks))
    return out, ok, cols


def _new_rows(X_new: Any) -> Any:
    """X_new as a 2-D numpy array (a 1-D X_new is one row)."""
    import numpy as np

    new = np.asarray(X_new, dtype=np.float64)
    return new.reshape(1, -1) if new.ndim == 1 else new


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

    Resample indices are ``resample_indices(n, n_bootstrap, random_state)``, so a seed
    reproduces the result. A 1-D X_new is one row. ``n_jobs`` threads share the resamples
    (None: the usable cores, for large problems only); the result does not depend on it.
    """
    import numpy as np

    out, ok, cols = _bootstrap(X, y, degree, X_new, n_bootstrap, random_state, n_jobs)
    values = _as_numpy(out, (len(ok), cols))
    return values[np.frombuffer(bytes(ok), dtype=np.uint8).astype(bool)]


def _interval_bounds(confidence_level: float) -> tuple[float, float]:
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    alpha = 1.0 - confidence_level
    return 100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)


def bootstrap_interval(
    X: Any, y: Any, degree: int, X_new: Any, n_bootstrap: int, confidence_level: float,
    random_state: Any = 0, n_jobs: Optional[int] = None,
) -> Optional[tuple[array, array]]:
    """Central percentile interval of ``bootstrap_predictions`` per row of X_new, as array('d').

    None when no resample could be refitted. The same numbers as ``percentile_interval`` of
    ``bootstrap_predictions``, without numpy.
    """
    q_low, q_high = _interval_bounds(confidence_level)
    out, ok, cols = _bootstrap(X, y, degree, X_new, n_bootstrap, random_state, n_jobs)
    if 1 not in ok:
        return None
    return _linalg.percentile_pair(out, ok, cols, q_low, q_high)


def percentile_interval(preds: Any, confidence_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central percentile interval over axis 0 (numpy linear interpolation); zeros when empty."""
    import numpy as np

    q_low, q_high = _interval_bounds(confidence_level)
    arr = np.asarray(preds, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError("preds must be a 1-D or 2-D array")
    if arr.shape[0] == 0:
        zeros = np.zeros(arr.shape[1])
        return zeros, zeros.copy()
    if not np.isfinite(arr).all():  # numpy's NaN and infinity rules
        low, high = np.percentile(arr, [q_low, q_high], axis=0)
        return low, high
    low, high = _linalg.percentile_pair(np.ascontiguousarray(arr).ravel(),
                                        b"\x01" * arr.shape[0], arr.shape[1], q_low, q_high)
    return _as_numpy(low), _as_numpy(high)


# ---------------------------------------------------------------------------------------------
# Prediction intervals and guarded extrapolation
# ---------------------------------------------------------------------------------------------


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
        arr = _matrix(X)
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
        arr = _matrix(X, "X_new")
        flat, inc = _linalg.clip_continue(arr, self.lo, self.hi, self.rising, self.slope)
        return float_rows(flat, arr.shape[1]), inc

    def outside(self, X: Any, columns: int) -> list[bool]:
        """Per row of X, whether one of its first ``columns`` features lies outside the box."""
        arr = _matrix(X, "X_new")
        lo, hi = self.lo, self.hi
        return [any(not lo[j] <= arr[i, j] <= hi[j] for j in range(columns))
                for i in range(arr.shape[0])]


def guarded_predict(model: PolynomialModel, box: TrainedBox, X: Any) -> array:
    """Predictions of ``model`` inside ``box``, continued by its linear trend beyond it.

    Each row is clipped into the trained range, the model is evaluated there, and the trend's
    change from the clipped row to the row is added (``TrainedBox``): no polynomial is ever
    evaluated outside the data it was fitted on, and the stream count never lowers power.
    """
    arr = _matrix(X, "X_new")
    if arr.shape[1] != model.n_features:
        raise ValueError(f"X has {arr.shape[1]} features, the model expects {model.n_features}")
    return _linalg.guarded_predict(
        arr, model.mean, model.scale, _monomials(model.n_features, model.degree),
        model.coef[1:], model.intercept + model.coef[0], box.lo, box.hi, box.rising, box.slope)


def leverage(X: Any, degree: int, X_new: Any) -> tuple[int, array]:
    """(rank, h): rank of the centred design of the degree-``degree`` pipeline on X, and the
    leverage ``h = 1/n + v'(Zc'Zc)^+ v`` of each row of X_new (prediction variance / sigma²)."""
    degree = _check_degree(degree)
    arr = _matrix(X)
    new = _matrix(X_new, "X_new")
    p = arr.shape[1]
    if new.shape[1] != p:
        raise ValueError(f"X_new has {new.shape[1]} features, X has {p}")
    return _linalg.leverage(arr, _monomials(p, degree), _design_width(p, degree), new)


def cross_val_predict(X: Any, y: Any, degree: int, fold: Any, rising: bytes) -> array:
    """Out-of-fold predictions (array('d'), NaN where a fold's fit failed) for fold labels
    ``fold`` (int64 buffer, labels 0..k-1), each held-out row predicted like a fitted model
    predicts it (``guarded_predict`` inside its fold's training box)."""
    degree = _check_degree(degree)
    arr, yv = _training_data(X, y)
    p = arr.shape[1]
    k = max(fold) + 1 if len(fold) else 0
    return _linalg.cv_predict(arr, yv, _monomials(p, degree), _design_width(p, degree),
                              _monomials(p, 1), _design_width(p, 1), fold, k, bytes(rising))
