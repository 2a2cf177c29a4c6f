"""Results files: the one way a file becomes scenario objects (open, check, parse, de-duplicate).

The rules are the reference's, with the fixes listed in the README's "Differences from the
reference" (items 4 and 12) and restated in docs/results-files.md. ``advisor_core.scenario``
re-exports these names, the ones the README imports them by.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, Optional

from ._typing import PathLike

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_RESULTS_FILE_BYTES",
    "RESULTS_GLOB",
    "Deduplicated",
    "ResultsFileError",
    "deduplicate",
    "latest_results_file",
    "load_results",
    "read_results",
    "read_results_bytes",
    "results_file_candidates",
]

#: Results files larger than this are refused (a runaway writer, not a benchmark run).
MAX_RESULTS_FILE_BYTES = 256 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Duplicate names (README differences, item 12)
# ---------------------------------------------------------------------------------------------


class Deduplicated(NamedTuple):
    """Scenarios with one entry per name, and what was left out (counts)."""

    scenarios: list[dict]
    duplicates: int
    skipped: dict[str, int]


def _repaired_text(entry: dict) -> dict:
    """The entry with lone surrogates (``"\\ud800"`` in JSON: no valid UTF-8) in its text
    fields replaced by U+FFFD, or the entry itself when there are none."""
    bad = [key for key, value in entry.items()
           if isinstance(value, str) and not value.isascii() and _has_surrogates(value)]
    if not bad:
        return entry
    fixed = dict(entry)
    for key in bad:
        fixed[key] = fixed[key].encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return fixed


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def deduplicate(entries: Iterable[Any], max_text: Optional[int] = None) -> Deduplicated:
    """Keep the last entry of each scenario name, in file order; count what is dropped.

    Entries that are not objects are skipped as ``not_an_object``, objects without a string
    ``name`` as ``invalid_name``; an earlier entry of a repeated name counts as a duplicate.
    Text that is not valid Unicode (lone surrogates) is repaired, counted as ``text_repaired``;
    an entry with a text field, or an output-ladder id (``scenario.output_ladder``, a label
    built from the ``outputs`` list), longer than ``max_text`` characters is skipped as
    ``text_too_long``.
    """
    from .scenario import output_ladder  # scenario.py re-exports this module's names

    def too_long(entry: dict) -> bool:
        if max_text is None:
            return False
        if any(isinstance(value, str) and len(value) > max_text for value in entry.values()):
            return True
        return isinstance(entry.get("outputs"), list) and len(output_ladder(entry) or "") > max_text

    skipped: dict[str, int] = {}
    named: list[dict] = []
    for entry in entries:
        if not isinstance(entry, dict):
            skipped["not_an_object"] = skipped.get("not_an_object", 0) + 1
        elif not isinstance(entry.get("name"), str):
            skipped["invalid_name"] = skipped.get("invalid_name", 0) + 1
        elif too_long(entry):
            skipped["text_too_long"] = skipped.get("text_too_long", 0) + 1
        else:
            repaired = _repaired_text(entry)
            if repaired is not entry:
                skipped["text_repaired"] = skipped.get("text_repaired", 0) + 1
            named.append(repaired)
    last = {entry["name"]: index for index, entry in enumerate(named)}
    kept = [entry for index, entry in enumerate(named) if last[entry["name"]] == index]
    return Deduplicated(kept, len(named) - len(kept), skipped)


# ---------------------------------------------------------------------------------------------
# Files (README differences, item 4)
# ---------------------------------------------------------------------------------------------

RESULTS_GLOB = "test_results_*.json"


class ResultsFileError(ValueError):
    """A results file that cannot be used; ``reason`` names why, for counting.

    Reasons: ``vanished`` (gone between listing and opening), ``unreadable``, ``not_a_file``
    (a FIFO, device or directory), ``too_large``, ``malformed_json``, ``bad_schema``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def results_file_candidates(directory: PathLike) -> list[Path]:
    """Every ``test_results_*.json`` entry of ``directory``, newest (greatest name) first,
    whatever it is (a file, a link, a FIFO). Raises OSError when it cannot be listed."""
    with os.scandir(directory) as entries:
        names = [entry.name for entry in entries if fnmatch.fnmatchcase(entry.name, RESULTS_GLOB)]
    return [Path(directory) / name for name in sorted(names, reverse=True)]


def latest_results_file(directory: PathLike) -> Optional[Path]:
    """Return the lexicographically greatest ``test_results_*.json`` in ``directory`` that is a
    regular file (a link loop, a dangling link or a FIFO is passed over), or None.

    Raises OSError when the directory cannot be listed (callers keep what they had).
    """
    return next((path for path in results_file_candidates(directory) if os.path.isfile(path)),
                None)


def read_results_bytes(path: PathLike, max_bytes: int = MAX_RESULTS_FILE_BYTES) -> bytes:
    """The bytes of a results file, opened once and checked on the open descriptor.

    The descriptor must be a regular file of at most ``max_bytes``; at most ``max_bytes + 1``
    bytes are read (a file growing meanwhile is refused, not read without bound) and opening
    never blocks (a FIFO is refused, not waited on). Raises ResultsFileError.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise ResultsFileError(f"{path}: cannot read: no such file", "vanished") from exc
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot open: {exc.strerror or exc}",
                               "unreadable") from exc
    with open(fd, "rb", closefd=True) as handle:
        try:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ResultsFileError(f"{path}: not a regular file", "not_a_file")
            if info.st_size > max_bytes:
                raise ResultsFileError(
                    f"{path}: file is {info.st_size} bytes, more than the {max_bytes} allowed",
                    "too_large")
            # As many bytes as fstat says plus one (a read of the cap would allocate it all);
            # a file that grew meanwhile is read on, up to the cap plus one.
            raw = handle.read(info.st_size + 1)
            if len(raw) > info.st_size:
                raw += handle.read(max_bytes + 1 - len(raw))
        except OSError as exc:
            raise ResultsFileError(f"{path}: cannot read: {exc.strerror or exc}",
                                   "unreadable") from exc
    if len(raw) > max_bytes:
        raise ResultsFileError(f"{path}: grew beyond the {max_bytes} bytes allowed while read",
                               "too_large")
    return raw


def _reject_constant(token: str) -> float:
    raise ValueError(f"non-finite number {token}")


def load_results(path: PathLike) -> list[dict]:
    """Load and validate a results file; return its scenario objects.

    Raises ValueError naming the file and the problem for an unreadable or oversized file,
    malformed JSON (for example a half-written file), a non-object top level, or ``scenarios``
    missing or not a list. Entries that are not objects are dropped with a warning.
    """
    return read_results(path)[0]


def read_results(path: PathLike, max_bytes: int = MAX_RESULTS_FILE_BYTES,
                 max_scenarios: Optional[int] = None) -> tuple[list[dict], int]:
    """``load_results`` and the number of entries of ``scenarios``, objects or not.

    Raises ResultsFileError (a ValueError) naming the file, the problem and its reason; a file
    of more than ``max_scenarios`` entries is refused as ``too_many_scenarios``.
    """
    raw = read_results_bytes(path, max_bytes)
    try:
        # Decoded here rather than by json.loads so the bytes are freed before the objects
        # are built (the memory peak of a load).
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        del raw
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ResultsFileError(f"{path}: malformed JSON: {exc}", "malformed_json") from exc
    del text
    if not isinstance(document, dict):
        raise ResultsFileError(
            f"{path}: top level is {type(document).__name__}, expected an object", "bad_schema")
    scenarios = document.get("scenarios")
    if not isinstance(scenarios, list):
        what = "missing" if "scenarios" not in document else type(scenarios).__name__
        raise ResultsFileError(f"{path}: 'scenarios' is {what}, expected a list", "bad_schema")
    if max_scenarios is not None and len(scenarios) > max_scenarios:
        raise ResultsFileError(
            f"{path}: {len(scenarios)} scenarios, more than the {max_scenarios} allowed",
            "too_many_scenarios")
    valid = [s for s in scenarios if isinstance(s, dict)]
    if len(valid) != len(scenarios):
        logger.warning("%s: dropped %d scenario entries that are not objects", path,
                       len(scenarios) - len(valid))
    return valid, len(scenarios)
