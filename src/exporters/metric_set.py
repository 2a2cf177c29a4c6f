"""What an exporter is: a MetricSet computing families from one read results file (a Run)."""

from __future__ import annotations

import abc
import argparse
from collections.abc import Mapping
from typing import Optional

from advisor_core.data.reader import RunRecord
from advisor_core.data.record import ScenarioRecord

from ._promql import PromClient
from .families import BodyBudget, Family, within_budget
from .jobs import Job

#: One loaded results file: its records, one per scenario name (``advisor_core.data.reader``).
Run = RunRecord


class MetricSet(abc.ABC):
    """One exporter's metrics: computed from a Run in the refresh thread, served as bytes."""

    name: str = ""
    default_port: int = 0
    #: What the set's body may hold (docs/exporters.md §9); the runner sets it from the flags.
    budget: BodyBudget = BodyBudget()
    #: Scenarios a set left out of its last compute or render by reason (the set's own rules).
    _skipped: Mapping[str, int] = {}
    #: Scenarios the last ``families`` or ``rerendered`` left out to stay within ``budget``.
    _over_budget: Mapping[str, int] = {}
    _admitted: Mapping[str, int] = {}
    #: Names of the scenarios whose series the running ``compute`` renders (None: all of them).
    _serving: Optional[frozenset[str]] = None
    #: Most per-scenario samples one scenario has in this set, and the bytes of its label
    #: names, quotes and short constant values: with the scenario's text, an upper bound of
    #: what it adds to the body's label bytes, known before ``compute`` builds anything.
    rows_per_scenario: int = 1
    label_overhead: int = 0

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

    def families(self, run: Run, prom: PromClient) -> list[Family]:
        """``compute`` within the set's budget: what the refresh serves.

        Scenarios are admitted in file order while an upper bound of their label bytes fits;
        ``compute`` still sees the whole run (the baseline, the model's rows, rankings: every
        number computed across scenarios is the run's) but renders series of admitted scenarios
        only (``serves``), so a file of long texts costs labels of what is served, not of the
        whole file. The families computed are then cut to the budget, label bytes and series,
        exactly.
        """
        rows = max(1, self.rows_per_scenario)
        served: set[str] = set()
        used = left_out = 0
        for record in run.scenarios:
            size = rows * (self.label_overhead + label_text_length(run.run_id, record))
            if used + size > self.budget.label_bytes:
                left_out += 1
            else:
                served.add(record.name)
                used += size
        self._serving = frozenset(served) if left_out else None
        del served
        try:
            families = self.compute(run, prom)
        finally:
            self._serving = None
        # Counted once the compute of what was admitted worked.
        self._admitted = {"label_budget": left_out} if left_out else {}
        return self._within_budget(families)

    def serves(self, name: str) -> bool:
        """Whether the running ``compute`` renders the series of scenario ``name``."""
        return self._serving is None or name in self._serving

    def rerendered(self) -> list[Family]:
        """``rerender`` within the set's budget."""
        return self._within_budget(self.rerender())

    def _within_budget(self, families: list[Family]) -> list[Family]:
        families, self._over_budget = within_budget(families, self.budget)
        return families

    def skipped(self) -> Mapping[str, int]:
        """Scenarios, or samples of them, the set left out of its last render, by reason: its
        own rules' and its budget's."""
        counts = dict(self._skipped)
        for source in (self._admitted, self._over_budget):
            for reason, count in source.items():
                counts[reason] = counts.get(reason, 0) + count
        return counts

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


def label_text_length(run_id: str, record: ScenarioRecord) -> int:
    """Characters of the record's texts any set makes label values of (and the run id)."""
    return len(run_id) + sum(len(text) for text in (
        record.name, record.bitrate, record.resolution, record.fps_text, record.output_ladder,
        record.encoder, record.preset) if text)
