"""argparse value types shared by the ``advisor`` command and the exporters' flags."""

from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = ["finite_number", "positive_seconds", "price"]


def finite_number(what: str, lower: float, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite float >= ``lower`` (> with ``inclusive`` False)."""
    relation = ">=" if inclusive else ">"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}") from None
        if not math.isfinite(value) or value < lower or (not inclusive and value == lower):
            raise argparse.ArgumentTypeError(
                f"{what} must be a finite number {relation} {lower:g}, got {text!r}")
        return value

    return parse


#: A price in currency units: finite, >= 0.
price = finite_number("price", 0.0, inclusive=True)
#: A duration or interval in seconds: finite, > 0.
positive_seconds = finite_number("seconds", 0.0, inclusive=False)
