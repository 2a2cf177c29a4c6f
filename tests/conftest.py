"""Shared fixtures: paths to the real results files in tests/data and their analysed join."""

from __future__ import annotations

import copy
import csv
import os
from pathlib import Path

import pytest

from advisor_core.data.scenario import load_results

DATA_DIR = Path(__file__).parent / "data"
REAL_RESULTS = DATA_DIR / "test_results_20251229_125651.json"
REAL_ANALYSIS = DATA_DIR / "test_results_20251229_125651_analysis.csv"
SMALL_RESULTS = DATA_DIR / "test_results_20251229_121342.json"
SMALL_ANALYSIS = DATA_DIR / "test_results_20251229_121342_analysis.csv"
EXTENDED_RESULTS = DATA_DIR / "test_results_20240115_103000.json"

JOULES_PER_WATT_HOUR = 3600.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the distribution tests unless .ci/run's dist stage names what it built."""
    if os.environ.get("ADVISOR_DIST_DIR"):
        return
    deselected = [item for item in items if item.get_closest_marker("dist") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("dist") is None]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With ADVISOR_LOADED_EXTENSIONS set, write the compiled modules the run loaded (one a
    line): .ci/run's sanitizer stage checks that its tests exercised every one it built."""
    target = os.environ.get("ADVISOR_LOADED_EXTENSIONS")
    if not target:
        return
    import importlib.machinery
    import sys

    loaded = sorted(
        name for name, module in list(sys.modules.items())
        if name.startswith(("advisor_core.", "exporters."))
        and str(getattr(module, "__file__", "")).endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES))
    )
    Path(target).write_text("".join(f"{name}\n" for name in loaded), encoding="utf-8")


def read_analysis(path: Path) -> list[dict]:
    """Rows of an analysis CSV as dicts of strings (empty cells are "")."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def join_analysis(scenarios: list[dict], rows: list[dict]) -> list[dict]:
    """Copies of the scenarios with ``power`` from the analysis CSV (watts, joules = Wh·3600)."""
    by_name = {row["name"]: row for row in rows}
    joined = []
    for scenario in scenarios:
        scenario = copy.deepcopy(scenario)
        row = by_name.get(scenario.get("name"))
        if row is not None and row["mean_power_w"]:
            scenario["power"] = {
                "mean_watts": float(row["mean_power_w"]),
                "total_energy_joules": float(row["total_energy_wh"]) * JOULES_PER_WATT_HOUR,
            }
        joined.append(scenario)
    return joined


@pytest.fixture
def data_dir() -> Path:
    """tests/data: copies of the real results files."""
    return DATA_DIR


@pytest.fixture
def real_results_path() -> Path:
    """The 15-scenario real run (basic schema, no power inside)."""
    return REAL_RESULTS


@pytest.fixture
def real_analysis_rows() -> list[dict]:
    """The analysis CSV of the 15-scenario run, one dict of strings per scenario."""
    return read_analysis(REAL_ANALYSIS)


@pytest.fixture
def extended_results_path() -> Path:
    """The 240-scenario extended-schema file (sample arrays, VMAF, repeated names)."""
    return EXTENDED_RESULTS


@pytest.fixture
def joined_real_scenarios(real_analysis_rows: list[dict]) -> list[dict]:
    """The 15 real scenarios with ``power.mean_watts`` and ``power.total_energy_joules``."""
    return join_analysis(load_results(REAL_RESULTS), real_analysis_rows)


@pytest.fixture
def joined_small_scenarios() -> list[dict]:
    """The one-scenario real run ("test_with_metrics") joined with its analysis CSV."""
    return join_analysis(load_results(SMALL_RESULTS), read_analysis(SMALL_ANALYSIS))
