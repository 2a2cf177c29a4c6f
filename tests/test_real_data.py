"""The predictors on the real results files in tests/data, checked against their analysis CSV
(the reference's own power predictions) and against scikit-learn."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from advisor_core.data.scenario import load_results, stream_count
from advisor_core.models.modeling import MultivariatePredictor, PowerPredictor, extract_features

sklearn = pytest.importorskip("sklearn")
from _loo import coverage, evaluate, median_width, usable  # noqa: E402
from _oracle import pooled_scores, sk_guarded, sk_oof, sk_pipeline  # noqa: E402

DEGREES = {"linear": 1, "poly2": 2, "poly3": 3}


def expected_matrix(scenarios):
    """The feature matrix written down from the file's fields (one encoder, one CPU model)."""
    rows = []
    for s in scenarios:
        width, height = (int(v) for v in s["resolution"].split("x"))
        kbps = float(s["bitrate"].rstrip("k"))
        rows.append([stream_count(s["name"]), kbps / 1000, width * height * s["fps"] *
                     s["duration"], 0.0, 0.0, 1.0, 1.0])
    return np.array(rows, dtype=float)


def test_joined_fixture(joined_real_scenarios, real_analysis_rows):
    assert len(joined_real_scenarios) == 15
    by_name = {s["name"]: s for s in joined_real_scenarios}
    row = next(r for r in real_analysis_rows if r["name"] == "8 Streams @ 5000k")
    power = by_name["8 Streams @ 5000k"]["power"]
    assert power["mean_watts"] == 34.07
    assert power["total_energy_joules"] == pytest.approx(1.1355 * 3600)
    assert float(row["total_energy_wh"]) == 1.1355


def test_power_predictor_reproduces_the_reference_predictions(joined_real_scenarios,
                                                              real_analysis_rows):
    p = PowerPredictor()
    assert p.fit(joined_real_scenarios)
    assert p.get_model_info() == {"trained": True, "model_type": "linear", "n_samples": 12,
                                  "stream_range": (1, 8)}
    checked = 0
    for row in real_analysis_rows:
        streams = stream_count(row["name"])
        if row["predicted_mean_power_w"]:
            expected = float(row["predicted_mean_power_w"])
            assert p.predict(streams) == pytest.approx(expected, rel=1e-9)
            checked += 1
        else:  # baseline and the two ladders: no stream count, no prediction
            assert streams is None
    assert checked == 12


def test_power_predictor_matches_numpy_on_real_data(joined_real_scenarios):
    pairs = [(stream_count(s["name"]), s["power"]["mean_watts"])
             for s in joined_real_scenarios if stream_count(s["name"]) is not None]
    slope, intercept = np.polyfit(*zip(*pairs), 1)
    p = PowerPredictor()
    p.fit(joined_real_scenarios)
    assert p.model.coef[0] == pytest.approx(slope, rel=1e-9)
    assert p.model.intercept == pytest.approx(intercept, rel=1e-9)


@pytest.mark.parametrize("target", ["mean_power_watts", "total_energy_joules"])
def test_multivariate_matches_sklearn_on_real_data(joined_real_scenarios, target):
    m = MultivariatePredictor(["linear", "poly2", "poly3"], cv_folds=5, n_bootstrap=20)
    assert m.fit(joined_real_scenarios, target=target)
    used = [s for s in joined_real_scenarios if stream_count(s["name"]) is not None]
    X = expected_matrix(used)
    key = "mean_watts" if target == "mean_power_watts" else "total_energy_joules"
    y = np.array([s["power"][key] for s in used])
    np.testing.assert_array_equal(m.X_train, X)
    np.testing.assert_array_equal(m.y_train, y)
    assert m.feature_names[-2:] == ["encoder_x264", "hardware_unknown"]
    queries = [{"stream_count": s, "bitrate_mbps": b, "total_pixels": 1280 * 720 * 30 * 120}
               for s in (1, 3, 6, 16) for b in (1.0, 4.0)]
    X_new = np.array([[q["stream_count"], q["bitrate_mbps"], q["total_pixels"], 0, 0, 1, 1]
                      for q in queries], dtype=float)
    for kind, degree in DEGREES.items():
        expected = np.maximum(0.0, sk_guarded(degree, X, y, X_new))
        ours = [m.predict(q, False, model_name=kind)["mean"] for q in queries]
        np.testing.assert_allclose(ours, expected, rtol=1e-8, atol=1e-8 * expected.max())
        rmse, r2 = pooled_scores(y, sk_oof(degree, X, y, np.arange(len(y))))
        assert m.model_scores[kind]["r2"] == pytest.approx(r2, rel=1e-8)
        assert m.model_scores[kind]["rmse"] == pytest.approx(rmse, rel=1e-8)
    assert m.model_scores["poly3"]["eligible"] is False  # 12 rows, 10 coefficients
    result = m.predict(queries[0])
    assert 0.0 <= result["ci_low"] <= result["ci_high"]
    assert 0.0 <= result["pi_low"] <= result["mean"] <= result["pi_high"]


def test_smallest_run_trains_nothing(joined_small_scenarios):
    scenarios = joined_small_scenarios
    assert scenarios[0]["power"]["mean_watts"] == 8.99
    assert PowerPredictor().fit(scenarios) is False  # "test_with_metrics": no stream count
    assert MultivariatePredictor(["linear"]).fit(scenarios) is False


def test_extended_file(extended_results_path):
    scenarios = load_results(extended_results_path)
    assert len(scenarios) == 240
    features = [extract_features(s) for s in scenarios]
    known = [f for f in features if f is not None]
    assert known and all(f["stream_count"] == stream_count(s["name"])
                         for s, f in zip(scenarios, features) if f is not None)
    # Analyse the runs that carry power samples (mean of the samples, as the analyser does).
    analysed = []
    for s in scenarios:
        if isinstance(s.get("power_watts"), list) and s["power_watts"]:
            s = copy.deepcopy(s)
            s["power"] = {"mean_watts": float(np.mean(s["power_watts"]))}
            analysed.append(s)
    p = PowerPredictor()
    assert p.fit(analysed)
    pairs = [(stream_count(s["name"]), s["power"]["mean_watts"]) for s in analysed
             if stream_count(s["name"]) is not None]
    assert len(pairs) == 3  # the idle baseline has no stream count
    coeffs = np.polyfit(*zip(*pairs), 1)
    assert p.predict(3) == pytest.approx(np.polyval(coeffs, 3), rel=1e-9)
    m = MultivariatePredictor(["linear"])
    assert m.fit(analysed)
    assert m.encoder_categories == ["libx264"] and m.hardware_categories == ["unknown"]
    used = [s for s in analysed if stream_count(s["name"]) is not None]
    X = m.X_train
    y = np.array([s["power"]["mean_watts"] for s in used])
    expected = sk_pipeline(1, len(y), X.shape[1]).fit(X, y).predict(X)
    np.testing.assert_allclose([m.predict(extract_features(s), False)["mean"] for s in used],
                               np.maximum(0.0, expected), rtol=1e-8)


# ---------------------------------------------------------------------------------------------
# Held-out real scenarios (issue: predictions a user can act on)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def held_out_runs():
    """Leave-one-scenario-out evaluations of the real runs that train a model."""
    from conftest import (
        EXTENDED_RESULTS,
        REAL_ANALYSIS,
        REAL_RESULTS,
        join_analysis,
        read_analysis,
    )

    runs = {
        "15-scenario run + analysis CSV": join_analysis(load_results(REAL_RESULTS),
                                                        read_analysis(REAL_ANALYSIS)),
        "240-entry extended run (power_watts samples)": load_results(EXTENDED_RESULTS),
    }
    return [evaluate(name, scenarios, ["linear", "poly2", "poly3"])
            for name, scenarios in runs.items()]


def test_selected_model_is_never_much_worse_than_the_stream_count_line(held_out_runs):
    for ev in held_out_runs:
        assert len(ev.holdouts) >= 3
        assert ev.mape("multi") <= 1.15 * ev.mape("ols") + 1.0, ev.name
        assert ev.mape("power") <= 1.15 * ev.mape("ols") + 1.0, ev.name


def test_both_prediction_intervals_cover_held_out_truths(held_out_runs):
    ols_width = median_width(held_out_runs, "ols")
    for which in ("power", "multi"):
        held, given = coverage(held_out_runs, which)
        assert given >= 12
        assert 0.85 <= held / given <= 1.0, (which, held, given)
        assert median_width(held_out_runs, which) <= 1.5 * ols_width


def test_a_64_stream_prediction_is_flagged_and_not_below_the_measured_power(held_out_runs):
    from conftest import REAL_ANALYSIS, REAL_RESULTS, join_analysis, read_analysis

    scenarios = join_analysis(load_results(REAL_RESULTS), read_analysis(REAL_ANALYSIS))
    highest = max(s["power"]["mean_watts"] for s in usable(scenarios))
    power = PowerPredictor()
    assert power.fit(scenarios)
    result = power.predict_interval(64)
    assert result["extrapolated"] is True and result["mean"] >= highest
    multi = MultivariatePredictor(["linear", "poly2", "poly3"])
    assert multi.fit(scenarios)
    features = dict(extract_features(usable(scenarios)[0]), stream_count=64)
    for kind in multi.pipelines:
        result = multi.predict(features, model_name=kind)
        assert result["extrapolated"] is True and result["mean"] >= highest, kind
        assert result["pi_low"] <= result["mean"] <= result["pi_high"]


def test_the_extended_run_trains_from_its_power_samples(extended_results_path):
    scenarios = load_results(extended_results_path)
    m = MultivariatePredictor(["linear", "poly2"])
    assert m.fit(scenarios)
    sampled = [s for s in usable(scenarios)]
    assert len(sampled) == 3 and m.get_model_info()["n_samples"] == 3
    np.testing.assert_allclose(m.y_train, [np.mean(s["power_watts"]) for s in sampled])
    assert PowerPredictor().fit(scenarios)
