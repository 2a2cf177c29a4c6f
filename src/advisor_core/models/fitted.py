"""The fitted state of a ``MultivariatePredictor``: one immutable value, replaced as a whole.

``fit`` (and ``from_dict``) build a new ``FittedState`` and publish it with one attribute
assignment, so a prediction running in another thread while a re-fit finishes reads the old
model or the new one, never a mixture: readers take the attribute once and use only that value.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Optional

from advisor_core.models.arrays import Rows
from advisor_core.models.features import NUMERIC_FEATURES, feature_names
from advisor_core.models.kinds import KindFit
from advisor_core.models.selection import KindScore

logger = logging.getLogger("advisor_core.models.modeling")

__all__ = ["FittedState", "reported_score"]


@dataclass(frozen=True)
class FittedState:
    """What a fit produced: per trained kind its fit and scores, the winner and why, the
    feature encoding and the training rows (target in ``target_name``'s unit)."""

    fits: Mapping[str, KindFit]
    model_scores: Mapping[str, Mapping[str, Any]]
    best_model_name: str
    selection: Optional[Mapping[str, Any]]
    encoder_categories: tuple[str, ...]
    hardware_categories: tuple[str, ...]
    X_train: Rows
    y_train: array
    #: Per-feature minimum and maximum of the training rows (the ``extrapolated`` flag).
    trained_range: tuple[array, array]
    target_name: Optional[str]
    hardware_model: Optional[str]
    #: Mean power (W) of the run's idle baseline (``floors.idle_baseline_watts``), or None.
    idle_watts: Optional[float] = None

    @classmethod
    def build(cls, fits: dict[str, KindFit], model_scores: dict[str, dict], best: str,
              selection: Optional[dict], encoders: list[str], hardware: list[str],
              X: Rows, y: array, trained_range: tuple[array, array],
              target_name: Optional[str], hardware_model: Optional[str],
              idle_watts: Optional[float] = None) -> FittedState:
        """A state whose mappings are read-only views of private copies."""
        return cls(
            fits=MappingProxyType(dict(fits)),
            model_scores=MappingProxyType({k: MappingProxyType(dict(v))
                                           for k, v in model_scores.items()}),
            best_model_name=best,
            selection=None if selection is None else MappingProxyType(dict(selection)),
            encoder_categories=tuple(encoders),
            hardware_categories=tuple(hardware),
            X_train=X,
            y_train=y,
            trained_range=trained_range,
            target_name=target_name,
            hardware_model=hardware_model,
            idle_watts=idle_watts,
        )

    @property
    def feature_names(self) -> list[str]:
        """Names of the encoded feature columns, in column order."""
        return feature_names(list(self.encoder_categories), list(self.hardware_categories))

    @property
    def n_samples(self) -> int:
        """Training rows."""
        return int(self.X_train.shape[0])

    def single_valued(self) -> dict[int, tuple[str, float]]:
        """Numeric features every training row shares: column -> (name, the one value)."""
        lo, hi = self.trained_range
        return {j: (name, lo[j]) for j, name in enumerate(NUMERIC_FEATURES) if lo[j] == hi[j]}

    def pipelines(self) -> dict[str, Any]:
        """The fitted model of each trained kind (a new dict)."""
        return {kind: fit.model for kind, fit in self.fits.items()}

    def scores(self) -> dict[str, dict]:
        """Per trained kind its score dict (new dicts)."""
        return {kind: dict(score) for kind, score in self.model_scores.items()}

    def best_score(self) -> dict:
        """The winner's score dict (a new dict)."""
        return dict(self.model_scores[self.best_model_name])

    def selection_info(self) -> Optional[dict]:
        """How the winner was chosen (a new dict), None for a model file without it."""
        return None if self.selection is None else dict(self.selection)

    def resolve(self, model_name: Optional[str]) -> str:
        """``model_name`` when it is trained, else (with a warning if one was named) the winner."""
        if model_name is not None and model_name in self.fits:
            return model_name
        if model_name is not None:
            logger.warning("model %r is not trained; using %s", model_name,
                           self.best_model_name)
        return self.best_model_name


#: Why a score is None (``reported_score``).
_NO_OOF_PREDICTION = "a held-out row has no finite out-of-fold prediction"
_SQUARES_OVERFLOW = "the squared errors pass the float range (targets too large)"


def reported_score(score: KindScore, rmse_in_sample: float, oof_finite: bool) -> dict:
    """The score dict of one kind as ``get_model_info`` reports it (RMSE in the target's unit).

    A number that could not be computed (an out-of-fold prediction that is not finite, or
    squared errors beyond the float range, as for targets of 1e154 W or more) is None, and
    ``unscored`` maps its name to the reason: never a NaN or an infinity.
    """
    out = {**score.as_dict(), "rmse_in_sample": rmse_in_sample}
    unscored = {}
    for key in ("r2", "rmse", "rmse_in_sample"):
        value = out[key]
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
            unscored[key] = (_NO_OOF_PREDICTION if key != "rmse_in_sample" and not oof_finite
                             else _SQUARES_OVERFLOW)
    if unscored:
        out["unscored"] = unscored
    return out
