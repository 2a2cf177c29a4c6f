"""The reference pipeline's analysis CSV (``<results stem>_analysis.csv``): measured power per
scenario name, read into typed rows for the record reader.

The CSV holds ``mean_power_w`` (W), ``total_energy_wh`` (Wh) and ``container_cpu_pct`` (percent
of one core) per scenario ``name``. The record reader (``advisor_core.data.reader``) uses a row
where the JSON has no power of its own: what the JSON carries always wins.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple, Optional

from advisor_core.data.paths import PathLike
from advisor_core.data.record import AnalysisRow
from advisor_core.data.results_files import MAX_RESULTS_FILE_BYTES, read_results_bytes
from advisor_core.data.scenario import MAX_NUMBER_TEXT, as_number

__all__ = ["ANALYSIS_SUFFIX", "JOULES_PER_WATT_HOUR", "MAX_COLUMNS", "AnalysisError",
           "AnalysisTable", "analysis_path", "read_analysis"]

JOULES_PER_WATT_HOUR = 3600.0
#: ``test_results_X.json`` -> ``test_results_X_analysis.csv`` (the reference pipeline's name).
ANALYSIS_SUFFIX = "_analysis.csv"
#: Most columns a header may have (the reference writes 20).
MAX_COLUMNS = 256

_COLUMNS = ("mean_power_w", "total_energy_wh", "container_cpu_pct")


class AnalysisError(ValueError):
    """An analysis CSV that cannot be used; ``reason`` names why (``vanished`` when absent)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def analysis_path(results_path: PathLike) -> Path:
    """The analysis CSV that belongs beside a results file (it may not exist)."""
    path = Path(results_path)
    return path.with_name(path.stem + ANALYSIS_SUFFIX)


#: A number cell: ASCII decimal notation, as a CSV writer prints a float. Python's float()
#: also reads "1_000", full-width or other scripts' digits and "nan": none is a measurement.
_DECIMAL = re.compile(r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*")


def _number(text: Optional[str]) -> Optional[float]:
    if not text or len(text) > MAX_NUMBER_TEXT or not _DECIMAL.fullmatch(text):
        return None
    return as_number(float(text))


def _row(cells: list[str], columns: list[Optional[int]]) -> AnalysisRow:
    mean, energy_wh, cpu = (_number(cells[i]) if i is not None and i < len(cells) else None
                            for i in columns)
    energy = energy_wh * JOULES_PER_WATT_HOUR if energy_wh is not None and energy_wh > 0 \
        else None
    return AnalysisRow(
        power_w=mean if mean is not None and mean >= 0 else None,
        # Energy only with the mean it belongs to: a row's energy alone is no power figure.
        energy_j=energy if mean is not None and mean >= 0 else None,
        cpu_pct=cpu if cpu is not None and cpu >= 0 else None,
    )


class AnalysisTable(NamedTuple):
    """An analysis CSV read: its rows by scenario name (those of ``names`` when given), the
    rows skipped for having more fields than the header, and the rows it has in all."""

    rows: dict[str, AnalysisRow]
    skipped: int
    total: int


def read_analysis(path: PathLike, max_bytes: int = MAX_RESULTS_FILE_BYTES,
                  names: Optional[Collection[str]] = None) -> AnalysisTable:
    """The rows of an analysis CSV by scenario name (the last row of a name wins; only the
    rows of ``names`` are kept when given, so a CSV of millions of other names costs no more
    than its text).

    Read like a results file (one open, a regular file of at most ``max_bytes``, never
    blocking). A row with more fields than the header is skipped and counted. Raises
    AnalysisError naming the file and the reason (``vanished``, ``unreadable``, ``not_utf8``,
    ``not_csv``, ``too_many_columns``, ...).
    """
    try:
        raw = read_results_bytes(path, max_bytes)
    except ValueError as exc:
        raise AnalysisError(str(exc), getattr(exc, "reason", "unreadable")) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnalysisError(f"{path}: analysis CSV is not UTF-8: {exc}", "not_utf8") from exc
    del raw
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or "name" not in header:
            raise AnalysisError(f"{path}: analysis CSV has no 'name' column", "not_csv")
        if len(header) > MAX_COLUMNS:
            raise AnalysisError(f"{path}: analysis CSV has {len(header)} columns, more than "
                                f"the {MAX_COLUMNS} allowed", "too_many_columns")
        name_at = header.index("name")
        columns = [header.index(c) if c in header else None for c in _COLUMNS]
        rows: dict[str, AnalysisRow] = {}
        skipped = total = 0
        for cells in reader:
            total += 1
            if len(cells) > len(header) or len(cells) <= name_at:
                skipped += 1
            elif names is None or cells[name_at] in names:
                rows[cells[name_at]] = _row(cells, columns)
    except csv.Error as exc:
        raise AnalysisError(f"{path}: cannot read analysis CSV: {exc}", "not_csv") from exc
    return AnalysisTable(rows, skipped, total)
