"""The JSON model file of ``MultivariatePredictor.save`` / ``load``: writing, reading, checking.

Every field of a loaded document is checked for type, shape and finiteness before use; nothing
in a model file is ever executed (a pickle is refused before it is parsed).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from array import array
from pathlib import Path
from typing import Any, NamedTuple, Optional

from advisor_core.data.paths import PathLike
from advisor_core.data.scenario import as_number
from advisor_core.models import linalg
from advisor_core.models.arrays import Rows
from advisor_core.models.features import feature_names
from advisor_core.models.fitted import FittedState
from advisor_core.models.kinds import NATIVE_DEGREES, SIMPLICITY

#: Name and version of the JSON model file written by ``MultivariatePredictor.save``.
FORMAT_NAME = "advisor-core/multivariate-predictor"
FORMAT_VERSION = 2
#: Older format versions this advisor-core still reads.
READABLE_VERSIONS = (1, 2)

MAX_MODEL_FILE_BYTES = 256 * 1024 * 1024


def to_document(fitted: Optional[FittedState], settings: dict, version: str) -> dict:
    """The JSON document of a ``MultivariatePredictor``: its fitted state (None: untrained), its
    constructor settings and version (what ``save`` writes). ValueError for a fitted state of
    tree models only: none is saved, and the file would hold no model."""
    pipelines = {} if fitted is None else fitted.pipelines()
    all_scores = {} if fitted is None else fitted.scores()
    trained_best = None if fitted is None else fitted.best_model_name
    native = {k: m for k, m in pipelines.items() if k in NATIVE_DEGREES}
    omitted = sorted((k for k in pipelines if k not in native), key=SIMPLICITY.index)
    if pipelines and not native:  # the file would load as an untrained predictor
        raise ValueError(f"the model has only tree models ({', '.join(omitted)}), which are not "
                         "saved (no pickle): nothing usable to write; train a least-squares "
                         "kind too (e.g. models=['linear', 'rf'])")
    scores = {k: json_score(all_scores[k]) for k in native}
    best = trained_best if trained_best in native else (
        best_saved(scores) if scores else None)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "version": version,
        "settings": settings,
        "target_name": None if fitted is None else fitted.target_name,
        "hardware_model": None if fitted is None else fitted.hardware_model,
        "feature_names": [] if fitted is None else fitted.feature_names,
        "encoder_categories": [] if fitted is None else list(fitted.encoder_categories),
        "hardware_categories": [] if fitted is None else list(fitted.hardware_categories),
        "model_scores": scores,
        "best_model_name": best,
        "best_model_score": dict(scores[best]) if best is not None else None,
        "pipelines": {k: native_to_dict(m) for k, m in native.items()},
        # Tree models are not serialisable without pickle: they are left out, and named
        # here (with the best model of the trained process) so a reader knows what is missing.
        "omitted_models": {k: json_score(all_scores[k]) for k in omitted},
        "trained_best_model_name": trained_best,
        "selection": None if fitted is None else fitted.selection_info(),
        "idle_watts": None if fitted is None else fitted.idle_watts,
        "X_train": None if fitted is None else fitted.X_train.tolist(),
        "y_train": None if fitted is None else fitted.y_train.tolist(),
    }


def write(path: PathLike, document: dict) -> None:
    """Write ``document`` as compact JSON to ``path`` atomically (a temporary file renamed over
    it); parent directories are created. ValueError for what JSON cannot hold (NaN, objects)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps(document, allow_nan=False, separators=(",", ":"))
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


def read(path: PathLike) -> Any:
    """The parsed JSON of a model file; ValueError (naming the file) for an unreadable, oversized,
    pickled or malformed one."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MODEL_FILE_BYTES:
            raise ValueError(f"{path}: model file too large")
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read model file: {exc}") from exc
    if raw[:1] == b"\x80":
        raise ValueError(f"{path}: looks like a pickle; only advisor-core JSON model files "
                         "are accepted (pickles can execute code)")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not a valid JSON model file: {exc}") from exc


class SavedModel(NamedTuple):
    """The checked fields of a model document (``parse``); ``settings`` are constructor keywords."""

    settings: dict
    version: str
    target_name: Optional[str]
    hardware_model: Optional[str]
    encoder_categories: list[str]
    hardware_categories: list[str]
    feature_names: list[str]
    pipelines: dict[str, Any]
    model_scores: dict[str, dict]
    best_model_name: Optional[str]
    X_train: Optional[Rows]
    y_train: Optional[array]
    selection: Optional[dict]
    omitted_models: list[str]
    idle_watts: Optional[float]


def parse(document: Any) -> SavedModel:
    """Check a ``MultivariatePredictor.to_dict`` document; ValueError saying what is wrong."""
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ValueError(f"not an advisor-core model file (format must be {FORMAT_NAME!r})")
    version = document.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ValueError(f"unsupported model format version {version!r} "
                         f"(this advisor-core reads versions {READABLE_VERSIONS})")
    settings = field(document, "settings", dict)
    models = field(settings, "models", list)
    if not all(isinstance(m, str) for m in models):
        raise ValueError("settings.models must be a list of strings")
    keywords = {
        "models": models,
        "confidence_level": number_field(settings, "confidence_level"),
        "n_bootstrap": int_field(settings, "n_bootstrap"),
        "cv_folds": int_field(settings, "cv_folds"),
        "random_state": optional_int_field(settings, "random_state"),
    }
    encoders = string_list(document, "encoder_categories")
    hardware = string_list(document, "hardware_categories")
    names = string_list(document, "feature_names")
    untrained = not names and not encoders and not hardware
    if not untrained and names != feature_names(encoders, hardware):
        raise ValueError("feature_names do not match the saved categories")
    n_features = len(names)
    if untrained and (document.get("pipelines") or document.get("X_train") is not None):
        raise ValueError("a trained model file must name its features")

    scores = field(document, "model_scores", dict)
    pipelines_doc = field(document, "pipelines", dict)
    if set(scores) != set(pipelines_doc):
        raise ValueError("model_scores and pipelines name different models")
    pipelines: dict[str, Any] = {}
    for kind, model_doc in pipelines_doc.items():
        if kind not in NATIVE_DEGREES:
            raise ValueError(f"unsupported saved model kind {kind!r}")
        pipelines[kind] = native_from_dict(model_doc, NATIVE_DEGREES[kind],
                                           1 if kind == "streams" else n_features)
        scores[kind] = read_score(scores[kind], kind)
    best = optional_field(document, "best_model_name", str)
    if (best is None) != (not pipelines) or (best is not None and best not in pipelines):
        raise ValueError("best_model_name must name a saved model")

    X_doc, y_doc = document.get("X_train"), document.get("y_train")
    if (X_doc is None) != (y_doc is None):
        raise ValueError("X_train and y_train must both be present or both be null")
    X: Optional[Rows] = None
    y: Optional[array] = None
    if X_doc is not None:
        X = finite_rows(X_doc, "X_train")
        y = finite_numbers(y_doc, "y_train")
        if X.shape[1] != n_features or X.shape[0] != len(y):
            raise ValueError("X_train/y_train shapes do not match the features")
    elif pipelines:
        raise ValueError("a trained model file must carry X_train and y_train")
    selection = document.get("selection")
    omitted = document.get("omitted_models", {})
    return SavedModel(
        settings=keywords,
        version=field(document, "version", str),
        target_name=optional_field(document, "target_name", str),
        hardware_model=optional_field(document, "hardware_model", str),
        encoder_categories=encoders,
        hardware_categories=hardware,
        feature_names=names,
        pipelines=pipelines,
        model_scores=scores,
        best_model_name=best,
        X_train=X,
        y_train=y,
        selection=dict(selection) if isinstance(selection, dict) else None,
        omitted_models=sorted(omitted) if isinstance(omitted, dict) else [],
        # Absent from files written before the idle floor: no floor but 0.
        idle_watts=None if document.get("idle_watts") is None
        else number_field(document, "idle_watts"),
    )


def json_score(score: dict) -> dict:
    """A score dict with non-finite numbers as null (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in score.items()}


def best_saved(scores: dict) -> str:
    """The saved best among native kinds: lowest out-of-fold RMSE of the eligible ones."""
    ranked = sorted(scores, key=SIMPLICITY.index)
    usable = [k for k in ranked if scores[k].get("eligible", True)
              and isinstance(scores[k].get("rmse"), (int, float))] or ranked
    return min(usable, key=lambda k: (scores[k].get("rmse") or math.inf))


_SCORE_NUMBERS = ("r2", "rmse", "rmse_in_sample")
_SCORE_FLAGS = ("eligible", "underdetermined")


def read_score(score: Any, kind: str) -> dict:
    """A saved score: r2 and rmse (numbers or null), optional rows/terms/flags; else ValueError."""
    if not isinstance(score, dict) or not {"r2", "rmse"} <= set(score):
        raise ValueError(f"model_scores[{kind!r}] must hold r2 and rmse")
    known = set(_SCORE_NUMBERS) | set(_SCORE_FLAGS) | {"rows", "terms", "unscored"}
    if not set(score) <= known:
        raise ValueError(f"model_scores[{kind!r}] has unknown keys {sorted(set(score) - known)}")
    out: dict = {}
    for key in _SCORE_NUMBERS:
        if key in score:
            out[key] = None if score[key] is None else number_field(score, key)
    if "unscored" in score:
        unscored = score["unscored"]
        if not isinstance(unscored, dict) or not all(
                k in _SCORE_NUMBERS and isinstance(v, str) for k, v in unscored.items()):
            raise ValueError(f"model_scores[{kind!r}].unscored must map score names to reasons")
        out["unscored"] = dict(unscored)
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


def reject_constant(token: str) -> float:
    raise ValueError(f"non-finite number {token}")


def field(document: dict, key: str, kind: type) -> Any:
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {key!r} must be a {kind.__name__}")
    return value


def optional_field(document: dict, key: str, kind: type) -> Any:
    return None if document.get(key) is None else field(document, key, kind)


def number_field(document: dict, key: str) -> float:
    value = as_number(document.get(key))
    if value is None:
        raise ValueError(f"field {key!r} must be a finite number")
    return value


def int_field(document: dict, key: str) -> int:
    return field(document, key, int)


def optional_int_field(document: dict, key: str) -> Optional[int]:
    return optional_field(document, key, int)


def string_list(document: dict, key: str) -> list[str]:
    value = field(document, key, list)
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"field {key!r} must be a list of strings")
    return list(value)


def finite_numbers(value: Any, name: str) -> array:
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


def finite_rows(value: Any, name: str) -> Rows:
    """A JSON list of equally long, non-empty rows of finite numbers as a 2-D memoryview."""
    if not isinstance(value, list) or not value or not all(
            isinstance(row, list) for row in value):
        raise ValueError(f"{name} must be a non-empty list of rows")
    width = len(value[0])
    if width == 0 or any(len(row) != width for row in value):
        raise ValueError(f"{name} rows must be non-empty and of equal length")
    flat = finite_numbers([v for row in value for v in row], name)
    return linalg.float_rows(flat, width)


def native_to_dict(model: Any) -> dict:
    return {
        "degree": int(model.degree),
        "mean": model.mean.tolist(),
        "scale": model.scale.tolist(),
        "coef": model.coef.tolist(),
        "intercept": float(model.intercept),
    }


def native_from_dict(document: Any, degree: int, n_features: int) -> Any:
    """A PolynomialModel from its saved coefficients, after checking every shape and value."""
    if not isinstance(document, dict) or set(document) != {
            "degree", "mean", "scale", "coef", "intercept"}:
        raise ValueError("a saved model must have exactly degree, mean, scale, coef, intercept")
    if document["degree"] != degree or isinstance(document["degree"], bool):
        raise ValueError(f"saved model degree {document['degree']!r} != {degree}")
    mean = finite_numbers(document["mean"], "mean")
    scale = finite_numbers(document["scale"], "scale")
    coef = finite_numbers(document["coef"], "coef")
    intercept = number_field(document, "intercept")
    n_terms = math.comb(n_features + degree, degree)
    if len(mean) != n_features or len(scale) != n_features or len(coef) != n_terms:
        raise ValueError("saved model coefficients do not match the number of features")
    if 0.0 in scale:
        raise ValueError("saved model has a zero scale")
    return linalg.PolynomialModel.from_dict({
        "degree": degree, "mean": mean.tolist(), "scale": scale.tolist(),
        "coef": coef.tolist(), "intercept": intercept,
    })
