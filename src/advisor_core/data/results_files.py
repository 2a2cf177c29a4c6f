"""Results files: open, check and parse a file into its scenario objects (JSON values).

The rules are the reference's, with the fixes listed in the README's "Differences from the
reference" (item 4) and restated in docs/results-files.md. ``advisor_core.data.reader`` turns the
objects into records; ``advisor_core.data.scenario`` re-exports these names, the ones the README
imports them by.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Optional

from advisor_core.data.paths import PathLike

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_RESULTS_FILE_BYTES",
    "RESULTS_GLOB",
    "ResultsFileError",
    "json_parse_cost",
    "latest_results_file",
    "load_results",
    "read_results",
    "read_results_bytes",
    "results_file_candidates",
]

#: Results files larger than this are refused (a runaway writer, not a benchmark run).
MAX_RESULTS_FILE_BYTES = 256 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Files (README differences, item 4)
# ---------------------------------------------------------------------------------------------

RESULTS_GLOB = "test_results_*.json"


class ResultsFileError(ValueError):
    """A results file that cannot be used; ``reason`` names why, for counting.

    Reasons: ``vanished`` (gone between listing and opening), ``unreadable``, ``not_a_file``
    (a FIFO, device or directory), ``too_large``, ``too_costly`` (the parsed objects would take
    more than allowed), ``malformed_json``, ``too_deep``, ``bad_schema``, ``too_many_scenarios``.
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
    try:
        # Checked on the descriptor before a file object is made of it: open() refuses a
        # directory with its own error, naming the descriptor rather than the path.
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        raise ResultsFileError(f"{path}: not a regular file", "not_a_file")
    with open(fd, "rb", closefd=True) as handle:
        try:
            info = os.fstat(handle.fileno())
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


# Upper bounds of what json.loads allocates per token (CPython 3.9-3.13, 64-bit, measured), all
# counted on the raw bytes, so a bracket, comma or quote inside a string counts too (more, never
# less): a list (capacity 4) and a dict (up to 5 keys); per comma a list slot (8 bytes, grown by
# an eighth) and a number (a float 24 bytes, an int from 257 28, more per digit: priced with the
# bytes below), per colon a dict entry and its share of the table; a str object per pair of
# quotes; per byte the decoded text and string content, each at its width.
_LIST_BYTES, _DICT_BYTES, _ITEM_BYTES, _KEY_BYTES, _STRING_BYTES = 88, 200, 34, 62, 80
# json.loads works on the whole document decoded into one str: 1 byte per character, 2 once one
# character is beyond Latin-1 (a UTF-8 lead byte from 0xC4), 4 once one is beyond the BMP (0xF0).
_WIDE, _WIDEST = re.compile(rb"[\xc4-\xef]"), re.compile(rb"[\xf0-\xf4]")
# A string's own characters are as wide as its widest, which an escape of ASCII text can make
# 2 (``\u0100`` and above) or 4 (a surrogate pair, ``\ud83d\ude00``) bytes each.
_ESCAPE_WIDE = re.compile(rb"\\u(?:0[1-9a-fA-F]|[1-9a-fA-F])")
_ESCAPE_WIDEST = re.compile(rb"\\u[dD][89abAB]")


def json_parse_cost(raw: bytes | bytearray) -> int:
    """What ``json.loads`` would allocate for the UTF-8 JSON ``raw`` at most, roughly (bytes).

    Counted on the bytes at C speed (no token is looked at one by one): 16 MiB of ``{},{},...``
    is estimated at ~1.3 GB (~400 MB in fact), 11.5 MiB of 7,000 scenarios with two 120-sample
    lists at ~88 MiB (~68 MiB in fact).
    """
    text = 1 if raw.isascii() else 4 if _WIDEST.search(raw) else 2 if _WIDE.search(raw) else 1
    content = (4 if text == 4 or _ESCAPE_WIDEST.search(raw) else
               2 if text == 2 or _ESCAPE_WIDE.search(raw) else 1)
    return (_LIST_BYTES * raw.count(b"[") + _DICT_BYTES * raw.count(b"{")
            + _ITEM_BYTES * (raw.count(b",") + 1) + _KEY_BYTES * raw.count(b":")
            + _STRING_BYTES * (raw.count(b'"') // 2) + (text + content) * len(raw))


#: Digits an integer literal may have; longer ones are beyond the float range anyway (no field
#: can use them), and parsing them as int would hit Python's integer-digit limit.
_MAX_INT_DIGITS = 400


def _bounded_int(text: str) -> Any:
    return int(text) if len(text) <= _MAX_INT_DIGITS else math.inf


def _parse(text: str) -> Any:
    try:
        # NaN and Infinity (not JSON, but what Python's json.dump writes for them) parse as
        # floats: the record reader counts each such field as invalid, the run stays usable.
        return json.loads(text)
    except ValueError as exc:
        if "digits" not in str(exc):
            raise
    # Only a document with an absurdly long integer pays for a Python call per integer.
    return json.loads(text, parse_int=_bounded_int)


def load_results(path: PathLike) -> list[dict]:
    """Load and validate a results file; return its scenario objects.

    Raises ValueError naming the file and the problem for an unreadable or oversized file,
    malformed JSON (for example a half-written file), a non-object top level, or ``scenarios``
    missing or not a list. Entries that are not objects are dropped with a warning.
    """
    return read_results(path)[0]


def read_results(path: PathLike, max_bytes: int = MAX_RESULTS_FILE_BYTES,
                 max_scenarios: Optional[int] = None,
                 max_parse_bytes: Optional[int] = None) -> tuple[list[dict], int]:
    """``load_results`` and the number of entries of ``scenarios``, objects or not.

    Raises ResultsFileError (a ValueError) naming the file, the problem and its reason; a file
    of more than ``max_scenarios`` entries is refused as ``too_many_scenarios``, one whose
    parsed objects would take more than ``max_parse_bytes`` (``json_parse_cost``, checked
    before parsing) as ``too_costly``.
    """
    raw = read_results_bytes(path, max_bytes)
    if max_parse_bytes is not None:
        estimate = json_parse_cost(raw)
        if estimate > max_parse_bytes:
            raise ResultsFileError(
                f"{path}: {len(raw)} bytes would take ~{estimate >> 20} MiB parsed, more than "
                f"the {max_parse_bytes >> 20} MiB allowed", "too_costly")
    try:
        # Decoded here rather than by json.loads so the bytes are freed before the objects
        # are built (the memory peak of a load).
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        del raw
        document = _parse(text)
    except RecursionError as exc:
        # Valid JSON may nest deeper than the parser recurses: not malformed, too deep.
        raise ResultsFileError(f"{path}: JSON nested too deep to parse", "too_deep") from exc
    except (ValueError, UnicodeDecodeError) as exc:
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
