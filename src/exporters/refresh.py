"""The refresh thread: watches the results directory, recomputes and publishes on a change.

Recompute policy: every set is recomputed from a fresh load when the newest usable results file
or the analysis CSV beside it changes (path, mtime, size, inode or ctime:
``exporters.directory``), when VictoriaMetrics answered only in part and its backoff is over,
and every ``RECOMPUTE_SECONDS``. Background work a set asks
for runs on the refresh's job thread (``exporters.jobs``); when it has new results only that
set is re-rendered, from the rows it cached, without loading the file again.

Idle policy (docs/exporters.md §10): between changes the thread sleeps (``exporters.watch``: on
inotify until the directory changes, a job or stop wakes it, or a retry, database probe or
periodic recompute is due; without inotify, or on a network filesystem, every ``interval``). At
each wake the directory's path is resolved again, and a retargeted link is watched anew. While
VictoriaMetrics fails the thread sleeps until its backoff ends, probes it once and recomputes
only when it answers. A failure that clears is logged once at INFO. A tick only stats the
directory and the file served (the names are listed again when the directory's stat moves) and
publishes nothing. A set's static part is rendered and deflated when something it shows changed
(new data, a failure, the names passed over); the numbers that move between refreshes (HTTP and
database counters, process metrics) are rendered when a scrape asks (``publisher``). A big body
is deflated fast first and compactly by the next tick, at once. VictoriaMetrics is probed only
when its backoff is over or nothing asked it for ``RECOMPUTE_SECONDS``, not every tick.

Failure model (docs/exporters.md §9): whatever goes wrong while loading or computing a run, any
exception ``MemoryError`` included, is caught in ``tick``, counted by reason in each set it
touches (``<set>_exporter_up`` 0 meanwhile), leaves the last good metrics served and is tried
again with backoff, whether or not the file changes. ``tick`` never raises, so no data stops a
process, at start-up included.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Optional

from advisor_core.data.reader import ReadLimits, RunRecord, read_run
from advisor_core.data.results_files import RESULTS_GLOB, ResultsFileError

from ._promql import PromClient
from .directory import ATTEMPTS as _ATTEMPTS
from .directory import Listing, newest_signature
from .jobs import BackgroundJobs
from .publisher import ExporterState
from .watch import Sleeper

logger = logging.getLogger("exporters")


#: Even without a file change every set is recomputed this often (seconds), so slowly changing
#: inputs (grid carbon intensity, windows still being ingested) reach the metrics.
RECOMPUTE_SECONDS = 600.0
#: A failed refresh is tried again this many seconds later, the delay doubling with each
#: failure in a row up to RETRY_MAX_SECONDS (a file that changes is read at once).
RETRY_INITIAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
#: While the directory is watched (inotify) the loop still looks this often (seconds): a results
#: file behind a symbolic link changes without an event in the directory.
WATCHED_POLL_SECONDS = 60.0
#: Database time one refresh may take (seconds, for every set together): windows not asked by
#: then have no load-aware data until the next recompute or file change (docs/exporters.md §9).
DATABASE_SECONDS = 60.0
#: Names passed over that one log line names at most.
_NAMES_LOGGED = 5


def failure_reason(exc: BaseException, default: str) -> str:
    """The counted reason of an unexpected exception of a refresh (``default`` for a bug)."""
    if isinstance(exc, MemoryError):
        return "out_of_memory"
    if isinstance(exc, RecursionError):
        return "too_deep"
    return default


#: What one results file may hold by default (docs/exporters.md §7, §9): bytes, scenario entries,
#: characters per text field (label value) and the estimated size of its parsed objects. With
#: each set's BodyBudget they bound a refresh's memory.
EXPORTER_LIMITS = ReadLimits(max_bytes=16 * 1024 * 1024, max_scenarios=20_000, max_text=1024,
                             max_parse_bytes=112 * 1024 * 1024)


class Refresher(threading.Thread):
    """Background thread: notices file changes, recomputes data parts, publishes changes."""

    def __init__(
        self,
        states: Sequence[ExporterState],
        results_dir: Path,
        interval: float,
        prom: PromClient,
        limits: Optional[ReadLimits] = None,
    ) -> None:
        super().__init__(name="exporter-refresh", daemon=True)
        self.limits = limits or EXPORTER_LIMITS
        self.states = list(states)
        self.results_dir = Path(results_dir)
        self.interval = interval
        self.prom = prom
        self.stop_event = threading.Event()
        # Woken by a finished background job (and by stop): the loop ticks at once, not after
        # the interval, so new predictions show within a moment; and by a change in the
        # directory while it is watched.
        self._sleeper: Optional[Sleeper] = None  # made by run(): a thread's descriptors
        self._lock = threading.Lock()
        self._rerender: set[Hashable] = set()  # indexes into states
        self.jobs = BackgroundJobs(self._job_done)
        self._signature: Optional[tuple] = None
        self._served_file = False  # a results file has been loaded since the start
        self._last_failure: Optional[str] = None
        self._retry = False
        self._failed = False  # the refresh under way failed (for some set or all)
        self._retry_delay = 0.0  # seconds; 0 after a refresh that worked
        self._retry_at: Optional[float] = None  # monotonic time of the next try after a failure
        self._last_compute = -math.inf
        self._listing = Listing()
        self._compact: set[int] = set()  # sets whose static part was deflated fast
        self._probe_at = -math.inf  # monotonic time of the next database probe
        self._database_down = False  # VictoriaMetrics failed and has not answered since
        self._skipped_names: frozenset[tuple[str, str]] = frozenset()  # last logged
        self.ticks = 0
        #: Results files read so far (a re-render after a background job reads none).
        self.loads = 0

    def run(self) -> None:
        try:
            sleeper: Optional[Sleeper] = Sleeper(self.results_dir)
        except Exception:  # never the loop: it polls without a sleeper
            logger.exception("cannot watch %s: polling it", self.results_dir)
            sleeper = None
        self._sleeper = sleeper
        try:
            while not self.stop_event.is_set():
                last = time.monotonic()
                try:
                    if sleeper is not None:
                        # Watched before the tick looks: a file written between the look and
                        # the watch would otherwise wait for the next wake (up to 60 s).
                        sleeper.watching()
                    self.tick()
                except Exception:  # a bug must not silently kill the thread's loop
                    logger.exception("refresh tick failed")
                if self._compact:  # compact the bodies just published before sleeping
                    continue
                try:
                    if sleeper is not None and sleeper.target_moved():
                        # A retargeted link: watch where the path leads now (cheap: lstat of
                        # each component, at each wake).
                        logger.info("%s now leads to %s: watching it", self.results_dir,
                                    os.path.realpath(self.results_dir))
                        moved, sleeper = sleeper, Sleeper(self.results_dir)
                        with self._lock:
                            self._sleeper = sleeper
                        moved.close()
                        continue
                    if sleeper is None:
                        self.stop_event.wait(self.interval)
                    elif not sleeper.watching():
                        sleeper.sleep(self.interval)
                    elif sleeper.sleep(self._quiet_seconds()):
                        # A file being written sends many events: ticks stay an interval
                        # apart (a wake-up, by a finished job or stop, ends the wait at once).
                        sleeper.sleep(last + self.interval - time.monotonic(), changes=False)
                except Exception:  # e.g. the watch descriptor went bad: poll from now on
                    logger.exception("watching %s failed: polling it", self.results_dir)
                    with self._lock:
                        self._sleeper = None
                    if sleeper is not None:
                        sleeper.close()
                    sleeper = None
        finally:
            with self._lock:  # no wake-up writes to a descriptor number reused after close
                self._sleeper = None
            if sleeper is not None:
                sleeper.close()

    def _quiet_seconds(self) -> float:
        """How long a watched directory may go unlooked at: until the next retry, database
        probe or periodic recompute is due, at most WATCHED_POLL_SECONDS, at least the
        interval (seconds)."""
        now = time.monotonic()
        # ``_probe_at`` is the end of the database's backoff while it is failing: the loop
        # sleeps until then, as idle, and no longer polls it every interval.
        due = [self._last_compute + RECOMPUTE_SECONDS, self._probe_at, now + WATCHED_POLL_SECONDS]
        if self._retry_at is not None:
            due.append(self._retry_at)
        return max(self.interval, min(due) - now)

    def stop(self) -> None:
        """Ask the loop to end after the current tick and drop queued background jobs."""
        self.stop_event.set()
        self._wake_up()
        self.jobs.close()

    def wait_for_jobs(self, timeout: float = 30.0) -> bool:
        """Block until no background job is queued or running (seconds); False on timeout."""
        return self.jobs.wait_idle(timeout)

    def _job_done(self, index: Hashable) -> None:
        """Job thread: a set's background job has new results; re-render it on the next tick."""
        with self._lock:
            self._rerender.add(index)
        self._wake_up()

    def _wake_up(self) -> None:
        with self._lock:
            if self._sleeper is not None:
                self._sleeper.wake()

    def _current_signature(self) -> tuple:
        """The signature of the newest usable results file (``directory.newest_signature``);
        the names passed over on the way are logged and shown by every set.

        Raises OSError (listing) or ResultsFileError.
        """
        signature, skipped = newest_signature(self.results_dir, self._listing)
        noticed = frozenset((path.name, reason) for path, reason in skipped)
        new = noticed - self._skipped_names
        if new:  # one line, naming a few: a directory may hold thousands of such names
            shown = sorted(new)[:_NAMES_LOGGED]
            logger.warning("passing over %s%s", ", ".join(
                f"{name} ({reason.replace('_', ' ')})" for name, reason in shown),
                f" and {len(new) - len(shown)} more" if len(new) > len(shown) else "")
        self._skipped_names = noticed
        counts: dict[str, int] = {}
        for _, reason in skipped:
            counts[reason] = counts.get(reason, 0) + 1
        for state in self.states:
            state.set_skipped_files(counts)
        return signature

    def _newest_after_vanish(self) -> tuple:
        self._listing.forget()
        try:
            return self._current_signature()
        except (OSError, ResultsFileError):
            return ()

    def _fail(self, reason: str, message: str, again: bool = True, *,
              states: Optional[Sequence[ExporterState]] = None,
              error: Optional[BaseException] = None) -> None:
        """The sets (default: every set) keep their last good data and say up 0, the failure
        counted under ``reason``; logged once per reason change (with ``error``'s traceback).

        ``again``: load whatever the next tick finds, so up returns to 1 once the cause is gone;
        otherwise the same file is tried again after the retry delay.
        """
        if reason != self._last_failure:
            logger.error("keeping the last good metrics: %s", message,
                         exc_info=(type(error), error, error.__traceback__)
                         if error is not None else None)
        self._last_failure = reason
        self._failed = True
        if again:
            self._signature = None
        for state in self.states if states is None else states:
            state.failed(reason)

    def _schedule_retry(self, now: float) -> None:
        """After a refresh: a failed one is tried again after the (doubling) retry delay."""
        if self._failed:
            self._retry_delay = (RETRY_INITIAL_SECONDS if self._retry_delay <= 0
                                 else min(self._retry_delay * 2, RETRY_MAX_SECONDS))
            self._retry_at = now + self._retry_delay
        else:
            self._retry_delay, self._retry_at = 0.0, None

    def tick(self) -> None:
        """One refresh step: recompute when needed, then publish the sets that changed.

        Never raises: a failure of the refresh is counted and retried (module docstring).
        """
        try:
            self._tick()
        except Exception as exc:  # a bug outside the refresh (listing, publishing): logged
            self._fail(failure_reason(exc, "refresh_failed"), f"refresh tick failed: {exc!r}",
                       error=exc)

    def _tick(self) -> None:
        if time.monotonic() - self._last_compute >= RECOMPUTE_SECONDS:
            self._listing.forget()  # the periodic full look lists the names again too
        try:
            signature: Optional[tuple] = self._current_signature()
        except ResultsFileError as exc:
            self._fail(exc.reason, str(exc))
            signature = None
        except OSError as exc:  # the directory cannot be listed (permissions, no descriptors)
            self._fail("list_failed", f"cannot list {self.results_dir}: {exc.strerror or exc}")
            signature = None
        now = time.monotonic()
        changed = signature is not None and signature != self._signature
        retry = self._retry and not self.prom.backing_off()
        if retry and not changed:
            # The backoff is over: one cheap probe first; every set is recomputed only when the
            # database answers again (a failed probe extends the backoff).
            self.prom.probe(RECOMPUTE_SECONDS)
            retry = self.prom.healthy
        stale = now - self._last_compute >= RECOMPUTE_SECONDS
        due = self._retry_at is not None and now >= self._retry_at
        refreshed = signature is not None and (changed or retry or stale or due)
        with self._lock:
            rerender, self._rerender = self._rerender, set()
        if refreshed:
            assert signature is not None  # refreshed implies a listing that worked
            self._signature = signature
            self._failed = False
            try:
                with self.jobs.held():
                    self.prom.spend(DATABASE_SECONDS)
                    try:
                        self._refresh(signature)
                    finally:
                        self.prom.spend(math.inf)  # probes between refreshes
            except Exception as exc:  # the one place a refresh's failure is caught
                self._fail(failure_reason(exc, "load_failed"),
                           f"refreshing from {signature[0] if signature else 'nothing'} "
                           f"failed: {exc!r}", again=False, error=exc)
            self._schedule_retry(now)
            if not self._failed and self._last_failure is not None:
                logger.info("recovered from %s: serving %s",
                            self._last_failure.replace("_", " "),
                            Path(signature[0]).name if signature else "no results file")
                self._last_failure = None
        else:
            for index, state in enumerate(self.states):
                if index in rerender:
                    self._rerender_one(state)
            if now >= self._probe_at:
                self.prom.probe(RECOMPUTE_SECONDS)
        if refreshed or now >= self._probe_at:  # a refresh's queries move the backoff too
            self._probe_at = time.monotonic() + self.prom.probe_delay(RECOMPUTE_SECONDS)
        if not refreshed:  # the fast bodies of the last publish, now at GZIP_LEVEL
            for index in sorted(self._compact):
                try:
                    self.states[index].compact_job()()
                except Exception:  # e.g. MemoryError: the fast body stays served
                    logger.exception("%s: compacting failed", self.states[index].metric_set.name)
            self._compact.clear()
        compact = []
        for index, state in enumerate(self.states):
            if state.starting:  # the first tick has run, whatever its outcome
                state.starting, state.dirty = False, True
            if not state.dirty:
                continue
            try:
                if state.publish():
                    compact.append(index)
            except Exception:  # e.g. MemoryError: the previous snapshot stays served
                logger.exception("%s: publishing failed", state.metric_set.name)
        self.ticks += 1
        self._note_database()
        # Compacted by the next tick, at once (``run``): on this thread, not the job thread,
        # whose own start and arena would add to the peak memory of a set without jobs.
        self._compact.update(compact)
        if refreshed:
            # Background work starts once the new bodies are out: started earlier, its thread
            # would contend for the GIL with the publishing.
            for index, state in enumerate(self.states):
                try:
                    job = state.metric_set.take_job()
                except Exception:
                    logger.exception("%s: asking for background work failed",
                                     state.metric_set.name)
                    continue
                if job is not None:
                    self.jobs.submit(index, job)

    def _note_database(self) -> None:
        """Log once when VictoriaMetrics answers again after failing (its failures are logged
        by the client)."""
        down = self.prom.enabled and not self.prom.healthy and self.prom.failures > 0
        if self._database_down and not down:
            logger.info("recovered: VictoriaMetrics answers again")
        self._database_down = down

    def _rerender_one(self, state: ExporterState) -> None:
        """Render one set again from its cached rows (its background job has new results)."""
        try:
            state.set_data(state.metric_set.rerendered())
        except Exception:
            logger.exception("%s: re-rendering failed", state.metric_set.name)

    def _read(self, path: Path) -> Optional[RunRecord]:
        """The newest file read into records, or None after counting why it could not be read
        (a file that vanished is replaced by the next newest). An unusable analysis CSV is
        logged and counted (``analysis_unreadable``); the run is served from its JSON alone
        with up 0."""
        for attempt in range(_ATTEMPTS):
            try:
                self.loads += 1
                run = read_run(path, self.limits)
                if run.analysis_error is not None:
                    # Served from its JSON alone, but not as healthy: up 0 until the CSV is
                    # usable again (tried with the retry delay, or when it changes).
                    self._fail("analysis_unreadable",
                               f"serving {path.name} without its analysis: {run.analysis_error}",
                               again=False)
                return run
            except ResultsFileError as exc:
                if exc.reason == "vanished" and attempt + 1 < _ATTEMPTS:
                    again = self._newest_after_vanish()
                    if again:
                        self._signature, path = again, Path(again[0])
                        continue
                # A file that is there but unusable keeps its signature: it is not read
                # again until it changes. A vanished one is looked for on the next tick.
                self._fail(exc.reason, str(exc), again=exc.reason in ("vanished", "unreadable"))
                return None
        return None

    def _refresh(self, signature: tuple) -> None:
        started = time.perf_counter()
        self._last_compute = time.monotonic()
        if not signature:
            if self._served_file:
                # Every file gone after one was served: a rotation between its delete and its
                # rename, or a mistake; neither is a reason to serve nothing as healthy.
                self._fail("no_results_file", f"no {RESULTS_GLOB} in {self.results_dir} any more")
                return
            run = RunRecord(scenarios=(), path=self.results_dir)
        else:
            loaded = self._read(Path(signature[0]))
            if loaded is None:
                return
            run = loaded
            del loaded
            self._served_file = True
        load_seconds = time.perf_counter() - started
        incomplete = self.prom.incomplete
        # What the self-metrics need of the run, shared by every set; the records (the largest
        # thing a refresh holds besides the bodies) are dropped after the last compute.
        summary = replace(run, scenarios=())
        entries = run.entries
        analysis_ok = run.analysis_error is None
        last = len(self.states) - 1
        for index, state in enumerate(self.states):
            began = time.perf_counter()
            try:
                families = state.metric_set.families(run, self.prom)
                if index == last:
                    del run  # the scenario objects are freed before the last render
                state.set_data(families if isinstance(families, list) else list(families))
                del families
            except Exception as exc:  # this set keeps its last good data; the others go on
                reason = failure_reason(exc, "compute_failed")
                self._fail(reason, f"{state.metric_set.name}: computing metrics failed: {exc!r}",
                           again=False, states=(state,), error=exc)
                continue
            state.run = summary
            state.scenarios_total = entries
            state.refresh_errors_last_ok = analysis_ok
            state.last_refresh = time.time()
            state.refresh_duration = load_seconds + time.perf_counter() - began
        self._retry = self.prom.incomplete != incomplete

