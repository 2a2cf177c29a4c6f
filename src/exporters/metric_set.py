"""What an exporter is: a MetricSet computing families from one loaded results file (a Run)."""

from __future__ import annotations

import abc
import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._promql import PromClient
from .families import Family


@dataclass(frozen=True)
class Run:
    """One loaded results file: de-duplicated, validated scenario objects (treat as read-only)."""

    path: Path
    run_id: str
    scenarios: tuple[dict, ...]
    duplicates: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)


def make_run(path: Path, scenarios: Sequence[Any]) -> Run:
    """Build a Run: drop entries without a string name, keep the last of each name (in place)."""
    skipped: dict[str, int] = {}
    named: list[dict] = []
    for scenario in scenarios:
        if not isinstance(scenario, dict):
            skipped["not_an_object"] = skipped.get("not_an_object", 0) + 1
        elif not isinstance(scenario.get("name"), str):
            skipped["invalid_name"] = skipped.get("invalid_name", 0) + 1
        else:
            named.append(scenario)
    last = {scenario["name"]: index for index, scenario in enumerate(named)}
    kept = tuple(s for index, s in enumerate(named) if last[s["name"]] == index)
    return Run(
        path=Path(path),
        run_id=Path(path).stem,
        scenarios=kept,
        duplicates=len(named) - len(kept),
        skipped=skipped,
    )


class MetricSet(abc.ABC):
    """One exporter's metrics: computed from a Run in the refresh thread, served as bytes."""

    name: str = ""
    default_port: int = 0
    #: Set by the Refresher that drives the set: background work asked for in ``compute`` waits
    #: for ``after_refresh`` (otherwise, e.g. a bare ``compute`` call, it may start at once).
    background_deferred: bool = False

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

    def extra_ticks(self) -> bool:
        """Return True when the set wants a recompute without a file change."""
        return False

    def info_labels(self) -> Mapping[str, str]:
        """Extra labels of ``<name>_exporter_info`` besides ``version``."""
        return {}

    def after_refresh(self) -> None:
        """Called in the refresh thread once the bodies of a refresh are published.

        Background work (model training) starts here, so it competes neither for the CPU and
        the GIL nor for memory with the compute, render and publishing of the refresh.
        """
        return None

