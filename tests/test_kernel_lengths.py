"""The compiled entry points reject buffers shorter than the lengths their raw-pointer loops use.

The debug build's bounds checks cover memoryview indexing only; these lengths feed pointer
arithmetic, so without the checks a mismatch is an out-of-bounds read (the sanitizer build in
.ci/run aborts on it) and, in a release build, silently wrong numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from advisor_core.models import _crossval, _guarded, _pipeline, _resampling
from advisor_core.models.arrays import monomials
from advisor_core.models.linalg import PolynomialModel


def _model(p_mean: int, p_scale: int, n_coef: int) -> PolynomialModel:
    return PolynomialModel(1, np.zeros(p_mean), np.ones(p_scale), np.zeros(n_coef), 0.0)


@pytest.mark.parametrize(
    ("p_mean", "p_scale", "n_coef", "what"),
    [(3, 1, 4, "scale"), (3, 3, 2, "coef")],
)
def test_inconsistent_model_arrays_raise(p_mean: int, p_scale: int, n_coef: int, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        _model(p_mean, p_scale, n_coef).predict(np.zeros((2, 3)))


def test_consistent_model_predicts_intercept_plus_linear_term() -> None:
    model = PolynomialModel(1, np.zeros(2), np.ones(2), np.array([0.0, 2.0, -1.0]), 0.5)
    assert model.predict(np.array([[1.0, 3.0]])).tolist() == [0.5 + 2.0 - 3.0]


@pytest.mark.parametrize("metric", [_pipeline.r2, _pipeline.rmse])
def test_metrics_reject_short_predictions(metric) -> None:
    with pytest.raises(ValueError, match="y_pred"):
        metric(np.arange(30.0), np.arange(29.0))


def test_fitting_kernels_reject_a_short_target() -> None:
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(9.0)
    mono = monomials(2, 1)
    with pytest.raises(ValueError, match="y"):
        _pipeline.fit_pipeline(X, y, mono, 3)
    with pytest.raises(ValueError, match="y"):
        _crossval.cv_predict(X, y, mono, 3, mono, 3, np.arange(10, dtype=np.int64), 10, b"\0\0")
    with pytest.raises(ValueError, match="fold"):
        _crossval.cv_predict(X, np.arange(10.0), mono, 3, mono, 3, np.arange(9, dtype=np.int64),
                             10, b"\0\0")
    with pytest.raises(ValueError, match="rising"):
        _crossval.cv_predict(X, np.arange(10.0), mono, 3, mono, 3, np.arange(10, dtype=np.int64),
                           10, b"\0")
    with pytest.raises(ValueError, match="slope"):
        _guarded.clip_continue(X, np.zeros(2), np.ones(2), b"\0\0", np.zeros(1))
    with pytest.raises(ValueError, match="Xn"):
        _guarded.leverage(X, mono, 3, np.zeros((1, 3)))
    idx = np.zeros(2 * 10, dtype=np.int64)
    out, ok = np.zeros(2 * 10), bytearray(2)
    with pytest.raises(ValueError, match="y"):
        _resampling.bootstrap(X, y, mono, 3, X, idx, out, ok, 0, 2)
    with pytest.raises(ValueError, match="Xn"):
        _resampling.bootstrap(X, np.arange(10.0), mono, 3, np.zeros((1, 3)), idx, out, ok, 0, 2)


@pytest.mark.parametrize(("idx_len", "out_len", "ok_len", "stop", "what"), [
    (19, 20, 2, 2, "range"),   # one index short of two resamples of 10 rows
    (20, 19, 2, 2, "out"),     # one prediction short of 2 resamples x 10 new rows
    (20, 20, 1, 2, "range"),   # one success flag short
    (20, 20, 2, 3, "range"),   # a resample beyond idx
])
def test_bootstrap_rejects_buffers_shorter_than_its_range(idx_len, out_len, ok_len, stop, what):
    X = np.arange(20.0).reshape(10, 2)
    mono = monomials(2, 1)
    with pytest.raises(ValueError, match=what):
        _resampling.bootstrap(X, np.arange(10.0), mono, 2, X, np.zeros(idx_len, dtype=np.int64),
                          np.zeros(out_len), bytearray(ok_len), 0, stop)


def test_percentile_rejects_values_shorter_than_rows_times_columns():
    with pytest.raises(ValueError, match="smaller"):
        _resampling.percentile_pair(np.zeros(5), b"\x01\x01", 3, 2.5, 97.5)
