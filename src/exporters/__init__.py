"""Prometheus exporters of advisor-core: cost (9504), QoE (9503), results (9502), all-in-one.

The names below are loaded on first use, so that the console scripts' launcher
(``exporters._launch``) can import this package without the ``exporters`` extra installed and
say which extra is missing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MetricSet", "PromClient", "Run", "run_exporters"]

_HOMES = {"MetricSet": ".metric_set", "Run": ".metric_set", "run_exporters": ".runtime",
          "PromClient": "._promql"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
