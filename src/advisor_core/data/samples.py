"""Evenly spaced sample lists (``power_watts`` in W, ``cpu_usage_cores`` in cores): their one
validity rule, mean, trapezoid integral and spread.

A sample list is usable when it is a non-empty list of finite numbers >= 0 (no bools, strings,
nulls, NaN or infinities): one bad value makes the whole list unusable. The validity check and
the integral run in one compiled pass (``_samples``); the record reader
(``advisor_core.data.record``) is the only reader of sample lists in a results file.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from array import array
from typing import Any, NamedTuple, Optional

from advisor_core.data import _samples

__all__ = ["SampleSummary", "sample_series", "sample_stdev", "summarise", "trapezoid",
           "usable_summary"]


def trapezoid(values: Any, step_seconds: float) -> float:
    """Integrate evenly spaced samples (unit: sample unit x seconds, e.g. W -> J, cores -> core-s).

    [] -> 0.0, one sample -> v0 * step, otherwise step/2 * (v0 + v_last + 2 * sum(inner)).
    """
    return _samples.trapezoid(values, float(step_seconds))


def sample_series(values: Any) -> Optional[tuple[list[float], float]]:
    """Return (samples, arithmetic mean) of a usable sample list, else None.

    Ints become floats; the mean is ``math.fsum(samples) / n`` (None when that overflows).
    """
    return _samples.sample_series(values)


def sample_stdev(samples: list[float], mean: float) -> Optional[float]:
    """Return the sample standard deviation (n - 1) of ``samples`` around ``mean``, else None.

    Same unit as the samples. None for fewer than two samples or when the spread is not a
    finite number (samples near the float limit). The sum of squares is exactly rounded.
    """
    n = len(samples)
    if n < 2:
        return None
    try:
        variance = math.fsum([(x - mean) * (x - mean) for x in samples]) / (n - 1)
    except OverflowError:  # an intermediate sum beyond the float range
        return None
    return math.sqrt(variance) if math.isfinite(variance) else None


class SampleSummary(NamedTuple):
    """What the product uses of one usable sample list: its length, mean, integral over the step
    (None without a valid step) and sample standard deviation (None for one sample)."""

    length: int
    mean: float
    integral: Optional[float]
    stdev: Optional[float]

    def over(self, step_seconds: Optional[float], duration: Optional[float]) -> Optional[float]:
        """The sampled quantity integrated over a scenario of ``duration`` seconds (W -> J,
        cores -> core-s): the trapezoid integral when the samples span the duration (length x
        step within one step of it) or no duration is known, else mean x duration: samples that
        cover part of a scenario measure its mean, not its total."""
        if duration is None:
            return self.integral
        if step_seconds is not None and abs(self.length * step_seconds - duration) <= step_seconds:
            return self.integral
        total = self.mean * duration
        return total if math.isfinite(total) else None


#: ``summarise``'s answer for a list that is present but holds an unusable value.
INVALID = "invalid"


def summarise(values: Any, step_seconds: Optional[float], spread: bool = True) -> Any:
    """SampleSummary of a sample list (``spread``: with its standard deviation, else None);
    None when absent (not a list, or empty); ``INVALID`` when a value breaks the rule.

    An ``array('d')`` (a database answer's values) is summarised where it is, with the same
    numbers as the list of its values, without a Python float per sample kept.
    """
    if isinstance(values, array) and values.typecode == "d":
        return _summarise_doubles(values, step_seconds, spread) if values else None
    if not isinstance(values, list) or not values:
        return None
    series = _samples.sample_series(values)
    if series is None:
        return INVALID
    samples, mean = series
    integral = None
    if step_seconds is not None:
        joules = _samples.series_integral(samples, step_seconds)[1]
        integral = None if joules != joules else joules
    return SampleSummary(len(samples), mean, integral,
                         sample_stdev(samples, mean) if spread else None)


def _summarise_doubles(values: array, step_seconds: Optional[float], spread: bool) -> Any:
    """``summarise`` of a non-empty array of doubles: the same rule, mean, integral, spread."""
    try:
        total = math.fsum(values)  # exactly rounded: the list's mean, whatever the container
    except (OverflowError, ValueError):  # beyond the float range, or inf - inf
        return INVALID
    if not math.isfinite(total) or min(values) < 0:  # NaN, infinities, negatives
        return INVALID
    mean = total / len(values)
    integral = None
    if step_seconds is not None and math.isfinite(step_seconds) and step_seconds > 0:
        joules = _array_trapezoid(values, float(step_seconds))
        integral = joules if math.isfinite(joules) else None
    stdev = None
    if spread and len(values) > 1:
        try:
            variance = math.fsum((x - mean) * (x - mean) for x in values) / (len(values) - 1)
        except OverflowError:
            variance = math.inf
        stdev = math.sqrt(variance) if math.isfinite(variance) else None
    return SampleSummary(len(values), mean, integral, stdev)


def _array_trapezoid(values: array, step: float) -> float:
    """``trapezoid`` of doubles with its operations in its order (no numpy for an array)."""
    count = len(values)
    if count == 1:
        return values[0] * step
    inner = functools.reduce(operator.add, itertools.islice(values, 1, count - 1), 0.0)
    return step / 2.0 * (values[0] + values[count - 1] + 2.0 * inner)


def usable_summary(values: Any, step_seconds: Optional[float]) -> Optional[SampleSummary]:
    """``summarise`` for a source with nothing to count (a database answer): the summary of a
    usable list, else None (absent and invalid alike)."""
    summary = summarise(values, step_seconds)
    return summary if isinstance(summary, SampleSummary) else None
