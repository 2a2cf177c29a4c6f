"""The refresh thread: watches the results directory, recomputes, re-publishes every snapshot."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from advisor_core.scenario import latest_results_file, read_results

from ._promql import PromClient
from .metric_set import Run, make_run
from .publisher import ExporterState, ProcessPart

logger = logging.getLogger("exporters")


#: Even without a file change every set is recomputed this often (seconds), so slowly changing
#: inputs (grid carbon intensity, windows still being ingested) reach the metrics.
RECOMPUTE_SECONDS = 600.0


class Refresher(threading.Thread):
    """Background thread: notices file changes, recomputes data parts, re-publishes bodies."""

    def __init__(
        self,
        states: Sequence[ExporterState],
        results_dir: Path,
        interval: float,
        prom: PromClient,
    ) -> None:
        super().__init__(name="exporter-refresh", daemon=True)
        self.states = list(states)
        self.results_dir = Path(results_dir)
        self.interval = interval
        self.prom = prom
        self.stop_event = threading.Event()
        self._signature: Optional[tuple] = None
        self._retry = False
        self._last_compute = -math.inf
        self._process = ProcessPart()
        for state in self.states:
            state.metric_set.background_deferred = True
        self.ticks = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception:  # a bug must not silently kill the thread's loop
                logger.exception("refresh tick failed")
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        """Ask the loop to end after the current tick."""
        self.stop_event.set()

    def _current_signature(self) -> Optional[tuple]:
        path = latest_results_file(self.results_dir)
        if path is None:
            return None
        try:
            info = os.stat(path)
        except OSError:
            return None
        return (str(path), info.st_mtime_ns, info.st_size)

    def tick(self) -> None:
        """One refresh step: recompute when needed, then re-publish every set's body."""
        signature = self._current_signature()
        now = time.monotonic()
        changed = signature != self._signature
        wants = any(state.metric_set.extra_ticks() for state in self.states)
        retry = self._retry and not self.prom.backing_off()
        stale = now - self._last_compute >= RECOMPUTE_SECONDS
        refreshed = changed or wants or retry or stale
        if refreshed:
            self._signature = signature
            self._refresh(signature)
        elif self.prom.enabled:
            self.prom.probe()
        process = self._process.render()
        for state in self.states:
            state.publish(process)
        self.ticks += 1
        if refreshed:
            # Background work (the results model) starts once the new bodies are out: started
            # earlier, its thread would contend for the GIL with the publishing.
            for state in self.states:
                try:
                    state.metric_set.after_refresh()
                except Exception:
                    logger.exception("%s: starting background work failed",
                                     state.metric_set.name)

    def _refresh(self, signature: Optional[tuple]) -> None:
        started = time.perf_counter()
        self._last_compute = time.monotonic()
        if signature is None:
            run = Run(path=self.results_dir, run_id="", scenarios=())
            entries = 0
        else:
            path = Path(signature[0])
            try:
                scenarios, entries = read_results(path)
            except ValueError as exc:
                logger.error("skipping results file: %s", exc)
                for state in self.states:
                    state.refresh_errors += 1
                    state.refresh_errors_last_ok = False
                return
            run = make_run(path, scenarios)
            del scenarios
        load_seconds = time.perf_counter() - started
        incomplete = self.prom.incomplete
        # What the self-metrics need of the run, shared by every set; the scenario objects (the
        # largest thing a refresh holds besides the bodies) are dropped after the last compute.
        summary = Run(path=run.path, run_id=run.run_id, scenarios=(),
                      duplicates=run.duplicates, skipped=run.skipped)
        last = len(self.states) - 1
        for index, state in enumerate(self.states):
            began = time.perf_counter()
            try:
                families = state.metric_set.compute(run, self.prom)
                if index == last:
                    del run  # the scenario objects are freed before the last render
                state.set_data(families if isinstance(families, list) else list(families))
                del families
            except Exception:
                logger.exception("%s: computing metrics failed", state.metric_set.name)
                state.refresh_errors += 1
                state.refresh_errors_last_ok = False
                continue
            state.run = summary
            state.scenarios_total = entries
            state.refresh_errors_last_ok = True
            state.last_refresh = time.time()
            state.refresh_duration = load_seconds + time.perf_counter() - began
        self._retry = self.prom.incomplete != incomplete

