"""Cost model: legacy (duration x price) and load-aware (integrated samples) transcoding costs.

Costs are in the configured currency (USD by default); energy in joules or kWh, CPU work in
core-seconds. Every method takes one analysed scenario dict (docs/results-files.md §2) and returns a
finite float or None when the data needed is missing or invalid; nothing raises on bad input.
Both the per-scenario methods and the ``*_many``/``cost_arrays`` ones read the scenarios into
columns (``advisor_core.columns``) and price them with one compiled kernel, so they agree.

Kept from the reference on purpose: a zero price gives 0.0 before any data is looked at; a 0.0
total has no cost per pixel (None) but a 0.0 cost per watch hour; the legacy watch-hour cost
defaults to one viewer, the load-aware one has no default audience; one sample integrates to
value x step. Differences: null nested objects count as missing; negative, NaN, infinite,
boolean or string numbers, and sample lists holding any such value, give None instead of an
exception or a negative cost; something that is not a dict gives None; overflow gives None.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from . import _kernels
from .columns import ScenarioColumns, energy_joules, mean_power_watts, read_columns
from .scenario import as_number, non_negative_number, positive_number, stream_count, total_pixels

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "COST_KEYS",
    "CostModel",
    "audience",
    "container_core_seconds",
    "energy_joules",
    "mean_power_watts",
    "power_from_samples",
    "sample_series",
    "sample_stdev",
    "trapezoid",
]

_NAN = math.nan

#: Keys of :meth:`CostModel.compute_costs_many`; key ``k`` equals ``CostModel.compute_<k>``.
COST_KEYS = (
    "energy_cost",
    "compute_cost",
    "total_cost",
    "cost_per_pixel",
    "cost_per_watch_hour",
    "energy_cost_load_aware",
    "compute_cost_load_aware",
    "total_cost_load_aware",
    "cost_per_pixel_load_aware",
    "cost_per_watch_hour_load_aware",
)


def trapezoid(values: Any, step_seconds: float) -> float:
    """Integrate evenly spaced samples (unit: sample unit x seconds, e.g. W -> J, cores -> core-s).

    [] -> 0.0, one sample -> v0 * step, otherwise step/2 * (v0 + v_last + 2 * sum(inner)).
    """
    return _kernels.trapezoid(values, float(step_seconds))


def sample_series(values: Any) -> Optional[tuple[list[float], float]]:
    """Return (samples, arithmetic mean) of a non-empty list of finite numbers >= 0, else None.

    The one validity rule for ``power_watts`` (W) and ``cpu_usage_cores`` (cores) arrays: a bool,
    string, null, NaN, infinity or negative value anywhere makes the whole list unusable. Ints
    become floats; the mean is ``math.fsum(samples) / n`` (None when that overflows).
    """
    return _kernels.sample_series(values)


def sample_stdev(samples: list[float], mean: float) -> Optional[float]:
    """Return the sample standard deviation (n - 1) of ``samples`` around ``mean``, else None.

    Same unit as the samples (W for ``power_watts``). None for fewer than two samples or when
    the spread is not a finite number (samples near the float limit). The sum of squares is
    exactly rounded (``math.fsum``).
    """
    n = len(samples)
    if n < 2:
        return None
    try:
        variance = math.fsum([(x - mean) * (x - mean) for x in samples]) / (n - 1)
    except OverflowError:  # an intermediate sum beyond the float range
        return None
    return math.sqrt(variance) if math.isfinite(variance) else None


_UNSET: Any = object()


def power_from_samples(
    scenario: Any, series: Optional[tuple[list[float], float]] = _UNSET
) -> Optional[dict[str, float]]:
    """Return a ``power`` summary derived from ``power_watts`` samples, or None.

    ``mean_watts`` is the arithmetic mean (W); ``total_energy_joules`` is the trapezoid integral
    over ``step_seconds`` (J) and is absent when the step is not a positive number: the sampling
    interval is never guessed. ``series``, when given, is ``sample_series`` of the scenario's
    ``power_watts``, for callers that need the samples too (validated once, not twice).
    """
    if not isinstance(scenario, dict):
        return None
    if series is _UNSET:
        series = sample_series(scenario.get("power_watts"))
    if series is None:
        return None
    samples, mean = series
    power = {"mean_watts": mean}
    step = positive_number(scenario.get("step_seconds"))
    if step is not None:
        power["total_energy_joules"] = trapezoid(samples, step)
    return power


def scenario_power(
    scenario: Any, series: Optional[tuple[list[float], float]] = _UNSET
) -> Optional[dict]:
    """Return the scenario's measured ``power`` summary (W, J) whatever its schema, or None.

    The one rule for every results schema: a non-empty ``power`` object (the basic schema after
    analysis, or an analysis CSV joined in) as it is; otherwise the summary of the extended
    schema's ``power_watts`` samples (``power_from_samples``). ``series`` as there.
    """
    if not isinstance(scenario, dict):
        return None
    power = scenario.get("power")
    if isinstance(power, dict) and power:
        return power
    return power_from_samples(scenario, series)


# ---------------------------------------------------------------------------------------------
# Scenario fields of the measured-totals costs (mean power and energy: advisor_core.columns)
# ---------------------------------------------------------------------------------------------


def container_core_seconds(scenario: Any) -> Optional[float]:
    """CPU work in core-seconds from ``container_usage.cpu_percent`` (Docker's convention: 100 =
    one core) x ``duration`` (s); None when either is missing or invalid."""
    if not isinstance(scenario, dict):
        return None
    usage = scenario.get("container_usage")
    if not isinstance(usage, dict):
        return None
    percent = non_negative_number(usage.get("cpu_percent"))
    duration = positive_number(scenario.get("duration"))
    if percent is None or duration is None:
        return None
    core_seconds = percent / 100.0 * duration
    return core_seconds if math.isfinite(core_seconds) else None


def audience(scenario: Any) -> float:
    """Viewers of a scenario for costs per viewer-hour: ``viewers`` when a positive number, else
    the stream count of its name ("4 Streams @ 2500k": 4), else 1 (one output ladder)."""
    if not isinstance(scenario, dict):
        return 1.0
    viewers = positive_number(scenario.get("viewers"))
    if viewers is not None:
        return viewers
    name = scenario.get("name")
    return float((stream_count(name) if isinstance(name, str) else None) or 1)


def _nan(value: Optional[float]) -> float:
    return _NAN if value is None else value


def _none(value: float) -> Optional[float]:
    return None if value != value else value


def _price(name: str, value: Any) -> float:
    number = as_number(value)
    if number is None or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


class CostModel:
    """Transcoding cost calculator (legacy and load-aware formulas), in ``currency`` units."""

    def __init__(
        self,
        energy_cost_per_kwh: float = 0.0,
        cpu_cost_per_hour: float = 0.0,
        gpu_cost_per_hour: float = 0.0,
        currency: str = "USD",
        price_per_core_second: Optional[float] = None,
        price_per_joule: Optional[float] = None,
    ) -> None:
        """Set prices: per kWh, per CPU/GPU hour, and optionally per core-second and per joule.

        Unset load-aware prices derive from the legacy ones (hourly/3600, per-kWh/3 600 000).
        Negative or non-finite prices raise ValueError.
        """
        self.energy_cost_per_kwh = _price("energy_cost_per_kwh", energy_cost_per_kwh)
        self.cpu_cost_per_hour = _price("cpu_cost_per_hour", cpu_cost_per_hour)
        self.gpu_cost_per_hour = _price("gpu_cost_per_hour", gpu_cost_per_hour)
        self.currency = str(currency)
        if price_per_core_second is None:
            price_per_core_second = (
                self.cpu_cost_per_hour / 3600 if self.cpu_cost_per_hour > 0 else 0.0
            )
        if price_per_joule is None:
            price_per_joule = (
                self.energy_cost_per_kwh / 3_600_000 if self.energy_cost_per_kwh > 0 else 0.0
            )
        self.price_per_core_second = _price("price_per_core_second", price_per_core_second)
        self.price_per_joule = _price("price_per_joule", price_per_joule)

    # -- one scenario: the batch kernel over a one-scenario column table ------------------------

    def _one(self, scenario: Any, key: str, viewers: Any = None) -> Optional[float]:
        """Cost ``key`` of COST_KEYS for one scenario (None for anything but a dict)."""
        if not isinstance(scenario, dict):
            return None
        table = self.cost_columns(read_columns([scenario]), viewers)
        return _none(table[COST_KEYS.index(key)])

    def compute_energy_cost(self, scenario: Any) -> Optional[float]:
        """Energy cost (currency): (power W / 1000) x (duration s / 3600) x price per kWh.

        A zero energy price gives 0.0 whatever the data (reference rule).
        """
        return self._one(scenario, "energy_cost")

    def compute_compute_cost(self, scenario: Any) -> Optional[float]:
        """Compute cost (currency): duration h x (CPU + GPU hourly price); 0.0 with zero prices."""
        return self._one(scenario, "compute_cost")

    def compute_total_cost(self, scenario: Any) -> Optional[float]:
        """Energy + compute cost (currency), a missing part counting 0; None when both are."""
        return self._one(scenario, "total_cost")

    def compute_cost_per_pixel(self, scenario: Any) -> Optional[float]:
        """Total cost per delivered pixel (currency/pixel); None for a missing or 0.0 total."""
        return self._one(scenario, "cost_per_pixel")

    def compute_cost_per_watch_hour(self, scenario: Any, viewers: Any = 1) -> Optional[float]:
        """Total cost per viewer-hour (currency/h/viewer): total / (duration h x viewers)."""
        if viewers is None:  # an explicit "no audience" (the batch's None means one viewer)
            return None
        return self._one(scenario, "cost_per_watch_hour", viewers)

    def compute_compute_cost_load_aware(self, scenario: Any) -> Optional[float]:
        """Compute cost (currency): core-seconds of ``cpu_usage_cores`` (+ ``gpu_usage_cores``)
        integrated over ``step_seconds`` x price per core-second; 0.0 with a zero price."""
        return self._one(scenario, "compute_cost_load_aware")

    def compute_energy_cost_load_aware(self, scenario: Any) -> Optional[float]:
        """Energy cost (currency): joules of ``power_watts`` integrated over ``step_seconds`` x
        price per joule; 0.0 with a zero price."""
        return self._one(scenario, "energy_cost_load_aware")

    def compute_total_cost_load_aware(self, scenario: Any) -> Optional[float]:
        """Load-aware energy + compute cost (currency); None when both parts are missing."""
        return self._one(scenario, "total_cost_load_aware")

    def compute_cost_per_pixel_load_aware(self, scenario: Any) -> Optional[float]:
        """Load-aware total cost per delivered pixel (currency/pixel); None for a 0.0 total."""
        return self._one(scenario, "cost_per_pixel_load_aware")

    def compute_cost_per_watch_hour_load_aware(
        self, scenario: Any, viewers: Any = None
    ) -> Optional[float]:
        """Load-aware total per viewer-hour (currency/h/viewer); viewers = argument, else the
        scenario's ``viewers``; None without a positive audience (no default)."""
        return self._one(scenario, "cost_per_watch_hour_load_aware", viewers)

    def measured_costs(self, scenario: Any, viewers: Any = None) -> dict[str, Optional[float]]:
        """Load-aware costs (currency) of a scenario priced from measured totals, not samples.

        Energy: ``power.total_energy_joules`` x price per joule; compute:
        ``container_core_seconds`` x price per core-second (None when CPU is unknown); total,
        per pixel and per viewer-hour as from samples (``viewers``: the argument, else the
        scenario's). Keys: the five ``*_load_aware`` keys of COST_KEYS.
        """
        if not isinstance(scenario, dict):
            return dict.fromkeys(COST_KEYS[5:])
        energy = _kernels.load_aware_energy_cost(_nan(energy_joules(scenario)),
                                                 self.price_per_joule)
        compute = _kernels.load_aware_compute_cost(_nan(container_core_seconds(scenario)), 0.0,
                                                   self.price_per_core_second)
        total = _kernels.total_cost(energy, compute)
        pixel = _kernels.cost_per_pixel(total, _nan(total_pixels(scenario)))
        count = self._viewers(scenario.get("viewers") if viewers is None else viewers)
        watch = _kernels.cost_per_watch_hour(total, self._duration(scenario), count)
        return dict(zip(COST_KEYS[5:], map(_none, (energy, compute, total, pixel, watch))))

    def get_pricing_info(self) -> dict:
        """Return the prices in use (per kWh, per CPU/GPU hour, per core-second, per joule)."""
        return {
            "energy_cost_per_kwh": self.energy_cost_per_kwh,
            "cpu_cost_per_hour": self.cpu_cost_per_hour,
            "gpu_cost_per_hour": self.gpu_cost_per_hour,
            "currency": self.currency,
            "price_per_core_second": self.price_per_core_second,
            "price_per_joule": self.price_per_joule,
        }

    # -- batch ------------------------------------------------------------------------------

    def cost_arrays(self, scenarios: Iterable[Any], viewers: Any = None) -> dict[str, np.ndarray]:
        """All ten costs of many scenarios as float64 arrays (NaN = None), keys COST_KEYS.

        ``viewers`` is passed to both watch-hour costs: None means 1 for the legacy one and the
        scenario's ``viewers`` field for the load-aware one (their per-scenario defaults).
        """
        import numpy as np  # here only: the exporters use the list form and never load numpy

        columns = read_columns(scenarios)
        table = np.asarray(self.cost_columns(columns, viewers)).reshape(len(COST_KEYS), columns.n)
        # Not a scenario at all: None everywhere, even where a zero price would say 0.0.
        table[:, np.asarray(columns.ok) == 0] = _NAN
        return dict(zip(COST_KEYS, table))

    def cost_columns(self, columns: ScenarioColumns, viewers: Any = None) -> Any:
        """The ten costs (currency) of read scenarios: flat float64 [COST_KEYS, n] array.array,
        NaN = none (``viewers`` as in compute_costs_many; ``columns.ok`` is not applied)."""
        legacy_viewers = self._viewers(1 if viewers is None else viewers)
        return _kernels.costs_batch(
            columns.table, columns.n, legacy_viewers, legacy_viewers, viewers is None,
            self.energy_cost_per_kwh, self.cpu_cost_per_hour, self.gpu_cost_per_hour,
            self.price_per_core_second, self.price_per_joule,
        )

    def cost_lists(
        self, columns: ScenarioColumns, viewers: Any = None
    ) -> dict[str, list[Optional[float]]]:
        """compute_costs_many of read scenarios: COST_KEYS -> lists (None = no value)."""
        if not columns.n:
            return {key: [] for key in COST_KEYS}
        rows = _kernels.optional_rows(self.cost_columns(columns, viewers), columns.ok)
        return dict(zip(COST_KEYS, rows))

    def compute_costs_many(
        self, scenarios: Iterable[Any], viewers: Any = None
    ) -> dict[str, list[Optional[float]]]:
        """All ten costs of many scenarios as lists (None = no value), keys COST_KEYS.

        ``result[k][i] == compute_<k>(scenarios[i], viewers)`` (with each method's default
        audience when ``viewers`` is None), from one read of the scenarios into columns.
        """
        return self.cost_lists(read_columns(scenarios), viewers)

    # -- internals (NaN = missing) ----------------------------------------------------------

    @staticmethod
    def _duration(scenario: dict) -> float:
        return _nan(positive_number(scenario.get("duration")))

    @staticmethod
    def _viewers(viewers: Any) -> float:
        count = positive_number(viewers)
        if count is None:
            # No audience is "no value", not an error worth a log line per scenario.
            if viewers is not None:
                logger.warning("viewers must be a positive number, got %r", viewers)
            return _NAN
        return count
