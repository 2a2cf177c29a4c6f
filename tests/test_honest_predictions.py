"""Where the data cannot answer: one trained stream count, and the idle baseline as a floor.

Small runs of our own (docs/predictions.md, "When the data cannot answer"): a run whose stream
tests all used 1 stream has no slope along the stream count, and a run with an idle baseline
has a floor under every power prediction for one stream or more. Both show in the result.
"""

from __future__ import annotations

import math

import pytest

from advisor_core.models.floors import IDLE_BASELINE, SINGLE_TRAINED_VALUE, ZERO
from advisor_core.models.kinds import VARIANCE_OUT_OF_RANGE
from advisor_core.models.modeling import MultivariatePredictor, PowerPredictor

IDLE = {"name": "Baseline (Idle)", "bitrate": "0k", "power": {"mean_watts": 10.2}}


def stream_test(streams: int, watts: float, kbps: int = 2500, cpu: float = 40.0) -> dict:
    return {
        "name": f"{streams} Streams @ {kbps}k", "bitrate": f"{kbps}k", "resolution": "1280x720",
        "fps": 30, "duration": 60, "power": {"mean_watts": watts},
        "container_usage": {"cpu_percent": cpu}, "encoder_type": "x264",
        "hardware": {"cpu_model": "cpu"},
    }


def features(streams: int, kbps: int = 2500, cpu: float = 40.0) -> dict:
    return {"stream_count": streams, "bitrate_mbps": kbps / 1000, "cpu_usage_pct": cpu,
            "total_pixels": 1280 * 720 * 30 * 60, "container_cpu_pct": 0,
            "encoder_type": "x264", "hardware_cpu_model": "cpu"}


#: A real run's shape: every stream test used 1 stream (14.0-15.3 W), idle 10.2 W.
ONE_COUNT_RUN = [IDLE, stream_test(1, 14.0, 1000), stream_test(1, 14.41, 2500),
                 stream_test(1, 15.3, 5000), stream_test(1, 13.9, 8000)]


# -- PowerPredictor ----------------------------------------------------------------------------

def test_power_predictor_gives_no_interval_off_the_one_stream_count_it_measured():
    p = PowerPredictor()
    assert p.fit(ONE_COUNT_RUN)
    info = p.get_model_info()
    assert info["single_valued_features"] == {"stream_count": 1.0}
    far = p.predict_interval(4)
    assert far["pi_low"] is None and far["pi_high"] is None and far["extrapolated"]
    assert far["no_interval"] == {"reason": SINGLE_TRAINED_VALUE,
                                  "trained_values": {"stream_count": 1.0}}
    assert far["mean"] == pytest.approx(sum([14.0, 14.41, 15.3, 13.9]) / 4)
    # At the measured count the interval stands (3 residual degrees of freedom).
    at_one = p.predict_interval(1)
    assert "no_interval" not in at_one
    assert at_one["pi_low"] < at_one["mean"] < at_one["pi_high"]


def test_power_predictor_with_several_counts_reports_no_single_value():
    p = PowerPredictor()
    assert p.fit([stream_test(1, 14.0), stream_test(2, 18.0), stream_test(4, 26.5)])
    assert "single_valued_features" not in p.get_model_info()
    assert "no_interval" not in p.predict_interval(8)


def test_power_interval_is_raised_to_the_idle_baseline_and_says_so():
    # A noisy line whose 95 % interval at 1 stream reaches far below the 10.2 W idle power.
    run = [IDLE, stream_test(1, 11.0), stream_test(1, 16.0), stream_test(2, 14.0),
           stream_test(2, 21.0), stream_test(3, 19.0)]
    p = PowerPredictor()
    assert p.fit(run)
    p.idle_watts = None
    unfloored = p.predict_interval(1)
    assert unfloored["pi_low"] < 10.2 and "floored" not in unfloored
    p.fit(run)
    result = p.predict_interval(1)
    assert result["pi_low"] == 10.2
    assert result["floored"] == {"floor": IDLE_BASELINE, "value": 10.2, "keys": ["pi_low"]}
    assert result["mean"] == unfloored["mean"] and result["pi_high"] == unfloored["pi_high"]
    assert p.predict(1) == unfloored["mean"]
    # Zero streams (idle itself) has no idle floor, only 0 W.
    assert p.predict_interval(0).get("floored", {"floor": ZERO})["floor"] == ZERO


def test_power_mean_below_idle_is_raised_and_reported():
    # Power falling with streams: continued beyond 3 streams the line stays flat (rising
    # rule), but inside the range the fit at 3 streams is below idle.
    run = [{**IDLE, "power": {"mean_watts": 12.0}}, stream_test(1, 13.0), stream_test(2, 12.0),
           stream_test(3, 9.0)]
    p = PowerPredictor()
    assert p.fit(run)
    result = p.predict_interval(3)
    assert result["mean"] == 12.0 == p.predict(3)
    assert result["floored"]["floor"] == IDLE_BASELINE and "mean" in result["floored"]["keys"]


def test_power_without_baseline_reports_the_zero_cut():
    p = PowerPredictor()
    assert p.fit([stream_test(1, 3.0), stream_test(2, 1.0), stream_test(2, 5.0),
                  stream_test(3, 0.5)])
    result = p.predict_interval(3)
    assert result["pi_low"] == 0.0
    assert result["floored"] == {"floor": ZERO, "value": 0.0, "keys": ["pi_low"]}


# -- MultivariatePredictor ---------------------------------------------------------------------

def test_multivariate_gives_no_interval_off_the_one_stream_count_and_says_why():
    m = MultivariatePredictor(["linear"], n_bootstrap=20, cv_folds=2)
    assert m.fit(ONE_COUNT_RUN)
    info = m.get_model_info()
    assert info["single_valued_features"]["stream_count"] == 1.0
    far = m.predict(features(4))
    assert far["no_interval"] == {"reason": SINGLE_TRAINED_VALUE,
                                  "trained_values": {"stream_count": 1.0}}
    assert [far[k] for k in ("ci_low", "ci_high", "ci_width", "pi_low", "pi_high")] == [None] * 5
    assert far["extrapolated"] and math.isfinite(far["mean"])
    batch = m.predict_batch([features(1), features(4)], return_confidence=True)
    assert "no_interval" not in batch[0] and batch[0]["pi_low"] is not None
    assert batch[1]["no_interval"]["reason"] == SINGLE_TRAINED_VALUE
    # Saved and loaded, the model still knows.
    loaded = MultivariatePredictor.from_dict(m.to_dict())
    assert loaded.get_model_info() == info
    assert loaded.predict(features(4)) == far


def test_multivariate_power_is_floored_at_the_saved_idle_baseline():
    run = [IDLE, stream_test(1, 11.0, 1000, 30), stream_test(1, 16.0, 2500, 50),
           stream_test(2, 14.0, 1000, 35), stream_test(2, 21.0, 5000, 60),
           stream_test(3, 19.0, 2500, 70), stream_test(3, 23.0, 5000, 80)]
    m = MultivariatePredictor(["linear"], n_bootstrap=50, cv_folds=2)
    assert m.fit(run)
    result = m.predict(features(1, 1000, 20))
    assert result["floored"]["floor"] == IDLE_BASELINE and result["floored"]["value"] == 10.2
    for key in result["floored"]["keys"]:
        assert result[key] == 10.2
    for key in ("mean", "ci_low", "ci_high", "pi_low", "pi_high"):
        assert result[key] >= 10.2
    assert result["ci_width"] == result["ci_high"] - result["ci_low"]
    assert MultivariatePredictor.from_dict(m.to_dict()).predict(features(1, 1000, 20)) == result
    # The energy target has no idle floor in watts: only the zero cut applies there.
    energy = MultivariatePredictor(["linear"], n_bootstrap=0)
    runs = [{**s, "power": {**s["power"], "total_energy_joules": s["power"]["mean_watts"] * 60}}
            for s in run]
    assert energy.fit(runs, target="total_energy_joules")
    assert energy.predict(features(1, 1000, 20)).get("floored", {"floor": ZERO})["floor"] == ZERO


# -- Absurd but finite data --------------------------------------------------------------------

def _numbers(value):
    """Every float inside a nested dict/list/tuple."""
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)


#: Power of 1e300 W: every value finite, but squared errors pass the float range.
ABSURD_RUN = [stream_test(s, 1e300 * (0.5 + 0.1 * s), 2500, 10.0 * s + s % 3)
              for s in range(1, 9)]


@pytest.mark.parametrize("models", [["linear", "poly2"], ["linear", "rf"]])
def test_scores_that_cannot_be_computed_are_none_with_a_reason_and_the_model_saves(
        models, tmp_path):
    m = MultivariatePredictor(models, n_bootstrap=20)
    assert m.fit(ABSURD_RUN)
    info = m.get_model_info()
    assert all(math.isfinite(v) for v in _numbers(info))
    for kind, score in info["models"].items():
        assert score["rmse"] is None and score["r2"] is None, kind
        assert set(score["unscored"]) == {"r2", "rmse", "rmse_in_sample"}
        assert "float range" in score["unscored"]["rmse"]
    assert "finite out-of-fold error" in info["selection"]["reason"]
    path = tmp_path / "absurd.json"
    m.save(path)
    loaded = MultivariatePredictor.load(path)
    native = {k: v for k, v in info["models"].items() if k != "rf"}
    assert loaded.get_model_info()["models"] == native
    assert loaded.predict(features(3, 2500, 32)) == m.predict(features(3, 2500, 32))


def test_a_kind_with_no_out_of_fold_prediction_says_so():
    from advisor_core.models.fitted import reported_score
    from advisor_core.models.selection import score_kind

    score = score_kind("linear", [1.0, 2.0, 3.0], [1.0, math.nan, 3.0], 2, 1)
    reported = reported_score(score, 0.5, oof_finite=False)
    assert reported["rmse"] is None and reported["rmse_in_sample"] == 0.5
    assert reported["unscored"] == {"r2": "a held-out row has no finite out-of-fold prediction",
                                    "rmse": "a held-out row has no finite out-of-fold prediction"}


# -- An interval wholly below its floor ---------------------------------------------------------

#: Stream tests drawing less than the (odd, high) 20 W idle baseline, on a tight line.
BELOW_IDLE_RUN = [{**IDLE, "power": {"mean_watts": 20.0}},
                  stream_test(1, 10.0, 1000, 30), stream_test(1, 10.2, 2500, 32),
                  stream_test(2, 10.9, 1000, 41), stream_test(2, 11.1, 2500, 43),
                  stream_test(3, 12.0, 1000, 50), stream_test(3, 11.9, 2500, 52)]


def test_power_interval_wholly_below_idle_is_withdrawn_not_collapsed_to_a_point():
    p = PowerPredictor()
    assert p.fit(BELOW_IDLE_RUN)
    p.idle_watts = None
    model = p.predict_interval(2)
    assert model["pi_high"] < 20.0
    p.fit(BELOW_IDLE_RUN)
    result = p.predict_interval(2)
    assert result["mean"] == 20.0 == p.predict(2)
    assert result["pi_low"] is None and result["pi_high"] is None
    assert result["floored"] == {"floor": IDLE_BASELINE, "value": 20.0, "keys": ["mean"],
                                 "below_floor": {"pi_low": model["pi_low"],
                                                 "pi_high": model["pi_high"]}}


def test_multivariate_intervals_wholly_below_idle_are_withdrawn():
    m = MultivariatePredictor(["linear"], n_bootstrap=50)
    assert m.fit(BELOW_IDLE_RUN)
    result = m.predict(features(2, 1000, 41))
    assert result["mean"] == 20.0
    for key in ("ci_low", "ci_high", "ci_width", "pi_low", "pi_high"):
        assert result[key] is None, key
    below = result["floored"]["below_floor"]
    assert set(below) == {"ci_low", "ci_high", "pi_low", "pi_high"}
    assert below["ci_low"] <= below["ci_high"] < 20.0 and below["pi_high"] < 20.0
    assert MultivariatePredictor.from_dict(m.to_dict()).predict(features(2, 1000, 41)) == result


# -- Issue 24's review ---------------------------------------------------------------------------

def test_a_filtered_training_set_keeps_the_runs_idle_baseline_when_the_run_is_given():
    run = [IDLE, stream_test(1, 11.0, 1000), stream_test(1, 9.0, 2500), stream_test(2, 14.0, 2500),
           stream_test(2, 20.0, 1000), stream_test(3, 17.0, 2500)]
    chosen = [s for s in run if s["bitrate"] == "2500k"]
    alone = PowerPredictor()
    assert alone.fit(chosen) and alone.idle_watts is None
    assert alone.predict_interval(1)["pi_low"] < 10.2
    p = PowerPredictor()
    assert p.fit(chosen, run=run)
    assert p.idle_watts == 10.2 and p.training_data == alone.training_data
    result = p.predict_interval(1)
    assert result["pi_low"] == 10.2 and result["floored"]["floor"] == IDLE_BASELINE
    assert p.predict(1) >= 10.2
    m = MultivariatePredictor(["linear"], n_bootstrap=0)
    assert m.fit(chosen, run=run)
    assert m.fitted.idle_watts == 10.2


@pytest.mark.parametrize("streams", [-1, -0.5, math.nan, math.inf, -math.inf, "4", None, True])
def test_a_stream_count_that_is_not_one_gets_no_prediction_and_a_reason(streams):
    p = PowerPredictor()
    assert p.fit([stream_test(1, 14.0), stream_test(2, 18.0), stream_test(4, 26.5)])
    assert p.predict(streams) is None
    result = p.predict_interval(streams)
    assert [result[k] for k in ("mean", "pi_low", "pi_high", "extrapolated")] == [None] * 4
    assert result["no_prediction"].startswith("streams must be a finite number >= 0, got ")
    assert p.predict(0) is not None and "no_prediction" not in p.predict_interval(0)


def test_an_untrained_power_predictor_says_so():
    from advisor_core.models.power import NOT_TRAINED

    assert PowerPredictor().predict_interval(2)["no_prediction"] == NOT_TRAINED


def test_an_interval_whose_top_is_the_floor_is_withdrawn_not_collapsed():
    from advisor_core.models.floors import raise_to_floor

    result = {"mean": 12.0, "pi_low": 8.0, "pi_high": 10.0}
    raise_to_floor(result, ("mean", "pi_low", "pi_high"), 10.0, IDLE_BASELINE)
    assert result["pi_low"] is None and result["pi_high"] is None
    assert result["floored"]["below_floor"] == {"pi_low": 8.0, "pi_high": 10.0}
    # An exact fit whose interval is the floor itself cuts nothing.
    exact = {"mean": 10.0, "pi_low": 10.0, "pi_high": 10.0}
    raise_to_floor(exact, ("mean", "pi_low", "pi_high"), 10.0, IDLE_BASELINE)
    assert exact == {"mean": 10.0, "pi_low": 10.0, "pi_high": 10.0}


#: Powers of 1e-300 W off a line: residuals of ~1e-301 W square below the smallest float.
TINY_RUN = [stream_test(s, 1e-300 * (0.5 + 0.1 * s + 0.05 * (s % 3)), 2500, 10.0 * s + s % 3)
            for s in range(1, 9)]


def test_residuals_too_small_to_square_give_no_interval_not_a_zero_width_one():
    p = PowerPredictor()
    assert p.fit(TINY_RUN)
    result = p.predict_interval(4)
    assert result["mean"] > 0 and result["pi_low"] is None and result["pi_high"] is None
    assert result["interval_unavailable"] == VARIANCE_OUT_OF_RANGE
    m = MultivariatePredictor(["linear"], n_bootstrap=0)
    assert m.fit(TINY_RUN)
    row = m.predict(features(4, 2500, 41))
    assert row["mean"] > 0 and row["pi_low"] is None and row["pi_high"] is None
    assert row["interval_unavailable"] == VARIANCE_OUT_OF_RANGE
    # The overflowing case says the same.
    p.fit(ABSURD_RUN)
    assert p.predict_interval(4)["interval_unavailable"] == VARIANCE_OUT_OF_RANGE


def test_an_exact_line_keeps_its_zero_width_interval():
    p = PowerPredictor()
    assert p.fit([stream_test(s, 10.0 + 2.0 * s) for s in (1, 2, 3, 4)])
    result = p.predict_interval(2)
    assert result["pi_low"] == result["pi_high"] == result["mean"] == 14.0


def test_saving_a_model_of_trees_only_is_an_error_not_an_empty_file(tmp_path):
    pytest.importorskip("sklearn")
    run = [stream_test(s, 10.0 + 2.0 * s + 0.3 * (s % 3), 2500, 10.0 * s + s % 4)
           for s in range(1, 11)]
    m = MultivariatePredictor(["rf"], n_bootstrap=0)
    assert m.fit(run)
    path = tmp_path / "trees.json"
    with pytest.raises(ValueError, match=r"only tree models \(rf\).*nothing usable to write"):
        m.save(path)
    assert not path.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="only tree models"):
        m.to_dict()
    # Untrained, the file is the (loadable) untrained predictor it always was.
    MultivariatePredictor(["rf"]).save(path)
    assert MultivariatePredictor.load(path).get_model_info()["trained"] is False


def test_a_tree_interval_missing_for_too_few_rows_says_so():
    pytest.importorskip("sklearn")
    from advisor_core.models.kinds import TOO_FEW_RESIDUALS

    run = [stream_test(s, 10.0 + 2.0 * s + 0.3 * (s % 3), 2500, 10.0 * s + s % 4)
           for s in range(1, 11)]
    m = MultivariatePredictor(["rf"], n_bootstrap=0)
    assert m.fit(run)
    for streams in (4, 40):  # inside the trained box and beyond it
        row = m.predict(features(streams, 2500, 41))
        assert row["pi_low"] is None and row["interval_unavailable"] == TOO_FEW_RESIDUALS
