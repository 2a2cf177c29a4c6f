"""What a scrape serves: a static part rendered and deflated once per change, and a tail of
scrape-time numbers (docs/exporters.md §10).

The static part is the data families, the self-metrics that change only with a refresh and
``python_info``; ``publish`` renders it and deflates it once (``exposition.deflate_prefix``)
and swaps it in as one object. A scrape appends the tail: the HTTP and database counters, the
scrape counter and the ``process_*`` families (read at most once a second), rendered when a
scrape asks; the gzip body is the static part's deflate stream finished by the tail's final block.
"""

from __future__ import annotations

import threading
from array import array
from typing import NamedTuple, Optional

from prometheus_client import Metric, PlatformCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from advisor_core import __version__ as VERSION

from ._promql import PromClient
from .exposition import (
    COMPACT_INLINE_BYTES,
    DeflatedPrefix,
    deflate_prefix,
    generate_latest_of,
    gzip_tail,
    render_chunks,
    render_families,
)
from .families import Family, TableFamily
from .jobs import Job
from .metric_set import MetricSet, Run
from .process_metrics import ProcessMetrics, family_header, render_small

#: The self-observability families of every exporter, ``<exporter>_<suffix>``: (suffix, type,
#: help, labels). ``exporter_info`` also carries the set's ``info_labels``;
#: The ``exporter_victoriametrics_*`` families are served only with an enrichment URL
#: (docs/exporters.md).
SELF_FAMILIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("exporter_up", "gauge", "1 while the exporter serves metrics from a readable file", ()),
    ("exporter_info", "gauge", "Exporter build information", ("version",)),
    ("exporter_last_refresh_timestamp_seconds", "gauge",
     "Unix time of the last successful refresh (seconds)", ()),
    ("exporter_refresh_duration_seconds", "gauge",
     "Duration of the last successful refresh: load, compute and render (seconds)", ()),
    ("exporter_refresh_errors", "counter",
     "Results files or computations that failed (the last good metrics stay)", ()),
    ("exporter_refresh_failures", "counter",
     "Failed refreshes by reason: the directory or newest file could not be used", ("reason",)),
    ("exporter_skipped_scenarios", "gauge",
     "Scenarios (or their samples) left out of the last refresh, by reason", ("reason",)),
    ("exporter_skipped_files", "gauge",
     "Names like a results file, newer than the one served, that cannot be opened as one",
     ("reason",)),
    ("duplicate_scenarios", "gauge",
     "Scenario entries dropped because a later entry has the same name", ()),
    ("scenarios_total", "gauge",
     "Scenario entries in the latest results file (including duplicates and skipped ones)", ()),
    ("exporter_starting", "gauge",
     "1 until the first refresh of the directory has finished (up is 0 meanwhile)", ()),
    ("exporter_scrapes", "counter", "GET requests of /metrics answered (HEAD not counted)", ()),
    ("exporter_http_connections", "gauge", "Open HTTP connections to this exporter's port", ()),
    ("exporter_http_client_errors", "counter",
     "HTTP connections closed for misbehaving or for lack of room, by reason", ("reason",)),
    ("exporter_victoriametrics_up", "gauge",
     "1 while the last request to VictoriaMetrics succeeded", ()),
    ("exporter_victoriametrics_failures", "counter",
     "Failed VictoriaMetrics requests by reason; each starts or extends the backoff, but "
     "time_budget (not sent: the refresh's database time was spent)",
     ("reason",)),
    ("exporter_victoriametrics_dropped_points", "counter",
     "Points of VictoriaMetrics answers dropped: outside the window asked or closer than a step",
     ()),
)
_DECLARED = {suffix: (kind, documentation, labels)
             for suffix, kind, documentation, labels in SELF_FAMILIES}
#: The SELF_FAMILIES that change between refreshes: rendered when a scrape asks.
SCRAPE_TIME = frozenset({
    "exporter_http_connections", "exporter_http_client_errors", "exporter_scrapes",
    "exporter_victoriametrics_up", "exporter_victoriametrics_failures",
    "exporter_victoriametrics_dropped_points"})

_shared: dict[str, object] = {}
_shared_lock = threading.Lock()


def _process_parts() -> tuple[ProcessMetrics, bytes]:
    """The process metrics and the rendered ``python_info`` of this process (made once)."""
    with _shared_lock:
        if "process" not in _shared:
            _shared["process"] = ProcessMetrics()
            _shared["platform"] = generate_latest_of(list(PlatformCollector(registry=None)
                                                          .collect()))
        return _shared["process"], _shared["platform"]  # type: ignore[return-value]


class Snapshot(NamedTuple):
    """The static part of a body: plain chunks, the deflate stream that starts its gzip form."""

    plain: tuple[bytes, ...]
    deflated: DeflatedPrefix
    compact: bool  # deflated at GZIP_LEVEL (False: fast first, GZIP_LEVEL by the next tick)


class ExporterState:
    """Per-set state: counters, the cached data part and the body chunks served to scrapes."""

    def __init__(self, metric_set: MetricSet, prom: PromClient) -> None:
        self.metric_set = metric_set
        self.prom = prom
        self.refresh_errors = 0
        self.last_refresh: Optional[float] = None
        self.refresh_duration: Optional[float] = None
        self.run: Optional[Run] = None
        self.scenarios_total = 0
        # (name, type, help) -> (label blocks, value bits, rendered text) of the last render
        self._tables: dict[tuple, tuple[list, bytes, bytes]] = {}
        # Written by the HTTP thread (exporters.serving), read when the self part renders.
        self.http_connections = 0
        self.http_client_errors: dict[str, int] = {}
        #: Failed refreshes by reason (docs/exporters.md "Results directory").
        self.refresh_failures: dict[str, int] = {}
        #: Names passed over in the last look at the directory, by reason (replaced whole).
        self.skipped_files: dict[str, int] = {}
        # The latest refresh attempt of this set succeeded (a bad newer file makes up 0).
        self.refresh_errors_last_ok = True
        # The rendered data part: plain chunks, one per family.
        self._data: tuple[bytes, ...] = ()
        #: Requests of /metrics answered (the HTTP thread counts them).
        self.scrapes = 0
        #: No refresh has finished yet (the ports answer before the first one does).
        self.starting = True
        self._process, self._platform = _process_parts()
        # The one static object a scrape reads, replaced as a whole; the chunks are sent back to
        # back: the big data part is never copied into a joined body.
        self.snapshot: Optional[Snapshot] = None
        self._swap = threading.Lock()
        # Something the static part shows changed since it was published.
        self.dirty = True
        self._headers: dict[str, tuple[bytes, str]] = {}
        # suffix -> (samples, text) of each scrape-time family as last rendered (HTTP thread)
        self._tail_parts: dict[str, tuple[list, bytes]] = {}

    def failed(self, reason: str) -> None:
        """Count a refresh that failed for ``reason``; the last good data part stays."""
        self.refresh_errors += 1
        self.refresh_failures[reason] = self.refresh_failures.get(reason, 0) + 1
        self.refresh_errors_last_ok = False
        self.dirty = True

    def set_skipped_files(self, counts: dict[str, int]) -> None:
        """Names passed over in the last look at the directory, by reason (replaced whole)."""
        if counts != self.skipped_files:
            self.skipped_files = counts
            self.dirty = True

    @property
    def body(self) -> tuple[bytes, bytes]:
        """The (plain, gzip) bodies as whole bytes (tests and tools; a scrape uses ``answer``)."""
        return b"".join(self._answer(False)), b"".join(self._answer(True))

    def answer(self, gzipped: bool, count: bool = True) -> tuple[bytes, ...]:
        """The chunks of a /metrics answer, plain or one gzip member; ``count``: it is a scrape
        (a GET; a HEAD, which no Prometheus sends, is not)."""
        if count:
            self.scrapes += 1
        return self._answer(gzipped)

    def _answer(self, gzipped: bool) -> tuple[bytes, ...]:
        snapshot = self.snapshot
        if snapshot is None:  # before the first publish (a test's state, never a server's)
            self.publish()
            snapshot = self.snapshot
            assert snapshot is not None
        tail = self._render_tail()
        if gzipped:
            return (*snapshot.deflated.parts, gzip_tail(snapshot.deflated, tail))
        return (*snapshot.plain, tail)

    def _render_tail(self) -> bytes:
        """The scrape-time self families (SCRAPE_TIME) and the process metrics."""
        parts = []
        for suffix, samples in self._scrape_samples().items():
            rendered = self._tail_parts.get(suffix)
            if rendered is not None and rendered[0] == samples:
                parts.append(rendered[1])  # most families keep their values between scrapes
                continue
            kind, documentation, labels = _DECLARED[suffix]
            header = self._headers.get(suffix)
            if header is None:  # prometheus_client's own header lines, made once
                family_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                header = self._headers[suffix] = family_header(family_class(
                    f"{self.metric_set.name}_{suffix}", documentation, labels=list(labels)))
            text = render_small(*header, (
                (tuple(zip(labels, values)), value) for values, value in samples))
            self._tail_parts[suffix] = (samples, text)
            parts.append(text)
        parts.append(self._process.render())
        return b"".join(parts)

    def publish(self) -> bool:
        """Render the static self part, deflate the static part once and swap it in.

        Returns True when it was deflated fast and ``compact_job`` should deflate it again.
        """
        plain = (*self._data, render_families(self.self_families()), self._platform)
        compact = sum(map(len, plain)) <= COMPACT_INLINE_BYTES
        snapshot = Snapshot(plain, deflate_prefix(plain, compact), compact)
        with self._swap:
            self.snapshot = snapshot
            self.dirty = False
        return not compact

    def compact_job(self) -> Job:
        """Deflate the static part served now at GZIP_LEVEL and swap it in, unless a newer one
        was published meanwhile (a job: True would ask for a re-render, never here)."""
        snapshot = self.snapshot

        def job() -> bool:
            if snapshot is None or snapshot.compact:
                return False
            compact = snapshot._replace(deflated=deflate_prefix(snapshot.plain), compact=True)
            with self._swap:
                if self.snapshot is snapshot:
                    self.snapshot = compact
            return False  # nothing to re-render

        return job

    def set_data(self, families: list[Family]) -> None:
        """Render the data part once (consumes ``families``: emptied as rendered).

        A table family that did not change since the last render reuses its text.
        """
        previous, current = self._tables, {}
        chunks: list[bytes] = []

        # Family by family, dropping each once rendered: its rows and its text never coexist
        # with the whole body. A table equal to the last render's (same label blocks, same
        # value bits) reuses its text: a re-render for new predictions, or a rewritten file
        # with mostly the same numbers, allocates only what changed while the old body is
        # still being served.
        families.reverse()
        while families:
            family = families.pop()
            if not isinstance(family, TableFamily):
                chunks.extend(render_chunks((family,)))
                continue
            key = (family.name, family.type, family.documentation)
            blocks = [labels.block for labels in family.keys]
            bits = array("d", family.values).tobytes()
            old = previous.get(key)
            if old is not None and old[1] == bits and old[0] == blocks:
                chunk = old[2]
            else:
                chunk = family.render(blocks)
            current[key] = (blocks, bits, chunk)
            chunks.append(chunk)
            del family
        self._tables = current
        self._data = tuple(chunks)
        self.dirty = True

    def self_families(self) -> list[Metric]:
        """Return the set's self-observability families that change only with a refresh (the
        SELF_FAMILIES outside SCRAPE_TIME, with its name)."""
        info = dict(self.metric_set.info_labels())  # names and values from the one call
        samples = self._self_samples(info)
        families: list[Metric] = []
        for suffix, kind, documentation, labels in SELF_FAMILIES:
            if suffix not in samples:  # scrape-time, or one this exporter does not have
                continue
            extra = list(info) if suffix == "exporter_info" else []
            family_class = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = family_class(f"{self.metric_set.name}_{suffix}", documentation,
                                  labels=[*labels, *extra])
            for values, value in samples[suffix]:
                family.add_metric(list(values), float(value))
            families.append(family)
        return families

    def _self_samples(self, info: dict[str, str]) -> dict[str, list[tuple[tuple[str, ...], float]]]:
        """(label values, value) of each self family outside SCRAPE_TIME, by SELF_FAMILIES
        suffix (``info``: the set's extra info labels)."""
        reasons: dict[str, int] = {}
        if self.run is not None:
            for source in (self.run.skipped, self.metric_set.skipped()):
                for reason, count in source.items():
                    reasons[reason] = reasons.get(reason, 0) + int(count)
        up = self.run is not None and self.refresh_errors_last_ok
        samples: dict[str, list[tuple[tuple[str, ...], float]]] = {
            "exporter_up": [((), 1.0 if up else 0.0)],
            "exporter_info": [((VERSION, *info.values()), 1.0)],
            "exporter_last_refresh_timestamp_seconds": (
                [] if self.last_refresh is None else [((), self.last_refresh)]),
            "exporter_refresh_duration_seconds": (
                [] if self.refresh_duration is None else [((), self.refresh_duration)]),
            "exporter_refresh_errors": [((), self.refresh_errors)],
            "exporter_refresh_failures": [
                ((reason,), count) for reason, count in sorted(self.refresh_failures.items())],
            "exporter_skipped_scenarios": [
                ((reason,), reasons[reason]) for reason in sorted(reasons)],
            "exporter_skipped_files": [
                ((reason,), count) for reason, count in sorted(self.skipped_files.items())],
            "duplicate_scenarios": [((), self.run.duplicates if self.run is not None else 0)],
            "scenarios_total": [((), self.scenarios_total)],
            "exporter_starting": [((), 1.0 if self.starting else 0.0)],
        }
        return samples

    def _scrape_samples(self) -> dict[str, list[tuple[tuple[str, ...], float]]]:
        """(label values, value) of each SCRAPE_TIME family, in SELF_FAMILIES order."""
        http_errors = sorted(dict(self.http_client_errors).items())  # the HTTP thread writes it
        samples: dict[str, list[tuple[tuple[str, ...], float]]] = {
            "exporter_http_connections": [((), self.http_connections)],
            "exporter_http_client_errors": [((reason,), count) for reason, count in http_errors],
            "exporter_scrapes": [((), self.scrapes)],
        }
        if self.prom.enabled:
            samples["exporter_victoriametrics_up"] = [((), 1.0 if self.prom.healthy else 0.0)]
            samples["exporter_victoriametrics_failures"] = [
                ((reason,), count)  # a copy: the client's worker threads add to it
                for reason, count in sorted(dict(self.prom.failure_reasons).items())]
            samples["exporter_victoriametrics_dropped_points"] = [((), self.prom.dropped_points)]
        return samples
