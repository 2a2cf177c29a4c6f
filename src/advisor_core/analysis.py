"""The reference pipeline's analysis CSV (``<results stem>_analysis.csv``), joined into a run.

The CSV holds measured power per scenario (``mean_power_w`` in W, ``total_energy_wh`` in Wh,
``container_cpu_pct``: CPU of the encoding container in percent of one core), keyed by scenario
``name``. ``join_analysis`` gives the scenarios of a basic-schema run the ``power`` object (W, J)
and ``container_usage`` they lack, so the predictors
(``advisor_core.features.training_target``), the cost model and the exporters read them like any
analysed run. What the JSON itself carries always wins: a scenario with a ``power`` object or
``power_watts`` samples keeps its own power.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from advisor_core._typing import PathLike
from advisor_core.results_files import MAX_RESULTS_FILE_BYTES, read_results_bytes
from advisor_core.scenario import as_number

__all__ = ["ANALYSIS_SUFFIX", "JOULES_PER_WATT_HOUR", "analysis_path", "join_analysis",
           "read_analysis"]

JOULES_PER_WATT_HOUR = 3600.0
#: ``test_results_X.json`` -> ``test_results_X_analysis.csv`` (the reference pipeline's name).
ANALYSIS_SUFFIX = "_analysis.csv"


def analysis_path(results_path: PathLike) -> Path:
    """The analysis CSV that belongs beside a results file (it may not exist)."""
    path = Path(results_path)
    return path.with_name(path.stem + ANALYSIS_SUFFIX)


def read_analysis(path: PathLike, max_bytes: int = MAX_RESULTS_FILE_BYTES
                  ) -> dict[str, dict[str, str]]:
    """Rows of an analysis CSV by scenario name (last row wins).

    Read like a results file (one open, a regular file of at most ``max_bytes``, never blocking);
    raises ValueError naming the file when it is unreadable, not UTF-8 or not CSV with a
    ``name`` column (``advisor_core.results_files.ResultsFileError``, with its reason, when the
    file itself is refused).
    """
    raw = read_results_bytes(path, max_bytes)
    try:
        text = raw.decode("utf-8-sig")
        del raw
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or "name" not in reader.fieldnames:
            raise ValueError("no 'name' column")
        return {row["name"]: row for row in reader if isinstance(row.get("name"), str)}
    except (UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise ValueError(f"{path}: cannot read analysis CSV: {exc}") from exc


def _csv_number(text: Optional[str]) -> Optional[float]:
    try:
        return as_number(float(text)) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _has_own_power(scenario: dict) -> bool:
    return isinstance(scenario.get("power"), dict) or isinstance(scenario.get("power_watts"), list)


def join_analysis(scenarios: list[dict], rows: dict[str, dict[str, str]]) -> list[dict]:
    """Copies of the scenarios with ``power`` (W, J) and ``container_usage`` (percent of one
    core) from the analysis rows of the same name, where the scenario has no power of its own;
    scenarios without a row, or a row without a mean power, are copied unchanged."""
    joined = []
    for scenario in scenarios:
        copy = dict(scenario)
        name = scenario.get("name") if isinstance(scenario, dict) else None
        row = rows.get(name) if isinstance(name, str) else None
        if row is not None and not _has_own_power(scenario):
            mean = _csv_number(row.get("mean_power_w"))
            energy_wh = _csv_number(row.get("total_energy_wh"))
            if mean is not None and mean >= 0:
                copy["power"] = {"mean_watts": mean}
                if energy_wh is not None and energy_wh > 0:
                    copy["power"]["total_energy_joules"] = energy_wh * JOULES_PER_WATT_HOUR
            cpu = _csv_number(row.get("container_cpu_pct"))
            if cpu is not None and cpu >= 0 and not isinstance(scenario.get("container_usage"),
                                                               dict):
                copy["container_usage"] = {"cpu_percent": cpu}
        joined.append(copy)
    return joined

