"""A fitted predictor's answers: means, bootstrap intervals of the mean, prediction intervals and
the extrapolation flag, assembled per feature dict (docs/predictions.md).

``predict_results`` reads one snapshot of a ``MultivariatePredictor``'s state, so a prediction
that runs while a re-fit finishes sees one model, never a mixture.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

from advisor_core.features import (
    DEFAULT_ENCODER,
    DEFAULT_HARDWARE,
    NON_NEGATIVE_TARGETS,
    NUMERIC_FEATURES,
    category,
    encode,
    valid_features,
)
from advisor_core.intervals import check_confidence_level
from advisor_core.kinds import KindFit, bootstrap_bounds, predict_rows

logger = logging.getLogger("advisor_core.modeling")

__all__ = ["INTERVAL_KEYS", "predict_results"]

INTERVAL_KEYS = ("ci_low", "ci_high", "ci_width", "pi_low", "pi_high", "extrapolated")


def _ci_bounds(low: Optional[float], high: Optional[float]) -> dict:
    """``{ci_low, ci_high, ci_width}`` floored at 0, or Nones when not finite."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return {"ci_low": None, "ci_high": None, "ci_width": None}
    low, high = max(0.0, low), max(0.0, high)
    return {"ci_low": low, "ci_high": high, "ci_width": high - low}


def _bootstrap(state: dict, fit: KindFit, rows: list,
               level: float) -> Optional[tuple[list, list]]:
    """Bootstrap interval of the mean per row (unclamped), or None (no resample / no setting)."""
    n_bootstrap = state["n_bootstrap"]
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap <= 0:
        return [0.0] * len(rows), [0.0] * len(rows)
    try:
        bounds = bootstrap_bounds(fit, rows, n_bootstrap, level, state["random_state"],
                                  state["n_jobs"])
    except (TypeError, ValueError) as exc:
        logger.warning("MultivariatePredictor: no bootstrap interval: %s", exc)
        return None
    if bounds is None:
        return [0.0] * len(rows), [0.0] * len(rows)
    return bounds


def predict_results(state: dict, kind: str, features_list: list[dict],
                    confidence: bool) -> list[dict]:
    """Result dicts (target unit, e.g. watts) of feature dicts, from a predictor's state snapshot;
    rows with a NaN/inf/non-numeric feature get Nones."""
    encoders, hardware = state["encoder_categories"], state["hardware_categories"]
    valid = [valid_features(f) for f in features_list]
    X_new = encode([f if ok else {} for f, ok in zip(features_list, valid)], encoders, hardware)
    fit = state["_fits"][kind]
    level = check_confidence_level(state["confidence_level"]) if confidence else None
    rows = predict_rows(fit, X_new, level)
    ci = None
    if level is not None:
        ci = _bootstrap(state, fit, rows, level)
    lo, hi = state["_range"]
    n_numeric = len(NUMERIC_FEATURES)
    non_negative = state["target_name"] in NON_NEGATIVE_TARGETS
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
