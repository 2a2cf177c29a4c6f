"""Money and ranking: electricity prices, costs (USD), CO2, efficiency scores, recommendations.

``regional_pricing`` (prices and grid intensity by region), ``cost`` (USD per scenario),
``scoring`` (efficiency scores), ``columns`` (the typed column table their kernel ``_kernels``
reads), ``recommender`` and ``decision`` (rankings). Imports ``advisor_core.data`` only, never
``advisor_core.models``.
"""
