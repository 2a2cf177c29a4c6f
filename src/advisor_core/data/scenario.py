"""The one home of scenario-field parsing: numbers, stream counts, bitrates, resolutions.

The record reader (``advisor_core.data.record``) reads every scenario field with these rules;
nothing else parses these strings. Reading the files themselves is ``results_files``' (its
names are re-exported here). The rules are the reference's, with the fixes listed in
the README's "Differences from the reference" (one stream-count rule, one bitrate rule,
validated resolutions) and restated in docs/results-files.md.
"""

from __future__ import annotations

import math
import numbers
import re
from functools import lru_cache
from typing import Any, Optional

from advisor_core.data.results_files import (  # re-exported: the names the README imports them by
    MAX_RESULTS_FILE_BYTES,
    ResultsFileError,
    latest_results_file,
    load_results,
    read_results,
    read_results_bytes,
)

__all__ = [
    "MAX_NUMBER_TEXT",
    "MAX_RESULTS_FILE_BYTES",
    "MAX_STREAMS",
    "ResultsFileError",
    "as_number",
    "bitrate_mbps",
    "detected_encoder_class",
    "is_baseline",
    "latest_results_file",
    "load_results",
    "non_negative_number",
    "positive_number",
    "read_results",
    "read_results_bytes",
    "resolution",
    "stream_count",
]

#: Largest accepted frame side in pixels; anything bigger is a typo, not a video.
MAX_DIMENSION = 100_000

#: Longest text read as a number with a unit ("2500k"); anything longer is not a bitrate.
MAX_NUMBER_TEXT = 64

#: Largest accepted stream count; beyond it a "count" is a typo and would overflow squares.
MAX_STREAMS = 1_000_000

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------


# Looked up once: these run for every field of every scenario of every refresh. int.__float__
# is the int's own value, whatever a subclass overrides.
_int_to_float = int.__float__
_float_value = float.__float__
_isfinite = math.isfinite
_Real = numbers.Real
# numpy's bool is no Real, but a subclass may register itself: a bool is never a number here.
_NOT_NUMBERS = (bool, str, bytes)


def as_number(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None for null, bools, strings, NaN and infinities.

    Exact floats come back as the same object; ints (not bools) and other real numbers (numpy
    scalars) are converted, and values beyond the float range are None.
    """
    kind = type(value)
    if kind is float:
        return value if _isfinite(value) else None
    if kind is int or (isinstance(value, int) and kind is not bool):
        try:
            return _int_to_float(value)
        except OverflowError:
            return None
    if isinstance(value, float):
        number = _float_value(value)
        return number if _isfinite(number) else None
    if isinstance(value, _Real) and not isinstance(value, _NOT_NUMBERS):
        # A library caller's numpy scalar (np.int64, np.float32) or Fraction; JSON never
        # gives one. Decimal is no Real, so it stays None, as do bools of every kind.
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):
            return None
        return number if _isfinite(number) else None
    return None


def positive_number(value: Any) -> Optional[float]:
    """``as_number(value)`` when it is > 0 (durations, steps, fps, viewers), else None."""
    number = as_number(value)
    return number if number is not None and number > 0 else None


def non_negative_number(value: Any) -> Optional[float]:
    """``as_number(value)`` when it is >= 0 (watts, percentages), else None."""
    number = as_number(value)
    return number if number is not None and number >= 0 else None


# ---------------------------------------------------------------------------------------------
# Stream count (README differences, item 1)
# ---------------------------------------------------------------------------------------------

_BITRATE_UNIT = r"(?:kbps|kb/s|k|mbps|mb/s|m|gbps|gb/s|g|bps|b/s)"
# "4 streams", "4-stream", "4streams", "2 -  streams"; not the "5" of "2.5 streams" nor the
# "30" of "1080p30-streaming".
# Counts have at most 7 digits (MAX_STREAMS): a longer digit run is no count, and never
# reaches int() (whose digit limit a hostile name could otherwise hit).
_COUNTED_STREAMS = re.compile(r"(?<![\d.])(\d{1,7})[\s-]*streams?(?![a-z])")
_SINGLE_STREAM = re.compile(r"single[\s-]*stream")
_LEADING_COUNT = re.compile(r"^\s*(\d{1,7})\s+(\S+)")
_NUMBER_WITH_UNIT = re.compile(r"^" + _BITRATE_UNIT + r"$")
_SINGULAR_STREAM = re.compile(r"(?<![a-z])stream(?![a-z])")


def stream_count(name: Any) -> Optional[int]:
    """Return the number of concurrent streams a scenario name states, or None when unknown.

    "N stream(s)", "N-stream", "Nstreams" → N; "single stream" → 1; a number followed by a
    bitrate unit ("10 Mbps Stream") is a bitrate, so such a name is one stream; a leading
    number followed by another word ("6 concurrent streams") is a count; names saying
    "multi" without a count, and names without any of these, are unknown.
    """
    if not isinstance(name, str):
        return None
    return _stream_count(name)


# Names and bitrates repeat across runs and refreshes; caching makes re-parsing free.
@lru_cache(maxsize=8192)
def _stream_count(name: str) -> Optional[int]:
    lowered = name.lower()
    match = _COUNTED_STREAMS.search(lowered)
    if match:
        return _plausible_count(match.group(1))
    if _SINGLE_STREAM.search(lowered):
        return 1
    leading = _LEADING_COUNT.match(lowered)
    if leading and not _NUMBER_WITH_UNIT.match(leading.group(2)):
        return _plausible_count(leading.group(1))
    if "multi" in lowered:
        return None
    if _SINGULAR_STREAM.search(lowered):
        return 1
    return None


def _plausible_count(digits: str) -> Optional[int]:
    count = int(digits)
    return count if count <= MAX_STREAMS else None


# ---------------------------------------------------------------------------------------------
# Bitrate (README differences, item 2)
# ---------------------------------------------------------------------------------------------

_BITRATE = re.compile(
    r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?\s*(" + _BITRATE_UNIT + r")?\s*$", re.IGNORECASE
)
_UNIT_TO_MBPS = {
    None: 1e-3,  # a bare number is kbps: what every real results file means
    "k": 1e-3,
    "kbps": 1e-3,
    "kb/s": 1e-3,
    "m": 1.0,
    "mbps": 1.0,
    "mb/s": 1.0,
    "g": 1e3,
    "gbps": 1e3,
    "gb/s": 1e3,
    "bps": 1e-6,
    "b/s": 1e-6,
}


def bitrate_mbps(text: Any) -> Optional[float]:
    """Return a bitrate string ("2500k", "5 Mbps", "8000000bps", "3000") in Mbps, or None.

    Bare numbers are kbps. Empty, "N/A", negative, non-finite or non-string values are None;
    "0k" is 0.0 (an idle baseline).
    """
    if not isinstance(text, str) or len(text) > MAX_NUMBER_TEXT:
        return None
    return _bitrate_mbps(text)


@lru_cache(maxsize=8192)
def _bitrate_mbps(text: str) -> Optional[float]:
    match = _BITRATE.match(text)
    if not match:
        return None
    mantissa, exponent, unit = match.groups()
    try:
        value = float(mantissa + ("e" + exponent if exponent else ""))
    except (ValueError, OverflowError):
        return None
    value *= _UNIT_TO_MBPS[unit.lower() if unit else None]
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# Resolution (README differences, item 3; renditions, pixels and ladders: advisor_core.data.record)
# ---------------------------------------------------------------------------------------------

# Sides have at most 6 digits (MAX_DIMENSION): longer digit runs are no size.
_RESOLUTION = re.compile(r"^\s*(\d{1,6})\s*[xX]\s*(\d{1,6})\s*$")


def resolution(text: Any) -> Optional[tuple[int, int]]:
    """Return (width, height) in pixels for "WxH" ("1920x1080", " 1920 X 1080 "), else None.

    Only positive integers up to MAX_DIMENSION are accepted.
    """
    if not isinstance(text, str):
        return None
    return _resolution(text)


@lru_cache(maxsize=8192)
def _resolution(text: str) -> Optional[tuple[int, int]]:
    match = _RESOLUTION.match(text)
    if not match:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        return None
    return width, height


# ---------------------------------------------------------------------------------------------
# Other per-scenario rules
# ---------------------------------------------------------------------------------------------

_GPU_WORDS = ("gpu", "nvenc", "qsv", "vaapi", "amf", "videotoolbox")


def detected_encoder_class(name: Any) -> str:
    """The encoder class a scenario name suggests: "gpu" when it names a GPU encoder, else "cpu"."""
    lowered = name.lower() if isinstance(name, str) else ""
    return "gpu" if any(word in lowered for word in _GPU_WORDS) else "cpu"


def is_baseline(name: Any) -> bool:
    """Return True when a scenario name marks an idle baseline run ("Baseline (Idle)", "idle")."""
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    return "baseline" in lowered or "idle" in lowered
