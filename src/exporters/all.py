"""All three exporters in one process (``advisor-exporters``): one interpreter, one refresh of
the shared results file, one VictoriaMetrics client, three ports (9504, 9503, 9502)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Optional

from .cost import CostMetrics
from .qoe import QoEMetrics
from .results import ResultsMetrics
from .runtime import exporter_main

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``advisor-exporters``: serve cost, QoE and results metrics until SIGTERM."""
    return exporter_main(
        [CostMetrics, QoEMetrics, ResultsMetrics], "advisor-exporters", argv,
        "Cost, QoE and results Prometheus exporters in one process, each on its own port.",
    )


if __name__ == "__main__":
    sys.exit(main())
