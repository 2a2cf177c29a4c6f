"""Mean power (watts) as a function of the number of concurrent streams.

``PowerPredictor`` is the reference's stream-count model: ordinary least squares of mean power
on the stream count, a line below six distinct counts and a quadratic from six on. It is the
``streams`` kind of ``advisor_core.models.kinds`` (with degree 2 from six counts): the same compiled
fit, rank, residual variance, leverage and continuation beyond the trained range (the least-
squares line, never falling as streams are added) as the multivariate kinds, and the textbook
Student-t prediction interval (``advisor_core.models.intervals``). Training pairs are the records'
stream count and one power (``advisor_core.data.record``), so every results schema trains.
"""

from __future__ import annotations

import logging
import math
from array import array
from typing import Any, NamedTuple, Optional

from advisor_core.data.record import ScenarioRecord, as_records, idle_baseline
from advisor_core.data.scenario import as_number
from advisor_core.models import extrapolation, kinds, linalg
from advisor_core.models.arrays import Rows
from advisor_core.models.floors import idle_baseline_watts, no_interval, power_floor, raise_to_floor
from advisor_core.models.intervals import check_confidence_level

logger = logging.getLogger(__name__)

__all__ = ["NOT_TRAINED", "NO_TRAINING_PAIRS", "QUADRATIC_MIN_DISTINCT_STREAMS",
           "PowerPredictor", "StreamPowerModel"]


#: Distinct stream counts from which the power model becomes quadratic.
QUADRATIC_MIN_DISTINCT_STREAMS = 6
#: ``PowerPredictor.fit_failure`` when no scenario has both a stream count and a power.
NO_TRAINING_PAIRS = "no scenario with a stream count and a mean power"


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
        #: Why the last ``fit`` returned False (None after one that trained).
        self.fit_failure: Optional[str] = None
        # Trained stream range; the fitted pipeline and its training rows; the kind's interval
        # statistics (advisor_core.models.kinds.KindFit), computed on the first interval asked for.
        self._range = (0.0, 0.0)
        self._fit: Optional[_StreamFit] = None

    def fit(self, scenarios: Any, run: Any = None) -> bool:
        """Fit watts against stream count; False (old model kept, ``fit_failure`` says why) when
        no usable pair exists or the fit fails numerically.

        ``run``: the whole run ``scenarios`` were chosen from (e.g. one bitrate's scenarios);
        its idle baseline is the floor of the predictions (default: ``scenarios`` themselves).
        A training set filtered to one configuration leaves the baseline out, and with it the
        floor, unless the run is given.
        """
        records = as_records(scenarios) if isinstance(scenarios, (list, tuple)) else []
        pairs = _power_pairs(records)
        if not pairs:
            return self._failed(NO_TRAINING_PAIRS)
        counts, watts = zip(*pairs)
        distinct = set(counts)
        quadratic = len(distinct) >= QUADRATIC_MIN_DISTINCT_STREAMS
        try:
            x, y = array("d", counts), array("d", watts)
            model = _raw_curve(linalg.PolynomialModel.fit_column(x, y, 2 if quadratic else 1))
        except (ValueError, OverflowError, ZeroDivisionError) as exc:
            return self._failed(f"{_UNFITTABLE}: {exc}; {_reach(watts)}")
        if not (math.isfinite(model.intercept) and all(map(math.isfinite, model.coef))):
            return self._failed(f"{_UNFITTABLE}: its coefficients pass the float range; "
                                f"{_reach(watts)}")
        self.model = model
        self.fit_failure = None
        self._fit = _StreamFit(model, x, y)
        self.is_polynomial = quadratic
        self.training_data = pairs
        if run is None:
            baseline = idle_baseline(records)
            self.idle_watts = None if baseline is None else baseline.power_w
        else:
            self.idle_watts = idle_baseline_watts(run)
        self._range = (float(min(distinct)), float(max(distinct)))
        if logger.isEnabledFor(logging.INFO):
            y_mean = sum(w for _, w in pairs) / len(pairs)
            ss_res = sum((w - model(s)) ** 2 for s, w in pairs)
            ss_tot = sum((w - y_mean) ** 2 for _, w in pairs)
            r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
            logger.info("PowerPredictor: %s model on %d points, R² = %.4f",
                        "polynomial" if quadratic else "linear", len(pairs), r2)
        return True

    def _failed(self, reason: str) -> bool:
        """Record and log why a fit trained nothing (the old model is kept); False."""
        self.fit_failure = reason
        logger.warning("PowerPredictor: %s; previous model kept", reason)
        return False

    def predict(self, streams: Any) -> Optional[float]:
        """Predicted mean power in watts for ``streams`` (≥ 0), or None untrained / bad input
        (negative, NaN, infinite or not a number).

        Inside the trained stream range the fitted line or quadratic; beyond it the value at
        the nearest trained count continued by the least-squares line's slope (never falling
        as streams are added), so a quadratic is never extrapolated. Never below the run's idle
        baseline for one stream or more, nor below 0 W (``predict_interval`` reports the cut).
        """
        value, _ = _stream_count(streams)
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
        (``advisor_core.models.intervals``), None with no residual degree of freedom (rows <=
        coefficients) or a residual variance outside the float range, and then
        ``interval_unavailable`` says which; ``extrapolated`` is True outside the trained
        stream range. Off the one
        stream count a run measured there is no interval and ``no_interval`` says so; values
        raised to the idle baseline or 0 W are named under ``floored``, and an interval wholly
        below it is None with its bounds under ``floored["below_floor"]`` (docs/predictions.md).
        No mean (untrained, bad ``streams``, a value past the float range): every value None and
        ``no_prediction`` says why. ValueError for a ``confidence_level`` outside (0, 1).
        """
        level = check_confidence_level(confidence_level)
        value, bad = _stream_count(streams)
        centre = self._unfloored(value)
        result: dict = {"mean": centre, "pi_low": None, "pi_high": None, "extrapolated": None}
        if centre is None or value is None:
            result["no_prediction"] = (bad if bad is not None else NOT_TRAINED
                                       if self.model is None else _PAST_FLOAT_RANGE)
            return result
        low, high = self._range
        extrapolated = not low <= value <= high
        result["extrapolated"] = extrapolated
        if low == high and value != low:
            result["no_interval"] = no_interval({"stream_count": low})
        else:
            fit = self._kind_fit()
            row = kinds.predict_rows(fit, _rows([value]), level)[0]
            half = row.half_width
            if half is not None:
                result["pi_low"], result["pi_high"] = centre - half, centre + half
            else:
                result["interval_unavailable"] = kinds.interval_problem(fit, row, level)
        raise_to_floor(result, ("mean", "pi_low", "pi_high"), *power_floor(value, self.idle_watts))
        return result

    def _guarded(self, value: float) -> float:
        """The model, continued linearly beyond the trained range (watts)."""
        fit = self._kind_fit()
        return extrapolation.guarded_predict(fit.model, fit.box, _rows([value]))[0]

    def _kind_fit(self) -> kinds.KindFit:
        fit = self._fit
        if fit is None or fit.source is not self.model:
            raise RuntimeError("the predictor is not trained")
        if fit.kind_fit is None:
            # The curve as a pipeline with identity scaling: beyond the range the guarded
            # evaluation continues exactly the values predict() gives inside it.
            curve = fit.source
            as_pipeline = linalg.PolynomialModel(
                len(curve.coef), array("d", [0.0]), array("d", [1.0]),
                array("d", [0.0, *curve.coef]), curve.intercept)
            fit.kind_fit = kinds.describe("streams", as_pipeline, linalg.float_rows(fit.x, 1),
                                          fit.y, b"\x01",
                                          degree=len(curve.coef))
        return fit.kind_fit

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


_UNFITTABLE = "power cannot be fitted against the stream count"
#: ``predict_interval(...)["no_prediction"]`` of an untrained predictor.
NOT_TRAINED = "the predictor is not trained"
_PAST_FLOAT_RANGE = "the model's power at that stream count passes the float range"


def _stream_count(streams: Any) -> tuple[Optional[float], Optional[str]]:
    """(``streams`` as a float >= 0, None) or (None, why it is not a stream count)."""
    value = as_number(streams)
    if value is None or value < 0:
        return None, f"streams must be a finite number >= 0, got {streams!r:.40}"
    return value, None


def _reach(watts: tuple[float, ...]) -> str:
    return f"the power values reach {max(watts, key=abs):.4g} W"


def _rows(streams: list[float]) -> Rows:
    """Stream counts as an n x 1 float matrix (the kernels' input) without going through numpy."""
    return linalg.float_rows(array("d", streams), 1)


def _raw_curve(pipeline: linalg.PolynomialModel) -> StreamPowerModel:
    """The fitted pipeline (scaled stream count z = (s - m) / sd) as a curve in the stream count
    itself: c1 z + c2 z^2 expanded in powers of s."""
    m, sd = pipeline.mean[0], pipeline.scale[0]
    base = pipeline.intercept + pipeline.coef[0]
    c1 = pipeline.coef[1]
    if pipeline.degree == 1:
        return StreamPowerModel(base - c1 * m / sd, (c1 / sd,))
    c2 = pipeline.coef[2]
    return StreamPowerModel(base - c1 * m / sd + c2 * m * m / (sd * sd),
                            (c1 / sd - 2.0 * c2 * m / (sd * sd), c2 / (sd * sd)))


class _StreamFit:
    """A fitted stream-count curve with its training rows, and (on the first interval asked for)
    the ``streams`` kind's statistics of it."""

    __slots__ = ("kind_fit", "source", "x", "y")

    def __init__(self, source: StreamPowerModel, x: array, y: array) -> None:
        self.source, self.x, self.y = source, x, y
        self.kind_fit: Optional[kinds.KindFit] = None


def _power_pairs(records: list[Optional[ScenarioRecord]]) -> list[tuple[int, float]]:
    """(streams, watts) pairs of the records that have both (the record's one power rule)."""
    return [(record.streams, record.power_w) for record in records
            if record is not None and record.streams is not None and record.power_w is not None]
