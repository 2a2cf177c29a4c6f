"""Validation helpers of the JSON model file (``MultivariatePredictor.save`` / ``load``).

Every field of a loaded document is checked for type, shape and finiteness before use; nothing
in a model file is ever executed.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, Optional

from advisor_core import linalg
from advisor_core.kinds import SIMPLICITY
from advisor_core.linalg import Rows
from advisor_core.scenario import as_number


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
    known = set(_SCORE_NUMBERS) | set(_SCORE_FLAGS) | {"rows", "terms"}
    if not set(score) <= known:
        raise ValueError(f"model_scores[{kind!r}] has unknown keys {sorted(set(score) - known)}")
    out: dict = {}
    for key in _SCORE_NUMBERS:
        if key in score:
            out[key] = math.nan if score[key] is None else number_field(score, key)
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
