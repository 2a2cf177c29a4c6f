"""The field primitives of the record reader: text, labels, numbers, nested objects, sample
lists and output ladders, each with its type check and size bound (docs/results-files.md §2.5).

``advisor_core.data.record`` composes them into a ``ScenarioRecord``; nothing else reads a
scenario's JSON object.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Optional

from advisor_core.data import samples as _samples
from advisor_core.data.scenario import as_number, positive_number, resolution

__all__ = ["MAX_OUTPUTS", "FieldReader", "Unusable", "finite"]

#: Most renditions an ``outputs`` ladder may list (real ladders have a handful).
MAX_OUTPUTS = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


class Unusable(ValueError):
    """An entry that cannot become a record; ``reason`` names why, for counting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def finite(value: float) -> Optional[float]:
    """``value`` when finite, else None (a derived figure that left the float range)."""
    return value if math.isfinite(value) else None


class FieldReader:
    """Reads one entry; collects the reasons of the fields it could not use."""

    def __init__(self, entry: Mapping[str, Any], max_text: int) -> None:
        self.entry = entry
        self.max_text = max_text
        self.problems: list[str] = []

    def problem(self, reason: str) -> None:
        self.problems.append(reason)

    def text(self, key: str, entry: Optional[Mapping[str, Any]] = None) -> Optional[str]:
        """A string field; None when missing or null; a non-string is a problem."""
        value = (self.entry if entry is None else entry).get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(f"{key}_invalid")
            return None
        return self.bounded(value)

    def bounded(self, text: str) -> str:
        if len(text) > self.max_text:
            raise Unusable("text_too_long")
        if not text.isascii() and _SURROGATE.search(text):
            # Lone surrogates ("\ud800" in JSON) are no valid UTF-8: one U+FFFD each.
            self.problem("text_repaired")
            text = _SURROGATE.sub("\ufffd", text)
        return text

    def number_label(self, key: str, counted: bool = False) -> Optional[str]:
        """The label text of a field that is a string or a number (``fps``, ``bitrate``);
        ``counted``: the field's number was read already, which counted a bad value."""
        value = self.entry.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return self.bounded(value)
        number = as_number(value)
        if number is None:
            if not counted:
                self.problem(f"{key}_invalid")
            return None
        return str(int(number)) if number.is_integer() and abs(number) < 1e16 else repr(number)

    def nested(self, key: str) -> Mapping[str, Any]:
        """A nested object; {} when missing, null or empty; anything else is a problem."""
        value = self.entry.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(f"{key}_invalid")
            return {}
        return value

    def number(self, key: str, rule: Any, entry: Optional[Mapping[str, Any]] = None,
               reason: Optional[str] = None) -> Optional[float]:
        """A number field by ``rule`` (``positive_number``...); a present, unusable value is a
        problem."""
        value = (self.entry if entry is None else entry).get(key)
        if value is None:
            return None
        number = rule(value)
        if number is None:
            self.problem(reason or f"{key}_invalid")
        return number

    def score(self, key: str, low: float, high: float) -> Optional[float]:
        value = self.entry.get(key)
        if value is None:
            return None
        number = as_number(value)
        if number is None:
            self.problem(f"{key}_invalid")
            return None
        if not low <= number <= high:
            self.problem(f"{key}_out_of_range")
            return None
        return number

    def series(self, key: str, step: Optional[float], spread: bool = False) -> Any:
        """SampleSummary (``spread``: with the standard deviation), None when absent,
        ``samples.INVALID`` (a counted problem)."""
        value = self.entry.get(key)
        summary = _samples.summarise(value, step, spread)
        if summary is _samples.INVALID or (value is not None and not isinstance(value, list)):
            summary = _samples.INVALID
            self.problem(f"{key}_invalid")
        return summary

    def renditions(self, top_fps: Optional[float]) -> tuple[tuple[tuple[int, int, float], ...],
                                                            Optional[str], int]:
        outputs = self.entry.get("outputs")
        entries = 0
        found: list[tuple[int, int, float, str]] = []
        if isinstance(outputs, list):
            entries = len(outputs)
            if entries > MAX_OUTPUTS:
                raise Unusable("too_many_outputs")
            for output in outputs:
                size = fps = None
                if isinstance(output, dict):
                    size = resolution(output.get("resolution"))
                    fps = positive_number(output.get("fps"))
                if size is not None and fps is not None:
                    found.append((size[0], size[1], fps, _fps_text(output.get("fps"))))
            if len(found) < entries:
                self.problem("outputs_invalid")  # entries without a usable size and rate
        elif outputs is not None:
            self.problem("outputs_invalid")
        if not found:
            size = resolution(self.entry.get("resolution"))
            if size is not None and top_fps is not None:
                found.append((size[0], size[1], top_fps, _fps_text(self.entry.get("fps"))))
        if not found:
            return (), None, entries
        ladder = sorted(found, key=lambda r: (r[0], r[1]), reverse=True)  # stable
        ladder_id = ",".join(f"{w}x{h}@{text}" for w, h, _, text in ladder)
        if len(ladder_id) > self.max_text:
            raise Unusable("text_too_long")
        return tuple((w, h, fps) for w, h, fps, _ in found), ladder_id, entries


def _fps_text(value: Any) -> str:
    # The ladder id shows the fps as the file wrote it (30, 30.0, 29.97); a valid fps is a
    # number within the float range, so this is at most a few hundred characters.
    return str(value)
