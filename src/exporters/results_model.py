"""The results exporter's power model: when to train, the job that trains and predicts, and
the predictions valid for the rows being rendered (README difference 10: never on a scrape).

The predictor is trained once per run (again only when the number of usable rows of that run
changes) on the run's records (with what VictoriaMetrics filled in), then predicts every
scenario with one bootstrap. Both happen in a background
job the refresh runs on its job thread; a compute only asks for one and reads the predictions
already valid for its rows.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from advisor_core.data.record import ScenarioRecord

from .families import Family
from .jobs import Job

if TYPE_CHECKING:
    from advisor_core.models.modeling import MultivariatePredictor

logger = logging.getLogger(__name__)

__all__ = ["ML_BOOTSTRAP", "ML_CONFIDENCE", "ML_MODELS", "ResultsModel", "default_predictor"]

ML_MODELS = ("linear", "poly2", "poly3")
ML_CONFIDENCE = 0.95
ML_BOOTSTRAP = 50
MIN_TRAINING_ROWS = 3


@dataclass(frozen=True)
class _Model:
    predictor: Any
    token: int
    run_id: str


@dataclass(frozen=True)
class _Predictions:
    token: int
    signature: tuple
    by_name: dict


@dataclass(frozen=True)
class _Request:
    run_id: str
    train_key: Optional[tuple]
    training: tuple[ScenarioRecord, ...]
    names: tuple[str, ...]
    prediction: tuple[ScenarioRecord, ...]
    signature: tuple


def default_predictor(valid_rows: int) -> MultivariatePredictor:
    """The results exporter's predictor: linear/poly2/poly3, 95 % interval, 50 bootstraps."""
    # Imported on the first training, which a file with too few usable rows never needs. The
    # native models train without numpy (advisor_core.models.linalg works on array('d') buffers), so
    # this process never loads numpy.
    from advisor_core.models.modeling import MultivariatePredictor

    return MultivariatePredictor(
        models=list(ML_MODELS),
        confidence_level=ML_CONFIDENCE,
        n_bootstrap=ML_BOOTSTRAP,
        cv_folds=min(3, valid_rows),
        random_state=0,
        # Background work beside a serving process: one core and one set of buffers.
        n_jobs=1,
    )


class ResultsModel:
    """Model state shared by the refresh (asks, reads) and the job thread (trains, predicts)."""

    def __init__(self, predictor_factory: Callable[[int], Any] = default_predictor) -> None:
        self._predictor_factory = predictor_factory
        self._lock = threading.Lock()
        self._model: Optional[_Model] = None
        self._predictions: Optional[_Predictions] = None
        self._attempted_train_key: Optional[tuple] = None
        self._submitted: Optional[tuple] = None
        self._tokens = 0
        self._trainings = 0
        self._training_failures = 0

    def job_for(self, run_id: str, rows: Sequence[ScenarioRecord], signature: tuple,
                predict: Optional[Sequence[ScenarioRecord]] = None) -> Optional[Job]:
        """The job that trains on these rows and/or predicts ``predict`` (default: the rows),
        or None when nothing is due.

        ``signature`` identifies the model's inputs (run, scenario set, durations, CPU); a job
        already asked for with the same inputs is not asked for twice.
        """
        if predict is None:
            predict = rows
        valid = tuple(row for row in rows if row.power_w)
        train_key = (run_id, len(valid)) if len(valid) >= MIN_TRAINING_ROWS else None
        with self._lock:
            model, predictions = self._model, self._predictions
            need_train = train_key is not None and train_key != self._attempted_train_key
            need_predict = model is not None and (
                predictions is None or (predictions.token, predictions.signature)
                != (model.token, signature)
            )
            request_key = (train_key if need_train else None, signature,
                           model.token if model is not None else None)
            if not (need_train or need_predict) or request_key == self._submitted:
                return None
            self._submitted = request_key
        request = _Request(
            run_id=run_id,
            train_key=train_key if need_train else None,
            training=valid if need_train else (),
            names=tuple(row.name for row in predict),
            prediction=tuple(predict),
            signature=signature,
        )
        return functools.partial(self._run, request)

    def predictions_for(self, signature: tuple) -> dict:
        """Predictions by scenario name valid for rows of this signature (maybe none yet)."""
        with self._lock:
            predictions = self._predictions
        if predictions is not None and predictions.signature == signature:
            return predictions.by_name
        return {}

    def families(self) -> list[Family]:
        """Trainings, failures and (once trained) the model in use."""
        with self._lock:
            trainings, failures = self._trainings, self._training_failures
            model = self._model
        done = CounterMetricFamily("results_model_trainings",
                                   "Successful trainings of the power model")
        done.add_metric([], float(trainings))
        failed = CounterMetricFamily("results_model_training_failures",
                                     "Trainings of the power model that failed")
        failed.add_metric([], float(failures))
        families: list[Family] = [done, failed]
        if model is not None:
            info = GaugeMetricFamily("results_model_info",
                                     "The power model in use: best kind and the run it learnt",
                                     labels=["model", "trained_run_id"])
            info.add_metric([str(model.predictor.best_model_name), model.run_id], 1.0)
            families.append(info)
            rows = GaugeMetricFamily("results_model_training_rows",
                                     "Scenarios the power model in use was trained on")
            rows.add_metric([], float(model.predictor.selection["rows"]))
            families.append(rows)
        return families

    def _run(self, request: _Request) -> bool:
        """Job thread: train when due, then predict every scenario; True when anything changed."""
        changed = False
        if request.train_key is not None:
            with self._lock:
                self._attempted_train_key = request.train_key
            self._train(request)
            changed = True  # a new model or one more counted failure
        with self._lock:
            model = self._model
        if model is None:
            return changed
        try:
            predictor = model.predictor
            features = [predictor.extract_features(c) for c in request.prediction]
            index = [i for i, f in enumerate(features) if f is not None]
            results = (predictor.predict_batch([features[i] for i in index],
                                               return_confidence=True) if index else [])
            by_name = {request.names[i]: r for i, r in zip(index, results)}
        except Exception:
            logger.exception("results: predicting power failed")
            by_name = {}
        with self._lock:
            if self._model is not model:
                return changed
            self._predictions = _Predictions(model.token, request.signature, by_name)
        return True

    def _train(self, request: _Request) -> None:
        try:
            predictor = self._predictor_factory(len(request.training))
            trained = bool(predictor.fit(list(request.training), target="mean_power_watts"))
        except Exception:
            logger.exception("results: training the power model on %s failed", request.run_id)
            trained = False
        with self._lock:
            if trained:
                self._tokens += 1
                self._model = _Model(predictor, self._tokens, request.run_id)
                self._trainings += 1
            else:
                self._training_failures += 1
        if not trained:
            logger.warning("results: no power model for %s (training failed)", request.run_id)
