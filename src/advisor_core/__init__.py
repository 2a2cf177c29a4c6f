"""advisor-core: power, cost and efficiency modelling for video-transcoding benchmarks.

Four subpackages, each of one concern (README "Layout"; the rule is checked by import-linter):

- ``advisor_core.data``: results files and analysis CSVs read into one typed record per scenario
  (``read_run``); everything else reads records;
- ``advisor_core.models``: regression, model selection, intervals and their compiled kernels;
- ``advisor_core.economics``: prices, costs, efficiency scores and rankings;
- ``advisor_core.cli``: the ``advisor`` command.

``data`` imports nothing above it; ``models`` and ``economics`` import ``data`` only, never each
other; the command and the exporters sit on top. The top-level names are imported on first use,
so a process that needs only the cost model never loads numpy or the modelling code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    from advisor_core._version import version as __version__
except ImportError:  # a source tree that was never built (the build writes _version.py)
    __version__ = "0+unknown"

_SUBMODULE_OF = {
    "CostModel": "economics.cost",
    "EnergyEfficiencyScorer": "economics.scoring",
    "MultivariatePredictor": "models.modeling",
    "PowerPredictor": "models.modeling",
    "RegionalPricing": "economics.regional_pricing",
    "ScenarioRecord": "data.record",
    "TranscodingRecommender": "economics.recommender",
    "create_regional_pricing_config": "economics.regional_pricing",
    "get_available_regions": "economics.regional_pricing",
    "read_run": "data.reader",
}

__all__ = [
    "CostModel",
    "EnergyEfficiencyScorer",
    "MultivariatePredictor",
    "PowerPredictor",
    "RegionalPricing",
    "ScenarioRecord",
    "TranscodingRecommender",
    "__version__",
    "create_regional_pricing_config",
    "get_available_regions",
    "read_run",
]

if TYPE_CHECKING:
    from advisor_core.data.reader import read_run
    from advisor_core.data.record import ScenarioRecord
    from advisor_core.economics.cost import CostModel
    from advisor_core.economics.recommender import TranscodingRecommender
    from advisor_core.economics.regional_pricing import (
        RegionalPricing,
        create_regional_pricing_config,
        get_available_regions,
    )
    from advisor_core.economics.scoring import EnergyEfficiencyScorer
    from advisor_core.models.modeling import MultivariatePredictor, PowerPredictor


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{submodule}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULE_OF))
