"""The reference pipeline's analysis CSV (``<results stem>_analysis.csv``), joined into a run.

The CSV holds measured power per scenario (``mean_power_w`` in W, ``total_energy_wh`` in Wh,
``container_cpu_pct``), keyed by scenario ``name``. ``join_analysis`` gives the scenarios of a
basic-schema run the ``power`` object (W, J) and ``container_usage`` they lack, so the
predictors (``advisor_core.features.training_target``) and the cost model read them like any
analysed run.
"""

from __future__ import annotations

import csv
import os
from typing import Optional, Union

from advisor_core.scenario import as_number

__all__ = ["JOULES_PER_WATT_HOUR", "join_analysis", "read_analysis"]

JOULES_PER_WATT_HOUR = 3600.0
PathLike = Union[str, "os.PathLike[str]"]


def read_analysis(path: PathLike) -> dict[str, dict[str, str]]:
    """Rows of an analysis CSV by scenario name (last row wins); ValueError when unreadable."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return {row.get("name"): row for row in csv.DictReader(handle)}  # type: ignore[misc]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read analysis CSV: {exc}") from exc


def _csv_number(text: Optional[str]) -> Optional[float]:
    try:
        return as_number(float(text)) if text not in (None, "") else None
    except ValueError:
        return None


def join_analysis(scenarios: list[dict], rows: dict[str, dict[str, str]]) -> list[dict]:
    """Copies of the scenarios with ``power`` (W, J) and ``container_usage`` (percent) from
    the analysis rows of the same name; scenarios without a row, or a row without a mean
    power, are copied unchanged."""
    joined = []
    for scenario in scenarios:
        copy = dict(scenario)
        name = scenario.get("name") if isinstance(scenario, dict) else None
        row = rows.get(name) if isinstance(name, str) else None
        if row is not None:
            mean = _csv_number(row.get("mean_power_w"))
            energy_wh = _csv_number(row.get("total_energy_wh"))
            if mean is not None and mean >= 0:
                copy["power"] = {"mean_watts": mean}
                if energy_wh is not None and energy_wh > 0:
                    copy["power"]["total_energy_joules"] = energy_wh * JOULES_PER_WATT_HOUR
            cpu = _csv_number(row.get("container_cpu_pct"))
            if cpu is not None and cpu >= 0:
                copy["container_usage"] = {"cpu_percent": cpu}
        joined.append(copy)
    return joined
