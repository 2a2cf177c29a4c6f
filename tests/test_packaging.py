"""The installed package is what pyproject.toml promises: compiled kernels, typing, API."""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

import advisor_core


def test_kernels_are_compiled_extension_modules():
    from advisor_core import _kernels, _linalg, _lstsq, _random

    for module in (_linalg, _lstsq, _random, _kernels):
        suffix = Path(module.__file__).name[len(module.__name__.rsplit(".", 1)[-1]):]
        assert suffix in importlib.machinery.EXTENSION_SUFFIXES, module.__file__


def test_typing_markers_and_stubs_ship_with_the_package():
    package = Path(advisor_core.__file__).parent
    assert (package / "py.typed").is_file()
    for stub in ("_linalg.pyi", "_lstsq.pyi", "_random.pyi", "_kernels.pyi"):
        assert (package / stub).is_file(), stub


def test_top_level_api():
    names = {
        "PowerPredictor", "MultivariatePredictor", "CostModel", "EnergyEfficiencyScorer",
        "TranscodingRecommender", "RegionalPricing", "get_available_regions",
        "create_regional_pricing_config", "__version__",
    }
    assert names <= set(dir(advisor_core))
    assert set(advisor_core.__all__) >= names - {"__version__"}
    assert advisor_core.__version__ == "0.3.0"
    from advisor_core import cost, modeling, recommender, regional_pricing, scoring

    assert advisor_core.PowerPredictor is modeling.PowerPredictor
    assert advisor_core.MultivariatePredictor is modeling.MultivariatePredictor
    assert advisor_core.CostModel is cost.CostModel
    assert advisor_core.EnergyEfficiencyScorer is scoring.EnergyEfficiencyScorer
    assert advisor_core.TranscodingRecommender is recommender.TranscodingRecommender
    assert advisor_core.RegionalPricing is regional_pricing.RegionalPricing
