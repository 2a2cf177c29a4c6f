"""Where the data cannot answer: physical floors of a prediction and features with one value.

Both predictors (``PowerPredictor``, ``MultivariatePredictor``) apply these rules, and report
every effect in the prediction's result (docs/predictions.md, "When the data cannot answer"):

* **Floors.** Power with one stream or more is not below the run's idle baseline (the power
  of the machine doing nothing); other values of a non-negative target are not below 0. A value
  raised to its floor is named under ``floored``, with the floor; an interval lying wholly
  below it is withdrawn (not raised to a zero-width point) and its bounds kept there.
* **One trained value.** A feature every training row shares (a run whose stream tests all
  used 1 stream) gives the model no slope along it: a prediction at another value of that
  feature gets no interval, and ``no_interval`` says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from advisor_core.data.record import as_records, idle_baseline

__all__ = [
    "IDLE_BASELINE",
    "SINGLE_TRAINED_VALUE",
    "ZERO",
    "idle_baseline_watts",
    "no_interval",
    "off_single_values",
    "power_floor",
    "raise_to_floor",
]

#: ``floored["floor"]`` values: the run's idle baseline (W), or 0.
IDLE_BASELINE = "idle_baseline"
ZERO = "zero"
#: ``no_interval["reason"]`` when a feature of the row is off the one value it was trained on.
SINGLE_TRAINED_VALUE = "single_trained_value"


def idle_baseline_watts(scenarios: Any) -> Optional[float]:
    """Power (W) of the run's idle baseline (``record.idle_baseline``: the first scenario, in
    file order, whose name marks a baseline and that has a power); None without one."""
    if not isinstance(scenarios, (list, tuple)):
        return None
    baseline = idle_baseline(as_records(scenarios))
    return None if baseline is None else baseline.power_w


def power_floor(streams: float, idle_watts: Optional[float]) -> tuple[float, str]:
    """(floor in W, its name) of a power prediction at ``streams``: the idle baseline for one
    stream or more when the run has one, else 0 W."""
    if idle_watts is not None and streams >= 1:
        return idle_watts, IDLE_BASELINE
    return 0.0, ZERO


#: The (low, high) keys of the intervals of a prediction result.
_INTERVALS = (("ci_low", "ci_high"), ("pi_low", "pi_high"))


def raise_to_floor(result: dict, keys: Iterable[str], floor: float, name: str) -> None:
    """Raise each number ``result[key]`` below ``floor`` to it; name the raised keys in
    ``result["floored"]`` (``{"floor": name, "value": floor, "keys": [...]}``), added to any
    earlier record of the same floor.

    An interval (``ci_*``, ``pi_*``) reaching below the floor whose upper bound is not above
    it is withdrawn instead: raised, it would be the point [floor, floor], an interval claiming
    a certainty the model does not have. Its bounds become None and the model's own bounds are
    kept under ``floored["below_floor"]``.
    """
    keys = tuple(keys)
    below = {}
    for low, high in _INTERVALS:
        lower, upper = result.get(low), result.get(high)
        if (low in keys and high in keys and isinstance(upper, float) and upper <= floor
                and isinstance(lower, float) and lower < floor):
            below[low], below[high] = result[low], upper
            result[low] = result[high] = None
    raised = [key for key in keys
              if isinstance(result.get(key), float) and result[key] < floor]
    if not raised and not below:
        return
    for key in raised:
        result[key] = floor
    record = result.setdefault("floored", {"floor": name, "value": floor, "keys": []})
    record["keys"].extend(key for key in raised if key not in record["keys"])
    if below:
        record.setdefault("below_floor", {}).update(below)


def off_single_values(row: Sequence[float], single: Mapping[int, tuple[str, float]]) -> dict:
    """The features of ``row`` (by column) that differ from the one value they were trained
    on (``single``: column -> (name, trained value)), as {name: trained value}."""
    return {name: value for column, (name, value) in single.items() if row[column] != value}


def no_interval(features: dict) -> dict:
    """The ``no_interval`` record of a row off single trained values."""
    return {"reason": SINGLE_TRAINED_VALUE, "trained_values": features}
