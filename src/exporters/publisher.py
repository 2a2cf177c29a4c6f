"""The snapshot a scrape serves: data part, self-metrics, one gzip member, swapped as one."""

from __future__ import annotations

from array import array
from typing import Optional

from prometheus_client import CollectorRegistry, Metric, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from advisor_core import __version__ as VERSION

from ._promql import PromClient
from .exposition import gzip_member, render_chunks, render_families
from .families import Family, TableFamily
from .metric_set import MetricSet, Run

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
    ("exporter_http_connections", "gauge", "Open HTTP connections to this exporter's port", ()),
    ("exporter_http_client_errors", "counter",
     "HTTP connections closed for misbehaving or for lack of room, by reason", ("reason",)),
    ("exporter_victoriametrics_up", "gauge",
     "1 while the last request to VictoriaMetrics succeeded", ()),
    ("exporter_victoriametrics_failures", "counter",
     "Failed VictoriaMetrics requests by reason; each starts or extends the backoff",
     ("reason",)),
    ("exporter_victoriametrics_dropped_points", "counter",
     "Points of VictoriaMetrics answers dropped: outside the window asked or closer than a step",
     ()),
)


class ProcessPart:
    """prometheus_client's process and platform metrics, rendered once per tick for all sets."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)

    def render(self) -> bytes:
        return generate_latest(self._registry)


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
        # The one object a scrape reads, replaced as a whole: (plain chunks, gzip chunks). The
        # chunks are sent back to back; the big data part is never copied into a joined body.
        self.chunks: tuple[tuple[bytes, ...], tuple[bytes, ...]] = ((), ())

    def failed(self, reason: str) -> None:
        """Count a refresh that failed for ``reason``; the last good data part stays."""
        self.refresh_errors += 1
        self.refresh_failures[reason] = self.refresh_failures.get(reason, 0) + 1
        self.refresh_errors_last_ok = False

    @property
    def body(self) -> tuple[bytes, bytes]:
        """The (plain, gzip) bodies as whole bytes (tests and tools; scrapes use ``chunks``)."""
        plain, compressed = self.chunks
        return b"".join(plain), b"".join(compressed)

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

    def self_families(self) -> list[Metric]:
        """Return the set's self-observability families (SELF_FAMILIES, with its name)."""
        info = dict(self.metric_set.info_labels())  # names and values from the one call
        samples = self._self_samples(info)
        families: list[Metric] = []
        for suffix, kind, documentation, labels in SELF_FAMILIES:
            if suffix not in samples:  # a family this exporter does not have (no enrichment)
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
        """(label values, value) of each self family, by SELF_FAMILIES suffix (``info``: the
        set's extra info labels)."""
        reasons: dict[str, int] = {}
        if self.run is not None:
            for source in (self.run.skipped, self.metric_set.skipped()):
                for reason, count in source.items():
                    reasons[reason] = reasons.get(reason, 0) + int(count)
        up = self.run is not None and self.refresh_errors_last_ok
        http_errors = sorted(dict(self.http_client_errors).items())  # the HTTP thread writes it
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
            "exporter_http_connections": [((), self.http_connections)],
            "exporter_http_client_errors": [((reason,), count) for reason, count in http_errors],
        }
        if self.prom.enabled:
            samples["exporter_victoriametrics_up"] = [((), 1.0 if self.prom.healthy else 0.0)]
            samples["exporter_victoriametrics_failures"] = [
                ((reason,), count)  # a copy: the client's worker threads add to it
                for reason, count in sorted(dict(self.prom.failure_reasons).items())]
            samples["exporter_victoriametrics_dropped_points"] = [((), self.prom.dropped_points)]
        return samples

    def publish(self, process: bytes) -> None:
        """Re-render the small self part and swap in the new plain chunks and gzip body."""
        plain = (*self._data, render_families(self.self_families()) + process)
        # One gzip member for the whole body: curl, wget and other single-member decoders stop
        # after the first member of a concatenation. ISA-L deflates a 2 MB body in ~1 ms.
        self.chunks = (plain, (gzip_member(plain),))

