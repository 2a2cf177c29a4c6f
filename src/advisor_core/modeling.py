"""The multi-feature power model: model selection, prediction intervals, JSON model files.

``MultivariatePredictor`` fits a target (watts, joules or an efficiency score) against the
features of a scenario (``advisor_core.features``), scores every model kind on rows it did not
see and picks one (``advisor_core.selection``), predicts with the kind's guarded extrapolation
and intervals (``advisor_core.kinds``, ``advisor_core.intervals``). The linear and polynomial
kinds are native (``advisor_core.linalg``); random forest and gradient boosting need
scikit-learn (the ``trees`` extra). ``PowerPredictor`` (``advisor_core.power``) and the feature
functions are re-exported here, their historical home. The method is documented in
``docs/predictions.md``.

Differences from the reference (the README's list):

* stream counts come from ``advisor_core.scenario.stream_count`` (one rule);
* the hardware feature is one-hot over the CPU models seen in training, not ``hash() % 10``;
* models are saved as versioned JSON, never pickle; tree models are not saved;
* bootstrap intervals of the mean are seeded by ``random_state`` and a batch computes its
  bootstrap once for all rows; prediction intervals for a new measurement are new;
* model selection uses pooled out-of-fold errors, a one-standard-error rule and rows-per-
  coefficient limits, with the stream-count line as a candidate; every fit starts clean;
* a fit that fails (too few rows, no model trained) changes nothing, not even the stored target
  name, so the predictor stays consistent with the model it still holds;
* RMSE and R² in the score map are out-of-fold; the in-sample RMSE is ``rmse_in_sample``.
"""

from __future__ import annotations

import logging
import math
from array import array
from typing import TYPE_CHECKING, Any, Optional

from advisor_core import _model_file as model_file
from advisor_core import linalg
from advisor_core._model_file import FORMAT_NAME, FORMAT_VERSION
from advisor_core._typing import PathLike
from advisor_core.arrays import Rows
from advisor_core.features import (
    NON_NEGATIVE_TARGETS,
    column_range,
    encode,
    extract_features,
    feature_names,
    training_target,
)
from advisor_core.intervals import check_confidence_level
from advisor_core.kinds import (
    SIMPLICITY,
    TREE_KINDS,
    TREES_EXTRA_HINT,
    KindFit,
    available_model_kinds,
    describe,
    fit_kind,
    oof_predictions,
    predict_rows,
    terms,
    trees_available,
)
from advisor_core.power import PowerPredictor, StreamPowerModel
from advisor_core.prediction import predict_results
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
    "training_target",
    "trees_available",
]


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
        self._X_train: Optional[Rows] = None
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
        X = encode(features_rows, encoders, hardware)
        y = array("d", targets)
        n, width = X.shape
        non_negative = target in NON_NEGATIVE_TARGETS
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
            lo, hi = column_range(X)
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
            feature_names=feature_names(encoders, hardware),
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
        return predict_results(state, kind, [features], return_confidence)[0]

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
            rows = predict_results(state, state["best_model_name"],
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
        return model_file.to_document(self._snapshot())

    def save(self, path: PathLike) -> None:
        """Write the model as versioned JSON (atomically); parent directories are created.

        Tree models ('rf', 'gbm') are not written: they are listed under ``omitted_models`` and
        the saved best model is the best native one. Raises ValueError for non-finite values.
        """
        model_file.write(path, self.to_dict())

    @classmethod
    def load(cls, path: PathLike) -> MultivariatePredictor:
        """Read a model written by ``save``; ValueError for a pickle, corrupt file, bad version."""
        document = model_file.read(path)
        try:
            return cls.from_dict(document)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def from_dict(cls, document: Any) -> MultivariatePredictor:
        """Rebuild a predictor from the ``to_dict`` document; ValueError when it is not one."""
        saved = model_file.parse(document)
        predictor = cls(**saved.settings)
        predictor.version = saved.version
        predictor.target_name = saved.target_name
        predictor.hardware_model = saved.hardware_model
        predictor.encoder_categories = saved.encoder_categories
        predictor.hardware_categories = saved.hardware_categories
        predictor.feature_names = saved.feature_names
        predictor.pipelines = saved.pipelines
        predictor.model_scores = saved.model_scores
        predictor.best_model_name = saved.best_model_name
        predictor.best_model_score = (dict(saved.model_scores[saved.best_model_name])
                                      if saved.best_model_name is not None else None)
        predictor.selection = saved.selection
        X, y = saved.X_train, saved.y_train
        predictor._X_train, predictor._y_train = X, y
        if saved.pipelines and X is not None and y is not None:  # parse: pipelines need rows
            non_negative = predictor.target_name in NON_NEGATIVE_TARGETS
            rising = bytes([1 if non_negative else 0]) + bytes(len(saved.feature_names) - 1)
            predictor._fits = {k: describe(k, m, X, y, rising) for k, m in saved.pipelines.items()}
            predictor._range = column_range(X)
        if saved.omitted_models:
            logger.warning("model file omits tree models %s (not serialisable); refit to use "
                           "them", saved.omitted_models)
        return predictor
