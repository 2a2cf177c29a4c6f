"""What an exporter is: a MetricSet computing families from one read results file (a Run)."""

from __future__ import annotations

import abc
import argparse
from collections.abc import Mapping
from typing import Optional

from advisor_core.reader import RunRecord

from ._promql import PromClient
from .families import Family
from .jobs import Job

#: One loaded results file: its records, one per scenario name (``advisor_core.reader``).
Run = RunRecord


class MetricSet(abc.ABC):
    """One exporter's metrics: computed from a Run in the refresh thread, served as bytes."""

    name: str = ""
    default_port: int = 0

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the set's own flags (the common ones are exporters.settings'); default none."""
        return None

    @classmethod
    def check_settings(cls, settings: argparse.Namespace) -> None:
        """Raise ValueError (one line) when the parsed settings cannot work for this set."""
        return None

    @abc.abstractmethod
    def compute(self, run: Run, prom: PromClient) -> list[Family]:
        """Called in the refresh thread only (never on a scrape). Returns metric families
        (prometheus_client Metric objects, or TableFamily for big per-scenario ones)."""

    def skipped(self) -> Mapping[str, int]:
        """Scenarios this set skipped in the last compute, by reason (default: none)."""
        return {}

    def info_labels(self) -> Mapping[str, str]:
        """Extra labels of ``<name>_exporter_info`` besides ``version``."""
        return {}

    def take_job(self) -> Optional[Job]:
        """Background work the last compute asked for (e.g. model training), or None.

        The refresh runs it on its job thread once the new bodies are published, so it competes
        neither for the GIL nor for memory with the refresh; a job that returns True makes the
        refresh call ``rerender`` for this set alone.
        """
        return None

    def rerender(self) -> list[Family]:
        """The last compute's families rebuilt from its cached rows with the jobs' results."""
        raise NotImplementedError(f"{type(self).__name__} has no background jobs to show")
