"""What a run may make the multivariate model build (docs/predictions.md "Limits"): one-hot
columns per categorical feature, cells of a design matrix."""

from __future__ import annotations

import tracemalloc

import pytest

from advisor_core.models.features import MAX_CATEGORIES, NUMERIC_FEATURES, common_categories
from advisor_core.models.kinds import MAX_DESIGN_CELLS, MAX_DESIGN_WORK
from advisor_core.models.modeling import MultivariatePredictor


def scenario(index: int, encoder: str, cpu_model: str) -> dict:
    streams = 1 + index % 8
    return {"name": f"{streams} streams @ 2500k #{index}", "bitrate": f"{1000 + index % 5 * 500}k",
            "resolution": "1920x1080", "fps": 30, "duration": 60,
            "power": {"mean_watts": 20.0 + 5.0 * streams + (index % 7) * 0.3},
            "container_usage": {"cpu_percent": 100.0 * streams + index % 3},
            "encoder_type": encoder, "hardware": {"cpu_model": cpu_model}}


def predictor(models: list[str]) -> MultivariatePredictor:
    return MultivariatePredictor(models=models, confidence_level=0.95, n_bootstrap=20,
                                 cv_folds=3, random_state=0)


def test_common_categories_keeps_the_most_frequent_ties_by_name() -> None:
    values = ["b"] * 3 + ["a"] * 2 + ["c"] * 2 + ["d"]
    assert common_categories(values, 2) == (["a", "b"], 2)
    assert common_categories(values, 3) == (["a", "b", "c"], 1)
    assert common_categories(values, 10) == (["a", "b", "c", "d"], 0)
    assert common_categories([], 3) == ([], 0)


def test_a_run_naming_a_new_encoder_in_every_scenario_trains_on_a_bounded_matrix() -> None:
    """37 KB of such scenarios took an exporter to 4.6 GB: every name was a column."""
    rows = [scenario(i, f"enc{i:04d}", f"cpu{i:04d}") for i in range(300)]
    # Two of each of the first 40 encoders: the kept ones are the repeated, then by name.
    rows += [scenario(300 + i, f"enc{i % 40:04d}", "cpu0000") for i in range(80)]
    model = predictor(["linear", "poly2"])
    tracemalloc.start()
    try:
        assert model.fit(rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024
    info = model.get_model_info()
    assert info["n_features"] == len(NUMERIC_FEATURES) + 2 * MAX_CATEGORIES
    encoders = [name for name in info["feature_names"] if name.startswith("encoder_")]
    assert encoders == [f"encoder_enc{i:04d}" for i in range(MAX_CATEGORIES)]
    # 300 encoders named, 32 kept; 300 CPU models, cpu0000 (81 rows) and 31 others kept.
    assert info["selection"]["rare_categories"] == {"encoder_type": 268,
                                                    "hardware_cpu_model": 268}
    kept, rare = model.extract_features(rows[0]), model.extract_features(rows[299])
    never_seen = dict(rare, encoder_type="brand-new", hardware_cpu_model="brand-new")
    assert model.predict(kept)["extrapolated"] is False
    assert model.predict(rare)["extrapolated"] is True
    # A rare category is encoded as one never seen: the same answer.
    assert model.predict(rare) == model.predict(never_seen)


def test_a_kind_past_the_design_budget_is_not_trained_and_says_why() -> None:
    rows = [scenario(i, f"enc{i % MAX_CATEGORIES}", "cpu") for i in range(400)]
    model = predictor(["linear", "poly2", "poly3"])
    assert model.fit(rows)
    info = model.get_model_info()
    not_trained = info["selection"]["not_trained"]
    assert set(not_trained) == {"poly3"}  # ~8,400 coefficients on 400 rows
    assert str(MAX_DESIGN_CELLS // 1000) in not_trained["poly3"].replace(",", "")
    assert "poly3" not in info["models"] and {"linear", "poly2"} <= set(info["models"])
    assert info["models"]["poly2"]["terms"] * 400 <= MAX_DESIGN_CELLS
    assert model.predict(model.extract_features(rows[5]))["mean"] is not None


def test_a_kind_asked_alone_past_the_budget_trains_nothing() -> None:
    rows = [scenario(i, f"enc{i % MAX_CATEGORIES}", "cpu") for i in range(400)]
    model = predictor(["poly3"])
    assert model.fit(rows) is False
    assert model.get_model_info()["trained"] is False


def test_the_limits_survive_a_model_file(tmp_path) -> None:
    rows = [scenario(i, f"enc{i % 40}", "cpu") for i in range(400)]
    model = predictor(["linear", "poly3"])
    assert model.fit(rows)
    path = tmp_path / "model.json"
    model.save(path)
    loaded = MultivariatePredictor.load(path)
    selection = loaded.get_model_info()["selection"]
    assert selection["not_trained"] == model.get_model_info()["selection"]["not_trained"]
    assert selection["rare_categories"] == {"encoder_type": 8}
    features = model.extract_features(rows[7])
    assert loaded.predict(features) == pytest.approx(model.predict(features))


def test_a_kind_within_the_cells_but_past_the_work_budget_is_not_trained() -> None:
    """990 coefficients on 2,000 rows (1.98 million cells) made a 20 s background job: each of
    ~55 factorisations cost 2e9 operations."""
    rows = [scenario(i, f"enc{i % 19}", f"cpu{i // 19 % 19}") for i in range(2000)]
    model = predictor(["linear", "poly2"])
    assert model.fit(rows)
    info = model.get_model_info()
    reason = info["selection"]["not_trained"]["poly2"]
    assert f"{MAX_DESIGN_WORK:,}" in reason
    count = int(reason.split()[0])
    assert 2000 * count <= MAX_DESIGN_CELLS < 2000 * count * count
    assert set(info["models"]) == {"streams", "linear"}
