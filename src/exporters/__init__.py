"""Prometheus exporters of advisor-core: cost (9504), QoE (9503), results (9502), all-in-one."""

from ._core import MetricSet, Run, run_exporters
from ._promql import PromClient

__all__ = ["MetricSet", "PromClient", "Run", "run_exporters"]
