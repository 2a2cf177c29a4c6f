"""Bootstrap resampling of the regression pipeline: seeded resample indices, refits'
predictions and their central percentile intervals (compiled loops in ``_resampling.pyx``).

The resamples are drawn with the standard library's seeded generator (``resample_indices``), so
a seed reproduces a result without numpy; a resample is refitted on its distinct rows weighted
by ``sqrt(multiplicity)`` (``advisor_core.models.linalg``'s exact shortcuts).
"""

from __future__ import annotations

import os
import random
from array import array
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Optional

from advisor_core.models import _resampling
from advisor_core.models.arrays import (
    as_numpy,
    check_degree,
    design_width,
    is_float_buffer,
    matrix,
    monomials,
    training_data,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "PARALLEL_BOOTSTRAP_WORK",
    "bootstrap_interval",
    "bootstrap_predictions",
    "percentile_interval",
    "resample_indices",
]


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
    degree = check_degree(degree)
    if isinstance(n_bootstrap, bool) or not hasattr(n_bootstrap, "__index__"):
        raise ValueError(f"n_bootstrap must be an integer, got {n_bootstrap!r}")
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be >= 0")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)
                               or n_jobs < 1):
        raise ValueError(f"n_jobs must be None or an integer >= 1, got {n_jobs!r}")
    arr, yv = training_data(X, y)
    n, p = arr.shape
    new = X_new if is_float_buffer(X_new, 2) else _new_rows(X_new)
    new = matrix(new, "X_new")
    if new.shape[1] != p:
        raise ValueError(f"X_new has {new.shape[1]} features, X has {p}")
    cols = int(new.shape[0])
    idx = resample_indices(n, n_bootstrap, random_state)
    mono, width = monomials(p, degree), design_width(p, degree)
    out = array("d", [0.0]) * (n_bootstrap * cols)
    ok = bytearray(n_bootstrap)
    if n_jobs is None:
        n_jobs = _usable_cores() if n * width * n_bootstrap >= PARALLEL_BOOTSTRAP_WORK else 1
    n_jobs = max(1, min(n_jobs, n_bootstrap))

    def run(block: tuple[int, int]) -> None:
        _resampling.bootstrap(arr, yv, mono, width, new, idx, out, ok, block[0], block[1])

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
    values = as_numpy(out, (len(ok), cols))
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
    return _resampling.percentile_pair(out, ok, cols, q_low, q_high)


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
    low, high = _resampling.percentile_pair(np.ascontiguousarray(arr).ravel(),
                                        b"\x01" * arr.shape[0], arr.shape[1], q_low, q_high)
    return as_numpy(low), as_numpy(high)
