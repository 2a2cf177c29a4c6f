"""A fitted predictor's answers: means, bootstrap intervals of the mean, prediction intervals and
the extrapolation flag, assembled per feature dict (docs/predictions.md).

``predict_results`` reads one ``FittedState`` (the value a ``MultivariatePredictor`` held when
the call began), so a prediction that runs while a re-fit finishes sees one model, never a
mixture.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple, Optional

from advisor_core.features import (
    DEFAULT_ENCODER,
    DEFAULT_HARDWARE,
    NON_NEGATIVE_TARGETS,
    NUMERIC_FEATURES,
    category,
    encode,
    valid_features,
)
from advisor_core.fitted import FittedState
from advisor_core.intervals import check_confidence_level
from advisor_core.kinds import KindFit, bootstrap_bounds, predict_rows

logger = logging.getLogger("advisor_core.modeling")

__all__ = ["INTERVAL_KEYS", "IntervalSettings", "predict_results"]

INTERVAL_KEYS = ("ci_low", "ci_high", "ci_width", "pi_low", "pi_high", "extrapolated")


class IntervalSettings(NamedTuple):
    """A predictor's interval settings at the time of a call (its constructor's keywords)."""

    confidence_level: Any
    n_bootstrap: Any
    random_state: Any
    n_jobs: Optional[int]


def _ci_bounds(low: Optional[float], high: Optional[float]) -> dict:
    """``{ci_low, ci_high, ci_width}`` floored at 0, or Nones when not finite."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return {"ci_low": None, "ci_high": None, "ci_width": None}
    low, high = max(0.0, low), max(0.0, high)
    return {"ci_low": low, "ci_high": high, "ci_width": high - low}


def _bootstrap(settings: IntervalSettings, fit: KindFit, rows: list,
               level: float) -> Optional[tuple[list, list]]:
    """Bootstrap interval of the mean per row (unclamped), or None (no resample / no setting)."""
    n_bootstrap = settings.n_bootstrap
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap <= 0:
        return [0.0] * len(rows), [0.0] * len(rows)
    try:
        bounds = bootstrap_bounds(fit, rows, n_bootstrap, level, settings.random_state,
                                  settings.n_jobs)
    except (TypeError, ValueError) as exc:
        logger.warning("MultivariatePredictor: no bootstrap interval: %s", exc)
        return None
    if bounds is None:
        return [0.0] * len(rows), [0.0] * len(rows)
    return bounds


def predict_results(fitted: FittedState, settings: IntervalSettings, kind: str,
                    features_list: list[dict], confidence: bool) -> list[dict]:
    """Result dicts (target unit, e.g. watts) of feature dicts by the trained ``kind``; rows
    with a NaN/inf/non-numeric feature get Nones."""
    encoders = list(fitted.encoder_categories)
    hardware = list(fitted.hardware_categories)
    valid = [valid_features(f) for f in features_list]
    X_new = encode([f if ok else {} for f, ok in zip(features_list, valid)], encoders, hardware)
    fit = fitted.fits[kind]
    level = check_confidence_level(settings.confidence_level) if confidence else None
    rows = predict_rows(fit, X_new, level)
    ci = None
    if level is not None:
        ci = _bootstrap(settings, fit, rows, level)
    lo, hi = fitted.trained_range
    n_numeric = len(NUMERIC_FEATURES)
    non_negative = fitted.target_name in NON_NEGATIVE_TARGETS
    results = []
    for i, (row, ok) in enumerate(zip(rows, valid)):
        if not ok or not math.isfinite(row.mean):
            item: dict = {"mean": None, "model": kind}
            if confidence:
                item.update(dict.fromkeys(INTERVAL_KEYS))
            results.append(item)
            continue
        item = {"mean": max(0.0, row.mean), "model": kind}
        if confidence:
            item.update(_ci_bounds(ci[0][i], ci[1][i]) if ci is not None
                        else _ci_bounds(None, None))
            half = row.half_width
            if half is None:
                item.update(pi_low=None, pi_high=None)
            else:
                low, high = row.mean - half, row.mean + half
                if non_negative:
                    low, high = max(0.0, low), max(0.0, high)
                item.update(pi_low=low, pi_high=high)
            features = features_list[i]
            item["extrapolated"] = (
                any(not lo[j] <= X_new[i, j] <= hi[j] for j in range(n_numeric))
                or category(features, "encoder_type", DEFAULT_ENCODER) not in encoders
                or category(features, "hardware_cpu_model", DEFAULT_HARDWARE)
                not in hardware)
        results.append(item)
    return results
