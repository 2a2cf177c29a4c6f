"""Bootstrap row indices (``resample_indices``): seeded, uniform, numpy-free for int seeds."""

from __future__ import annotations

import os
import subprocess
import sys
from array import array
from pathlib import Path

import numpy as np
import pytest

import advisor_core
from advisor_core.models.resampling import bootstrap_predictions, resample_indices


def test_int_seed_reproduces_and_seeds_differ():
    first = resample_indices(37, 40, 5)
    assert isinstance(first, array) and first.typecode == "q" and len(first) == 37 * 40
    assert first == resample_indices(37, 40, 5)
    assert first != resample_indices(37, 40, 6)
    assert all(0 <= i < 37 for i in first)


def test_seed_none_draws_fresh_entropy():
    first, second = resample_indices(1000, 5, None), resample_indices(1000, 5, None)
    assert len(first) == len(second) == 5000
    assert first != second  # equal streams: probability 1000**-5000


@pytest.mark.parametrize("seed", [0, None])
def test_draws_are_uniform(seed):
    draws = resample_indices(10, 2000, seed)
    counts = np.bincount(np.frombuffer(draws, dtype=np.int64), minlength=10)
    # Pearson's chi-square, 9 degrees of freedom: 27.88 is its 0.999 quantile.
    chi2 = float(((counts - 2000.0) ** 2 / 2000.0).sum())
    assert chi2 < 27.88, counts


def test_numpy_generators_draw_with_numpy():
    got = resample_indices(9, 4, np.random.default_rng(3))
    assert got.tolist() == np.random.default_rng(3).integers(0, 9, size=(4, 9)).ravel().tolist()


def test_edges_and_numpy_integers():
    assert resample_indices(1, 4, 3).tolist() == [0, 0, 0, 0]
    assert resample_indices(50, 0, 3).tolist() == []
    assert resample_indices(np.int64(9), np.int32(4), 7) == resample_indices(9, 4, 7)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0, 3, 0), ValueError, "n must be >= 1"),
        ((5, -1, 0), ValueError, "n_bootstrap must be >= 0"),
        ((5, 3, -1), ValueError, "non-negative"),
        ((5.0, 3, 0), TypeError, "n must be an int, not float"),
        ((True, 3, 0), TypeError, "n must be an int, not bool"),
        ((5, "3", 0), TypeError, "n_bootstrap must be an int, not str"),
    ],
)
def test_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        resample_indices(*args)


def test_bootstrap_is_reproducible_and_centred_on_the_fit():
    rng = np.random.default_rng(1)
    X = rng.uniform(1, 8, (30, 1))
    y = 50 + 12 * X[:, 0] + rng.normal(0, 2, 30)
    first = bootstrap_predictions(X, y, 1, [[4.0]], 200, random_state=11)
    again = bootstrap_predictions(X, y, 1, [[4.0]], 200, random_state=11)
    np.testing.assert_array_equal(first, again)
    fitted = np.polyval(np.polyfit(X[:, 0], y, 1), 4.0)
    # The resampled fits scatter around the full fit by about its standard error (~0.4 W).
    assert abs(float(np.median(first)) - fitted) < 0.3
    assert 0.1 < float(np.std(first)) < 1.0


def test_int_seeds_do_not_load_numpy():
    code = (
        "import sys\n"
        "from advisor_core.models.resampling import resample_indices\n"
        "assert resample_indices(20, 3, 0) and resample_indices(20, 3, None)\n"
        "assert 'numpy' not in sys.modules\n"
    )
    src = str(Path(advisor_core.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)
