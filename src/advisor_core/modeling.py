"""Power models: watts from the stream count, and a multi-feature regression ensemble.

``PowerPredictor`` fits mean power (watts) against the number of concurrent streams.
``MultivariatePredictor`` fits a target (watts, joules or an efficiency score) against the
features of a scenario, picks the best of several model kinds by cross-validated R², and gives
bootstrap confidence intervals. The linear and polynomial models are native
(``advisor_core.linalg``); random forest and gradient boosting need scikit-learn (the ``trees``
extra).

Differences from the reference (see DECISIONS.md):

* stream counts come from ``advisor_core.scenario.stream_count`` (one rule, DECISIONS 1);
* the hardware feature is one-hot over the CPU models seen in training (DECISIONS 5), not
  ``hash() % 10``;
* models are saved as versioned JSON, never pickle (DECISIONS 6); tree models are not saved;
* bootstrap intervals are seeded by ``random_state`` (DECISIONS 7) and a batch computes its
  bootstrap once for all rows;
* model selection drops NaN folds, falls back to training R² and breaks ties towards the
  simpler model (DECISIONS 8); every fit starts from empty score/pipeline maps;
* a fit that fails (too few rows, no model trained) changes nothing, not even the stored target
  name, so the predictor stays consistent with the model it still holds;
* RMSE in the score map is in-sample, as in the reference; R² is the cross-validated score.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

from advisor_core import linalg
from advisor_core.cost import scenario_power
from advisor_core.intervals import check_confidence_level, extrapolated_half_width, half_width
from advisor_core.kinds import (
    NATIVE_DEGREES,
    SIMPLICITY,
    TREE_KINDS,
    TREES_EXTRA_HINT,
    KindFit,
    available_model_kinds,
    bootstrap_bounds,
    describe,
    fit_kind,
    oof_predictions,
    predict_rows,
    terms,
    trees_available,
)
from advisor_core.scenario import as_number, bitrate_mbps, stream_count, total_pixels
from advisor_core.selection import KindScore, fold_labels, score_kind, select

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MultivariatePredictor",
    "PowerPredictor",
    "StreamPowerModel",
    "available_model_kinds",
    "extract_features",
    "trees_available",
]

PathLike = Union[str, "os.PathLike[str]"]

# ---------------------------------------------------------------------------------------------
# PowerPredictor
# ---------------------------------------------------------------------------------------------

#: Distinct stream counts from which the power model becomes quadratic.
QUADRATIC_MIN_DISTINCT_STREAMS = 6


class StreamPowerModel(NamedTuple):
    """A fitted power curve: watts = intercept + Σ coef[i] · streams^(i+1)."""

    intercept: float
    coef: tuple[float, ...]

    def __call__(self, streams: float) -> float:
        """Evaluate the curve at ``streams`` (watts, unclamped)."""
        value = 0.0
        for c in reversed(self.coef):
            value = (value + c) * streams
        return self.intercept + value


class PowerPredictor:
    """Mean power (watts) as a function of the number of concurrent streams."""

    def __init__(self) -> None:
        self.model: Optional[StreamPowerModel] = None
        # Degree of the polynomial expansion (2) when the model is quadratic, else None.
        self.poly_features: Optional[int] = None
        self.is_polynomial = False
        self.training_data: list[tuple[int, float]] = []
        # Trained stream range; interval statistics of the current model, computed on the
        # first interval asked for.
        self._range = (0.0, 0.0)
        self._stats: Optional[_StreamIntervalStats] = None

    def fit(self, scenarios: Any) -> bool:
        """Fit watts against stream count; False (old model kept) when no usable pair exists."""
        pairs = _power_pairs(scenarios)
        if not pairs:
            logger.warning("PowerPredictor: no scenario with a stream count and a mean power")
            return False
        quadratic = len({s for s, _ in pairs}) >= QUADRATIC_MIN_DISTINCT_STREAMS
        try:
            model = _fit_stream_power(pairs, quadratic)
        except (ValueError, OverflowError) as exc:  # sums beyond the float range
            logger.warning("PowerPredictor: fit failed (%s); previous model kept", exc)
            return False
        if not all(math.isfinite(c) for c in (model.intercept, *model.coef)):
            logger.warning("PowerPredictor: fit produced non-finite coefficients; model kept")
            return False
        self.model = model
        self.is_polynomial = quadratic
        self.poly_features = 2 if quadratic else None
        self.training_data = pairs
        streams = [s for s, _ in pairs]
        self._range = (float(min(streams)), float(max(streams)))
        if logger.isEnabledFor(logging.INFO):
            y_mean = sum(w for _, w in pairs) / len(pairs)
            ss_res = sum((w - model(s)) ** 2 for s, w in pairs)
            ss_tot = sum((w - y_mean) ** 2 for _, w in pairs)
            r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
            logger.info("PowerPredictor: %s model on %d points, R² = %.4f",
                        "polynomial" if quadratic else "linear", len(pairs), r2)
        return True

    def predict(self, streams: Any) -> Optional[float]:
        """Predicted mean power in watts for ``streams`` (≥ 0), or None untrained / bad input.

        Inside the trained stream range the fitted line or quadratic; beyond it the value at
        the nearest trained count continued by the least-squares line's slope (never falling
        as streams are added), so a quadratic is never extrapolated.
        """
        model = self.model
        if model is None:
            return None
        value = as_number(streams)
        if value is None:
            return None
        low, high = self._range
        if low <= value <= high:  # the common case needs no kernel call
            predicted = model(value)
        else:
            predicted = self._guarded(value)
        if not math.isfinite(predicted):
            return None
        return predicted if predicted > 0.0 else 0.0

    def predict_interval(self, streams: Any, confidence_level: float = 0.95) -> dict:
        """Mean power (W) and a prediction interval (W) for one new measurement at ``streams``.

        ``{mean, pi_low, pi_high, extrapolated}``: ``mean`` equals ``predict(streams)``; the
        interval is the Student-t interval of the fitted line or quadratic
        (``advisor_core.intervals``), floored at 0 W, None with no residual degree of freedom
        (rows <= coefficients); ``extrapolated`` is True outside the trained stream range.
        ValueError for a ``confidence_level`` outside (0, 1).
        """
        level = check_confidence_level(confidence_level)
        mean = self.predict(streams)
        result: dict = {"mean": mean, "pi_low": None, "pi_high": None, "extrapolated": None}
        if mean is None:
            return result
        value = float(as_number(streams))  # type: ignore[arg-type]
        low, high = self._range
        extrapolated = not low <= value <= high
        result["extrapolated"] = extrapolated
        stats = self._interval_stats()
        inside = min(max(value, low), high)
        half = stats.half_width(inside, level)
        if extrapolated:
            half = extrapolated_half_width(half, stats.trend_half_width(value, level))
        if half is not None:
            centre = self._guarded(value) if extrapolated else self.model(value)  # type: ignore[misc]
            result["pi_low"] = max(0.0, centre - half)
            result["pi_high"] = max(0.0, centre + half)
        return result

    def _guarded(self, value: float) -> float:
        """The model continued linearly beyond the trained range (``linalg.guarded_predict``)."""
        stats = self._interval_stats()
        return linalg.guarded_predict(stats.model, stats.box, [[value]])[0]

    def _interval_stats(self) -> _StreamIntervalStats:
        cached = self._stats
        if cached is None or cached.source is not self.model:
            cached = self._stats = _StreamIntervalStats(self.model, self.training_data)
        return cached

    def get_model_info(self) -> dict:
        """Describe the model: trained flag, type, sample count and stream range (streams)."""
        if self.model is None:
            return {"trained": False, "model_type": None, "n_samples": 0, "stream_range": None}
        streams = [s for s, _ in self.training_data]
        return {
            "trained": True,
            "model_type": "polynomial" if self.is_polynomial else "linear",
            "n_samples": len(self.training_data),
            "stream_range": (min(streams), max(streams)),
        }


def _fit_stream_power(pairs: list[tuple[int, float]], quadratic: bool) -> StreamPowerModel:
    """Least squares with intercept on the centred design [s] or [s, s²] (min-norm)."""
    import numpy as np

    n = len(pairs)
    # A dozen points: plain Python sums cost less than numpy's per-call overhead.
    x_mean = sum(s for s, _ in pairs) / n
    y_mean = sum(w for _, w in pairs) / n
    centred_y = np.array([w - y_mean for _, w in pairs])
    if quadratic:
        # The constant column of the reference's [1, s, s²] design is zero once centred and
        # receives coefficient 0 from min-norm least squares, so it is left out.
        sq_mean = sum(s * s for s, _ in pairs) / n
        design = np.array([(s - x_mean, s * s - sq_mean) for s, _ in pairs])
        beta = linalg.lstsq(design, centred_y)
        coef: tuple[float, ...] = (float(beta[0]), float(beta[1]))
        return StreamPowerModel(float(y_mean - x_mean * coef[0] - sq_mean * coef[1]), coef)
    design = np.array([s - x_mean for s, _ in pairs]).reshape(n, 1)
    coef = (float(linalg.lstsq(design, centred_y)[0]),)
    return StreamPowerModel(float(y_mean - x_mean * coef[0]), coef)


class _StreamIntervalStats:
    """What the stream-count model's intervals need: its design's rank, the residual variance,
    and the least-squares line that continues it beyond the trained range."""

    def __init__(self, model: StreamPowerModel, pairs: list[tuple[int, float]]) -> None:
        self.source = model
        n = len(pairs)
        self.degree = len(model.coef)
        self.X = linalg.float_rows(array("d", [float(s) for s, _ in pairs]), 1)
        watts = [w for _, w in pairs]
        # The reference's coefficients as a pipeline with identity scaling, so the one guarded
        # evaluation rule of linalg applies to it.
        self.model = linalg.PolynomialModel(
            self.degree, array("d", [0.0]), array("d", [1.0]),
            array("d", [0.0, *model.coef]), model.intercept)
        line = linalg.PolynomialModel.fit(self.X, array("d", watts), 1)
        self.line = line
        self.box = linalg.TrainedBox.of(self.X, line, b"\x01")
        self.rank, _ = linalg.leverage(self.X, self.degree, self.X)
        residuals = [w - model(s) for s, w in pairs]
        self.df = n - self.rank - 1
        self.sigma2 = (math.fsum(r * r for r in residuals) / self.df) if self.df > 0 else math.nan
        line_fit = line.predict_values(self.X)
        self.line_rank, _ = linalg.leverage(self.X, 1, self.X)
        self.line_df = n - self.line_rank - 1
        self.line_sigma2 = (math.fsum((w - f) ** 2 for w, f in zip(watts, line_fit)) / self.line_df
                            if self.line_df > 0 else math.nan)

    def half_width(self, streams: float, level: float) -> Optional[float]:
        """Prediction-interval half-width (W) of the model at ``streams``."""
        if self.df < 1:
            return None
        _, h = linalg.leverage(self.X, self.degree, [[streams]])
        return half_width(self.sigma2, self.df, h[0], level)

    def trend_half_width(self, streams: float, level: float) -> Optional[float]:
        """Prediction-interval half-width (W) of the least-squares line at ``streams``."""
        if self.line_df < 1:
            return None
        _, h = linalg.leverage(self.X, 1, [[streams]])
        return half_width(self.line_sigma2, self.line_df, h[0], level)


def _power_pairs(scenarios: Any) -> list[tuple[int, float]]:
    """(streams, watts) pairs of the scenarios that have both (``training_target``'s rule)."""
    if not isinstance(scenarios, (list, tuple)):
        return []
    pairs = []
    for scenario in scenarios:
        watts = training_target(scenario, "mean_power_watts")
        if watts is None:
            continue
        streams = stream_count(scenario.get("name"))
        if streams is None:
            continue
        pairs.append((streams, watts))
    return pairs


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------

#: Numeric features, in vector order; the one-hot encoder and hardware columns follow.
NUMERIC_FEATURES = (
    "stream_count", "bitrate_mbps", "total_pixels", "cpu_usage_pct", "container_cpu_pct",
)
DEFAULT_ENCODER = "x264"
DEFAULT_HARDWARE = "unknown"

_TARGETS = {
    "mean_power_watts": ("power", "mean_watts"),
    "total_energy_joules": ("power", "total_energy_joules"),
    "efficiency_score": (None, "efficiency_score"),
}
# Watts and joules cannot be negative; an efficiency score can be any finite number.
_NON_NEGATIVE_TARGETS = frozenset(("mean_power_watts", "total_energy_joules"))


def _nested_number(scenario: dict, outer: str, key: str) -> float:
    """A number inside a nested object; 0.0 when the object or the number is missing/invalid."""
    inner = scenario.get(outer)
    if not isinstance(inner, dict):
        return 0.0
    value = as_number(inner.get(key))
    return 0.0 if value is None else value


def _nested_text(scenario: dict, outer: Optional[str], key: str, default: str) -> str:
    inner = scenario if outer is None else scenario.get(outer)
    if not isinstance(inner, dict):
        return default
    value = inner.get(key)
    return value if isinstance(value, str) and value else default


def extract_features(scenario: Any) -> Optional[dict]:
    """Feature dict of a scenario (Mbps, pixels, CPU %), or None when its stream count is unknown.

    Missing, null or non-numeric fields take the defaults (0.0, "x264", "unknown").
    """
    if not isinstance(scenario, dict):
        return None
    streams = stream_count(scenario.get("name"))
    if streams is None:
        return None
    bitrate = bitrate_mbps(scenario.get("bitrate", "0k"))
    pixels = total_pixels(scenario)
    return {
        "stream_count": streams,
        "bitrate_mbps": 0.0 if bitrate is None else bitrate,
        "total_pixels": 0.0 if pixels is None else pixels,
        "cpu_usage_pct": _nested_number(scenario, "container_usage", "cpu_percent"),
        "encoder_type": _nested_text(scenario, None, "encoder_type", DEFAULT_ENCODER),
        "hardware_cpu_model": _nested_text(scenario, "hardware", "cpu_model", DEFAULT_HARDWARE),
        "container_cpu_pct": _nested_number(scenario, "docker_overhead", "cpu_percent"),
    }


def training_target(scenario: Any, target: Any = "mean_power_watts") -> Optional[float]:
    """The training target of a scenario (W, J or a score), or None when absent or invalid.

    Power and energy are read with ``advisor_core.cost.scenario_power``, so every results
    schema trains: a ``power`` object (analysed or joined from an analysis CSV) or
    ``power_watts`` samples (energy only with a valid ``step_seconds``).
    """
    if not isinstance(scenario, dict) or not isinstance(target, str) or target not in _TARGETS:
        return None
    outer, key = _TARGETS[target]
    container = scenario if outer is None else scenario_power(scenario)
    if not isinstance(container, dict):
        return None
    value = as_number(container.get(key))
    if value is None or (target in _NON_NEGATIVE_TARGETS and value < 0):
        return None
    return value


def _valid_features(features: Any) -> bool:
    """False when a numeric feature is present but not a finite number (NaN, inf, text)."""
    for key in NUMERIC_FEATURES:
        value = features.get(key)
        if value is not None and as_number(value) is None:
            return False
    return True


def _category(features: dict, key: str, default: str) -> str:
    value = features.get(key)
    return value if isinstance(value, str) else default


def _column_range(X: memoryview) -> tuple[array, array]:
    """Per-column minima and maxima of a 2-D float memoryview."""
    n, p = X.shape
    return (array("d", [min(X[i, j] for i in range(n)) for j in range(p)]),
            array("d", [max(X[i, j] for i in range(n)) for j in range(p)]))


_INTERVAL_KEYS = ("ci_low", "ci_high", "ci_width", "pi_low", "pi_high", "extrapolated")


def _bounds(prefix: str, low: Optional[float], high: Optional[float]) -> dict:
    """``{prefix_low, prefix_high}`` floored at 0, or Nones when not finite."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return {f"{prefix}_low": None, f"{prefix}_high": None, f"{prefix}_width": None}
    low, high = max(0.0, low), max(0.0, high)
    return {f"{prefix}_low": low, f"{prefix}_high": high, f"{prefix}_width": high - low}


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


def _feature_names(encoders: list[str], hardware: list[str]) -> list[str]:
    return (list(NUMERIC_FEATURES) + [f"encoder_{c}" for c in encoders]
            + [f"hardware_{c}" for c in hardware])


def _encode(features_list: list[dict], encoders: list[str], hardware: list[str]) -> memoryview:
    """Feature matrix (rows × (5 + categories)) of feature dicts; unseen categories → zeros.

    A C-contiguous float64 2-D memoryview (numpy is not needed to train or predict natively).
    """
    if not features_list:
        raise ValueError("no feature rows to encode")
    n_numeric = len(NUMERIC_FEATURES)
    encoder_col = {c: n_numeric + i for i, c in enumerate(encoders)}
    hardware_col = {c: n_numeric + len(encoders) + i for i, c in enumerate(hardware)}
    width = n_numeric + len(encoders) + len(hardware)
    flat = array("d")
    for features in features_list:
        row = [0.0] * width
        for i, key in enumerate(NUMERIC_FEATURES):
            value = as_number(features.get(key))
            if value is not None:
                row[i] = value
        encoder = features.get("encoder_type")
        col = encoder_col.get(encoder if isinstance(encoder, str) else DEFAULT_ENCODER)
        if col is not None:
            row[col] = 1.0
        cpu_model = features.get("hardware_cpu_model")
        col = hardware_col.get(cpu_model if isinstance(cpu_model, str) else DEFAULT_HARDWARE)
        if col is not None:
            row[col] = 1.0
        flat.extend(row)
    return linalg.float_rows(flat, width)


def _readonly_numpy(values: Any) -> Optional[np.ndarray]:
    if values is None:
        return None
    import numpy as np

    view = np.asarray(values)
    view.flags.writeable = False
    return view


# ---------------------------------------------------------------------------------------------
# MultivariatePredictor
# ---------------------------------------------------------------------------------------------

#: Name and version of the JSON model file written by ``MultivariatePredictor.save``.
FORMAT_NAME = "advisor-core/multivariate-predictor"
FORMAT_VERSION = 2
#: Older format versions this advisor-core still reads.
_READABLE_VERSIONS = (1, 2)

_MAX_MODEL_FILE_BYTES = 256 * 1024 * 1024


class MultivariatePredictor:
    """Multi-feature model of power/energy/efficiency with model selection and bootstrap CIs."""

    def __init__(self, models: Optional[list] = None, confidence_level: float = 0.95,
                 n_bootstrap: int = 100, cv_folds: int = 5, random_state: Any = 0,
                 n_jobs: Optional[int] = None) -> None:
        if isinstance(models, str):
            models = [models]
        self.models = list(models) if models is not None else available_model_kinds()
        self.confidence_level = check_confidence_level(confidence_level)
        self.n_bootstrap = n_bootstrap
        self.cv_folds = cv_folds
        self.random_state = random_state
        # Threads for the native bootstrap (None: the usable cores, for large problems); a
        # runtime setting, not saved with the model.
        self.n_jobs = n_jobs
        self.pipelines: dict[str, Any] = {}
        self.best_model_name: Optional[str] = None
        self.best_model_score: Optional[dict] = None
        self.model_scores: dict[str, dict] = {}
        self.feature_names: list[str] = []
        self.target_name: Optional[str] = None
        self.encoder_categories: list[str] = []
        self.hardware_categories: list[str] = []
        self.hardware_model: Optional[str] = None
        # Training rows (2-D float64 memoryview) and targets; X_train/y_train view them.
        self._X_train: Optional[memoryview] = None
        self._y_train: Optional[array] = None
        # Per trained kind: what its guarded predictions and intervals need; the trained range
        # of every feature (the ``extrapolated`` flag); how the winner was chosen.
        self._fits: dict[str, KindFit] = {}
        self._range: tuple[array, array] = (array("d"), array("d"))
        self.selection: Optional[dict] = None
        self.version = "1.0"

    extract_features = staticmethod(extract_features)

    @property
    def X_train(self) -> Optional[np.ndarray]:
        """The encoded training features (rows × feature_names), a read-only numpy view."""
        return _readonly_numpy(self._X_train)

    @property
    def y_train(self) -> Optional[np.ndarray]:
        """The training targets (in the target's unit), a read-only numpy view."""
        return _readonly_numpy(self._y_train)

    # -- training -------------------------------------------------------------------------

    def _model_kinds(self) -> list[str]:
        """The candidate kinds, de-duplicated; raises for unknown or unavailable kinds."""
        kinds: list[str] = []
        for kind in self.models:
            if not isinstance(kind, str) or kind not in SIMPLICITY:
                raise ValueError(f"Unknown model type: {kind}")
            if kind in TREE_KINDS and not trees_available():
                raise ImportError(f"model type {kind!r} needs scikit-learn; {TREES_EXTRA_HINT}")
            if kind not in kinds:
                kinds.append(kind)
        return kinds

    def _folds(self, n: int) -> tuple[array, str]:
        folds = self.cv_folds
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            folds = 5
        seed = self.random_state
        if isinstance(seed, bool) or not isinstance(seed, int):
            seed = 0 if seed is not None else None
        return fold_labels(n, folds, seed)

    def fit(self, scenarios: Any, target: str = "mean_power_watts",
            hardware_id: Optional[str] = None) -> bool:
        """Train and cross-validate every candidate kind; False (state unchanged) if none trains.

        With more than one kind asked for, the stream-count line (``streams``) joins the
        candidates and the winner is chosen by ``advisor_core.selection`` (out-of-fold error,
        one-standard-error rule, rows per coefficient). Raises ValueError for an unknown model
        kind and ImportError for 'rf'/'gbm' without scikit-learn.
        """
        kinds = self._model_kinds()
        features_rows: list[dict] = []
        targets: list[float] = []
        if isinstance(scenarios, (list, tuple)):
            for scenario in scenarios:
                features = extract_features(scenario)
                if features is None:
                    continue
                value = training_target(scenario, target)
                if value is None:
                    continue
                features_rows.append(features)
                targets.append(value)
        if len(targets) < 2:
            logger.warning("MultivariatePredictor: %d usable scenario(s), need at least 2",
                           len(targets))
            return False

        encoders = sorted({f["encoder_type"] for f in features_rows})
        hardware = sorted({f["hardware_cpu_model"] for f in features_rows})
        X = _encode(features_rows, encoders, hardware)
        y = array("d", targets)
        n, width = X.shape
        non_negative = target in _NON_NEGATIVE_TARGETS
        rising = bytes([1 if non_negative else 0]) + bytes(width - 1)
        candidates = kinds if len(kinds) == 1 else sorted({"streams", *kinds},
                                                          key=SIMPLICITY.index)
        fold, scheme = self._folds(n)

        fits: dict[str, KindFit] = {}
        scores: list[KindScore] = []
        in_sample: dict[str, float] = {}
        for kind in candidates:
            try:
                oof = oof_predictions(kind, X, y, fold, rising)
                if non_negative:
                    oof = array("d", [max(0.0, v) if math.isfinite(v) else v for v in oof])
                residuals = tuple(t - v for t, v in zip(y, oof))
                fitted_kind = fit_kind(kind, X, y, rising, residuals)
                fitted = array("d", (r.mean for r in predict_rows(fitted_kind, X, None)))
                if not all(math.isfinite(v) for v in fitted):
                    raise ValueError("non-finite fitted values")
                rmse = float(linalg.rmse(y, fitted))
            # Any failure of one model kind (singular data, overflow, a scikit-learn error)
            # only removes that kind from the candidates, as in the reference.
            except Exception as exc:
                logger.warning("MultivariatePredictor: model %s failed: %s", kind, exc)
                continue
            fits[kind] = fitted_kind
            in_sample[kind] = rmse
            scores.append(score_kind(kind, y, oof, terms(kind, X), width))
        if not fits:
            logger.warning("MultivariatePredictor: no model could be trained")
            return False

        best, why = select(scores)
        model_scores = {s.kind: {**s.as_dict(), "rmse_in_sample": in_sample[s.kind]}
                        for s in scores}
        lo, hi = fits[best].box.lo, fits[best].box.hi
        if fits[best].X.shape[1] != width:  # the stream-count line: its box has one column
            lo, hi = _column_range(X)
        # One update publishes the whole new model (see _snapshot).
        self.__dict__.update(
            pipelines={k: f.model for k, f in fits.items()},
            _fits=fits,
            model_scores=model_scores,
            best_model_name=best,
            best_model_score=dict(model_scores[best]),
            selection={"scheme": scheme, "rows": n, "winner": best, "reason": why},
            encoder_categories=encoders,
            hardware_categories=hardware,
            feature_names=_feature_names(encoders, hardware),
            _X_train=X,
            _y_train=y,
            _range=(lo, hi),
            target_name=target,
            hardware_model=hardware_id if isinstance(hardware_id, str) else None,
        )
        logger.info("MultivariatePredictor: %s on %d rows (%s)", best, n, why)
        return True

    # -- prediction -----------------------------------------------------------------------

    # Readers take one snapshot of the instance dict (a single atomic copy under the GIL) and
    # fit publishes its result with one dict update, so a prediction running in another thread
    # while a re-fit finishes sees the old model or the new one, never a mixture.

    def _snapshot(self) -> dict:
        return self.__dict__.copy()

    @staticmethod
    def _resolve_model(state: dict, model_name: Optional[str]) -> str:
        best = state["best_model_name"]
        if model_name is not None and model_name in state["pipelines"]:
            return model_name
        if model_name is not None:
            logger.warning("model %r is not trained; using %s", model_name, best)
        return best

    @staticmethod
    def _predict_rows(state: dict, kind: str, features_list: list[dict],
                      confidence: bool) -> list[dict]:
        """Result dicts of feature dicts; rows with a NaN/inf/non-numeric feature get Nones."""
        encoders, hardware = state["encoder_categories"], state["hardware_categories"]
        valid = [_valid_features(f) for f in features_list]
        X_new = _encode([f if ok else {} for f, ok in zip(features_list, valid)],
                        encoders, hardware)
        fit = state["_fits"][kind]
        level = check_confidence_level(state["confidence_level"]) if confidence else None
        rows = predict_rows(fit, X_new, level)
        ci = None
        if level is not None:
            ci = _bootstrap(state, fit, rows, level)
        lo, hi = state["_range"]
        n_numeric = len(NUMERIC_FEATURES)
        non_negative = state["target_name"] in _NON_NEGATIVE_TARGETS
        results = []
        for i, (row, ok) in enumerate(zip(rows, valid)):
            if not ok or not math.isfinite(row.mean):
                item: dict = {"mean": None, "model": kind}
                if confidence:
                    item.update(dict.fromkeys(_INTERVAL_KEYS))
                results.append(item)
                continue
            item = {"mean": max(0.0, row.mean), "model": kind}
            if confidence:
                item.update(_bounds("ci", ci[0][i], ci[1][i]) if ci is not None
                            else _bounds("ci", None, None))
                if "ci_low" in item and item["ci_low"] is not None:
                    item["ci_width"] = item["ci_high"] - item["ci_low"]
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
                    or _category(features, "encoder_type", DEFAULT_ENCODER) not in encoders
                    or _category(features, "hardware_cpu_model", DEFAULT_HARDWARE)
                    not in hardware)
            results.append(item)
        return results

    def predict(self, features: Any, return_confidence: bool = True,
                model_name: Optional[str] = None) -> dict:
        """Predict the target (e.g. watts) for one feature dict, with its intervals.

        ``{mean, model}``; with ``return_confidence`` also ``ci_low``/``ci_high``/``ci_width``
        (bootstrap percentile interval of the fitted *mean*), ``pi_low``/``pi_high`` (prediction
        interval for one new measurement at ``confidence_level``, see
        ``advisor_core.intervals``; None when the rows leave no residual degree of freedom) and
        ``extrapolated`` (a numeric feature outside its trained range, or an unseen category).
        Beyond the trained range the model continues its linear trend. Untrained or a non-dict
        ``features`` → ``{mean: None, model: None}``; a NaN, infinite or non-numeric feature →
        None values. ValueError when ``confidence_level`` is outside (0, 1).
        """
        state = self._snapshot()
        if not state["pipelines"] or not isinstance(features, dict):
            return {"mean": None, "model": None}
        kind = self._resolve_model(state, model_name)
        return self._predict_rows(state, kind, [features], return_confidence)[0]

    def predict_batch(self, features_list: Any, return_confidence: bool = False) -> list[dict]:
        """Predict with the best model for each feature dict (the keys of ``predict``); one
        bootstrap serves all rows. Items that are not dicts get ``{mean: None, model: None}``.
        """
        if not isinstance(features_list, (list, tuple)):
            return []
        results: list[dict] = [{"mean": None, "model": None} for _ in features_list]
        state = self._snapshot()
        valid = [i for i, f in enumerate(features_list) if isinstance(f, dict)]
        if state["pipelines"] and valid:
            rows = self._predict_rows(state, state["best_model_name"],
                                      [features_list[i] for i in valid], return_confidence)
            for i, item in zip(valid, rows):
                results[i] = item
        return results

    def get_model_info(self) -> dict:
        """Describe the trained ensemble: the winner and why, per model its out-of-fold RMSE
        (target unit) and R², rows, terms, eligibility and in-sample RMSE; features, target."""
        state = self._snapshot()
        if not state["pipelines"]:
            return {"trained": False, "best_model": None, "models": {}, "n_samples": 0,
                    "target": None, "hardware": None, "version": state["version"]}
        X_train = state["_X_train"]
        return {
            "trained": True,
            "best_model": state["best_model_name"],
            "best_score": dict(state["best_model_score"] or {}),
            "models": {name: dict(score) for name, score in state["model_scores"].items()},
            "n_samples": 0 if X_train is None else int(X_train.shape[0]),
            "n_features": len(state["feature_names"]),
            "feature_names": list(state["feature_names"]),
            "target": state["target_name"],
            "hardware": state["hardware_model"],
            "version": state["version"],
            "confidence_level": state["confidence_level"],
            "selection": dict(state["selection"] or {}),
        }

    # -- persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The JSON document ``save`` writes (format name + version, coefficients, data)."""
        state = self._snapshot()
        native = {k: m for k, m in state["pipelines"].items() if k in NATIVE_DEGREES}
        omitted = sorted((k for k in state["pipelines"] if k not in native), key=SIMPLICITY.index)
        scores = {k: _json_score(state["model_scores"][k]) for k in native}
        best = state["best_model_name"] if state["best_model_name"] in native else (
            _best_saved(scores) if scores else None)
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "version": state["version"],
            "settings": {
                "models": list(state["models"]),
                "confidence_level": state["confidence_level"],
                "n_bootstrap": state["n_bootstrap"],
                "cv_folds": state["cv_folds"],
                "random_state": state["random_state"],
            },
            "target_name": state["target_name"],
            "hardware_model": state["hardware_model"],
            "feature_names": list(state["feature_names"]),
            "encoder_categories": list(state["encoder_categories"]),
            "hardware_categories": list(state["hardware_categories"]),
            "model_scores": scores,
            "best_model_name": best,
            "best_model_score": dict(scores[best]) if best is not None else None,
            "pipelines": {k: _native_to_dict(m) for k, m in native.items()},
            # Tree models are not serialisable without pickle: they are left out, and named
            # here (with the best model of the trained process) so a reader knows what is missing.
            "omitted_models": {k: dict(state["model_scores"][k]) for k in omitted},
            "trained_best_model_name": state["best_model_name"],
            "selection": state["selection"],
            "X_train": None if state["_X_train"] is None else state["_X_train"].tolist(),
            "y_train": None if state["_y_train"] is None else state["_y_train"].tolist(),
        }

    def save(self, path: PathLike) -> None:
        """Write the model as versioned JSON (atomically); parent directories are created.

        Tree models ('rf', 'gbm') are not written: they are listed under ``omitted_models`` and
        the saved best model is the best native one. Raises ValueError for non-finite values.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model cannot be saved as JSON: {exc}") from exc
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: PathLike) -> MultivariatePredictor:
        """Read a model written by ``save``; ValueError for a pickle, corrupt file, bad version."""
        path = Path(path)
        try:
            if path.stat().st_size > _MAX_MODEL_FILE_BYTES:
                raise ValueError(f"{path}: model file too large")
            raw = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read model file: {exc}") from exc
        if raw[:1] == b"\x80":
            raise ValueError(f"{path}: looks like a pickle; only advisor-core JSON model files "
                             "are accepted (pickles can execute code)")
        try:
            document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"{path}: not a valid JSON model file: {exc}") from exc
        try:
            return cls.from_dict(document)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def from_dict(cls, document: Any) -> MultivariatePredictor:
        """Rebuild a predictor from the ``to_dict`` document; ValueError when it is not one."""
        if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
            raise ValueError(f"not an advisor-core model file (format must be {FORMAT_NAME!r})")
        version = document.get("format_version")
        if version not in _READABLE_VERSIONS or isinstance(version, bool):
            raise ValueError(f"unsupported model format version {version!r} "
                             f"(this advisor-core reads versions {_READABLE_VERSIONS})")
        settings = _field(document, "settings", dict)
        models = _field(settings, "models", list)
        if not all(isinstance(m, str) for m in models):
            raise ValueError("settings.models must be a list of strings")
        predictor = cls(
            models=models,
            confidence_level=_number_field(settings, "confidence_level"),
            n_bootstrap=_int_field(settings, "n_bootstrap"),
            cv_folds=_int_field(settings, "cv_folds"),
            random_state=_optional_int_field(settings, "random_state"),
        )
        predictor.version = _field(document, "version", str)
        predictor.target_name = _optional_field(document, "target_name", str)
        predictor.hardware_model = _optional_field(document, "hardware_model", str)
        encoders = _string_list(document, "encoder_categories")
        hardware = _string_list(document, "hardware_categories")
        feature_names = _string_list(document, "feature_names")
        untrained = not feature_names and not encoders and not hardware
        if not untrained and feature_names != _feature_names(encoders, hardware):
            raise ValueError("feature_names do not match the saved categories")
        n_features = len(feature_names)
        if untrained and (document.get("pipelines") or document.get("X_train") is not None):
            raise ValueError("a trained model file must name its features")

        scores = _field(document, "model_scores", dict)
        pipelines_doc = _field(document, "pipelines", dict)
        if set(scores) != set(pipelines_doc):
            raise ValueError("model_scores and pipelines name different models")
        pipelines: dict[str, Any] = {}
        for kind, model_doc in pipelines_doc.items():
            if kind not in NATIVE_DEGREES:
                raise ValueError(f"unsupported saved model kind {kind!r}")
            pipelines[kind] = _native_from_dict(model_doc, NATIVE_DEGREES[kind],
                                                1 if kind == "streams" else n_features)
            scores[kind] = _read_score(scores[kind], kind)
        best = _optional_field(document, "best_model_name", str)
        if (best is None) != (not pipelines) or (best is not None and best not in pipelines):
            raise ValueError("best_model_name must name a saved model")

        X_doc, y_doc = document.get("X_train"), document.get("y_train")
        if (X_doc is None) != (y_doc is None):
            raise ValueError("X_train and y_train must both be present or both be null")
        if X_doc is not None:
            X = _finite_rows(X_doc, "X_train")
            y = _finite_numbers(y_doc, "y_train")
            if X.shape[1] != n_features or X.shape[0] != len(y):
                raise ValueError("X_train/y_train shapes do not match the features")
            predictor._X_train, predictor._y_train = X, y
        elif pipelines:
            raise ValueError("a trained model file must carry X_train and y_train")

        predictor.encoder_categories = encoders
        predictor.hardware_categories = hardware
        predictor.feature_names = feature_names
        predictor.pipelines = pipelines
        predictor.model_scores = scores
        predictor.best_model_name = best
        predictor.best_model_score = dict(scores[best]) if best is not None else None
        selection = document.get("selection")
        predictor.selection = dict(selection) if isinstance(selection, dict) else None
        if pipelines:
            X, y = predictor._X_train, predictor._y_train
            non_negative = predictor.target_name in _NON_NEGATIVE_TARGETS
            rising = bytes([1 if non_negative else 0]) + bytes(n_features - 1)
            predictor._fits = {k: describe(k, m, X, y, rising) for k, m in pipelines.items()}
            predictor._range = _column_range(X)
        omitted = document.get("omitted_models", {})
        if isinstance(omitted, dict) and omitted:
            logger.warning("model file omits tree models %s (not serialisable); refit to use "
                           "them", sorted(omitted))
        return predictor


# ---------------------------------------------------------------------------------------------
# Persistence helpers
# ---------------------------------------------------------------------------------------------


def _json_score(score: dict) -> dict:
    """A score dict with non-finite numbers as null (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in score.items()}


def _best_saved(scores: dict) -> str:
    """The saved best among native kinds: lowest out-of-fold RMSE of the eligible ones."""
    ranked = sorted(scores, key=SIMPLICITY.index)
    usable = [k for k in ranked if scores[k].get("eligible", True)
              and isinstance(scores[k].get("rmse"), (int, float))] or ranked
    return min(usable, key=lambda k: (scores[k].get("rmse") or math.inf))


_SCORE_NUMBERS = ("r2", "rmse", "rmse_in_sample")
_SCORE_FLAGS = ("eligible", "underdetermined")


def _read_score(score: Any, kind: str) -> dict:
    """A saved score: r2 and rmse (numbers or null), optional rows/terms/flags; else ValueError."""
    if not isinstance(score, dict) or not {"r2", "rmse"} <= set(score):
        raise ValueError(f"model_scores[{kind!r}] must hold r2 and rmse")
    known = set(_SCORE_NUMBERS) | set(_SCORE_FLAGS) | {"rows", "terms"}
    if not set(score) <= known:
        raise ValueError(f"model_scores[{kind!r}] has unknown keys {sorted(set(score) - known)}")
    out: dict = {}
    for key in _SCORE_NUMBERS:
        if key in score:
            out[key] = math.nan if score[key] is None else _number_field(score, key)
    for key in ("rows", "terms"):
        if key in score:
            value = score[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"model_scores[{kind!r}].{key} must be an integer")
            out[key] = value
    for key in _SCORE_FLAGS:
        if key in score:
            if not isinstance(score[key], bool):
                raise ValueError(f"model_scores[{kind!r}].{key} must be true or false")
            out[key] = score[key]
    return out


def _reject_constant(token: str) -> float:
    raise ValueError(f"non-finite number {token}")


def _field(document: dict, key: str, kind: type) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {key!r} must be a {kind.__name__}")
    return value


def _optional_field(document: dict, key: str, kind: type) -> Any:
    return None if document.get(key) is None else _field(document, key, kind)


def _number_field(document: dict, key: str) -> float:
    value = as_number(document.get(key))
    if value is None:
        raise ValueError(f"field {key!r} must be a finite number")
    return value


def _int_field(document: dict, key: str) -> int:
    return _field(document, key, int)


def _optional_int_field(document: dict, key: str) -> Optional[int]:
    return _optional_field(document, key, int)


def _string_list(document: dict, key: str) -> list[str]:
    value = _field(document, key, list)
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"field {key!r} must be a list of strings")
    return list(value)


def _finite_numbers(value: Any, name: str) -> array:
    """A JSON list of finite numbers as array('d'), or ValueError."""
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{name} must be a list of numbers")
    try:
        numbers = array("d", value)
    except OverflowError as exc:
        raise ValueError(f"{name} holds a number beyond the float range") from exc
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{name} must hold finite numbers")
    return numbers


def _finite_rows(value: Any, name: str) -> memoryview:
    """A JSON list of equally long, non-empty rows of finite numbers as a 2-D memoryview."""
    if not isinstance(value, list) or not value or not all(
            isinstance(row, list) for row in value):
        raise ValueError(f"{name} must be a non-empty list of rows")
    width = len(value[0])
    if width == 0 or any(len(row) != width for row in value):
        raise ValueError(f"{name} rows must be non-empty and of equal length")
    flat = _finite_numbers([v for row in value for v in row], name)
    return linalg.float_rows(flat, width)


def _native_to_dict(model: Any) -> dict:
    return {
        "degree": int(model.degree),
        "mean": model.mean.tolist(),
        "scale": model.scale.tolist(),
        "coef": model.coef.tolist(),
        "intercept": float(model.intercept),
    }


def _native_from_dict(document: Any, degree: int, n_features: int) -> Any:
    """A PolynomialModel from its saved coefficients, after checking every shape and value."""
    if not isinstance(document, dict) or set(document) != {
            "degree", "mean", "scale", "coef", "intercept"}:
        raise ValueError("a saved model must have exactly degree, mean, scale, coef, intercept")
    if document["degree"] != degree or isinstance(document["degree"], bool):
        raise ValueError(f"saved model degree {document['degree']!r} != {degree}")
    mean = _finite_numbers(document["mean"], "mean")
    scale = _finite_numbers(document["scale"], "scale")
    coef = _finite_numbers(document["coef"], "coef")
    intercept = _number_field(document, "intercept")
    n_terms = math.comb(n_features + degree, degree)
    if len(mean) != n_features or len(scale) != n_features or len(coef) != n_terms:
        raise ValueError("saved model coefficients do not match the number of features")
    if 0.0 in scale:
        raise ValueError("saved model has a zero scale")
    return linalg.PolynomialModel.from_dict({
        "degree": degree, "mean": mean.tolist(), "scale": scale.tolist(),
        "coef": coef.tolist(), "intercept": intercept,
    })
