"""The float64 buffers the compiled kernels take: checks, conversions and the monomial table.

Shared by ``linalg`` (least squares and the fitted pipeline), ``extrapolation`` and
``resampling``. Inputs may be numpy arrays, ``array('d')`` or 2-D float64 ``memoryview``
buffers; numpy is imported only when a conversion needs it.
"""

from __future__ import annotations

import itertools
import math
from array import array
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Optional

from advisor_core.models import _solver

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "MAX_PIPELINE_DEGREE",
    "Rows",
    "as_numpy",
    "check_degree",
    "design_width",
    "finite_buffer",
    "float_rows",
    "is_float_buffer",
    "matrix",
    "monomials",
    "training_data",
    "vector",
]

MAX_PIPELINE_DEGREE = 3


# A 2-D C-contiguous buffer (a cast memoryview or a numpy array): typed Any because typeshed
# declares memoryview.shape Optional (it is None only on a released view, never here).
Rows = Any


@lru_cache(maxsize=64)
def monomials(n_features: int, degree: int) -> Rows:
    """Read-only (J, degree) int32 table of the feature indices of each non-bias monomial."""
    flat = array("i", [
        index
        for d in range(1, degree + 1)
        for combo in itertools.combinations_with_replacement(range(n_features), d)
        for index in combo + (-1,) * (degree - d)
    ])
    return memoryview(flat).cast("B").cast("i", (len(flat) // degree, degree)).toreadonly()


def is_float_buffer(X: Any, ndim: int) -> bool:
    """True for a C-contiguous float64 memoryview/array('d') of ndim dimensions, none empty."""
    if isinstance(X, array):
        return ndim == 1 and X.typecode == "d"
    return (isinstance(X, memoryview) and X.format == "d" and X.ndim == ndim
            and X.c_contiguous and 0 not in (X.shape or (0,)))


def finite_buffer(X: Any) -> bool:
    """True when a C-contiguous float64 buffer (array, memoryview, numpy array) is all finite."""
    flat: Any
    if isinstance(X, memoryview):
        flat = X.cast("B").cast("d") if X.ndim > 1 else X
    else:
        flat = X if isinstance(X, array) else X.ravel()
    return bool(_solver.all_finite(flat))


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


def matrix(X: Any, name: str = "X") -> Any:
    """X as a C-contiguous float64 2-D buffer of finite values, or ValueError."""
    if is_float_buffer(X, 2):
        arr = X
    else:
        arr = _numpy_float(X, 2, name)
        if arr.shape[1] == 0:
            raise ValueError(f"{name} must have at least one column")
    if not finite_buffer(arr):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def vector(y: Any, n: int, name: str = "y") -> Any:
    """y as a contiguous float64 1-D buffer of n finite values (n < 0: any length)."""
    arr = y if is_float_buffer(y, 1) else _numpy_float(y, 1, name)
    if n >= 0 and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values, expected {n}")
    if not finite_buffer(arr):
        raise ValueError(f"{name} must contain only finite values")
    return arr


def training_data(X: Any, y: Any) -> tuple[Any, Any]:
    """(X, y) as finite float64 buffers: X (n >= 1, p), y (n,); ValueError otherwise."""
    arr = matrix(X)
    if arr.shape[0] == 0:
        raise ValueError("X must have at least one row")
    return arr, vector(y, arr.shape[0])


def float_rows(flat: array, width: int) -> Rows:
    """A row-major array('d') as a 2-D (len // width, width) memoryview; non-empty input only."""
    return memoryview(flat).cast("B").cast("d", (len(flat) // width, width))


def check_degree(degree: Any) -> int:
    """degree as an int, or ValueError unless it is 1, 2 or 3 (the pipeline's degrees)."""
    if isinstance(degree, bool) or not hasattr(degree, "__index__"):
        raise ValueError(f"degree must be an integer, got {degree!r}")
    if not 1 <= degree <= MAX_PIPELINE_DEGREE:
        raise ValueError(f"degree must be 1, 2 or 3, got {degree}")
    return int(degree)


def design_width(n_features: int, degree: int) -> int:
    """Columns scikit-learn's LinearRegression sees (bias column included for degree >= 2)."""
    if degree == 1:
        return n_features
    return math.comb(n_features + degree, degree)


def as_numpy(values: array, shape: Optional[tuple[int, ...]] = None) -> np.ndarray:
    """A numpy view of a kernel result (no copy), reshaped when ``shape`` is given."""
    import numpy as np

    out = np.frombuffer(values, dtype=np.float64) if len(values) else np.zeros(0)
    return out.reshape(shape) if shape is not None else out
