"""Prediction intervals for one new measurement, and the Student-t quantile they need.

The interval of a least-squares model (the stream-count line or quadratic, and the linear and
polynomial kinds of ``MultivariatePredictor``) is the textbook one::

    mean ± t(1 - α/2; n - rank - 1) · s · sqrt(1 + h)

with ``s²`` the residual variance (residual sum of squares over ``n - rank - 1`` degrees of
freedom) and ``h = 1/n + v'(Zc'Zc)⁺v`` the leverage of the new point (``Zc`` the centred
design, ``v`` the new point's centred design row; ``advisor_core.models.extrapolation.leverage``).
It is exact for Gaussian errors around a correctly specified model at any number of rows above the
number of coefficients, which is why it is used here rather than jackknife+ or CV+ conformal
intervals: those cannot give a finite 95 % interval below 19 rows, and a benchmark run has
4 to 15. With no residual degree of freedom there is no interval (None).

Tree models have no leverage: their interval is ``mean ± q`` with ``q`` the
``ceil((1 - α)(n + 1))``-th smallest absolute out-of-fold residual (a cross-validation
conformal interval), None when that rank exceeds ``n``.

Beyond the trained range a model continues its linear trend (see
``advisor_core.models.extrapolation.guarded_predict``); its half-width is then the larger of the
model's at the nearest trained point and the trend line's at the point itself
(``extrapolated_half_width``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Optional

__all__ = [
    "check_confidence_level",
    "conformal_half_width",
    "half_width",
    "t_quantile",
]

# Above this many degrees of freedom the Cornish-Fisher series (error O(df^-5)) is exact to
# rounding; below it the closed-form t distribution function is summed term by term.
_SERIES_MIN_DF = 2000


def check_confidence_level(confidence_level: object) -> float:
    """The level as a float in (0, 1), or ValueError."""
    if isinstance(confidence_level, bool) or not isinstance(confidence_level, (int, float)):
        raise ValueError(f"confidence_level must be a number in (0, 1), got {confidence_level!r}")
    level = float(confidence_level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level!r}")
    if not 0.5 < (1.0 + level) / 2.0 < 1.0:  # the two-sided quantile's probability in floats
        raise ValueError(f"confidence_level {confidence_level!r} is too close to 0 or 1 to "
                         "compute (use a level between 1e-15 and 1 - 1e-15)")
    return level


def _central_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's T with an integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        term, total = math.cos(theta), math.cos(theta)
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + math.sin(theta) * total)
    term, total = 1.0, 1.0
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


def _density(t: float, df: int) -> float:
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))


def _normal_quantile(probability: float) -> float:
    """Standard normal quantile for probability in (0.5, 1): Abramowitz & Stegun 26.2.23
    (error < 4.5e-4), then Newton on erfc, which converges quadratically from there."""
    # The statistics module would do, but it loads decimal (1.5 MB per exporter process).
    t = math.sqrt(-2.0 * math.log(1.0 - probability))
    z = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) / (
        1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
    for _ in range(4):
        upper = 0.5 * math.erfc(z / math.sqrt(2.0))  # 1 - Phi(z), no cancellation
        z += (upper - (1.0 - probability)) / (math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))
    return z


def _cornish_fisher(z: float, df: int) -> float:
    """Abramowitz & Stegun 26.7.5: the t quantile from the normal one, four terms."""
    z2 = z * z
    g1 = (z2 + 1) * z / 4
    g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
    g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
    g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_quantile(probability: float, df: int) -> float:
    """Quantile of Student's t distribution at ``probability`` in (0.5, 1), integer ``df`` >= 1.

    Accurate to about 1e-12 relative (checked against scipy.stats.t.ppf in the tests).
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")
    if not 0.5 < probability < 1.0:
        raise ValueError(f"probability must be in (0.5, 1), got {probability!r}")
    return _t_quantile(float(probability), int(df))


# Each fit asks for the same one or two quantiles on every prediction.
@lru_cache(maxsize=256)
def _t_quantile(probability: float, df: int) -> float:
    central = 2.0 * probability - 1.0  # P(|T| <= t)
    if df == 1:
        return math.tan(math.pi * central / 2.0)
    if df == 2:
        return central * math.sqrt(2.0 / (1.0 - central * central))
    z = _normal_quantile(probability)
    t = _cornish_fisher(z, df)
    if df >= _SERIES_MIN_DF:
        return t
    # P(|T| <= t) is increasing and concave in t > 0, so Newton's steps approach the root from
    # below after the first one; a step that would leave t > 0 is halved instead.
    for _ in range(60):
        step = (_central_probability(t, df) - central) / (2.0 * _density(t, df))
        nxt = t - step
        if nxt <= 0.0:
            nxt = t / 2.0
        if abs(nxt - t) <= 4e-16 * t:
            return nxt
        t = nxt
    return t


def half_width(sigma2: float, df: int, leverage: float, confidence_level: float) -> Optional[float]:
    """Half-width of the prediction interval (unit of the target); None without a residual df."""
    if df < 1 or not (math.isfinite(sigma2) and math.isfinite(leverage)):
        return None
    t = t_quantile(0.5 + confidence_level / 2.0, df)
    value = t * math.sqrt(max(sigma2, 0.0) * (1.0 + leverage))
    return value if math.isfinite(value) else None


def conformal_half_width(residuals: Sequence[float], confidence_level: float) -> Optional[float]:
    """The ceil((1 - α)(n + 1))-th smallest absolute residual; None when n is too small."""
    values = sorted(abs(r) for r in residuals if math.isfinite(r))
    n = len(values)
    rank = math.ceil((1.0 - (1.0 - confidence_level)) * (n + 1) - 1e-12)
    if n == 0 or rank > n:
        return None
    return values[rank - 1]


def extrapolated_half_width(model: Optional[float], trend: Optional[float]) -> Optional[float]:
    """Half-width beyond the trained range: the larger of the model's and the trend's."""
    if model is None or trend is None:
        return None
    return max(model, trend)
