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
import importlib.util
import json
import logging
import math
import os
import tempfile
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

from advisor_core import linalg
from advisor_core.scenario import as_number, bitrate_mbps, stream_count, total_pixels

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
        if logger.isEnabledFor(logging.INFO):
            y_mean = sum(w for _, w in pairs) / len(pairs)
            ss_res = sum((w - model(s)) ** 2 for s, w in pairs)
            ss_tot = sum((w - y_mean) ** 2 for _, w in pairs)
            r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
            logger.info("PowerPredictor: %s model on %d points, R² = %.4f",
                        "polynomial" if quadratic else "linear", len(pairs), r2)
        return True

    def predict(self, streams: Any) -> Optional[float]:
        """Predicted mean power in watts for ``streams`` (≥ 0), or None untrained / bad input."""
        model = self.model
        if model is None:
            return None
        value = as_number(streams)
        if value is None:
            return None
        predicted = model(value)
        if not math.isfinite(predicted):
            return None
        return predicted if predicted > 0.0 else 0.0

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


def _power_pairs(scenarios: Any) -> list[tuple[int, float]]:
    """(streams, watts) pairs of the scenarios that have both; watts must be a number ≥ 0."""
    if not isinstance(scenarios, (list, tuple)):
        return []
    pairs = []
    for scenario in scenarios:
        if not isinstance(scenario, dict):
            continue
        power = scenario.get("power")
        if not isinstance(power, dict):
            continue
        watts = power.get("mean_watts")
        if type(watts) is not float:  # the common case skips the general conversion
            watts = as_number(watts)
            if watts is None:
                continue
        if not 0.0 <= watts < math.inf:  # also rejects NaN
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


def _target_value(scenario: dict, target: Any) -> Optional[float]:
    """The training target of a scenario, or None when absent/invalid or the target is unknown."""
    if not isinstance(target, str) or target not in _TARGETS:
        return None
    outer, key = _TARGETS[target]
    container = scenario if outer is None else scenario.get(outer)
    if not isinstance(container, dict):
        return None
    value = as_number(container.get(key))
    if value is None or (target in _NON_NEGATIVE_TARGETS and value < 0):
        return None
    return value


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


# ---------------------------------------------------------------------------------------------
# Model kinds
# ---------------------------------------------------------------------------------------------

_NATIVE_DEGREES = {"linear": 1, "poly2": 2, "poly3": 3}
_TREE_KINDS = ("rf", "gbm")
# Simplicity order for ties in model selection (DECISIONS 8).
_SIMPLICITY = ("linear", "poly2", "poly3", "rf", "gbm")
# R² values closer than this are a tie: round-off must not pick poly2 over an equal linear fit.
_TIE_TOLERANCE = 1e-9

TREES_EXTRA_HINT = "install the 'trees' extra: pip install 'advisor-core[trees]'"


def trees_available() -> bool:
    """True when scikit-learn is importable, so the 'rf' and 'gbm' model kinds can be used."""
    return importlib.util.find_spec("sklearn") is not None


def available_model_kinds() -> list[str]:
    """Model kinds usable here: linear, poly2, poly3, plus rf and gbm with scikit-learn."""
    kinds = list(_NATIVE_DEGREES)
    if trees_available():
        kinds.extend(_TREE_KINDS)
    return kinds


def _tree_pipeline(kind: str) -> Any:
    """An unfitted scikit-learn pipeline (scaler + trees) with the reference's settings."""
    # scikit-learn is optional: imported only when a tree model is actually used.
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "rf":
        regressor: Any = RandomForestRegressor(
            n_estimators=100, max_depth=10, random_state=42, n_jobs=-1)
    else:
        regressor = GradientBoostingRegressor(
            n_estimators=100, max_depth=5, learning_rate=0.1, random_state=42)
    return Pipeline([("scaler", StandardScaler()), ("model", regressor)])


def _fit_kind(kind: str, X: memoryview, y: array) -> Any:
    degree = _NATIVE_DEGREES.get(kind)
    if degree is not None:
        return linalg.PolynomialModel.fit(X, y, degree)
    import numpy as np

    return _tree_pipeline(kind).fit(np.asarray(X), np.asarray(y))


def _predict_kind(model: Any, X: memoryview) -> list[float]:
    """Predictions of a fitted model (native or scikit-learn) for the rows of X."""
    if isinstance(model, linalg.PolynomialModel):
        return model.predict_values(X).tolist()
    import numpy as np

    with np.errstate(all="ignore"):
        return np.asarray(model.predict(np.asarray(X)), dtype=np.float64).tolist()


def _fold_bounds(n: int, k: int) -> list[tuple[int, int]]:
    """Contiguous unshuffled folds; the first n % k folds are one sample larger (as KFold)."""
    bounds = []
    start = 0
    for fold in range(k):
        size = n // k + (1 if fold < n % k else 0)
        bounds.append((start, start + size))
        start += size
    return bounds


def _cv_r2(kind: str, X: memoryview, y: array, folds: int) -> list[float]:
    """Per-fold R² of a model kind (NaN where undefined)."""
    degree = _NATIVE_DEGREES.get(kind)
    if degree is not None:
        return linalg.cross_val_r2_values(X, y, degree, folds).tolist()
    import numpy as np

    Xa, ya = np.asarray(X), np.asarray(y)
    scores = []
    with np.errstate(all="ignore"):
        for start, stop in _fold_bounds(len(y), folds):
            train = np.r_[0:start, stop:len(y)]
            model = _tree_pipeline(kind).fit(Xa[train], ya[train])
            scores.append(linalg.r2_score(ya[start:stop], model.predict(Xa[start:stop])))
    return scores


def _tree_interval(kind: str, X: memoryview, y: array, X_new: memoryview, n_bootstrap: int,
                   confidence_level: float, random_state: Any) -> Optional[tuple[Any, Any]]:
    """Bootstrap percentile interval of a tree model (refits with scikit-learn); None if none."""
    import numpy as np

    Xa, ya, new = np.asarray(X), np.asarray(y), np.asarray(X_new)
    rng = np.random.default_rng(random_state)
    n = len(y)
    predictions = []
    with np.errstate(all="ignore"):
        for _ in range(n_bootstrap):
            rows = rng.integers(0, n, n)
            try:
                predictions.append(_tree_pipeline(kind).fit(Xa[rows], ya[rows]).predict(new))
            except ValueError as exc:
                logger.debug("bootstrap refit of %s skipped: %s", kind, exc)
        if not predictions:
            return None
        return linalg.percentile_interval(np.array(predictions, dtype=np.float64),
                                          confidence_level)


def _readonly_numpy(values: Any) -> Optional[np.ndarray]:
    if values is None:
        return None
    import numpy as np

    view = np.asarray(values)
    view.flags.writeable = False
    return view


def _select_best(scores: dict) -> str:
    """Highest R²; ties (within _TIE_TOLERANCE) go to the simpler kind (DECISIONS 8)."""
    ordered = sorted(scores, key=_SIMPLICITY.index)
    best = ordered[0]
    for name in ordered[1:]:
        if scores[name]["r2"] > scores[best]["r2"] + _TIE_TOLERANCE:
            best = name
    return best


# ---------------------------------------------------------------------------------------------
# MultivariatePredictor
# ---------------------------------------------------------------------------------------------

#: Name and version of the JSON model file written by ``MultivariatePredictor.save``.
FORMAT_NAME = "advisor-core/multivariate-predictor"
FORMAT_VERSION = 1

_MAX_MODEL_FILE_BYTES = 256 * 1024 * 1024


class MultivariatePredictor:
    """Multi-feature model of power/energy/efficiency with model selection and bootstrap CIs."""

    def __init__(self, models: Optional[list] = None, confidence_level: float = 0.95,
                 n_bootstrap: int = 100, cv_folds: int = 5, random_state: Any = 0,
                 n_jobs: Optional[int] = None) -> None:
        if isinstance(models, str):
            models = [models]
        self.models = list(models) if models is not None else available_model_kinds()
        self.confidence_level = confidence_level
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
            if not isinstance(kind, str) or kind not in _SIMPLICITY:
                raise ValueError(f"Unknown model type: {kind}")
            if kind in _TREE_KINDS and not trees_available():
                raise ImportError(f"model type {kind!r} needs scikit-learn; {TREES_EXTRA_HINT}")
            if kind not in kinds:
                kinds.append(kind)
        return kinds

    def _score(self, kind: str, X: memoryview, y: array, fitted: array) -> float:
        """Mean cross-validated R² over folds where it is defined, else training R²."""
        folds = self.cv_folds
        if (isinstance(folds, int) and not isinstance(folds, bool) and folds >= 2
                and len(y) >= folds):
            usable = [r2 for r2 in _cv_r2(kind, X, y, folds) if math.isfinite(r2)]
            if usable:
                return linalg.mean(array("d", usable))
        return float(linalg.r2_score(y, fitted))

    def fit(self, scenarios: Any, target: str = "mean_power_watts",
            hardware_id: Optional[str] = None) -> bool:
        """Train every candidate kind on the scenarios; False (state unchanged) if none trains.

        Raises ValueError for an unknown model kind and ImportError for 'rf'/'gbm' without
        scikit-learn.
        """
        kinds = self._model_kinds()
        features_rows: list[dict] = []
        targets: list[float] = []
        if isinstance(scenarios, (list, tuple)):
            for scenario in scenarios:
                features = extract_features(scenario)
                if features is None:
                    continue
                value = _target_value(scenario, target)
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

        pipelines: dict[str, Any] = {}
        scores: dict[str, dict] = {}
        for kind in kinds:
            try:
                model = _fit_kind(kind, X, y)
                fitted = array("d", _predict_kind(model, X))
                if not all(math.isfinite(v) for v in fitted):
                    raise ValueError("non-finite fitted values")
                r2 = self._score(kind, X, y, fitted)
                rmse = float(linalg.rmse(y, fitted))
                if not (math.isfinite(r2) and math.isfinite(rmse)):
                    raise ValueError("non-finite score")
            # Any failure of one model kind (singular data, overflow, a scikit-learn error)
            # only removes that kind from the candidates, as in the reference.
            except Exception as exc:
                logger.warning("MultivariatePredictor: model %s failed: %s", kind, exc)
                continue
            pipelines[kind] = model
            scores[kind] = {"r2": r2, "rmse": rmse}
        if not pipelines:
            logger.warning("MultivariatePredictor: no model could be trained")
            return False

        best = _select_best(scores)
        # One update publishes the whole new model (see _snapshot).
        self.__dict__.update(
            pipelines=pipelines,
            model_scores=scores,
            best_model_name=best,
            best_model_score=dict(scores[best]),
            encoder_categories=encoders,
            hardware_categories=hardware,
            feature_names=_feature_names(encoders, hardware),
            _X_train=X,
            _y_train=y,
            target_name=target,
            hardware_model=hardware_id if isinstance(hardware_id, str) else None,
        )
        logger.info("MultivariatePredictor: best model %s (R² %.4f) on %d rows",
                    best, scores[best]["r2"], len(y))
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
    def _interval(state: dict, kind: str, X_new: memoryview) -> tuple[list, list]:
        """Bootstrap percentile interval per row of X_new (unclamped; zeros when impossible)."""
        zeros = [0.0] * X_new.shape[0]
        X_train, y_train = state["_X_train"], state["_y_train"]
        if X_train is None or y_train is None or len(y_train) == 0:
            return zeros, zeros
        n_bootstrap = state["n_bootstrap"]
        if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap <= 0:
            return zeros, zeros
        degree = _NATIVE_DEGREES.get(kind)
        try:
            if degree is not None:
                bounds = linalg.bootstrap_interval(
                    X_train, y_train, degree, X_new, n_bootstrap, state["confidence_level"],
                    state["random_state"], state["n_jobs"])
            else:
                bounds = _tree_interval(kind, X_train, y_train, X_new, n_bootstrap,
                                        state["confidence_level"], state["random_state"])
        except (TypeError, ValueError) as exc:  # e.g. a confidence level outside (0, 1)
            logger.warning("MultivariatePredictor: no interval: %s", exc)
            nan = [math.nan] * X_new.shape[0]
            return nan, nan
        if bounds is None:
            return zeros, zeros
        return bounds[0].tolist(), bounds[1].tolist()

    @classmethod
    def _predict_rows(cls, state: dict, kind: str, features_list: list[dict],
                      confidence: bool) -> list[dict]:
        X_new = _encode(features_list, state["encoder_categories"], state["hardware_categories"])
        means = _predict_kind(state["pipelines"][kind], X_new)
        if confidence:
            low, high = cls._interval(state, kind, X_new)
        results = []
        for i, mean in enumerate(means):
            item: dict = {"mean": max(0.0, mean) if math.isfinite(mean) else None, "model": kind}
            if confidence:
                ci_low, ci_high = float(low[i]), float(high[i])
                if math.isfinite(ci_low) and math.isfinite(ci_high):
                    ci_low, ci_high = max(0.0, ci_low), max(0.0, ci_high)
                    item.update(ci_low=ci_low, ci_high=ci_high, ci_width=ci_high - ci_low)
                else:
                    item.update(ci_low=None, ci_high=None, ci_width=None)
            results.append(item)
        return results

    def predict(self, features: Any, return_confidence: bool = True,
                model_name: Optional[str] = None) -> dict:
        """Predict the target (e.g. watts) for one feature dict, with a bootstrap interval.

        Untrained or a non-dict ``features`` → ``{mean: None, model: None}``.
        """
        state = self._snapshot()
        if not state["pipelines"] or not isinstance(features, dict):
            return {"mean": None, "model": None}
        kind = self._resolve_model(state, model_name)
        return self._predict_rows(state, kind, [features], return_confidence)[0]

    def predict_batch(self, features_list: Any, return_confidence: bool = False) -> list[dict]:
        """Predict with the best model for each feature dict; one bootstrap serves all rows.

        Items that are not dicts get ``{mean: None, model: None}``.
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
        """Describe the trained ensemble: best model, {r2, rmse} per model, features, target."""
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
        }

    # -- persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The JSON document ``save`` writes (format name + version, coefficients, data)."""
        state = self._snapshot()
        native = {k: m for k, m in state["pipelines"].items() if k in _NATIVE_DEGREES}
        omitted = sorted((k for k in state["pipelines"] if k not in native), key=_SIMPLICITY.index)
        scores = {k: dict(state["model_scores"][k]) for k in native}
        best = _select_best(scores) if scores else None
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
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise ValueError(f"unsupported model format version {version!r} "
                             f"(this advisor-core reads version {FORMAT_VERSION})")
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
            if kind not in _NATIVE_DEGREES:
                raise ValueError(f"unsupported saved model kind {kind!r}")
            pipelines[kind] = _native_from_dict(model_doc, _NATIVE_DEGREES[kind], n_features)
            score = scores[kind]
            if not isinstance(score, dict) or set(score) != {"r2", "rmse"}:
                raise ValueError(f"model_scores[{kind!r}] must be {{r2, rmse}}")
            scores[kind] = {"r2": _number_field(score, "r2"), "rmse": _number_field(score, "rmse")}
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
        omitted = document.get("omitted_models", {})
        if isinstance(omitted, dict) and omitted:
            logger.warning("model file omits tree models %s (not serialisable); refit to use "
                           "them", sorted(omitted))
        return predictor


# ---------------------------------------------------------------------------------------------
# Persistence helpers
# ---------------------------------------------------------------------------------------------


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
