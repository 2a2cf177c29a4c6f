"""Mean power (watts) as a function of the number of concurrent streams.

``PowerPredictor`` is the reference's stream-count model: ordinary least squares of mean power
on the stream count, a line below six distinct counts and a quadratic from six on. Beyond the
trained range it continues the least-squares line (never falling as streams are added) and
``predict_interval`` gives the textbook Student-t prediction interval
(``advisor_core.intervals``). Training pairs come from ``advisor_core.features.
training_target``, so every results schema trains.
"""

from __future__ import annotations

import logging
import math
from array import array
from typing import Any, NamedTuple, Optional

from advisor_core import extrapolation, linalg
from advisor_core.arrays import Rows
from advisor_core.features import training_target
from advisor_core.floors import idle_baseline_watts, no_interval, power_floor, raise_to_floor
from advisor_core.intervals import check_confidence_level, extrapolated_half_width, half_width
from advisor_core.scenario import as_number, stream_count

logger = logging.getLogger(__name__)

__all__ = ["QUADRATIC_MIN_DISTINCT_STREAMS", "PowerPredictor", "StreamPowerModel"]


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
        self.is_polynomial = False
        self.training_data: list[tuple[int, float]] = []
        # Mean power (W) of the run's idle baseline, the floor of predictions for >= 1 stream.
        self.idle_watts: Optional[float] = None
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
        self.training_data = pairs
        self.idle_watts = idle_baseline_watts(scenarios)
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
        as streams are added), so a quadratic is never extrapolated. Never below the run's idle
        baseline for one stream or more, nor below 0 W (``predict_interval`` reports the cut).
        """
        value = as_number(streams)
        predicted = self._unfloored(value)
        if predicted is None or value is None:
            return None
        floor, _ = power_floor(value, self.idle_watts)
        return predicted if predicted > floor else floor

    def _unfloored(self, value: Optional[float]) -> Optional[float]:
        """The model's value at ``value`` streams (W) before any floor; None when there is none."""
        model = self.model
        if model is None or value is None:
            return None
        low, high = self._range
        if low <= value <= high:  # the common case needs no kernel call
            predicted = model(value)
        else:
            predicted = self._guarded(value)
        return predicted if math.isfinite(predicted) else None

    def predict_interval(self, streams: Any, confidence_level: float = 0.95) -> dict:
        """Mean power (W) and a prediction interval (W) for one new measurement at ``streams``.

        ``{mean, pi_low, pi_high, extrapolated}``: ``mean`` equals ``predict(streams)``; the
        interval is the Student-t interval of the fitted line or quadratic
        (``advisor_core.intervals``), None with no residual degree of freedom (rows <=
        coefficients); ``extrapolated`` is True outside the trained stream range. Off the one
        stream count a run measured there is no interval and ``no_interval`` says so; values
        raised to the idle baseline or 0 W are named under ``floored`` (docs/predictions.md).
        ValueError for a ``confidence_level`` outside (0, 1).
        """
        level = check_confidence_level(confidence_level)
        value = as_number(streams)
        centre = self._unfloored(value)
        result: dict = {"mean": centre, "pi_low": None, "pi_high": None, "extrapolated": None}
        if centre is None or value is None:
            return result
        low, high = self._range
        extrapolated = not low <= value <= high
        result["extrapolated"] = extrapolated
        if low == high and value != low:
            result["no_interval"] = no_interval({"stream_count": low})
        else:
            half = self._half_width(value, level)
            if half is not None:
                result["pi_low"], result["pi_high"] = centre - half, centre + half
        raise_to_floor(result, ("mean", "pi_low", "pi_high"), *power_floor(value, self.idle_watts))
        return result

    def _half_width(self, value: float, level: float) -> Optional[float]:
        """Prediction-interval half-width (W) at ``value`` streams, continued beyond the range."""
        stats = self._interval_stats()
        low, high = self._range
        half = stats.half_width(min(max(value, low), high), level)
        if not low <= value <= high:
            half = extrapolated_half_width(half, stats.trend_half_width(value, level))
        return half

    def _guarded(self, value: float) -> float:
        """The model, continued linearly beyond the trained range (watts)."""
        stats = self._interval_stats()
        return extrapolation.guarded_predict(stats.model, stats.box, _one_row(value))[0]

    def _interval_stats(self) -> _StreamIntervalStats:
        model = self.model
        if model is None:
            raise RuntimeError("the predictor is not trained")
        cached = self._stats
        if cached is None or cached.source is not model:
            cached = self._stats = _StreamIntervalStats(model, self.training_data)
        return cached

    def get_model_info(self) -> dict:
        """Describe the model: trained flag, type, sample count and stream range (streams);
        ``single_valued_features`` when every training row has one stream count."""
        if self.model is None:
            return {"trained": False, "model_type": None, "n_samples": 0, "stream_range": None}
        streams = [s for s, _ in self.training_data]
        info: dict = {
            "trained": True,
            "model_type": "polynomial" if self.is_polynomial else "linear",
            "n_samples": len(self.training_data),
            "stream_range": (min(streams), max(streams)),
        }
        if min(streams) == max(streams):
            info["single_valued_features"] = {"stream_count": float(streams[0])}
        return info


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


def _one_row(streams: float) -> Rows:
    """A 1 x 1 float matrix (the kernels' input) without going through numpy."""
    return linalg.float_rows(array("d", [streams]), 1)


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
        self.box = extrapolation.TrainedBox.of(self.X, line, b"\x01")
        self.rank, _ = extrapolation.leverage(self.X, self.degree, self.X)
        residuals = [w - model(s) for s, w in pairs]
        self.df = n - self.rank - 1
        self.sigma2 = (math.fsum(r * r for r in residuals) / self.df) if self.df > 0 else math.nan
        line_fit = line.predict_values(self.X)
        self.line_rank, _ = extrapolation.leverage(self.X, 1, self.X)
        self.line_df = n - self.line_rank - 1
        self.line_sigma2 = (math.fsum((w - f) ** 2 for w, f in zip(watts, line_fit)) / self.line_df
                            if self.line_df > 0 else math.nan)

    def half_width(self, streams: float, level: float) -> Optional[float]:
        """Prediction-interval half-width (W) of the model at ``streams``."""
        if self.df < 1:
            return None
        _, h = extrapolation.leverage(self.X, self.degree, _one_row(streams))
        return half_width(self.sigma2, self.df, h[0], level)

    def trend_half_width(self, streams: float, level: float) -> Optional[float]:
        """Prediction-interval half-width (W) of the least-squares line at ``streams``."""
        if self.line_df < 1:
            return None
        _, h = extrapolation.leverage(self.X, 1, _one_row(streams))
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
