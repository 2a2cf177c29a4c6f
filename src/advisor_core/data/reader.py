"""The one entry point from a results file to records: file, analysis CSV, de-duplication.

``read_run`` opens a results file (``advisor_core.data.results_files``), joins the analysis CSV
beside it (``advisor_core.data.analysis``), turns every entry into a ``ScenarioRecord``
(``advisor_core.data.record``), keeps the last entry of each name and counts what it left out and
which fields it could not use. The exporters, the command and the library's dict-taking API all
read scenarios through here (docs/results-files.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

from advisor_core.data.analysis import AnalysisError, analysis_path, read_analysis
from advisor_core.data.fields import Unusable
from advisor_core.data.paths import PathLike
from advisor_core.data.record import MAX_TEXT, AnalysisRow, ScenarioRecord, read_scenario
from advisor_core.data.results_files import MAX_RESULTS_FILE_BYTES, read_results

__all__ = ["ReadLimits", "Records", "RunRecord", "read_records", "read_run", "run_record"]


@dataclass(frozen=True)
class ReadLimits:
    """What one results file may hold: bytes, scenario entries, characters per text field
    (every text may become a label value) and bytes its parsed objects may take, as estimated
    before parsing (``results_files.json_parse_cost``; None: unbounded). Together they bound a
    reader's memory."""

    max_bytes: int = MAX_RESULTS_FILE_BYTES
    max_scenarios: Optional[int] = None
    max_text: int = MAX_TEXT
    max_parse_bytes: Optional[int] = None


@dataclass(frozen=True)
class Records:
    """Records with one entry per name (file order of the kept entries), what was left out
    (``duplicates``: earlier entries of a repeated name) and counts by reason in ``skipped``:
    entries that are no scenario, and fields a kept record could not use."""

    scenarios: tuple[ScenarioRecord, ...]
    duplicates: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    #: Kept records whose name has a row in the analysis CSV (0 without one).
    analysis_matched: int = 0


@dataclass(frozen=True)
class RunRecord(Records):
    """One results file read into records (``path``, ``run_id``: the file's stem).

    ``entries``: entries of its ``scenarios`` list; ``analysis_rows``: rows of the analysis CSV
    read with it, all of them (None: no CSV); ``analysis_error``: why that CSV could not be used.
    """

    path: Path = Path()
    run_id: str = ""
    entries: int = 0
    analysis_rows: Optional[int] = None
    analysis_error: Optional[AnalysisError] = None


def read_records(entries: Iterable[Any],
                 analysis: Optional[Mapping[str, AnalysisRow]] = None,
                 max_text: int = MAX_TEXT) -> Records:
    """Records of raw entries (or records read already): the last entry of each name wins, the
    rest is counted."""
    skipped: dict[str, int] = {}
    read: list[ScenarioRecord] = []
    for entry in entries:
        if isinstance(entry, ScenarioRecord):  # read already
            read.append(entry)
            continue
        try:
            name = entry.get("name") if isinstance(entry, dict) else None
            row = analysis.get(name) if analysis and isinstance(name, str) else None
            record = read_scenario(entry, row, max_text)
        except Unusable as exc:
            skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
            continue
        read.append(record)
    last = {record.name: index for index, record in enumerate(read)}
    kept = tuple(record for index, record in enumerate(read) if last[record.name] == index)
    for record in kept:
        for reason in record.problems:
            skipped[reason] = skipped.get(reason, 0) + 1
    matched = sum(1 for record in kept if record.name in analysis) if analysis else 0
    return Records(kept, len(read) - len(kept), skipped, matched)


def read_run(path: PathLike, limits: ReadLimits = ReadLimits(),
             analysis: Union[bool, PathLike] = True) -> RunRecord:
    """Read a results file into records (``analysis``: True for the CSV beside it, a path, or
    False for none). Raises ResultsFileError (a ValueError) for an unusable file; an unusable
    analysis CSV is reported in ``analysis_error`` and the run is read from its JSON alone."""
    path = Path(path)
    raw, entries = read_results(path, limits.max_bytes, limits.max_scenarios,
                                limits.max_parse_bytes)
    rows: Optional[dict[str, AnalysisRow]] = None
    error: Optional[AnalysisError] = None
    if analysis is not False:
        csv_path = analysis_path(path) if analysis is True else Path(analysis)  # type: ignore[arg-type]
        names = {entry["name"] for entry in raw if isinstance(entry.get("name"), str)}
        try:
            rows, bad_rows, total_rows = read_analysis(csv_path, limits.max_bytes, names)
        except AnalysisError as exc:
            # Beside the file, absence is normal; a CSV asked for by name must exist.
            if not (analysis is True and exc.reason == "vanished"):
                error = exc
        else:
            if bad_rows:
                error = AnalysisError(f"{csv_path}: {bad_rows} rows with more fields than the "
                                      "header skipped", "bad_rows")
    run = run_record(path, raw, limits.max_text, rows, entries, error)
    return run if rows is None else replace(run, analysis_rows=total_rows)


def run_record(path: PathLike, objects: Iterable[Any], max_text: int = MAX_TEXT,
               analysis: Optional[Mapping[str, AnalysisRow]] = None,
               entries: Optional[int] = None,
               analysis_error: Optional[AnalysisError] = None) -> RunRecord:
    """The RunRecord of a results file's entries (``entries``: how many its list had, when some
    were dropped before, counted as ``not_an_object``)."""
    objects = objects if isinstance(objects, list) else list(objects)
    records = read_records(objects, analysis, max_text)
    skipped = dict(records.skipped)
    total = len(objects) if entries is None else entries
    if total > len(objects):
        skipped["not_an_object"] = skipped.get("not_an_object", 0) + total - len(objects)
    path = Path(path)
    return RunRecord(scenarios=records.scenarios, duplicates=records.duplicates,
                     skipped=skipped, analysis_matched=records.analysis_matched, path=path,
                     run_id=path.stem, entries=total,
                     analysis_rows=None if analysis is None else len(analysis),
                     analysis_error=analysis_error)
