"""Prediction intervals, guarded extrapolation and model selection, checked against statsmodels,
scipy and seeded coverage simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from advisor_core.models import extrapolation, linalg
from advisor_core.models.intervals import conformal_half_width, t_quantile
from advisor_core.models.modeling import MultivariatePredictor, PowerPredictor
from advisor_core.models.selection import KindScore, fold_labels, score_kind, select


def powered(streams, watts, **fields):
    return {"name": f"{streams} streams", "power": {"mean_watts": float(watts)}, **fields}


# ---------------------------------------------------------------------------------------------
# The Student-t quantile
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("df", [*range(1, 40), 57, 120, 999, 1999, 2000, 5000, 10**6])
@pytest.mark.parametrize("probability", [0.6, 0.8, 0.9, 0.95, 0.975, 0.995, 0.9995])
def test_t_quantile_matches_scipy(df, probability):
    assert t_quantile(probability, df) == pytest.approx(scipy_stats.t.ppf(probability, df),
                                                        rel=1e-11)


@pytest.mark.parametrize(("probability", "df"), [(0.5, 3), (1.0, 3), (0.3, 3), (0.9, 0),
                                                 (0.9, 2.5), (0.9, True)])
def test_t_quantile_rejects_bad_arguments(probability, df):
    with pytest.raises(ValueError):
        t_quantile(probability, df)


# ---------------------------------------------------------------------------------------------
# PowerPredictor.predict_interval against statsmodels
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("distinct", "seed"), [(4, 0), (5, 1), (6, 2), (9, 3)])
@pytest.mark.parametrize("level", [0.8, 0.95, 0.99])
def test_power_interval_equals_statsmodels(distinct, seed, level):
    rng = np.random.default_rng(seed)
    streams = np.sort(rng.choice(np.arange(1, 25), distinct, replace=False)).repeat(2)
    watts = 12 + 4.5 * streams + rng.normal(0, 3, streams.size)
    p = PowerPredictor()
    assert p.fit([powered(s, w) for s, w in zip(streams, watts)])
    degree = 2 if distinct >= 6 else 1
    design = np.vander(streams.astype(float), degree + 1, increasing=True)
    fit = sm.OLS(watts, design).fit()
    for s0 in np.linspace(streams.min(), streams.max(), 7):
        frame = fit.get_prediction(np.vander([s0], degree + 1, increasing=True)).summary_frame(
            alpha=1 - level)
        result = p.predict_interval(float(s0), level)
        assert result["extrapolated"] is False
        assert result["mean"] == pytest.approx(float(frame["mean"].iloc[0]), rel=1e-9)
        assert result["pi_low"] == pytest.approx(float(frame["obs_ci_lower"].iloc[0]), rel=1e-9)
        assert result["pi_high"] == pytest.approx(float(frame["obs_ci_upper"].iloc[0]), rel=1e-9)


def test_power_interval_beyond_the_range_is_flagged_wider_and_rising():
    p = PowerPredictor()
    rows = [(1, 10.2), (2, 13.1), (3, 17.9), (4, 19.5), (6, 27.8), (8, 32.6), (8, 33.4)]
    assert p.fit([powered(s, w) for s, w in rows]) and p.is_polynomial
    inside, edge, far = p.predict_interval(5), p.predict_interval(8), p.predict_interval(64)
    assert inside["extrapolated"] is False and far["extrapolated"] is True
    assert far["mean"] > edge["mean"] and far["mean"] == p.predict(64)
    assert far["pi_high"] - far["pi_low"] > edge["pi_high"] - edge["pi_low"]
    # The quadratic bends down; the continuation uses the least-squares line's slope instead.
    slope = np.polyfit(*zip(*rows), 1)[0]
    assert far["mean"] == pytest.approx(p.predict(8) + slope * 56, rel=1e-9)


def test_power_interval_without_residual_degrees_of_freedom_is_none():
    p = PowerPredictor()
    assert p.fit([powered(1, 10.0), powered(2, 14.0)])
    assert p.predict_interval(1.5) == {
        "mean": pytest.approx(12.0), "pi_low": None, "pi_high": None, "extrapolated": False,
        "interval_unavailable": "no residual degree of freedom (no more rows than the model "
                                "has coefficients)"}
    assert PowerPredictor().predict_interval(4) == {
        "mean": None, "pi_low": None, "pi_high": None, "extrapolated": None,
        "no_prediction": "the predictor is not trained"}


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 1.5, float("nan"), "0.95", None, True])
def test_confidence_level_outside_zero_one_is_a_value_error(level):
    p = PowerPredictor()
    p.fit([powered(s, 10 + 3 * s + (s % 2)) for s in range(1, 6)])
    with pytest.raises(ValueError):
        p.predict_interval(3, level)
    with pytest.raises(ValueError):
        MultivariatePredictor(["linear"], confidence_level=level)


@pytest.mark.parametrize("streams", [float("nan"), float("inf"), None, "x", [3]])
def test_power_interval_of_bad_input_is_none(streams):
    p = PowerPredictor()
    p.fit([powered(s, 10 + 3 * s + (s % 2)) for s in range(1, 6)])
    assert p.predict_interval(streams)["mean"] is None


# ---------------------------------------------------------------------------------------------
# Coverage in seeded simulations
# ---------------------------------------------------------------------------------------------

REPLICATIONS = 1000


def _simulated_run(rng, n):
    """n scenarios of linear power with Gaussian noise (sd 3 W) in 9 feature columns."""
    rows = []
    for _ in range(n):
        streams = int(rng.integers(1, 17))
        kbps = float(rng.uniform(500, 8000))
        cpu, docker = float(rng.uniform(5, 95)), float(rng.uniform(0, 10))
        seconds = float(rng.uniform(30, 120))
        encoder, cpu_model = ("x264", "nvenc")[rng.integers(2)], ("A", "B")[rng.integers(2)]
        watts = (15 + 4 * streams + 1.2 * kbps / 1000 + 0.1 * cpu + 0.5 * docker
                 + 0.02 * seconds + (6 if encoder == "nvenc" else 0)
                 + (3 if cpu_model == "B" else 0))
        rows.append({"name": f"{streams} streams", "bitrate": f"{kbps}k",
                     "resolution": "1280x720", "fps": 30, "duration": seconds,
                     "container_usage": {"cpu_percent": cpu},
                     "docker_overhead": {"cpu_percent": docker}, "encoder_type": encoder,
                     "hardware": {"cpu_model": cpu_model}, "_mean": watts})
    for row in rows:
        row["power"] = {"mean_watts": row.pop("_mean") + float(rng.normal(0, 3))}
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("n", [8, 30])
def test_power_interval_covers_95_percent_in_simulation(n):
    rng = np.random.default_rng(2024 + n)
    covered = 0
    for _ in range(REPLICATIONS):
        streams = rng.integers(1, 17, n)
        watts = 20 + 5 * streams + rng.normal(0, 4, n)
        p = PowerPredictor()
        assert p.fit([powered(s, w) for s, w in zip(streams, watts)])
        s0 = float(rng.integers(streams.min(), streams.max() + 1))
        truth = 20 + 5 * s0 + rng.normal(0, 4)
        result = p.predict_interval(s0)
        covered += result["pi_low"] <= truth <= result["pi_high"]
    assert 0.93 <= covered / REPLICATIONS <= 0.97, covered


@pytest.mark.slow
@pytest.mark.parametrize("n", [8, 30])
def test_multivariate_interval_covers_at_least_90_percent_with_9_features(n):
    rng = np.random.default_rng(77 + n)
    covered = given_ = 0
    for _ in range(REPLICATIONS):
        run = _simulated_run(rng, n + 1)
        train, held = run[:n], run[n]
        m = MultivariatePredictor(["linear", "poly2", "poly3"], n_bootstrap=5)
        assert m.fit(train)
        result = m.predict(m.extract_features(held))
        if result["pi_low"] is None:
            continue
        given_ += 1
        covered += result["pi_low"] <= held["power"]["mean_watts"] <= result["pi_high"]
    assert given_ == REPLICATIONS
    assert covered / given_ >= 0.90, covered


def test_multivariate_linear_interval_equals_statsmodels():
    rng = np.random.default_rng(5)
    run = _simulated_run(rng, 25)
    for row in run:  # one encoder, CPU model and pixel count: four varying columns
        row["encoder_type"], row["hardware"] = "x264", {"cpu_model": "A"}
        row["duration"] = 60
    m = MultivariatePredictor(["linear"], n_bootstrap=5)
    assert m.fit(run)
    X = np.asarray(m.X_train)[:, :5]
    fit = sm.OLS(np.asarray(m.y_train), sm.add_constant(X[:, [0, 1, 3, 4]])).fit()
    for row in run[:5]:
        features = m.extract_features(row)
        features["stream_count"] = int(np.clip(features["stream_count"] + 1, X[:, 0].min(),
                                               X[:, 0].max()))
        x0 = np.array([[1.0, features["stream_count"], features["bitrate_mbps"],
                        features["cpu_usage_pct"], features["container_cpu_pct"]]])
        frame = fit.get_prediction(x0).summary_frame(alpha=0.05)
        result = m.predict(features)
        assert result["extrapolated"] is False
        assert result["mean"] == pytest.approx(float(frame["mean"].iloc[0]), rel=1e-9)
        assert result["pi_low"] == pytest.approx(float(frame["obs_ci_lower"].iloc[0]), rel=1e-9)
        assert result["pi_high"] == pytest.approx(float(frame["obs_ci_upper"].iloc[0]), rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Extrapolation and physical sanity
# ---------------------------------------------------------------------------------------------


def test_polynomials_are_not_extrapolated_and_the_flag_says_so():
    rows = [powered(s, 40 + 9 * s - 0.5 * s * s + (0.3 if s % 2 else -0.3),
                    bitrate=f"{b}k") for s in range(1, 9) for b in (1000, 2500, 5000)]
    m = MultivariatePredictor(["poly2"])
    assert m.fit(rows)
    inside = m.predict({"stream_count": 8, "bitrate_mbps": 2.5})
    far = m.predict({"stream_count": 64, "bitrate_mbps": 2.5})
    unseen = m.predict({"stream_count": 4, "bitrate_mbps": 2.5, "encoder_type": "nvenc"})
    assert inside["extrapolated"] is False and unseen["extrapolated"] is True
    assert far["extrapolated"] is True
    # The raw quadratic falls to 0 W at 64 streams; the guarded model keeps rising.
    assert far["mean"] >= inside["mean"] > 0
    assert far["pi_high"] - far["pi_low"] > inside["pi_high"] - inside["pi_low"]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["stream_count", "bitrate_mbps", "total_pixels", "cpu_usage_pct",
                     "container_cpu_pct", "encoder_type", "hardware_cpu_model", "other"]),
    st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.text(max_size=5),
              st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(),
                                                                       max_size=2))))
def test_arbitrary_feature_dicts_never_raise(features):
    m = _trained_predictor()
    for result in (m.predict(features), *m.predict_batch([features, features], True)):
        assert set(result) >= {"mean", "model", "pi_low", "pi_high", "extrapolated"}
        values = [result[k] for k in ("mean", "ci_low", "ci_high", "pi_low", "pi_high")]
        assert all(v is None or (math.isfinite(v) and v >= 0) for v in values)
        if result["mean"] is not None and result["pi_low"] is not None:
            assert result["pi_low"] <= result["mean"] <= result["pi_high"]


_TRAINED: dict = {}


def _trained_predictor() -> MultivariatePredictor:
    if "m" not in _TRAINED:  # read-only after training: safe to share between examples
        rng = np.random.default_rng(9)
        m = MultivariatePredictor(["linear", "poly2"], n_bootstrap=5)
        assert m.fit(_simulated_run(rng, 40))
        _TRAINED["m"] = m
    return _TRAINED["m"]


# ---------------------------------------------------------------------------------------------
# Model selection
# ---------------------------------------------------------------------------------------------


def test_fold_labels_are_seeded_balanced_and_leave_one_out_when_small():
    labels, scheme = fold_labels(12, 5, 0)
    assert list(labels) == list(range(12)) and scheme == "leave-one-out"
    a, scheme = fold_labels(103, 5, 7)
    assert scheme == "5-fold shuffled (seed 7)" and list(a) == list(fold_labels(103, 5, 7)[0])
    assert list(a) != list(fold_labels(103, 5, 8)[0])
    sizes = np.bincount(np.asarray(a))
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 103
    assert list(a[:10]) != [i % 5 for i in range(10)] or list(a[10:20]) != [0, 1, 2, 3, 4] * 2


def _score(kind, mse, se, eligible=True):
    return KindScore(kind, 20, 3, math.sqrt(mse), 0.9, mse, se, eligible, False)


def test_one_standard_error_rule_prefers_the_simpler_kind():
    scores = [_score("streams", 4.0, 0.5), _score("linear", 3.8, 0.5), _score("poly2", 3.0, 0.6)]
    assert select(scores)[0] == "poly2"  # 4.0 and 3.8 are above 3.0 + 0.6
    scores[1] = _score("linear", 3.5, 0.5)
    winner, why = select(scores)
    assert winner == "linear" and "within one standard error" in why
    scores[0] = _score("streams", 2.9, 0.1, eligible=False)
    assert select(scores)[0] == "linear"


def test_a_kind_the_rows_cannot_support_is_never_selected():
    y = [1.0, 2.0, 3.0, 4.5, 5.0, 6.5]
    exact = score_kind("poly2", y, y, terms=6, features=2)  # perfect, but 6 rows for 6 terms
    line = score_kind("streams", y, [v + 0.5 for v in y], terms=2, features=2)
    assert exact.eligible is False and line.eligible is True
    assert select([line, exact])[0] == "streams"


def test_a_model_asked_for_alone_is_fitted_and_reported_underdetermined():
    rows = [powered(s, 10 + 4 * s + (s % 3), bitrate=f"{1000 * s}k", resolution="1280x720",
                    fps=30, duration=30 + s) for s in range(1, 5)]
    m = MultivariatePredictor(["poly3"])
    assert m.fit(rows)
    info = m.get_model_info()
    assert info["best_model"] == "poly3" and set(info["models"]) == {"poly3"}
    assert info["models"]["poly3"]["underdetermined"] is True
    assert info["models"]["poly3"]["eligible"] is False
    # Still the reference's minimum-norm fit: it interpolates the training rows.
    X = np.asarray(m.X_train)
    fitted = [m.predict(dict(zip(["stream_count", "bitrate_mbps", "total_pixels"], row[:3])),
                        False)["mean"] for row in X]
    np.testing.assert_allclose(fitted, m.y_train, rtol=1e-8)


def test_selection_on_a_curved_law_with_many_rows_picks_a_polynomial():
    rng = np.random.default_rng(3)
    rows = [powered(s, 20 + 2 * s + 0.6 * s * s + rng.normal(0, 1), bitrate="2500k")
            for s in rng.integers(1, 20, 60)]
    m = MultivariatePredictor(["linear", "poly2", "poly3"])
    assert m.fit(rows)
    assert m.best_model_name == "poly2"
    info = m.get_model_info()
    assert info["models"]["poly2"]["rmse"] < info["models"]["linear"]["rmse"]
    assert info["selection"]["scheme"].startswith("5-fold shuffled")


def test_cross_val_predict_matches_a_python_loop():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(23, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(0, 0.1, 23)
    labels, _ = fold_labels(23, 4, 1)
    rising = bytes([1, 0, 0])
    ours = extrapolation.cross_val_predict(X, y, 2, labels, rising)
    for i in range(23):
        train = np.asarray(labels) != labels[i]
        model = linalg.PolynomialModel.fit(X[train], y[train], 2)
        trend = linalg.PolynomialModel.fit(X[train], y[train], 1)
        box = extrapolation.TrainedBox.of(X[train], trend, rising)
        expected = extrapolation.guarded_predict(model, box, X[i:i + 1])[0]
        assert ours[i] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_conformal_half_width():
    residuals = [0.1 * k for k in range(1, 20)]  # n = 19: rank ceil(0.95 * 20) = 19
    assert conformal_half_width(residuals, 0.95) == pytest.approx(1.9)
    assert conformal_half_width(residuals[:18], 0.95) is None
