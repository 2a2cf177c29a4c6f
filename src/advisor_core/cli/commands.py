"""The data behind the ``advisor`` subcommands, as plain JSON-ready dicts.

``recommend``, ``predict`` and ``compare`` are built from ``advisor_core.economics.decision``
(figures, rankings of like with like, best per ladder, Pareto fronts) and
``advisor_core.models.power`` (the stream-count power model with its prediction interval).
docs/recommend.md describes every field; the command (``advisor_core.cli.main``) only reads
arguments and prints these.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any, Optional

from advisor_core import __version__
from advisor_core.data.record import ScenarioRecord
from advisor_core.data.scenario import bitrate_mbps, resolution
from advisor_core.economics.decision import (
    Evaluation,
    Evaluations,
    Prices,
    best_per_ladder,
    pareto_front,
    ranking_groups,
)
from advisor_core.models.power import NO_TRAINING_PAIRS, PowerPredictor

__all__ = ["MAX_STREAMS", "InputError", "compare", "floor_name",
           "floor_notes", "predict", "recommend"]

class InputError(ValueError):
    """Input the command cannot work with (exit status 2, one line)."""


def _prices(prices: Prices) -> dict[str, Any]:
    return {
        "region": prices.region,
        "currency": prices.currency,
        "energy_per_kwh": prices.energy_per_kwh,
        "cpu_core_per_hour": prices.cpu_core_per_hour,
        "gpu_per_hour": prices.gpu_per_hour,
        "co2_g_per_kwh": prices.co2_g_per_kwh,
    }


def _entry(item: Evaluation, rank: Optional[int] = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"rank": rank} if rank is not None else {}
    entry.update({
        "name": item.name,
        "score": item.score,
        "streams": item.streams,
        "output_ladder": item.output_ladder,
        "mean_power_watts": item.mean_power_watts,
        "power_per_stream_watts": item.power_per_stream_watts,
        "cost_per_hour": item.cost_per_hour,
        "cost_per_stream_hour": item.cost_per_stream_hour,
        "co2_grams_per_hour": item.co2_grams_per_hour,
        "vmaf": item.vmaf,
    })
    return entry


def recommend(evaluations: Evaluations, prices: Prices, entries: int) -> dict[str, Any]:
    """Rankings per score unit, best configuration per ladder, Pareto fronts (docs/recommend.md).

    ``entries``: the results file's scenario entries (objects or not).
    """
    items = evaluations.items
    unscored = sum(1 for item in items if item.score is None)
    rankings = [
        {"algorithm": group.algorithm, "unit": group.unit,
         "entries": [_entry(item, rank) for item, rank in zip(group.items, group.ranks)]}
        for group in ranking_groups(items)
    ]
    ladders = []
    for ladder, group in best_per_ladder(items):
        top = [item.name for item, rank in zip(group.items, group.ranks) if rank == 1]
        ladders.append({"output_ladder": ladder, "algorithm": group.algorithm,
                        "unit": group.unit, "best": top, "score": group.items[0].score,
                        "candidates": len(group.items)})
    fronts = {
        "energy": [{"name": i.name, "vmaf": i.vmaf,
                    "power_per_stream_watts": i.power_per_stream_watts}
                   for i in pareto_front(items, lambda e: e.power_per_stream_watts)],
        "cost": [{"name": i.name, "vmaf": i.vmaf, "cost_per_stream_hour": i.cost_per_stream_hour}
                 for i in pareto_front(items, lambda e: e.cost_per_stream_hour)],
    }
    skipped = dict(evaluations.skipped)
    if unscored:
        skipped["no_score"] = unscored
    return {
        "version": __version__,
        "prices": _prices(prices),
        "entries": entries,
        "evaluated": len(items),
        "duplicates": evaluations.duplicates,
        "skipped": skipped,
        "rankings": rankings,
        "best_per_ladder": ladders,
        "pareto": fronts,
    }


def _matches(record: ScenarioRecord, bitrate: Optional[str], size: Optional[str],
             encoder: Optional[str]) -> bool:
    if bitrate is not None and record.bitrate_mbps != bitrate_mbps(bitrate):
        return False
    if size is not None and resolution(record.resolution) != resolution(size):
        return False
    if encoder is not None:
        names = {record.encoder_class.lower(), record.encoder.lower()}
        if encoder.lower() not in names:
            return False
    return True


#: The most concurrent streams ``predict`` answers for (docs/recommend.md): far more than a
#: machine runs, small enough that every count is exact in a float.
MAX_STREAMS = 1_000_000

#: What the result keys of a floored prediction are called in a sentence.
_CUT_NAMES = {"mean": "the mean", "pi_low": "the interval's lower bound",
              "pi_high": "the interval's upper bound"}


def floor_name(floored: dict[str, Any]) -> str:
    """The floor of a ``floored`` record for a person: "the run's idle baseline (6.17 W)" or
    "0 W"."""
    if floored["floor"] != "idle_baseline":
        return "0 W"
    return f"the run's idle baseline ({floored['value']:.4g} W)"


def floor_notes(floored: dict[str, Any], bounds: bool = True) -> list[str]:
    """Sentences saying what a prediction's ``floored`` record cut (``advisor_core.models.floors``):
    the values raised, by name, and an interval withdrawn below the floor (with the model's
    bounds when ``bounds``)."""
    what = floor_name(floored)
    notes = []
    keys = [key for key in _CUT_NAMES if key in floored["keys"]]
    if keys:
        why = ("the fitted curve falls below it there" if "mean" in keys
               else "the model's interval reaches below it there")
        notes.append(f"{' and '.join(_CUT_NAMES[key] for key in keys)} "
                     f"{'was' if len(keys) == 1 else 'were'} raised to {what}: {why}")
    below = floored.get("below_floor")
    if below:
        span = f" ({below['pi_low']:.4g}..{below['pi_high']:.4g} W)" if bounds else ""
        notes.append(f"the model's whole prediction interval{span} lies below {what}: "
                     "no interval")
    return notes


def _stream_text(streams: Any) -> str:
    """``streams`` for an error message, short even for an absurd integer."""
    if isinstance(streams, int) and abs(streams) >= 10**20:
        return "a number of more than 20 digits"
    return repr(streams)


def _energy_figures(mean: Optional[float], prices: Prices,
                    hours: float) -> tuple[dict[str, Optional[float]], dict[str, str]]:
    """Energy (Wh), costs (currency) and CO2 (g) of ``mean`` W over ``hours``, and for each
    figure left None (no mean, beyond the float range) why."""
    def finite(value: Optional[float]) -> Optional[float]:
        return value if value is not None and math.isfinite(value) else None

    energy_wh = finite(None if mean is None else mean * hours)
    energy_cost = finite(None if energy_wh is None
                         else energy_wh / 1000.0 * prices.energy_per_kwh)
    compute_cost = finite((prices.cpu_core_per_hour + prices.gpu_per_hour) * hours)
    figures = {
        "energy_wh": energy_wh,
        "energy_cost": energy_cost,
        "compute_cost": compute_cost,
        "cost": finite(None if energy_cost is None or compute_cost is None
                       else energy_cost + compute_cost),
        "co2_grams": finite(None if energy_wh is None or prices.co2_g_per_kwh is None
                            else energy_wh / 1000.0 * prices.co2_g_per_kwh),
    }
    reasons = {}
    for key, value in figures.items():
        if value is not None or (key == "co2_grams" and prices.co2_g_per_kwh is None):
            continue
        upstream = mean is None and key != "compute_cost"
        reasons[key] = "no mean power" if upstream else "beyond the float range"
    return figures, reasons


def predict(scenarios: Sequence[ScenarioRecord], streams: int, prices: Prices,
            duration_seconds: float,
            confidence_level: float = 0.95, bitrate: Optional[str] = None,
            size: Optional[str] = None, encoder: Optional[str] = None) -> dict[str, Any]:
    """Mean power (W) of ``streams`` concurrent streams with its prediction interval, energy
    (Wh), cost (currency) and CO2 (g) over ``duration_seconds``.

    The stream-count model is trained on the run's scenarios of the same configuration (the
    ``bitrate``/``size``/``encoder`` filters, when given); its floor is the whole run's idle
    baseline. A figure that cannot be computed (beyond the float range) is None and
    ``unavailable`` says why. InputError when ``streams`` is not a whole number from 1 to
    ``MAX_STREAMS``, the filters match nothing, or no model can be trained.
    """
    if (isinstance(streams, bool) or not isinstance(streams, int)
            or not 1 <= streams <= MAX_STREAMS):
        raise InputError(f"--streams must be a whole number from 1 to {MAX_STREAMS}, "
                         f"got {_stream_text(streams)}")
    if bitrate is not None and bitrate_mbps(bitrate) is None:
        raise InputError(f"--bitrate {bitrate!r} is not a bitrate (e.g. 2500k, 5M)")
    if size is not None and resolution(size) is None:
        raise InputError(f"--resolution {size!r} is not WIDTHxHEIGHT")
    filtered = any(v is not None for v in (bitrate, size, encoder))
    matching = [s for s in scenarios if _matches(s, bitrate, size, encoder)]
    if not matching:
        raise InputError("no scenario of the run matches the given configuration")
    model = PowerPredictor()
    if not model.fit(matching, run=scenarios):
        of = "of that configuration " if filtered else "of the run "
        if model.fit_failure == NO_TRAINING_PAIRS:
            raise InputError(f"no scenario {of}has a stream count and a mean power to train on")
        raise InputError(f"no power model for {'that configuration' if filtered else 'the run'}"
                         f": {model.fit_failure}")
    info = model.get_model_info()
    interval = model.predict_interval(streams, confidence_level)
    mean = interval["mean"]
    low, high = info["stream_range"]
    figures, unavailable = _energy_figures(mean, prices, duration_seconds / 3600.0)
    if mean is None:
        unavailable = {"mean_power_watts": interval["no_prediction"], **unavailable}
    notes = []
    if interval.get("no_interval"):
        notes.append(f"the run measured only one stream count ({low}): it cannot say how power "
                     f"changes with streams, so {streams} streams gets the level measured at "
                     f"{low}, with no interval")
    elif interval["extrapolated"]:
        notes.append(f"{streams} streams is outside the trained range {low}..{high}: the model "
                     "continues its fitted curve there and the interval may not hold")
    floored = interval.get("floored")
    if interval.get("interval_unavailable"):
        notes.append(f"no prediction interval: {interval['interval_unavailable']}")
    if floored:
        notes += floor_notes(floored)
    notes += [f"{key} not computed: {why}" for key, why in unavailable.items()]
    return {
        "version": __version__,
        "streams": streams,
        "configuration": {"bitrate": bitrate, "resolution": size, "encoder": encoder},
        "model": {"type": info["model_type"], "trained_on": info["n_samples"],
                  "stream_range": [low, high]},
        "confidence_level": confidence_level,
        "mean_power_watts": mean,
        "pi_low_watts": interval["pi_low"],
        "pi_high_watts": interval["pi_high"],
        "extrapolated": bool(interval["extrapolated"]),
        "no_interval": interval.get("no_interval"),
        "interval_unavailable": interval.get("interval_unavailable"),
        "floored": interval.get("floored"),
        "warning": "; ".join(notes) or None,
        "duration_seconds": duration_seconds,
        **figures,
        "unavailable": unavailable,
        "prices": _prices(prices),
    }


_COMPARED = ("mean_power_watts", "power_per_stream_watts", "cost_per_hour",
             "cost_per_stream_hour", "co2_grams_per_hour", "vmaf")


def _lookup(evaluations: Evaluations, name: str) -> Evaluation:
    item = evaluations.by_name(name)
    if item is None:
        close = difflib.get_close_matches(name, [i.name for i in evaluations.items], n=3)
        hint = f"; did you mean: {', '.join(repr(c) for c in close)}" if close else ""
        raise InputError(f"no evaluated scenario named {name!r}{hint}")
    return item


def compare(evaluations: Evaluations, prices: Prices, first: str,
            second: str) -> dict[str, Any]:
    """Two configurations side by side: figures of each, B - A and B / A - 1 (percent).

    Scores are compared only when both use the same algorithm (same unit).
    """
    a, b = _lookup(evaluations, first), _lookup(evaluations, second)
    rows = []
    for key in (*_COMPARED, "score"):
        left, right = getattr(a, key), getattr(b, key)
        comparable = key != "score" or a.algorithm == b.algorithm
        difference = right - left if comparable and None not in (left, right) else None
        percent = (difference / left * 100.0
                   if difference is not None and left not in (None, 0) else None)
        rows.append({"field": key, "a": left, "b": right, "difference": difference,
                     "percent": percent})
    return {
        "version": __version__,
        "prices": _prices(prices),
        "a": {"name": a.name, "algorithm": a.algorithm, "unit": a.unit},
        "b": {"name": b.name, "algorithm": b.algorithm, "unit": b.unit},
        "scores_comparable": a.algorithm == b.algorithm,
        "rows": rows,
    }
