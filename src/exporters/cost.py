"""Cost exporter (port 9504): load-aware transcoding cost, hourly/monthly projections and CO₂.

Families and label names are the reference's (docs/exporters.md §4) with the README's
"Differences from the reference" 10-17 applied:
raw scenario names as label values, full-precision values, duplicate names resolved by the
infrastructure, baseline = ``advisor_core.data.record.idle_baseline`` (the first baseline with a
power), carbon intensity fetched in the refresh thread.

A scenario is priced from its record (``advisor_core.data.record``): the measured energy (integrated
``power_watts`` samples, the ``power`` object's or the analysis CSV's energy, + GPU) and CPU
work (integrated ``cpu_usage_cores`` + ``gpu_usage_cores``, else ``container_usage``), filled in
from VictoriaMetrics where the file has neither; hourly, monthly and CO2 figures from the
record's one power (package + GPU). Scenarios without measured energy get **no** load-aware cost
samples: the reference printed a literal ``0``, which is a wrong number (nothing was measured, it
did not cost nothing). They are counted in
``cost_exporter_skipped_scenarios{reason="no_load_aware_data"}``. The audience of
``cost_per_watch_hour`` is the record's ``audience`` (``viewers``, else the stream count: the rule
of the reference's Go exporter, whose dashboards draw that panel).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any, Optional

from prometheus_client.core import GaugeMetricFamily

from advisor_core.data.argtypes import price
from advisor_core.data.record import ScenarioRecord, idle_baseline, with_measurements
from advisor_core.data.samples import usable_summary
from advisor_core.data.scenario import positive_number
from advisor_core.economics.columns import read_columns
from advisor_core.economics.cost import CostModel
from advisor_core.economics.regional_pricing import (
    RegionalPricing,
    check_region,
)

from ._promql import PromClient
from .families import Family, FamilySpec, LabelSchema, LabelSet, table_families
from .metric_set import MetricSet, Run
from .results_victoriametrics import POWER_QUERY as RESULTS_POWER_QUERY
from .runtime import exporter_main
from .settings import env

logger = logging.getLogger(__name__)

__all__ = ["CPU_QUERY", "POWER_QUERY", "CostMetrics", "main"]

#: Queries of the reference cost exporter (docs/exporters.md §4), range queries at a 5 s step.
CPU_QUERY = 'sum(rate(container_cpu_usage_seconds_total{name!~".*POD.*",name!=""}[30s]))'
# The CPU package's power, as the results exporter asks for it: the one power of a scenario
# (docs/results-files.md §2.4; the reference summed every RAPL zone, dram included).
POWER_QUERY = RESULTS_POWER_QUERY
QUERY_STEP_SECONDS = 5.0

HOURS_PER_MONTH = 720.0  # 24 h x 30 d, as the reference
LABELS = ["scenario", "currency", "streams", "bitrate", "encoder", "service"]
SERVICE = "cost-analysis"
_SCHEMA = LabelSchema(LABELS)
# (key, metric name, help) of the per-scenario families, in the reference's order. Power is the
# record's one power (CPU package + GPU when measured), energy its measured energy.
_FAMILIES: tuple[FamilySpec, ...] = (
    ("total", "cost_total_load_aware",
     "Load-aware total cost of the scenario: energy + compute ({currency})"),
    ("energy", "cost_energy_load_aware",
     "Energy cost: measured energy (CPU package + GPU) x price per joule ({currency})"),
    ("compute", "cost_compute_load_aware",
     "Compute cost: CPU (+GPU) core-seconds x price per core-second ({currency})"),
    ("pixel", "cost_per_pixel", "Load-aware total cost per delivered pixel ({currency}/pixel)"),
    ("watch", "cost_per_watch_hour",
     "Load-aware total cost per viewer-hour ({currency}/viewer-hour)"),
    ("hourly", "cost_usd_per_hour",
     "Energy-only cost per hour at the mean power (CPU package + GPU) of the scenario "
     "({currency}/h; the name keeps the reference's 'usd')"),
    ("monthly", "cost_monthly_projection", "Energy-only hourly cost x 720 h ({currency}/month)"),
    ("savings", "cost_monthly_savings",
     "Baseline monthly energy cost minus this scenario's; negative above the baseline "
     "({currency}/month)"),
    ("co2", "co2_emissions_kg_per_hour",
     "CO2 emitted per hour at the mean power (CPU package + GPU) of the scenario (kg/h)"),
    ("co2_month", "co2_monthly_projection", "CO2 per hour x 720 h (kg/month)"),
    ("co2_avoided", "co2_monthly_avoided",
     "Baseline monthly CO2 minus this scenario's; negative above the baseline (kg/month)"),
)
#: Load-aware family key -> its CostModel column.
COLUMNS = {
    "total": "total_cost_load_aware",
    "energy": "energy_cost_load_aware",
    "compute": "compute_cost_load_aware",
    "pixel": "cost_per_pixel_load_aware",
    "watch": "cost_per_watch_hour_load_aware",
}


class CostMetrics(MetricSet):
    """Cost families (docs/exporters.md §4) computed from a Run (currency from the settings)."""

    name = "cost"
    default_port = 9504
    rows_per_scenario = len(_FAMILIES)
    label_overhead = 100

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Pricing flags: region, prices, currency, pricing config, carbon API, load-aware."""
        cost = parser.add_argument_group("pricing (cost exporter)")
        cost.add_argument("--region", default=env("REGION", "default"),
                          help="region for electricity price and grid carbon intensity; one of "
                               "the built-in table's unless --pricing-config names it (env REGION)")
        cost.add_argument("--energy-cost", type=price, default=env("ENERGY_COST_PER_KWH", 0.0),
                          help="electricity price per kWh; 0 = the region's price "
                               "(env ENERGY_COST_PER_KWH)")
        cost.add_argument("--cpu-cost", type=price, default=env("CPU_COST_PER_HOUR", 0.0),
                          help="price per CPU-core hour (env CPU_COST_PER_HOUR)")
        cost.add_argument("--gpu-cost", type=price, default=env("GPU_COST_PER_HOUR", 0.0),
                          help="price per GPU hour; reported in the pricing info only, load-aware "
                               "costs price GPU usage like CPU cores (env GPU_COST_PER_HOUR)")
        cost.add_argument("--currency", default=env("CURRENCY", "USD"),
                          help="currency code used as label value (env CURRENCY)")
        cost.add_argument("--pricing-config", default=None,
                          help="JSON file with electricity_prices / co2_intensity per region; "
                               "must be readable and valid when given")
        cost.add_argument("--electricity-maps-token",
                          default=env("ELECTRICITY_MAPS_TOKEN", None),
                          help="Electricity Maps API token for live carbon intensity, fetched "
                               "in the refresh thread (env ELECTRICITY_MAPS_TOKEN)")
        cost.add_argument("--disable-load-aware", action="store_true",
                          help="do not query VictoriaMetrics for scenarios without samples")

    @classmethod
    def check_settings(cls, settings: argparse.Namespace) -> None:
        """Reject an unusable pricing config and a region that neither table nor config knows."""
        check_region(settings.region, settings.pricing_config)

    def __init__(self, settings: argparse.Namespace) -> None:
        self.currency = str(settings.currency)
        self.region = str(settings.region)
        self.pricing = RegionalPricing(
            self.region, settings.pricing_config, settings.electricity_maps_token
        )
        energy = float(settings.energy_cost)
        # README difference 16: 0 means "the region's price".
        if energy == 0.0:
            energy = float(self.pricing.get_electricity_price())
        self.energy_price = energy
        self.model = CostModel(energy, float(settings.cpu_cost), float(settings.gpu_cost),
                               self.currency)
        self.load_aware = not bool(getattr(settings, "disable_load_aware", False))
        self._skipped: dict[str, int] = {}

    def info_labels(self) -> dict[str, str]:
        """Region and currency, next to the version."""
        return {"region": self.region, "currency": self.currency}

    def _intensity(self) -> Optional[float]:
        try:
            return positive_number(self.pricing.get_co2_intensity())
        except Exception:  # a broken carbon source must not cost us the other families
            logger.exception("carbon intensity unavailable")
            return None

    def _enrich(self, records: list[ScenarioRecord], prom: PromClient) -> list[ScenarioRecord]:
        """Fill the energy and CPU work a record lacks from VictoriaMetrics (new records)."""
        if not (self.load_aware and prom.enabled):
            return records
        wanted = [(index, record) for index, record in enumerate(records)
                  if record.window is not None and (record.energy_j is None
                                                    or record.core_s is None)]

        def fetch(item: tuple[int, ScenarioRecord]) -> tuple[Any, Any]:
            # Summarised on the worker thread: a window's points (up to 1.4 million doubles)
            # are not kept once its summary is known. The database's samples obey the file's
            # rule for sample lists.
            record = item[1]
            start, end = record.window  # type: ignore[misc]
            cpu = (usable_summary(prom.query_range_doubles(
                CPU_QUERY, start, end, QUERY_STEP_SECONDS), QUERY_STEP_SECONDS)
                if record.core_s is None else None)
            power = (usable_summary(prom.query_range_doubles(
                POWER_QUERY, start, end, QUERY_STEP_SECONDS), QUERY_STEP_SECONDS)
                if record.energy_j is None else None)
            return cpu, power

        enriched = list(records)
        for (index, record), (cores, watts) in zip(wanted, prom.map_windows(fetch, wanted)):
            duration = record.duration_s
            enriched[index] = with_measurements(
                record,
                power_w=None if watts is None else watts.mean,
                energy_j=None if watts is None else watts.over(QUERY_STEP_SECONDS, duration),
                stdev_w=None if watts is None else watts.stdev,
                cpu_pct=None if cores is None else cores.mean * 100.0,
                core_s=None if cores is None else cores.over(QUERY_STEP_SECONDS, duration),
            )
        return enriched

    def compute(self, run: Run, prom: PromClient) -> list[Family]:
        """Return the cost families for a run (refresh thread only)."""
        skipped: dict[str, int] = {}

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        priced: list[ScenarioRecord] = []
        # The baseline and the cost model see the whole run; only served scenarios get series
        # and per-scenario counts (docs/exporters.md §9).
        for record in run.scenarios:
            if not record.bitrate:
                if self.serves(record.name):
                    skip("missing_bitrate")
            elif record.viewers is not None:
                priced.append(record)
            else:
                priced.append(record._replace(viewers=record.audience))
        priced = self._enrich(priced, prom)

        baseline = idle_baseline(priced)
        baseline_watts = None if baseline is None else baseline.power_w
        intensity = self._intensity()
        costs = self.model.cost_lists(read_columns(priced))

        cur = self.currency
        fam = table_families(_FAMILIES, currency=cur)
        alive = GaugeMetricFamily("cost_exporter_alive", "Liveness of the cost exporter (1)")
        alive.add_metric([], 1.0)

        price = self.energy_price
        baseline_hourly = (
            baseline_watts / 1000 * price if baseline_watts is not None and baseline_watts > 0
            else None
        )
        baseline_kg = (
            intensity * (baseline_watts / 1000) / 1000
            if intensity is not None and baseline_watts is not None and baseline_watts > 0
            else None
        )

        def add(key: str, labels: LabelSet, value: float) -> None:
            if math.isfinite(value):
                fam[key].add(labels, value)
            else:
                # Valid but extreme inputs (1e308 W) can leave the float range: no number is
                # better than inf.
                skip("non_finite_value")

        for index, record in enumerate(priced):
            if not self.serves(record.name):
                continue
            labels = _SCHEMA((record.name, cur, str(record.stream_count), record.bitrate or "",
                              record.encoder, SERVICE))
            if record.energy_j is None:
                skip("no_load_aware_data")
            else:
                for key, column in COLUMNS.items():
                    value = costs[column][index]
                    if value is not None:  # the kernels give None, never inf
                        fam[key].add(labels, value)
            watts = record.power_w
            if watts is None:
                continue
            hourly = watts / 1000 * price
            monthly = hourly * HOURS_PER_MONTH
            add("hourly", labels, hourly)
            add("monthly", labels, monthly)
            if baseline_hourly is not None:
                add("savings", labels, baseline_hourly * HOURS_PER_MONTH - monthly)
            if intensity is not None:
                kg = intensity * (watts / 1000) / 1000
                kg_month = kg * HOURS_PER_MONTH
                add("co2", labels, kg)
                add("co2_month", labels, kg_month)
                if baseline_kg is not None:
                    add("co2_avoided", labels, baseline_kg * HOURS_PER_MONTH - kg_month)
        self._skipped = skipped
        return [alive, *fam.values()]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``advisor-cost-exporter``: serve cost metrics until SIGTERM."""
    return exporter_main([CostMetrics], "advisor-cost-exporter", argv,
                         "Prometheus exporter of load-aware transcoding costs and CO2.")


if __name__ == "__main__":
    sys.exit(main())
