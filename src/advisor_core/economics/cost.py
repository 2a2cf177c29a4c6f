"""Cost model: legacy (power x duration x price) and load-aware (measured energy and CPU work)
transcoding costs.

Costs are in the configured currency (USD by default); energy in joules or kWh, CPU work in
core-seconds. Every method takes one scenario (a ``ScenarioRecord``, or a dict read into one by
``advisor_core.data.record.as_record``) and returns a finite float or None when the data needed is
missing or invalid; nothing raises on bad input. One scenario or many, the records are laid out
as columns (``advisor_core.economics.columns``) and priced by one compiled kernel, so they agree.

Power, energy, duration and CPU work are the record's one definition (docs/results-files.md
§2.4): the legacy energy cost is ``power_w`` (package + GPU) x ``duration_s``; the load-aware
energy cost is the measured ``energy_j`` (integrated ``power_watts`` samples, the ``power``
object's energy or the analysis CSV's, + GPU) x price per joule; the load-aware compute cost is
``core_s`` (integrated ``cpu_usage_cores`` + ``gpu_usage_cores`` samples, else
``container_usage`` x duration) x price per core-second.

Kept from the reference on purpose: a zero price gives 0.0 before any data is looked at; a 0.0
total has no cost per pixel (None) but a 0.0 cost per watch hour; the legacy watch-hour cost
defaults to one viewer, the load-aware one has no default audience; one sample integrates to
value x step. Differences: see the README's "Differences from the reference".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from advisor_core.data.record import as_record, as_records
from advisor_core.data.scenario import as_number, positive_number
from advisor_core.economics import _kernels
from advisor_core.economics.columns import ScenarioColumns, read_columns

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["COST_KEYS", "CostModel"]

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
        """Cost ``key`` of COST_KEYS for one scenario (None for anything but a scenario)."""
        record = as_record(scenario)
        if record is None:
            return None
        table = self.cost_columns(read_columns([record]), viewers)
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
        """Compute cost (currency): the record's CPU (+ GPU) core-seconds x price per
        core-second; 0.0 with a zero price."""
        return self._one(scenario, "compute_cost_load_aware")

    def compute_energy_cost_load_aware(self, scenario: Any) -> Optional[float]:
        """Energy cost (currency): the record's measured energy (J) x price per joule; 0.0 with
        a zero price."""
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

        columns = read_columns(as_records(scenarios))
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
        return self.cost_lists(read_columns(as_records(scenarios)), viewers)

    @staticmethod
    def _viewers(viewers: Any) -> float:
        count = positive_number(viewers)
        if count is None:
            # No audience is "no value", not an error worth a log line per scenario.
            if viewers is not None:
                logger.warning("viewers must be a positive number, got %r", viewers)
            return _NAN
        return count
