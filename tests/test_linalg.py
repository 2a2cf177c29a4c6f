"""advisor_core.models.linalg against numpy / scikit-learn oracles."""

from __future__ import annotations

import json
import math
import warnings
from array import array

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import r2_score as sk_r2
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from _oracle import sk_oof, sk_pipeline
from advisor_core.models import extrapolation, linalg, resampling

EPS = np.finfo(np.float64).eps


def np_lstsq(X, y, rcond=None):
    return np.linalg.lstsq(X, y, rcond=rcond)[0]


def assert_close(actual, expected, rtol):
    """Max-norm relative agreement (relative to the largest entry of the expected value)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    err = float(np.max(np.abs(actual - expected), initial=0.0)) / scale
    assert err <= rtol, f"relative error {err:.3g} > {rtol:.1g}"


def design(rng, n, p, *, constant=True, collinear=True, binary=True):
    """A predictor-like design: mixed scales, optional constant/collinear/one-hot columns."""
    X = rng.standard_normal((n, p)) * np.logspace(0, 3, p)
    if constant and p > 1:
        X[:, 1] = 7.5
    if collinear and p > 3:
        X[:, 3] = 2.0 * X[:, 0] - 1.0
    if binary and p > 4:
        X[:, 4] = rng.integers(0, 2, n)
    y = X @ (rng.standard_normal(p) / np.logspace(0, 3, p)) + 0.1 * rng.standard_normal(n)
    return X, y


# ---------------------------------------------------------------------------------------------
# lstsq
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(1, 1), (3, 1), (15, 3), (40, 7), (200, 10), (50, 60), (5, 8), (1, 4), (300, 30)]
)
def test_lstsq_random_matches_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    X = rng.standard_normal(shape)
    y = rng.standard_normal(shape[0])
    assert_close(linalg.lstsq(X, y), np_lstsq(X, y), 1e-10)


def test_lstsq_two_dimensional_y():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 5))
    Y = rng.standard_normal((30, 3))
    out = linalg.lstsq(X, Y)
    assert out.shape == (5, 3)
    assert_close(out, np_lstsq(X, Y), 1e-10)


def test_lstsq_ill_conditioned_vandermonde():
    t = np.linspace(0.0, 1.0, 40)
    V = np.vander(t, 10, increasing=True)
    cond = np.linalg.cond(V)
    assert 1e6 < cond < 1e10
    y = np.cos(3 * t)
    ours = linalg.lstsq(V, y)
    ref = np_lstsq(V, y)
    # Forward error of any backward-stable solver is about cond * eps.
    assert_close(ours, ref, 50 * cond * EPS)
    # The residual is well conditioned: compare it tightly (floor: its own rounding error).
    floor = 1e-13 * np.linalg.norm(V) * np.linalg.norm(ref)
    assert np.linalg.norm(V @ ours - y) <= np.linalg.norm(V @ ref - y) * (1 + 1e-9) + floor


@pytest.mark.parametrize("kind", ["duplicate", "zero", "collinear", "all"])
@pytest.mark.parametrize("rows", [4, 12, 100])
def test_lstsq_rank_deficient_min_norm(kind, rows):
    rng = np.random.default_rng(rows)
    base = rng.standard_normal((rows, 4))
    cols = [base]
    if kind in ("duplicate", "all"):
        cols.append(base[:, [1]])
    if kind in ("zero", "all"):
        cols.append(np.zeros((rows, 1)))
    if kind in ("collinear", "all"):
        cols.append(base[:, [0]] * 3.0 - base[:, [2]] * 0.5)
    X = np.hstack(cols)[:, ::-1].copy()
    y = rng.standard_normal(rows)
    assert_close(linalg.lstsq(X, y), np_lstsq(X, y), 1e-9)
    Y = rng.standard_normal((rows, 2))
    assert_close(linalg.lstsq(X, Y), np_lstsq(X, Y), 1e-9)


def test_lstsq_underdetermined_is_min_norm_interpolant():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 20))
    y = rng.standard_normal(6)
    b = linalg.lstsq(X, y)
    assert_close(X @ b, y, 1e-12)
    assert_close(b, np.linalg.pinv(X) @ y, 1e-10)


def test_lstsq_zero_matrix_and_empty_shapes():
    assert_close(linalg.lstsq(np.zeros((5, 3)), np.ones(5)), np.zeros(3), 0.0)
    assert linalg.lstsq(np.zeros((0, 3)), np.zeros(0)).shape == (3,)
    assert linalg.lstsq(np.zeros((4, 0)), np.ones(4)).shape == (0,)


def test_lstsq_explicit_rcond_matches_numpy():
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((30, 6)))
    V, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    X = U @ np.diag([1.0, 0.5, 1e-2, 1e-4, 1e-7, 1e-9]) @ V.T
    y = rng.standard_normal(30)
    for rcond in (1e-3, 1e-5, 1e-8):
        assert_close(linalg.lstsq(X, y, rcond=rcond), np_lstsq(X, y, rcond), 1e-8)
    # rcond = 0 keeps every non-zero singular value (the 1e-9 one has condition 1e9);
    # rcond >= 1 drops them all; a negative rcond means machine precision.
    assert_close(linalg.lstsq(X, y, rcond=0.0), np_lstsq(X, y, 0.0), 1e-5)
    assert_close(linalg.lstsq(X, y, rcond=2.0), np.zeros(6), 0.0)
    assert_close(linalg.lstsq(X, y, rcond=-1), np_lstsq(X, y, -1), 1e-5)


@pytest.mark.parametrize("factor", [0.3, 3.0])
@pytest.mark.parametrize("shape", [(40, 6), (6, 40)])
def test_lstsq_rank_decision_near_the_cutoff_matches_numpy(factor, shape):
    # One singular value a small factor below / above numpy's cut-off eps * max(m, n) * s_max:
    # numpy drops / keeps it, and so must we (the solution norm differs by ~1e12 between them).
    rng = np.random.default_rng(int(factor * 10) + shape[0])
    m, n = shape
    k = min(m, n)
    U, _ = np.linalg.qr(rng.standard_normal((m, k)))
    V, _ = np.linalg.qr(rng.standard_normal((n, k)))
    s = np.linspace(1.0, 0.1, k)
    s[-1] = factor * EPS * max(m, n)
    X = (U * s) @ V.T
    y = rng.standard_normal(m)
    ours = linalg.lstsq(X, y)
    ref = np_lstsq(X, y)
    # A kept value this close to the cut-off has condition ~1 / (factor * max(m, n) * eps),
    # so its component is only accurate to about a percent in any solver.
    assert np.linalg.norm(ours) == pytest.approx(np.linalg.norm(ref), rel=0.05)
    floor = 1e-13 * np.linalg.norm(X) * np.linalg.norm(ref)  # rounding of X @ b itself
    assert np.linalg.norm(X @ ours - y) <= np.linalg.norm(X @ ref - y) * (1 + 1e-6) + floor


@pytest.mark.parametrize("n", [60, 90, 120])
@pytest.mark.parametrize("transpose", [False, True])
def test_lstsq_kahan_matrix_rank_matches_numpy(n, transpose):
    # Kahan's matrix defeats rank detection by pivoted QR alone: its last diagonal entry is
    # ~1e10 times the cut-off while its smallest singular value is below it (for n = 90, 120).
    theta = 1.2
    s, c = np.sin(theta), np.cos(theta)
    K = np.diag(s ** np.arange(n)) @ (np.triu(-c * np.ones((n, n)), 1) + np.eye(n))
    K = K @ np.diag(1 - 1e-10 * np.arange(n))  # keeps the pivot order (standard perturbation)
    X = K.T if transpose else K
    y = np.random.default_rng(n).standard_normal(n)
    ref = np_lstsq(X, y)
    assert np.linalg.norm(linalg.lstsq(X, y)) == pytest.approx(np.linalg.norm(ref), rel=0.05)


def test_lstsq_svd_path_with_several_right_hand_sides():
    rng = np.random.default_rng(12)
    X = rng.standard_normal((5, 9)) @ np.diag(np.logspace(0, -6, 9))
    Y = rng.standard_normal((5, 3))
    for rcond in (1e-2, 1e-4):
        assert_close(linalg.lstsq(X, Y, rcond=rcond), np_lstsq(X, Y, rcond), 1e-8)
        assert_close(
            linalg.lstsq(X.T, Y[:, 0].repeat(2)[:9], rcond=rcond),
            np_lstsq(X.T, Y[:, 0].repeat(2)[:9], rcond),
            1e-8,
        )


def test_lstsq_accepts_lists_ints_and_strided_views():
    X = np.arange(24, dtype=np.int64).reshape(6, 4) % 5
    y = [1, 2, 0, 4, 3, 1]
    assert_close(linalg.lstsq(X, y), np_lstsq(X.astype(float), np.array(y, float)), 1e-10)
    rng = np.random.default_rng(8)
    big = rng.standard_normal((20, 10))
    view = big[::2, ::3]
    assert_close(linalg.lstsq(view, big[::2, 1]), np_lstsq(view, big[::2, 1]), 1e-10)
    assert_close(linalg.lstsq(big.T.copy().T, big[:, 0]), np_lstsq(big, big[:, 0]), 1e-10)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.ones(3), np.ones(3), "2-D"),
        (np.ones((3, 2)), np.ones(4), "rows"),
        (np.ones((3, 2)), np.ones((3, 2, 1)), "1-D or 2-D"),
        (np.array([[1.0, np.nan], [2.0, 3.0]]), np.ones(2), "finite"),
        (np.ones((2, 2)), np.array([1.0, np.inf]), "finite"),
    ],
)
def test_lstsq_rejects_bad_input(X, y, message):
    with pytest.raises(ValueError, match=message):
        linalg.lstsq(X, y)


@settings(max_examples=150, deadline=None)
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    rank=st.integers(0, 12),
    seed=st.integers(0, 2**32 - 1),
    scale_exp=st.integers(-8, 8),
)
def test_lstsq_residual_never_worse_than_numpy(m, n, rank, seed, scale_exp):
    rng = np.random.default_rng(seed)
    r = min(rank, m, n)
    X = rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) * 10.0**scale_exp
    if r == 0:
        X = np.zeros((m, n))
    y = rng.standard_normal(m)
    ours = linalg.lstsq(X, y)
    ref = np_lstsq(X, y)
    res_ours = np.linalg.norm(X @ ours - y)
    res_ref = np.linalg.norm(X @ ref - y)
    # Floor: the rounding error of evaluating a residual at all (~eps * |X| |b|).
    floor = 1e-13 * (np.linalg.norm(y) + np.linalg.norm(X) * np.linalg.norm(ref))
    assert res_ours <= res_ref * (1 + 1e-9) + floor


# ---------------------------------------------------------------------------------------------
# polynomial_features, standard_scaler, r2_score, rmse
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("width", [1, 2, 4, 6])
@pytest.mark.parametrize("bias", [True, False])
def test_polynomial_features_matches_sklearn(degree, width, bias):
    if degree == 0 and not bias:
        with pytest.raises(ValueError):
            linalg.polynomial_features(np.ones((2, width)), 0, include_bias=False)
        return
    X = np.random.default_rng(width).standard_normal((7, width))
    ref = PolynomialFeatures(degree, include_bias=bias).fit_transform(X)
    assert_close(linalg.polynomial_features(X, degree, include_bias=bias), ref, 1e-15)


def test_polynomial_features_rejects_negative_degree():
    with pytest.raises(ValueError, match="degree"):
        linalg.polynomial_features(np.ones((2, 2)), -1)


def test_standard_scaler_matches_sklearn():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((25, 5)) * [1.0, 1e3, 1e-3, 1.0, 5.0] + [0.0, 1e4, 0.0, 0.1, 0.0]
    X[:, 3] = 0.1  # constant (its computed variance is a rounding artefact)
    X[:, 4] = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 5)
    mean, scale = linalg.standard_scaler(X)
    ref = StandardScaler().fit(X)
    assert_close(mean, ref.mean_, 1e-15)
    assert_close(scale, ref.scale_, 1e-14)
    assert scale[3] == 1.0


def test_r2_and_rmse_match_sklearn_and_numpy():
    rng = np.random.default_rng(2)
    y = rng.standard_normal(30)
    p = y + 0.3 * rng.standard_normal(30)
    assert linalg.r2_score(y, p) == pytest.approx(sk_r2(y, p), rel=1e-12)
    assert linalg.rmse(y, p) == pytest.approx(np.sqrt(np.mean((y - p) ** 2)), rel=1e-12)
    const = np.full(9, 0.1)
    assert linalg.r2_score(const, const) == 1.0 == sk_r2(const, const)
    assert linalg.r2_score(const, const + 1e-3) == 0.0 == sk_r2(const, const + 1e-3)
    assert math.isnan(linalg.r2_score([1.0], [2.0]))
    with pytest.raises(ValueError):
        linalg.r2_score([1.0, 2.0], [1.0])


# ---------------------------------------------------------------------------------------------
# PolynomialModel
# ---------------------------------------------------------------------------------------------

DESIGNS = [(15, 7), (6, 5), (40, 3), (200, 9), (4, 9), (12, 2)]


@pytest.mark.parametrize(("n", "p"), DESIGNS)
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_polynomial_model_matches_sklearn_pipeline(n, p, degree):
    rng = np.random.default_rng(n * 10 + p)
    X, y = design(rng, n, p)
    X_new = design(rng, 6, p)[0] * 1.3
    X_new[:, 1] = 9.0  # a value the constant training column never had
    model = linalg.PolynomialModel.fit(X, y, degree)
    ref = sk_pipeline(degree, n, p).fit(X, y)
    assert_close(model.predict(X_new), ref.predict(X_new), 1e-8)
    assert_close(model.predict(X), ref.predict(X), 1e-8)
    scaler = ref.named_steps["standardscaler"]
    assert_close(model.mean, scaler.mean_, 1e-15)
    assert_close(model.scale, scaler.scale_, 1e-14)
    reg = ref.named_steps["linearregression"]
    assert len(model.coef) == (reg.coef_.shape[0] if degree > 1 else p + 1)
    if degree > 1 and n > reg.coef_.shape[0]:
        # Overdetermined full-rank-after-dropping problems have a unique coefficient vector.
        assert_close(model.coef, reg.coef_, 1e-7)


def test_polynomial_model_coefficients_on_a_clean_problem():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 3))
    y = 1.0 + X[:, 0] - 2.0 * X[:, 1] * X[:, 2]
    model = linalg.PolynomialModel.fit(X, y, 2)
    ref = sk_pipeline(2, 50, 3).fit(X, y)
    reg = ref.named_steps["linearregression"]
    assert_close(model.coef, reg.coef_, 1e-10)
    assert model.intercept == pytest.approx(reg.intercept_, rel=1e-10)
    assert model.coef[0] == 0.0


def test_polynomial_model_dict_round_trip_is_json():
    rng = np.random.default_rng(6)
    X, y = design(rng, 20, 6)
    model = linalg.PolynomialModel.fit(X, y, 3)
    text = json.dumps(model.to_dict())
    again = linalg.PolynomialModel.from_dict(json.loads(text))
    assert again.degree == 3
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("coef"),
        lambda d: d.update(degree=4),
        lambda d: d.update(coef=d["coef"][:-1]),
        lambda d: d.update(scale=[0.0] * len(d["scale"])),
        lambda d: d.update(mean=d["mean"] + [1.0]),
        lambda d: d.update(intercept="1.0"),
        lambda d: d.update(intercept=float("nan")),
        lambda d: d.update(mean=[None] * len(d["mean"])),
    ],
)
def test_polynomial_model_from_dict_rejects_corrupt(mutate):
    rng = np.random.default_rng(7)
    X, y = design(rng, 10, 3)
    d = linalg.PolynomialModel.fit(X, y, 2).to_dict()
    mutate(d)
    with pytest.raises(ValueError):
        linalg.PolynomialModel.from_dict(d)


@pytest.mark.parametrize("degree", [0, 4, True, 2.0, "2"])
def test_polynomial_model_rejects_bad_degree(degree):
    with pytest.raises(ValueError, match="degree"):
        linalg.PolynomialModel.fit(np.ones((3, 2)), np.ones(3), degree)


@pytest.mark.parametrize(
    ("X", "y"),
    [
        (np.ones(3), np.ones(3)),
        (np.ones((3, 2)), np.ones(2)),
        (np.array([[1.0, np.inf], [2.0, 1.0]]), np.ones(2)),
        (np.ones((2, 2)), np.array([np.nan, 1.0])),
        (np.zeros((0, 2)), np.zeros(0)),
        (np.zeros((3, 0)), np.zeros(3)),
        ([["a", "b"]], [1.0]),
        ([[1.0, 2.0], [3.0]], [1.0, 2.0]),
    ],
)
def test_pipeline_functions_reject_bad_input(X, y):
    with pytest.raises(ValueError):
        linalg.PolynomialModel.fit(X, y, 1)
    with pytest.raises(ValueError):
        extrapolation.cross_val_predict(X, y, 2, array("q", [0, 1, 0]), b"\0\0")
    with pytest.raises(ValueError):
        resampling.bootstrap_predictions(X, y, 1, np.ones((1, 2)), 3)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_fit_column_is_the_pipeline_on_one_feature(degree):
    rng = np.random.default_rng(degree)
    x = rng.integers(1, 17, 15).astype(float)
    y = 10 + 3 * x + rng.normal(0, 1, 15)
    one = linalg.PolynomialModel.fit_column(array("d", x), array("d", y), degree)
    ref = linalg.PolynomialModel.fit(x.reshape(-1, 1), y, degree)
    assert one.to_dict() == ref.to_dict()  # bit for bit: the same kernel


@pytest.mark.parametrize(
    ("x", "y", "degree"),
    [
        (array("d"), array("d"), 1),
        (array("d", [1.0, 2.0]), array("d", [1.0]), 1),
        (array("d", [1.0, math.inf]), array("d", [1.0, 2.0]), 1),
        (array("d", [1.0, 2.0]), array("d", [math.nan, 2.0]), 1),
        (array("i", [1, 2]), array("d", [1.0, 2.0]), 1),
        ([1.0, 2.0], array("d", [1.0, 2.0]), 1),
        (array("d", [1.0, 2.0]), array("d", [1.0, 2.0]), 4),
        (array("d", [1.0, 2.0]), array("d", [1.0, 2.0]), True),
    ],
)
def test_fit_column_rejects_bad_input(x, y, degree):
    with pytest.raises(ValueError):
        linalg.PolynomialModel.fit_column(x, y, degree)


def test_predict_rejects_wrong_width():
    model = linalg.PolynomialModel.fit(np.eye(3), [1.0, 2.0, 3.0], 1)
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((1, 2)))


# ---------------------------------------------------------------------------------------------
# cross_val_predict and leverage
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "p"), [(15, 7), (23, 4), (200, 9), (7, 3), (5, 5), (6, 2)])
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_cross_val_predict_matches_sklearn(n, p, degree):
    rng = np.random.default_rng(n + p)
    X, y = design(rng, n, p)
    labels = array("q", [i % 5 for i in range(n)])
    rising = bytes([1]) + bytes(p - 1)
    ours = np.asarray(extrapolation.cross_val_predict(X, y, degree, labels, rising))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sk_oof(degree, X, y, np.asarray(labels))
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-7 * np.abs(ref).max())


@pytest.mark.parametrize(("n", "p", "degree"), [(12, 2, 1), (12, 2, 2), (8, 9, 1), (30, 9, 1),
                                                (5, 3, 2), (40, 4, 3)])
def test_leverage_matches_numpy_pinv(n, p, degree):
    rng = np.random.default_rng(n * p)
    X, _ = design(rng, n, p)
    X_new = X[:4] * 1.1
    rank, h = extrapolation.leverage(X, degree, X_new)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = sk_pipeline(degree, n, p).fit(X, np.zeros(n))
    scaled = pipe[0].transform(X), pipe[0].transform(X_new)
    active = pipe[0].var_ > 0
    if degree == 1:
        D, Dn = scaled[0][:, active], scaled[1][:, active]
    else:
        from sklearn.preprocessing import PolynomialFeatures

        poly = PolynomialFeatures(degree, include_bias=False).fit(scaled[0][:, active])
        D, Dn = poly.transform(scaled[0][:, active]), poly.transform(scaled[1][:, active])
    Zc, V = D - D.mean(axis=0), Dn - D.mean(axis=0)
    assert rank == np.linalg.matrix_rank(Zc)
    expected = 1 / n + np.einsum("ij,jk,ik->i", V, np.linalg.pinv(Zc.T @ Zc), V)
    np.testing.assert_allclose(h, expected, rtol=1e-8)


# ---------------------------------------------------------------------------------------------
# bootstrap_predictions and percentile_interval
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "p", "degree"), [(15, 7, 1), (15, 7, 2), (15, 7, 3), (40, 4, 3)])
def test_bootstrap_matches_sklearn_refits(n, p, degree):
    rng = np.random.default_rng(21)
    X, y = design(rng, n, p)
    X_new = X[:3] * 1.1
    preds = resampling.bootstrap_predictions(X, y, degree, X_new, 12, random_state=5)
    assert preds.shape == (12, 3)
    # The same resamples the kernel refits on; scikit-learn refits each one.
    idx = np.frombuffer(resampling.resample_indices(n, 12, 5), dtype=np.int64).reshape(12, n)
    for s in range(12):
        ref = sk_pipeline(degree, n, p).fit(X[idx[s]], y[idx[s]]).predict(X_new)
        assert_close(preds[s], ref, 1e-7)


def test_bootstrap_is_reproducible_and_seed_dependent():
    rng = np.random.default_rng(22)
    X, y = design(rng, 30, 5)
    a = resampling.bootstrap_predictions(X, y, 2, X[:2], 50, random_state=1)
    b = resampling.bootstrap_predictions(X, y, 2, X[:2], 50, random_state=1)
    c = resampling.bootstrap_predictions(X, y, 2, X[:2], 50, random_state=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bootstrap_interval_contains_fit_for_a_well_behaved_problem():
    rng = np.random.default_rng(23)
    X = rng.uniform(1, 10, size=(60, 2))
    y = 3.0 + 2.0 * X[:, 0] - X[:, 1] + 0.2 * rng.standard_normal(60)
    x_new = np.array([[5.0, 5.0]])
    preds = resampling.bootstrap_predictions(X, y, 1, x_new, 200, random_state=0)
    low, high = resampling.percentile_interval(preds, 0.95)
    fit = linalg.PolynomialModel.fit(X, y, 1).predict(x_new)
    assert low[0] < fit[0] < high[0]
    assert high[0] - low[0] < 0.5


def test_bootstrap_single_row_x_new_and_zero_resamples():
    X = np.arange(10, dtype=float).reshape(5, 2)
    y = np.arange(5, dtype=float)
    assert resampling.bootstrap_predictions(X, y, 1, X[0], 4).shape == (4, 1)
    assert resampling.bootstrap_predictions(X, y, 1, X[:2], 0).shape == (0, 2)
    with pytest.raises(ValueError, match="features"):
        resampling.bootstrap_predictions(X, y, 1, np.ones((1, 3)), 4)


def test_percentile_interval_equals_numpy():
    preds = np.random.default_rng(24).standard_normal((37, 4))
    low, high = resampling.percentile_interval(preds, 0.9)
    alpha = 1.0 - 0.9  # the reference's formula, rounding included
    np.testing.assert_array_equal(low, np.percentile(preds, 100 * alpha / 2, axis=0))
    np.testing.assert_array_equal(high, np.percentile(preds, 100 * (1 - alpha / 2), axis=0))
    empty_low, empty_high = resampling.percentile_interval(np.zeros((0, 2)), 0.95)
    np.testing.assert_array_equal(empty_low, [0.0, 0.0])
    np.testing.assert_array_equal(empty_high, [0.0, 0.0])
    with pytest.raises(ValueError):
        resampling.percentile_interval(preds, 1.5)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 60), cols=st.integers(1, 5), level=st.floats(0.01, 0.99),
       ties=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_percentile_kernel_is_numpy_bit_for_bit(rows, cols, level, ties, seed):
    rng = np.random.default_rng(seed)
    preds = rng.standard_normal((rows, cols)) * 10.0 ** rng.integers(-3, 4)
    if ties:
        preds = np.round(preds, 1)
    low, high = resampling.percentile_interval(preds, level)
    alpha = 1.0 - level
    np.testing.assert_array_equal(low, np.percentile(preds, 100.0 * alpha / 2.0, axis=0))
    np.testing.assert_array_equal(high, np.percentile(preds, 100.0 * (1.0 - alpha / 2.0), axis=0))


def test_percentile_interval_keeps_numpys_rules_for_nan_and_infinity():
    preds = np.array([[1.0, np.nan, np.inf], [2.0, 3.0, 4.0], [5.0, 6.0, -np.inf]])
    with np.errstate(invalid="ignore"):  # inf - inf inside numpy's interpolation
        low, high = resampling.percentile_interval(preds, 0.5)
        np.testing.assert_array_equal(low, np.percentile(preds, 25.0, axis=0))
        np.testing.assert_array_equal(high, np.percentile(preds, 75.0, axis=0))


@pytest.mark.parametrize(("n", "p", "degree", "level"), [(15, 7, 3, 0.95), (40, 4, 2, 0.8),
                                                         (9, 2, 1, 0.5)])
def test_bootstrap_interval_is_percentile_of_bootstrap_predictions(n, p, degree, level):
    from array import array

    rng = np.random.default_rng(n * p)
    X, y = design(rng, n, p)
    X_new = X[:5] * 0.9
    preds = resampling.bootstrap_predictions(X, y, degree, X_new, 40, random_state=11)
    want_low, want_high = resampling.percentile_interval(preds, level)
    # The numpy-free path: memoryview/array('d') inputs, array('d') outputs.
    flat = array("d", X.ravel().tolist())
    Xm = memoryview(flat).cast("B").cast("d", X.shape)
    new = memoryview(array("d", X_new.ravel().tolist())).cast("B").cast("d", X_new.shape)
    low, high = resampling.bootstrap_interval(Xm, array("d", y.tolist()), degree, new, 40, level,
                                          random_state=11)
    assert isinstance(low, array) and isinstance(high, array)
    np.testing.assert_array_equal(np.asarray(low), want_low)
    np.testing.assert_array_equal(np.asarray(high), want_high)


def test_bootstrap_interval_is_none_without_successful_resamples():
    X = np.arange(10, dtype=float).reshape(5, 2)
    assert resampling.bootstrap_interval(X, np.arange(5.0), 1, X[:2], 0, 0.95) is None


def test_resample_indices_seed_kinds():
    expected = resampling.resample_indices(13, 4, 9)
    # Any integer seed (a numpy integer too) is the same seed; a Generator is drawn by numpy.
    assert resampling.resample_indices(13, 4, np.int64(9)) == expected
    np.testing.assert_array_equal(
        np.asarray(resampling.resample_indices(13, 4, np.random.default_rng(3))),
        np.random.default_rng(3).integers(0, 13, size=(4, 13)).ravel())
    with pytest.raises(ValueError):
        resampling.resample_indices(13, 4, -1)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300))
def test_mean_is_numpys_pairwise_mean(values):
    assert linalg.mean(values) == np.mean(np.array(values))


def test_bootstrap_threads_give_the_sequential_result():
    from advisor_core.models.resampling import bootstrap_predictions

    rng = np.random.default_rng(7)
    X = rng.standard_normal((120, 4))
    y = X @ rng.standard_normal(4) + rng.normal(0, 0.1, 120)
    sequential = bootstrap_predictions(X, y, 2, X[:6], 37, random_state=3, n_jobs=1)
    assert sequential.shape == (37, 6)
    for n_jobs in (2, 3, 50, None):
        parallel = bootstrap_predictions(X, y, 2, X[:6], 37, random_state=3, n_jobs=n_jobs)
        np.testing.assert_array_equal(parallel, sequential)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_jobs"):
            bootstrap_predictions(X, y, 2, X[:6], 5, n_jobs=bad)


def test_leverage_in_blocks_equals_one_row_at_a_time():
    # More new rows than one factorisation solves at once (the kernel works in blocks).
    rng = np.random.default_rng(4)
    X, _ = design(rng, 40, 3)
    X_new = rng.normal(size=(150, 3)) * X.std(axis=0) + X.mean(axis=0)
    rank, h = extrapolation.leverage(X, 2, X_new)
    singles = [extrapolation.leverage(X, 2, X_new[i:i + 1])[1][0] for i in range(150)]
    assert rank == extrapolation.leverage(X, 2, X_new[:1])[0]
    np.testing.assert_allclose(h, singles, rtol=1e-12)
