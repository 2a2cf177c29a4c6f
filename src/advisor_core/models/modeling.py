"""The multi-feature power model: model selection, prediction intervals, JSON model files.

``MultivariatePredictor`` fits a target (watts, joules or an efficiency score) against the
features of a scenario (``advisor_core.models.features``), scores every model kind on rows it did
not see and picks one (``advisor_core.models.selection``), predicts with the kind's guarded
extrapolation and intervals (``advisor_core.models.kinds``, ``advisor_core.models.intervals``). The
linear and polynomial kinds are native (``advisor_core.models.linalg``); random forest and gradient
boosting need scikit-learn (the ``trees`` extra). ``PowerPredictor``
(``advisor_core.models.power``) and the feature functions are re-exported here, their historical
home. The method is documented in ``docs/predictions.md``.

Differences from the reference (the README's list):

* stream counts come from ``advisor_core.data.scenario.stream_count`` (one rule);
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

from advisor_core.data.paths import PathLike
from advisor_core.data.record import as_record
from advisor_core.models import _model_file as model_file
from advisor_core.models import linalg
from advisor_core.models._model_file import FORMAT_NAME, FORMAT_VERSION
from advisor_core.models.features import (
    NON_NEGATIVE_TARGETS,
    column_range,
    common_categories,
    encode,
    extract_features,
    training_target,
)
from advisor_core.models.fitted import FittedState, reported_score
from advisor_core.models.floors import idle_baseline_watts
from advisor_core.models.intervals import check_confidence_level
from advisor_core.models.kinds import (
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
    too_costly,
    trees_available,
)
from advisor_core.models.power import PowerPredictor, StreamPowerModel
from advisor_core.models.prediction import IntervalSettings, predict_results
from advisor_core.models.selection import KindScore, fold_labels, score_kind, select

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
        # The fitted model (None until a fit succeeds): replaced as a whole, never changed.
        self._fitted: Optional[FittedState] = None
        self.version = "1.0"

    extract_features = staticmethod(extract_features)

    @property
    def fitted(self) -> Optional[FittedState]:
        """The fitted state (None until trained); a new fit replaces it, never changes it."""
        return self._fitted

    @property
    def X_train(self) -> Optional[np.ndarray]:
        """The encoded training features (rows × feature_names), a read-only numpy view."""
        fitted = self._fitted
        return None if fitted is None else _readonly_numpy(fitted.X_train)

    @property
    def y_train(self) -> Optional[np.ndarray]:
        """The training targets (in the target's unit), a read-only numpy view."""
        fitted = self._fitted
        return None if fitted is None else _readonly_numpy(fitted.y_train)

    @property
    def pipelines(self) -> dict[str, Any]:
        """The fitted model of each trained kind (empty until trained)."""
        fitted = self._fitted
        return {} if fitted is None else fitted.pipelines()

    @property
    def best_model_name(self) -> Optional[str]:
        """The kind the model selection chose, None until trained."""
        fitted = self._fitted
        return None if fitted is None else fitted.best_model_name

    @property
    def best_model_score(self) -> Optional[dict]:
        """The chosen kind's score dict (see ``get_model_info``), None until trained."""
        fitted = self._fitted
        return None if fitted is None else fitted.best_score()

    @property
    def model_scores(self) -> dict[str, dict]:
        """Per trained kind its score dict (empty until trained)."""
        fitted = self._fitted
        return {} if fitted is None else fitted.scores()

    @property
    def selection(self) -> Optional[dict]:
        """How the winner was chosen: scheme, rows, winner, reason (None until trained)."""
        fitted = self._fitted
        return None if fitted is None else fitted.selection_info()

    @property
    def feature_names(self) -> list[str]:
        """Names of the encoded feature columns (empty until trained)."""
        fitted = self._fitted
        return [] if fitted is None else fitted.feature_names

    @property
    def encoder_categories(self) -> list[str]:
        """Encoder types kept from training (one-hot columns, at most MAX_CATEGORIES), sorted."""
        fitted = self._fitted
        return [] if fitted is None else list(fitted.encoder_categories)

    @property
    def hardware_categories(self) -> list[str]:
        """CPU models kept from training (one-hot columns, at most MAX_CATEGORIES), sorted."""
        fitted = self._fitted
        return [] if fitted is None else list(fitted.hardware_categories)

    @property
    def target_name(self) -> Optional[str]:
        """The target the model predicts (e.g. ``mean_power_watts``), None until trained."""
        fitted = self._fitted
        return None if fitted is None else fitted.target_name

    @property
    def hardware_model(self) -> Optional[str]:
        """The ``hardware_id`` given to ``fit`` (a label only), None when none was."""
        fitted = self._fitted
        return None if fitted is None else fitted.hardware_model

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
            hardware_id: Optional[str] = None, run: Any = None) -> bool:
        """Train and cross-validate every candidate kind; False (state unchanged) if none trains.

        With more than one kind asked for, the stream-count line (``streams``) joins the
        candidates and the winner is chosen by ``advisor_core.models.selection`` (out-of-fold error,
        one-standard-error rule, rows per coefficient). ``run``: the whole run ``scenarios``
        were chosen from, whose idle baseline is the power floor (default: ``scenarios``).
        Raises ValueError for an unknown model kind and ImportError for 'rf'/'gbm' without
        scikit-learn.
        """
        kinds = self._model_kinds()
        features_rows: list[dict] = []
        targets: list[float] = []
        if isinstance(scenarios, (list, tuple)):
            for scenario in scenarios:
                record = as_record(scenario)  # read once for the features and the target
                features = extract_features(record)
                if features is None:
                    continue
                value = training_target(record, target)
                if value is None:
                    continue
                features_rows.append(features)
                targets.append(value)
        if len(targets) < 2:
            logger.warning("MultivariatePredictor: %d usable scenario(s), need at least 2",
                           len(targets))
            return False

        encoders, rare_encoders = common_categories(f["encoder_type"] for f in features_rows)
        hardware, rare_hardware = common_categories(
            f["hardware_cpu_model"] for f in features_rows)
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
        oof_finite: dict[str, bool] = {}
        not_trained: dict[str, str] = {}
        for kind in candidates:
            kind_terms = terms(kind, X)
            costly = too_costly(kind_terms, n)
            if costly is not None:
                logger.warning("MultivariatePredictor: model %s not trained: %s", kind, costly)
                not_trained[kind] = costly
                continue
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
            oof_finite[kind] = all(math.isfinite(v) for v in oof)
            scores.append(score_kind(kind, y, oof, kind_terms, width))
        if not fits:
            logger.warning("MultivariatePredictor: no model could be trained")
            return False

        best, why = select(scores)
        model_scores = {s.kind: reported_score(s, in_sample[s.kind], oof_finite[s.kind])
                        for s in scores}
        selection: dict[str, Any] = {"scheme": scheme, "rows": n, "winner": best, "reason": why}
        if not_trained:
            selection["not_trained"] = not_trained
        rare = {name: count for name, count in (("encoder_type", rare_encoders),
                                                ("hardware_cpu_model", rare_hardware)) if count}
        if rare:
            selection["rare_categories"] = rare
        # One assignment publishes the whole new model (see advisor_core.models.fitted).
        self._fitted = FittedState.build(
            fits, model_scores, best, selection,
            encoders, hardware, X, y, column_range(X), target,
            hardware_id if isinstance(hardware_id, str) else None,
            idle_baseline_watts(scenarios if run is None else run))
        logger.info("MultivariatePredictor: %s on %d rows (%s)", best, n, why)
        return True

    # -- prediction -----------------------------------------------------------------------

    # Readers take self._fitted once and use only that value (advisor_core.models.fitted).

    def _interval_settings(self) -> IntervalSettings:
        return IntervalSettings(self.confidence_level, self.n_bootstrap, self.random_state,
                                self.n_jobs)

    def predict(self, features: Any, return_confidence: bool = True,
                model_name: Optional[str] = None) -> dict:
        """Predict the target (e.g. watts) for one feature dict, with its intervals.

        ``{mean, model}``; with ``return_confidence`` also ``ci_low``/``ci_high``/``ci_width``
        (bootstrap percentile interval of the fitted *mean*), ``pi_low``/``pi_high`` (prediction
        interval for one new measurement at ``confidence_level``, see
        ``advisor_core.models.intervals``; None when the rows leave no residual degree of freedom)
        and ``extrapolated`` (a numeric feature outside its trained range, or an unseen category).
        Beyond the trained range the model continues its linear trend. Untrained or a non-dict
        ``features`` → ``{mean: None, model: None}``; a NaN, infinite or non-numeric feature →
        None values. ValueError when ``confidence_level`` is outside (0, 1).
        """
        fitted = self._fitted
        if fitted is None or not isinstance(features, dict):
            return {"mean": None, "model": None}
        return predict_results(fitted, self._interval_settings(), fitted.resolve(model_name),
                               [features], return_confidence)[0]

    def predict_batch(self, features_list: Any, return_confidence: bool = False) -> list[dict]:
        """Predict with the best model for each feature dict (the keys of ``predict``); one
        bootstrap serves all rows. Items that are not dicts get ``{mean: None, model: None}``.
        """
        if not isinstance(features_list, (list, tuple)):
            return []
        results: list[dict] = [{"mean": None, "model": None} for _ in features_list]
        fitted = self._fitted
        valid = [i for i, f in enumerate(features_list) if isinstance(f, dict)]
        if fitted is not None and valid:
            rows = predict_results(fitted, self._interval_settings(), fitted.best_model_name,
                                   [features_list[i] for i in valid], return_confidence)
            for i, item in zip(valid, rows):
                results[i] = item
        return results

    def get_model_info(self) -> dict:
        """Describe the trained ensemble: the winner and why, per model its out-of-fold RMSE
        (target unit) and R², rows, terms, eligibility and in-sample RMSE; features, target;
        ``single_valued_features`` ({name: value}) when a numeric feature has one trained value."""
        fitted = self._fitted
        if fitted is None:
            return {"trained": False, "best_model": None, "models": {}, "n_samples": 0,
                    "target": None, "hardware": None, "version": self.version}
        info = {
            "trained": True,
            "best_model": fitted.best_model_name,
            "best_score": fitted.best_score(),
            "models": fitted.scores(),
            "n_samples": fitted.n_samples,
            "n_features": len(fitted.feature_names),
            "feature_names": fitted.feature_names,
            "target": fitted.target_name,
            "hardware": fitted.hardware_model,
            "version": self.version,
            "confidence_level": self.confidence_level,
            "selection": fitted.selection_info() or {},
        }
        single = fitted.single_valued()
        if single:
            # No slope along these: predictions off their value get no interval.
            info["single_valued_features"] = dict(single.values())
        return info

    # -- persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The JSON document ``save`` writes (format name + version, coefficients, data);
        ValueError as ``save``."""
        settings = {"models": list(self.models), "confidence_level": self.confidence_level,
                    "n_bootstrap": self.n_bootstrap, "cv_folds": self.cv_folds,
                    "random_state": self.random_state}
        return model_file.to_document(self._fitted, settings, self.version)

    def save(self, path: PathLike) -> None:
        """Write the model as versioned JSON (atomically); parent directories are created.

        Tree models ('rf', 'gbm') are not written: they are listed under ``omitted_models`` and
        the saved best model is the best native one. Raises ValueError for non-finite values,
        and for a model of tree kinds only (the file would hold no usable model; nothing is
        written).
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
        X, y = saved.X_train, saved.y_train
        best = saved.best_model_name
        # parse guarantees that saved pipelines come with their training rows.
        if saved.pipelines and best is not None and X is not None and y is not None:
            non_negative = saved.target_name in NON_NEGATIVE_TARGETS
            rising = bytes([1 if non_negative else 0]) + bytes(len(saved.feature_names) - 1)
            predictor._fitted = FittedState.build(
                {k: describe(k, m, X, y, rising) for k, m in saved.pipelines.items()},
                saved.model_scores, best, saved.selection, saved.encoder_categories,
                saved.hardware_categories, X, y, column_range(X), saved.target_name,
                saved.hardware_model, saved.idle_watts)
        if saved.omitted_models:
            logger.warning("model file omits tree models %s (not serialisable); refit to use "
                           "them", saved.omitted_models)
        return predictor
