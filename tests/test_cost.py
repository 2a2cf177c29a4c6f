"""Tests of advisor_core.economics.cost against the reference's worked costs and independent
arithmetic."""

from __future__ import annotations

import functools
import math
import operator
import random
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _domain import anything, random_scenarios
from advisor_core.data.record import as_record
from advisor_core.data.samples import summarise, trapezoid
from advisor_core.data.scenario import load_results
from advisor_core.economics.cost import COST_KEYS, CostModel
from advisor_core.economics.scoring import EnergyEfficiencyScorer

HD = {"resolution": "1920x1080", "fps": 30}
PX_1080P = 1920 * 1080 * 30  # pixels per second of one 1080p30 rendition

SINGLE_METHODS = [
    "compute_energy_cost",
    "compute_compute_cost",
    "compute_total_cost",
    "compute_cost_per_pixel",
    "compute_cost_per_watch_hour",
    "compute_energy_cost_load_aware",
    "compute_compute_cost_load_aware",
    "compute_total_cost_load_aware",
    "compute_cost_per_pixel_load_aware",
    "compute_cost_per_watch_hour_load_aware",
]


def approx(value, rel=1e-9):
    return pytest.approx(value, rel=rel, abs=0.0)


# ---------------------------------------------------------------------------------------------
# Construction and pricing info (A.1, A.2, A.19, A.22, A.23, A.35)
# ---------------------------------------------------------------------------------------------

def test_defaults():
    model = CostModel()
    assert (model.energy_cost_per_kwh, model.cpu_cost_per_hour, model.gpu_cost_per_hour) == (
        0.0, 0.0, 0.0)
    assert model.currency == "USD"
    assert model.price_per_core_second == 0.0 and model.price_per_joule == 0.0


def test_explicit_prices_and_pricing_info():
    model = CostModel(0.12, 0.50, 1.20, "EUR")
    info = model.get_pricing_info()
    assert info == {
        "energy_cost_per_kwh": 0.12,
        "cpu_cost_per_hour": 0.50,
        "gpu_cost_per_hour": 1.20,
        "currency": "EUR",
        "price_per_core_second": 0.50 / 3600,
        "price_per_joule": 0.12 / 3_600_000,
    }


def test_explicit_load_aware_prices_kept():
    model = CostModel(price_per_core_second=0.000138889, price_per_joule=3.33e-8)
    info = model.get_pricing_info()
    assert info["price_per_core_second"] == 0.000138889
    assert info["price_per_joule"] == 3.33e-8


def test_derived_load_aware_prices():
    model = CostModel(energy_cost_per_kwh=0.12, cpu_cost_per_hour=0.50)
    assert model.price_per_core_second == approx(0.50 / 3600)
    assert model.price_per_joule == approx(0.12 / 3_600_000)


@pytest.mark.parametrize(
    "kwargs",
    [{"energy_cost_per_kwh": -0.1}, {"cpu_cost_per_hour": math.nan},
     {"gpu_cost_per_hour": math.inf}, {"price_per_joule": "0.1"}, {"price_per_core_second": -1}],
)
def test_invalid_prices_rejected(kwargs):
    with pytest.raises(ValueError):
        CostModel(**kwargs)


# ---------------------------------------------------------------------------------------------
# Legacy costs (A.3 - A.18, A.21, A.38)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("price", "scenario", "expected"),
    [
        (0.12, {"power": {"mean_watts": 100}, "duration": 3600}, 0.012),
        (0.15, {"power": {"mean_watts": 80}, "gpu_power": {"mean_watts": 20}, "duration": 3600},
         0.015),
        (0.10, {"power": {"mean_watts": 200}, "duration": 1800}, 0.01),
    ],
)
def test_energy_cost(price, scenario, expected):
    assert CostModel(energy_cost_per_kwh=price).compute_energy_cost(scenario) == approx(expected)


def test_energy_cost_zero_price_is_exactly_zero():
    model = CostModel(energy_cost_per_kwh=0.0)
    assert model.compute_energy_cost({"power": {"mean_watts": 100}, "duration": 3600}) == 0.0
    # Reference rule kept: a zero price is checked before the data.
    assert model.compute_energy_cost({"name": "x"}) == 0.0


def test_energy_cost_missing_data():
    model = CostModel(energy_cost_per_kwh=0.12)
    assert model.compute_energy_cost({"duration": 3600}) is None
    assert model.compute_energy_cost({"power": {"mean_watts": 100}}) is None


def test_compute_cost():
    assert CostModel(cpu_cost_per_hour=0.50, gpu_cost_per_hour=1.20).compute_compute_cost(
        {"duration": 3600}) == approx(1.70)
    assert CostModel(cpu_cost_per_hour=0.50).compute_compute_cost({"duration": 7200}) == approx(
        1.00)
    assert CostModel().compute_compute_cost({"duration": 3600}) == 0.0


def test_total_cost():
    model = CostModel(0.12, 0.50, 1.00)
    scenario = {"power": {"mean_watts": 100}, "duration": 3600}
    assert model.compute_total_cost(scenario) == approx(1.512)


def test_cost_per_pixel_single_output():
    model = CostModel(energy_cost_per_kwh=0.10)
    scenario = {"power": {"mean_watts": 100}, "duration": 60, **HD}
    expected = (100 / 1000 * 60 / 3600 * 0.10) / (1920 * 1080 * 30 * 60)
    assert model.compute_cost_per_pixel(scenario) == approx(expected)
    assert model.compute_cost_per_pixel(scenario) == approx(4.465306e-14, rel=1e-6)


def test_cost_per_pixel_ladder():
    model = CostModel(energy_cost_per_kwh=0.10)
    scenario = {
        "power": {"mean_watts": 100},
        "duration": 60,
        "outputs": [{"resolution": "1920x1080", "fps": 30}, {"resolution": "1280x720", "fps": 30}],
    }
    expected = (100 / 1000 * 60 / 3600 * 0.10) / ((1920 * 1080 + 1280 * 720) * 30 * 60)
    assert model.compute_cost_per_pixel(scenario) == approx(expected)
    assert model.compute_cost_per_pixel(scenario) == approx(3.091366e-14, rel=1e-6)


def test_cost_per_pixel_none_cases():
    model = CostModel(energy_cost_per_kwh=0.10)
    assert model.compute_cost_per_pixel({"power": {"mean_watts": 100}, "duration": 60}) is None
    no_power = {"duration": 60, **HD}
    # A.15: energy None, compute 0.0 (zero hourly prices) -> total 0.0 -> "no data".
    assert model.compute_energy_cost(no_power) is None
    assert model.compute_compute_cost(no_power) == 0.0
    assert model.compute_total_cost(no_power) == 0.0
    assert model.compute_cost_per_pixel(no_power) is None


@pytest.mark.parametrize(("viewers", "expected"), [(1, 0.01), (100, 0.0001), (2.5, 0.004)])
def test_cost_per_watch_hour(viewers, expected):
    model = CostModel(energy_cost_per_kwh=0.10)
    scenario = {"power": {"mean_watts": 100}, "duration": 3600}
    assert model.compute_cost_per_watch_hour(scenario, viewers=viewers) == approx(expected)


def test_cost_per_watch_hour_default_one_viewer():
    model = CostModel(energy_cost_per_kwh=0.10)
    assert model.compute_cost_per_watch_hour(
        {"power": {"mean_watts": 100}, "duration": 3600}) == approx(0.01)


@pytest.mark.parametrize("viewers", [0, -1, None, math.nan, "10", True])
def test_cost_per_watch_hour_bad_audience(viewers):
    model = CostModel(energy_cost_per_kwh=0.10)
    scenario = {"power": {"mean_watts": 100}, "duration": 3600}
    assert model.compute_cost_per_watch_hour(scenario, viewers=viewers) is None


def test_full_scenario():
    model = CostModel(0.12, 0.50, 1.00)
    scenario = {"power": {"mean_watts": 150}, "gpu_power": {"mean_watts": 50},
                "duration": 1800, **HD}
    energy = model.compute_energy_cost(scenario)
    compute = model.compute_compute_cost(scenario)
    total = model.compute_total_cost(scenario)
    assert energy == approx(200 / 1000 * 0.5 * 0.12)
    assert compute == approx(0.5 * 1.50)
    assert total == approx(energy + compute, rel=1e-12)
    assert total == approx(0.762)
    assert model.compute_cost_per_pixel(scenario) == approx(0.762 / (PX_1080P * 1800))
    assert model.compute_cost_per_pixel(scenario) == approx(6.805127e-12, rel=1e-6)
    assert model.compute_cost_per_watch_hour(scenario, viewers=10) == approx(0.1524)


def test_zero_price_corner_cases():
    assert CostModel(energy_cost_per_kwh=0.12).compute_total_cost({"name": "only"}) == 0.0
    assert CostModel().compute_cost_per_watch_hour({"duration": 3600}) == 0.0
    model = CostModel(cpu_cost_per_hour=1.0)
    assert model.compute_compute_cost({"duration": 0}) is None
    assert model.compute_total_cost({"duration": 0}) == 0.0


# ---------------------------------------------------------------------------------------------
# Load-aware costs (A.24 - A.34, A.38)
# ---------------------------------------------------------------------------------------------

def test_load_aware_compute_cost():
    model = CostModel(price_per_core_second=0.0001)
    scenario = {"cpu_usage_cores": [2.0, 2.5, 3.0, 2.8, 2.2], "step_seconds": 10}
    assert model.compute_compute_cost_load_aware(scenario) == approx(104 * 0.0001)


def test_load_aware_compute_cost_with_gpu():
    model = CostModel(price_per_core_second=0.0001)
    scenario = {"cpu_usage_cores": [2, 2, 2], "gpu_usage_cores": [1, 1, 1], "step_seconds": 10}
    assert model.compute_compute_cost_load_aware(scenario) == approx(0.006)


def test_load_aware_energy_cost():
    model = CostModel(price_per_joule=1e-7)
    scenario = {"power_watts": [100, 150, 200, 180, 120], "step_seconds": 10}
    assert model.compute_energy_cost_load_aware(scenario) == approx(6400 * 1e-7)


def test_load_aware_total():
    model = CostModel(price_per_core_second=0.0001, price_per_joule=1e-7)
    scenario = {"cpu_usage_cores": [2.0, 2.5, 3.0], "power_watts": [100, 150, 200],
                "step_seconds": 10}
    assert model.compute_total_cost_load_aware(scenario) == approx(0.0053)


def _load(cores, watts, n):
    return {"cpu_usage_cores": [cores] * n, "power_watts": [watts] * n, "step_seconds": 10}


@pytest.mark.parametrize(
    ("low", "high", "expected_low", "expected_high"),
    [
        (_load(1.0, 100, 5), _load(4.0, 200, 5), 0.0044, 0.0168),
        (_load(1.5, 110, 4), _load(3.0, 150, 4), 0.00483, 0.00945),
        (_load(0.1, 50, 5), _load(2.0, 120, 5), 0.0006, 0.00848),
    ],
)
def test_load_aware_totals_follow_load(low, high, expected_low, expected_high):
    model = CostModel(price_per_core_second=0.0001, price_per_joule=1e-7)
    a = model.compute_total_cost_load_aware(low)
    b = model.compute_total_cost_load_aware(high)
    assert a == approx(expected_low) and b == approx(expected_high)
    assert b > a
    if expected_high / expected_low > 3:  # A.28: "ratio > 3"; A.30 is the reverse: "< 0.5"
        assert b / a > 3
    if expected_low / expected_high < 0.5:
        assert a / b < 0.5


def test_load_aware_watch_hour_and_pixels():
    model = CostModel(price_per_core_second=0.0001, price_per_joule=1e-7)
    scenario = {"cpu_usage_cores": [2, 2], "power_watts": [100, 100], "step_seconds": 10,
                "duration": 20}
    total = 20 * 0.0001 + 1000 * 1e-7
    assert model.compute_cost_per_watch_hour_load_aware(scenario) is None
    assert model.compute_cost_per_watch_hour_load_aware(scenario, viewers=100) == approx(
        total / (20 / 3600 * 100))
    assert model.compute_cost_per_watch_hour_load_aware(scenario, viewers=100) == approx(
        0.00378)
    assert model.compute_cost_per_watch_hour_load_aware(dict(scenario, viewers=10)) == approx(
        0.0378)
    # An explicit argument wins over the field, even when it is invalid.
    assert model.compute_cost_per_watch_hour_load_aware(dict(scenario, viewers=10), 0) is None
    with_pixels = dict(scenario, **HD)
    assert model.compute_cost_per_pixel_load_aware(with_pixels) == approx(
        total / (PX_1080P * 20))
    assert model.compute_cost_per_pixel_load_aware(with_pixels) == approx(1.687886e-12, rel=1e-6)


def test_load_aware_missing_inputs():
    model = CostModel(price_per_core_second=0.0001, price_per_joule=1e-7)
    assert model.compute_compute_cost_load_aware({"power_watts": [100], "step_seconds": 10}) is None
    assert model.compute_energy_cost_load_aware({"cpu_usage_cores": [2.0], "step_seconds": 10}) \
        is None
    assert model.compute_compute_cost_load_aware({"cpu_usage_cores": [2.0],
                                                  "power_watts": [100]}) is None
    assert model.compute_total_cost_load_aware({"name": "x"}) is None


def test_load_aware_single_sample():
    model = CostModel(price_per_core_second=1.0)
    assert model.compute_compute_cost_load_aware(
        {"cpu_usage_cores": [1.0], "step_seconds": 10}) == 10.0


def test_load_aware_zero_prices():
    model = CostModel()
    assert model.compute_compute_cost_load_aware({}) == 0.0
    assert model.compute_energy_cost_load_aware({}) == 0.0
    assert model.compute_total_cost_load_aware({}) == 0.0
    assert model.compute_cost_per_pixel_load_aware({"duration": 60, **HD}) is None


@pytest.mark.parametrize(
    "series",
    [[1.0, "2"], [1.0, None], [1.0, math.nan], [1.0, math.inf], [1.0, -0.5], [True, 1.0],
     "1,2,3", [], {"0": 1.0}, [10**400], [[1.0]]],
)
def test_load_aware_invalid_samples(series):
    model = CostModel(price_per_core_second=0.0001, price_per_joule=1e-7)
    assert model.compute_compute_cost_load_aware(
        {"cpu_usage_cores": series, "step_seconds": 10}) is None
    assert model.compute_energy_cost_load_aware({"power_watts": series, "step_seconds": 10}) \
        is None


def test_invalid_gpu_samples_void_compute_cost_but_absent_ones_do_not():
    model = CostModel(price_per_core_second=0.0001)
    base = {"cpu_usage_cores": [2, 2, 2], "step_seconds": 10}
    assert model.compute_compute_cost_load_aware(base) == approx(40 * 0.0001)
    for absent in ([], None, "n/a"):
        assert model.compute_compute_cost_load_aware(dict(base, gpu_usage_cores=absent)) == \
            approx(40 * 0.0001)
    assert model.compute_compute_cost_load_aware(dict(base, gpu_usage_cores=[1, "x"])) is None


@pytest.mark.parametrize("step", [0, -5, None, math.nan, math.inf, "5", True])
def test_load_aware_bad_step(step):
    model = CostModel(price_per_core_second=0.0001, price_per_joule=1e-7)
    scenario = {"cpu_usage_cores": [2, 2], "power_watts": [100, 100], "step_seconds": step}
    assert model.compute_total_cost_load_aware(scenario) is None


# ---------------------------------------------------------------------------------------------
# Bad input (brief: None, never an exception)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "scenario",
    [
        {"power": {"mean_watts": -100}, "duration": 3600},
        {"power": {"mean_watts": math.nan}, "duration": 3600},
        {"power": {"mean_watts": "100"}, "duration": 3600},
        {"power": {"mean_watts": 100}, "duration": math.inf},
        {"power": {"mean_watts": 100}, "duration": -3600},
        {"power": {"mean_watts": 100}, "gpu_power": {"mean_watts": "x"}, "duration": 3600},
        {"power": {"mean_watts": 100}, "gpu_power": {"mean_watts": -1}, "duration": 3600},
        {"power": None, "duration": 3600},
        {"power": [], "duration": 3600},
        {"power": {"mean_watts": 1e308}, "gpu_power": {"mean_watts": 1e308}, "duration": 3600},
    ],
)
def test_energy_cost_bad_input_is_none(scenario):
    assert CostModel(energy_cost_per_kwh=0.12).compute_energy_cost(scenario) is None


def test_null_gpu_power_is_missing():
    model = CostModel(energy_cost_per_kwh=0.12)
    for gpu in (None, {}, {"mean_watts": None}):
        scenario = {"power": {"mean_watts": 100}, "gpu_power": gpu, "duration": 3600}
        assert model.compute_energy_cost(scenario) == approx(0.012)
    # A gpu_power that is there but no object says a GPU drew power, but not how much.
    for gpu in ("x", "50", [50]):
        scenario = {"power": {"mean_watts": 100}, "gpu_power": gpu, "duration": 3600}
        assert model.compute_energy_cost(scenario) is None


def test_overflow_is_none():
    model = CostModel(energy_cost_per_kwh=1e300)
    assert model.compute_energy_cost({"power": {"mean_watts": 1e300}, "duration": 1e300}) is None


def test_underflowing_audience_is_none_not_a_division_by_zero():
    scenario = {"power": {"mean_watts": 100}, "duration": 5e-324}
    assert FULL_MODEL.compute_cost_per_watch_hour(scenario, viewers=1) is None
    assert FULL_MODEL.compute_costs_many([scenario], 1)["cost_per_watch_hour"] == [None]


@pytest.mark.parametrize("method", SINGLE_METHODS)
@pytest.mark.parametrize("value", [None, [], "scenario", 3])
def test_non_dict_scenario_is_none(method, value):
    # Not a scenario at all: None even where a zero price would give 0.0.
    assert getattr(CostModel(), method)(value) is None


FULL_MODEL = CostModel(0.12, 0.50, 1.00, price_per_core_second=0.0001, price_per_joule=1e-7)
MODELS = [CostModel(), FULL_MODEL, CostModel(energy_cost_per_kwh=0.3)]


@settings(max_examples=400, deadline=None)
@given(scenario=anything, model=st.sampled_from(MODELS),
       viewers=st.one_of(st.none(), st.integers(-2, 500), st.floats(), st.text(max_size=2)))
def test_every_method_returns_none_or_finite(scenario, model, viewers):
    for method in SINGLE_METHODS:
        args = (viewers,) if "watch_hour" in method else ()
        value = getattr(model, method)(scenario, *args)
        assert value is None or (type(value) is float and math.isfinite(value)), (method, value)
        assert value is None or value >= 0


# ---------------------------------------------------------------------------------------------
# Batch path == per-scenario path
# ---------------------------------------------------------------------------------------------

def _single(model, items, viewers):
    result = {}
    for key, method in zip(COST_KEYS, SINGLE_METHODS):
        fn = getattr(model, method)
        if "watch_hour" in method and viewers is not None:
            result[key] = [fn(s, viewers) for s in items]
        else:
            result[key] = [fn(s) for s in items]
    return result


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and a == b)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("viewers", [None, 10, 0, "x"])
def test_batch_matches_single_on_random_scenarios(seed, viewers):
    items = random_scenarios(seed, 300)
    for model in MODELS:
        batch = model.compute_costs_many(items, viewers)
        single = _single(model, items, viewers)
        assert list(batch) == list(COST_KEYS)
        for key in COST_KEYS:
            assert all(_same(a, b) for a, b in zip(batch[key], single[key])), key
        if model is FULL_MODEL:  # the comparison must cover real numbers, not only Nones
            assert sum(v is not None for v in batch["cost_per_pixel_load_aware"]) > 50
            if viewers in (None, 10):
                assert sum(v is not None for v in batch["cost_per_watch_hour"]) > 50


@settings(max_examples=150, deadline=None)
@given(items=st.lists(anything, max_size=8), viewers=st.one_of(st.none(), st.integers(-1, 50)))
def test_batch_matches_single_on_arbitrary_scenarios(items, viewers):
    batch = FULL_MODEL.compute_costs_many(items, viewers)
    single = _single(FULL_MODEL, items, viewers)
    for key in COST_KEYS:
        assert all(_same(a, b) for a, b in zip(batch[key], single[key])), key


def test_batch_pixels_match_single_with_fractional_frame_rates():
    # Ladders of 2-6 renditions at fractional frame rates: the pixel sum rounds differently
    # depending on how it is added up, and the batch path must add it up like total_pixels.
    rng = random.Random(3)
    sizes = [(1920, 1080), (1280, 720), (854, 480), (640, 360), (3840, 2160)]
    rates = [23.976, 29.97, 59.94, 0.1, 7.3, 30, 1e-3]
    items = []
    for _ in range(300):
        ladder = [(*rng.choice(sizes), rng.choice(rates)) for _ in range(rng.randint(2, 6))]
        items.append({
            "duration": rng.choice([60, 7.7, 0.3]),
            "power": {"mean_watts": 50.0, "total_energy_joules": 1234.5},
            "outputs": [{"resolution": f"{w}x{h}", "fps": f} for w, h, f in ladder],
        })
    sensitive = 0
    for item in items:
        terms = [int(o["resolution"].split("x")[0]) * int(o["resolution"].split("x")[1])
                 * o["fps"] for o in item["outputs"]]
        sensitive += functools.reduce(operator.add, terms) != math.fsum(terms)
    assert sensitive > 20  # the data can tell summation orders apart
    batch = FULL_MODEL.compute_costs_many(items)
    assert batch["cost_per_pixel"] == [FULL_MODEL.compute_cost_per_pixel(s) for s in items]
    scorer = EnergyEfficiencyScorer("pixels_per_joule")
    assert scorer.score_many(items) == [scorer.compute_score(s) for s in items]
    assert all(v is not None for v in batch["cost_per_pixel"])


class _Key(str):
    """A str subclass key: equal to the plain field name, but not an exact str."""


def test_batch_reads_unusual_keys_like_single():
    # The batch kernels map key objects to fields by address; keys that are not exact strs,
    # non-str keys, keys rebuilt per scenario and more distinct keys than the map learns must
    # all read like scenario.get(key).
    base = random_scenarios(11, 200)
    items = []
    for index, scenario in enumerate(base):
        if not isinstance(scenario, dict):
            items.append(scenario)
            continue
        kind = index % 4
        if kind == 0:
            scenario = {_Key(k): v for k, v in scenario.items()}
        elif kind == 1:
            scenario = {**scenario, 7: "x", (1, 2): None}
        elif kind == 2:  # keys built at run time: new str objects, as json.load makes them
            scenario = {"".join(list(k)): v for k, v in scenario.items()}
            scenario[f"extra_{index}"] = index
        items.append(scenario)
    for model in MODELS:
        batch = model.compute_costs_many(items, 10)
        single = _single(model, items, 10)
        for key in COST_KEYS:
            assert all(_same(a, b) for a, b in zip(batch[key], single[key])), key
    assert sum(v is not None for v in batch["cost_per_pixel_load_aware"]) > 50
    scorer = EnergyEfficiencyScorer()
    assert scorer.score_many(items) == [scorer.compute_score(s) for s in items]


def test_cost_arrays_nan_for_none():
    arrays = FULL_MODEL.cost_arrays([{"duration": 60}, None])
    assert set(arrays) == set(COST_KEYS)
    assert arrays["compute_cost"][0] == approx(60 / 3600 * 1.50)
    assert np.isnan(arrays["energy_cost"][0]) and np.isnan(arrays["compute_cost"][1])
    assert FULL_MODEL.compute_costs_many([]) == {key: [] for key in COST_KEYS}


# ---------------------------------------------------------------------------------------------
# trapezoid (A.36)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("values", "step", "expected"),
    [
        ([1.0, 2.5, 3.5, 3.0, 2.0, 1.5, 1.0], 5, 67.5),
        ([1, 3, 5, 5, 3, 1, 1], 5, 90.0),
        ([1, 2, 3, 2.5, 2], 5, 45.0),  # the reference comment's 51.25 is wrong
        ([7.0], 5, 35.0),
        ([], 5, 0.0),
    ],
)
def test_trapezoid_facts(values, step, expected):
    assert trapezoid(values, step) == expected


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(0, 1e6), min_size=2, max_size=50),
       step=st.floats(1e-3, 1e3))
def test_trapezoid_matches_numpy(values, step):
    expected = np.trapezoid(values, dx=step) if hasattr(np, "trapezoid") else np.trapz(
        values, dx=step)
    assert trapezoid(values, step) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(), max_size=40), step=st.floats(1e-6, 1e6))
def test_trapezoid_of_a_float_list_is_the_buffer_kernel_bit_for_bit(values, step):
    # Lists of floats are read in place; tuples and arrays go through a float64 buffer.
    for other in (tuple(values), np.array(values, dtype=np.float64)):
        got, expected = trapezoid(values, step), trapezoid(other, step)
        assert got == expected or (math.isnan(got) and math.isnan(expected))


def test_trapezoid_accepts_arrays_and_rejects_2d():
    assert trapezoid(np.array([1.0, 3.0])[::-1], 2) == 4.0
    with pytest.raises(ValueError):
        trapezoid([[1.0, 2.0]], 1)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.floats(0, 1e12), st.integers(0, 10**6)), max_size=40),
       step=st.one_of(st.floats(1e-6, 1e6), st.integers(1, 60)))
def test_sample_lists_integrate_exactly_like_trapezoid(values, step):
    # The record reader integrates Python lists in one pass; it must agree bit for bit with the
    # buffer kernel.
    expected = trapezoid(values, step) if values else math.nan
    summary = summarise(list(values), float(step))
    if not values:
        assert summary is None
    elif math.isfinite(expected):
        assert summary.integral == expected


# ---------------------------------------------------------------------------------------------
# Real results files (tests/data)
# ---------------------------------------------------------------------------------------------

def test_extended_file_costs_cover_the_whole_scenario(extended_results_path):
    # "2 streams @ 2500k": 10 samples at 5 s for a 120.5 s scenario. The reference integrated
    # the samples (45 s: 0.01420119 USD, J.2); they measure the scenario's mean power and CPU,
    # so its energy and CPU work are mean x duration (docs/results-files.md §2.4).
    scenarios = load_results(extended_results_path)
    first = next(s for s in scenarios if s["name"] == "2 streams @ 2500k")
    model = CostModel(0.12, 0.50)
    cpu, power, duration = first["cpu_usage_cores"], first["power_watts"], first["duration"]
    assert len(power) * 5 < duration - 5  # the samples do not span the scenario
    core_s = sum(cpu) / len(cpu) * duration
    joules = sum(power) / len(power) * duration
    assert model.compute_energy_cost_load_aware(first) == approx(joules * 0.12 / 3_600_000)
    assert model.compute_compute_cost_load_aware(first) == approx(core_s * 0.50 / 3600)
    assert model.compute_total_cost_load_aware(first) == approx(
        core_s * 0.50 / 3600 + joules * 0.12 / 3_600_000)
    # The legacy energy cost (mean power x duration) is the same energy.
    assert model.compute_energy_cost(first) == approx(model.compute_energy_cost_load_aware(first))
    # No fps, so no rendition: the Python reference had no cost per pixel; the scheduler's own
    # pixels_processed count gives one (the Go reference's rule).
    assert model.compute_cost_per_pixel_load_aware(first) == approx(
        model.compute_total_cost_load_aware(first) / first["pixels_processed"], rel=1e-12)
    assert model.compute_cost_per_watch_hour_load_aware(first) is None  # no viewers


def test_samples_that_span_the_scenario_are_integrated():
    # Within one step of the duration, the trapezoid integral is the scenario's energy
    # (reference fact A.31: two samples at 10 s for 20 s; 1000 J and 20 core-s).
    model = CostModel(price_per_core_second=0.0001, price_per_joule=1e-7)
    scenario = {"cpu_usage_cores": [2, 2], "power_watts": [100, 100], "step_seconds": 10,
                "duration": 20}
    assert model.compute_cost_per_watch_hour_load_aware(scenario, 100) == approx(0.00378)
    longer = {**scenario, "duration": 100}  # the same samples for a 100 s scenario
    assert model.compute_energy_cost_load_aware(longer) == approx(100 * 100 * 1e-7)
    assert model.compute_compute_cost_load_aware(longer) == approx(2 * 100 * 0.0001)


def test_real_files_batch_matches_single(extended_results_path, joined_real_scenarios):
    for items in (load_results(extended_results_path), joined_real_scenarios):
        for model in MODELS:
            batch = model.compute_costs_many(items, None)
            single = _single(model, items, None)
            assert batch == single


# ---------------------------------------------------------------------------------------------
# Sample arrays: the one validity rule shared by the cost model, the exporters and the CLI
# ---------------------------------------------------------------------------------------------


def test_sample_series_accepts_only_lists_of_finite_non_negative_numbers():
    from advisor_core.data.samples import sample_series

    samples, mean = sample_series([1, 2.5, 3])
    assert samples == [1.0, 2.5, 3.0] and all(type(x) is float for x in samples)
    assert mean == pytest.approx(6.5 / 3, rel=1e-15)
    assert sample_series([0.1] * 10)[1] == pytest.approx(0.1, rel=1e-15)
    for bad in ([], None, "1,2", [1, "2"], [True, 1.0], [None], [float("nan")], [-0.5, 1.0],
                [float("inf"), 1.0], [float("inf"), float("-inf")], [10**400], {"a": 1}):
        assert sample_series(bad) is None, bad


def _python_sample_series(values):
    """The rule written in plain Python with math.fsum (the oracle of the compiled one)."""
    if not isinstance(values, list) or not values:
        return None
    if any(isinstance(x, bool) or not isinstance(x, (float, int)) for x in values):
        return None
    try:
        floats = [float(x) for x in values]
        total = math.fsum(floats)
    except (OverflowError, ValueError):
        return None
    if not math.isfinite(total) or min(floats) < 0.0:
        return None
    return floats, total / len(floats)


class _Watts(float):
    pass


class _Count(int):
    pass


_SAMPLE = st.one_of(
    st.floats(min_value=0.0),  # every magnitude, subnormals, +inf
    st.floats(min_value=0.0, max_value=1e3),
    st.floats(allow_nan=True),  # negatives, -0.0, NaN, -inf
    st.integers(min_value=-5, max_value=10**310),  # ints beyond the float range too
    st.sampled_from([True, False, None, "1.0", 1e308, 1.7976931348623157e308, 5e-324]),
    st.floats(min_value=0.0, max_value=1e3).map(_Watts),  # subclasses are numbers too
    st.integers(min_value=0, max_value=10**6).map(_Count),
)


@given(st.lists(_SAMPLE, max_size=40))
@settings(max_examples=1000, deadline=None)
def test_compiled_sample_series_is_the_python_rule_bit_for_bit(values):
    from advisor_core.data.samples import sample_series

    expected = _python_sample_series(values)
    got = sample_series(values)
    if expected is None:
        assert got is None
        return
    assert got is not None and got[0] == expected[0]
    assert math.copysign(1.0, got[1]) == math.copysign(1.0, expected[1])
    assert got[1] == expected[1]  # the exactly rounded sum, not an approximation
    assert got[0] is values or any(type(x) is not float for x in values)  # floats: the list


@given(st.lists(st.floats(min_value=0.0, max_value=1e3), min_size=2, max_size=40))
@settings(max_examples=300, deadline=None)
def test_sample_stdev_agrees_with_the_statistics_module(samples):
    from advisor_core.data.samples import sample_stdev

    # statistics.stdev works in exact fractions: an independent oracle for in-range samples.
    expected = statistics.stdev(samples)
    assert sample_stdev(samples, math.fsum(samples) / len(samples)) == pytest.approx(
        expected, rel=1e-9, abs=1e-9)


def test_sample_sums_are_exactly_rounded_where_naive_sums_are_not():
    from advisor_core.data.samples import sample_series, sample_stdev

    # Many partials: values spread over the whole exponent range (the compiled sum keeps 64
    # partials in place and hands longer ones to math.fsum), ties that need half-even rounding.
    spread = [2.0 ** e for e in range(-1074, 1000, 7)]
    random.Random(3).shuffle(spread)
    for values in (spread, [1e-16, 1.0, 1e16], [0.1] * 10, [1e308, 1e308], [2.0**53, 1.0, 1.0]):
        assert sample_series(values) == _python_sample_series(values), values
    assert sample_series([1e-16, 1.0, 1e16])[1] == 10000000000000002.0 / 3
    assert sample_series([1e308, 1e308]) is None  # the sum overflows: no mean
    assert sample_stdev([1e200, -1e200], 0.0) is None  # the squares overflow: no spread
    assert sample_stdev([1.0], 1.0) is None
    values = [5.0 + i * 1e-3 for i in range(24)]
    assert sample_stdev(values, sample_series(values)[1]) == pytest.approx(
        float(np.std(values, ddof=1)), rel=1e-14)


def test_power_samples_integrate_only_over_a_known_step():
    watts = [45.2, 46.1, 45.8, 47, 46.5]
    record = as_record({"power_watts": watts, "step_seconds": 5})
    assert record.power_w == pytest.approx(np.mean(watts), rel=1e-12)
    integrate = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    assert record.energy_j == pytest.approx(integrate(watts, dx=5.0), rel=1e-12)
    # No step: the sampling interval is not guessed, so only the mean is known.
    for step in (None, 0, -5, "5", float("nan")):
        record = as_record({"power_watts": watts, "step_seconds": step})
        assert record.power_w is not None and record.energy_j is None
    bad = as_record({"power_watts": [1.0, -1.0], "step_seconds": 5})
    assert bad.power_w is None and bad.problems == ("power_watts_invalid",)
    assert as_record({"step_seconds": 5}).power_w is None
    assert as_record(None) is None


def test_audience_is_viewers_else_the_stream_count_else_one() -> None:
    assert as_record({"name": "4 Streams @ 2500k", "viewers": 250}).audience == 250.0
    assert as_record({"name": "4 Streams @ 2500k"}).audience == 4.0
    for bad in (0, -3, float("nan"), "many", True, None):
        assert as_record({"name": "4 Streams @ 2500k", "viewers": bad}).audience == 4.0
    assert as_record({"name": "Multi-resolution ladder test 1080p+720p+480p @ 5000k"}
                     ).audience == 1.0
    assert as_record({}).audience == 1.0


def test_load_aware_costs_price_measured_energy_and_container_cpu() -> None:
    # Without samples, the record's measured energy and container CPU x duration are priced.
    model = CostModel(energy_cost_per_kwh=0.20, cpu_cost_per_hour=0.36)
    scenario = {"name": "2 Streams @ 1000k", "duration": 600, "viewers": 3,
                "power": {"mean_watts": 30.0, "total_energy_joules": 18_000.0},
                "container_usage": {"cpu_percent": 150.0}}
    assert as_record(scenario).core_s == 900.0  # 1.5 cores x 600 s
    costs = {key: values[0] for key, values in model.compute_costs_many([scenario]).items()}
    energy, compute = 18_000 / 3.6e6 * 0.20, 900 * 0.36 / 3600
    assert costs["energy_cost_load_aware"] == pytest.approx(energy, rel=1e-15)
    assert costs["compute_cost_load_aware"] == pytest.approx(compute, rel=1e-15)
    assert costs["total_cost_load_aware"] == pytest.approx(energy + compute, rel=1e-15)
    assert costs["cost_per_watch_hour_load_aware"] == pytest.approx(
        (energy + compute) / (600 / 3600 * 3), rel=1e-15)
    no_cpu = {k: v for k, v in scenario.items() if k != "container_usage"}
    assert as_record(no_cpu).core_s is None
    assert model.compute_compute_cost_load_aware(no_cpu) is None
    assert model.compute_total_cost_load_aware(no_cpu) == pytest.approx(energy)
    for bad in (-1.0, float("nan"), "50", None):
        assert as_record({**scenario, "container_usage": {"cpu_percent": bad}}).core_s is None
    assert model.compute_energy_cost_load_aware({"name": "x"}) is None
    assert model.compute_total_cost_load_aware({"name": "x"}) is None
    assert model.compute_total_cost_load_aware("junk") is None


def test_gpu_power_counts_in_every_cost_of_the_same_scenario() -> None:
    # 100 W package + 50 W GPU for an hour: the legacy and the load-aware energy cost imply
    # the same 150 W.
    model = CostModel(energy_cost_per_kwh=0.36)
    scenario = {"name": "1 Stream", "duration": 3600, "power": {"mean_watts": 100.0,
                "total_energy_joules": 360_000.0}, "gpu_power": {"mean_watts": 50.0}}
    legacy = model.compute_energy_cost(scenario)
    load_aware = model.compute_energy_cost_load_aware(scenario)
    assert legacy == pytest.approx(0.150 * 0.36, rel=1e-15)
    assert load_aware == pytest.approx(legacy, rel=1e-15)
