"""advisor-core: power, cost and efficiency modelling for video-transcoding benchmarks.

The numeric kernels are compiled (``advisor_core._linalg``, ``advisor_core._kernels``); parsing of
results files lives in ``advisor_core.scenario``.
"""

from .cost import CostModel
from .modeling import MultivariatePredictor, PowerPredictor
from .recommender import TranscodingRecommender
from .regional_pricing import RegionalPricing, create_regional_pricing_config, get_available_regions
from .scoring import EnergyEfficiencyScorer

__version__ = "0.3.0"

__all__ = [
    "CostModel",
    "EnergyEfficiencyScorer",
    "MultivariatePredictor",
    "PowerPredictor",
    "RegionalPricing",
    "TranscodingRecommender",
    "__version__",
    "create_regional_pricing_config",
    "get_available_regions",
]
