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

from advisor_core.models.features import (
    DEFAULT_ENCODER,
    DEFAULT_HARDWARE,
    NON_NEGATIVE_TARGETS,
    NUMERIC_FEATURES,
    category,
    encode,
    valid_features,
)
from advisor_core.models.fitted import FittedState
from advisor_core.models.floors import (
    ZERO,
    no_interval,
    off_single_values,
    power_floor,
    raise_to_floor,
)
from advisor_core.models.intervals import check_confidence_level
from advisor_core.models.kinds import KindFit, bootstrap_bounds, interval_problem, predict_rows

logger = logging.getLogger("advisor_core.models.modeling")

__all__ = ["INTERVAL_KEYS", "IntervalSettings", "predict_results"]

INTERVAL_KEYS = ("ci_low", "ci_high", "ci_width", "pi_low", "pi_high", "extrapolated")
#: The target whose predictions are floored at the run's idle baseline.
POWER_TARGET = "mean_power_watts"


class IntervalSettings(NamedTuple):
    """A predictor's interval settings at the time of a call (its constructor's keywords)."""

    confidence_level: Any
    n_bootstrap: Any
    random_state: Any
    n_jobs: Optional[int]


def _ci_bounds(low: Optional[float], high: Optional[float]) -> dict:
    """``{ci_low, ci_high}``, or Nones when not finite."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return {"ci_low": None, "ci_high": None}
    return {"ci_low": low, "ci_high": high}


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
    power = fitted.target_name == POWER_TARGET
    single = fitted.single_valued()
    results = []
    for i, (row, ok) in enumerate(zip(rows, valid)):
        if not ok or not math.isfinite(row.mean):
            item: dict = {"mean": None, "model": kind}
            if confidence:
                item.update(dict.fromkeys(INTERVAL_KEYS))
            results.append(item)
            continue
        values = [X_new[i, j] for j in range(n_numeric)]
        off = off_single_values(values, single)
        item = {"mean": row.mean, "model": kind}
        if confidence:
            if off:  # no slope along those features: nothing to give an interval with
                item.update(ci_low=None, ci_high=None, pi_low=None, pi_high=None)
            else:
                item.update(_ci_bounds(ci[0][i], ci[1][i]) if ci is not None
                            else _ci_bounds(None, None))
                half = row.half_width
                item.update(pi_low=None if half is None else row.mean - half,
                            pi_high=None if half is None else row.mean + half)
                if half is None and level is not None:
                    item["interval_unavailable"] = interval_problem(fit, row, level)
            features = features_list[i]
            item["extrapolated"] = (
                any(not lo[j] <= values[j] <= hi[j] for j in range(n_numeric))
                or category(features, "encoder_type", DEFAULT_ENCODER) not in encoders
                or category(features, "hardware_cpu_model", DEFAULT_HARDWARE)
                not in hardware)
        if off:
            item["no_interval"] = no_interval(off)
        # The mean and its bootstrap interval are never below 0 (nor below the idle baseline
        # for power at one stream or more); the prediction interval only for non-negative
        # targets.
        floor, name = power_floor(values[0], fitted.idle_watts) if power else (0.0, ZERO)
        raise_to_floor(item, ("mean", "ci_low", "ci_high", "pi_low", "pi_high")
                       if non_negative else ("mean", "ci_low", "ci_high"), floor, name)
        if confidence:
            low, high = item["ci_low"], item["ci_high"]
            item["ci_width"] = None if low is None or high is None else high - low
        results.append(_ordered(item))
    return results


def _ordered(item: dict) -> dict:
    """The result keys in the documented order (docs/predictions.md)."""
    order = ("mean", "model", *INTERVAL_KEYS, "no_interval", "interval_unavailable", "floored")
    return {key: item[key] for key in order if key in item}
