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
        """Return the set's self-observability families."""
        name = self.metric_set.name
        families: list[Metric] = []
        up = GaugeMetricFamily(
            f"{name}_exporter_up", "1 while the exporter serves metrics from a readable file"
        )
        up.add_metric([], 1.0 if self.run is not None and self.refresh_errors_last_ok else 0.0)
        families.append(up)
        extra = dict(self.metric_set.info_labels())
        info = GaugeMetricFamily(
            f"{name}_exporter_info",
            "Exporter build information",
            labels=["version", *extra],
        )
        info.add_metric([VERSION, *extra.values()], 1.0)
        families.append(info)
        last = GaugeMetricFamily(
            f"{name}_exporter_last_refresh_timestamp_seconds",
            "Unix time of the last successful refresh (seconds)",
        )
        if self.last_refresh is not None:
            last.add_metric([], self.last_refresh)
        families.append(last)
        duration = GaugeMetricFamily(
            f"{name}_exporter_refresh_duration_seconds",
            "Duration of the last successful refresh: load, compute and render (seconds)",
        )
        if self.refresh_duration is not None:
            duration.add_metric([], self.refresh_duration)
        families.append(duration)
        errors = CounterMetricFamily(
            f"{name}_exporter_refresh_errors",
            "Results files or computations that failed (the last good metrics stay)",
        )
        errors.add_metric([], float(self.refresh_errors))
        families.append(errors)
        failures = CounterMetricFamily(
            f"{name}_exporter_refresh_failures",
            "Failed refreshes by reason: the directory or newest file could not be used",
            labels=["reason"],
        )
        for reason, count in sorted(self.refresh_failures.items()):
            failures.add_metric([reason], float(count))
        families.append(failures)
        skipped = GaugeMetricFamily(
            f"{name}_exporter_skipped_scenarios",
            "Scenarios (or their samples) left out of the last refresh, by reason",
            labels=["reason"],
        )
        reasons: dict[str, int] = {}
        if self.run is not None:
            for source in (self.run.skipped, self.metric_set.skipped()):
                for reason, count in source.items():
                    reasons[reason] = reasons.get(reason, 0) + int(count)
        for reason in sorted(reasons):
            skipped.add_metric([reason], float(reasons[reason]))
        families.append(skipped)
        duplicates = GaugeMetricFamily(
            f"{name}_duplicate_scenarios",
            "Scenario entries dropped because a later entry has the same name",
        )
        duplicates.add_metric([], float(self.run.duplicates if self.run is not None else 0))
        families.append(duplicates)
        total = GaugeMetricFamily(
            f"{name}_scenarios_total",
            "Scenario entries in the latest results file (including duplicates and skipped ones)",
        )
        total.add_metric([], float(self.scenarios_total))
        families.append(total)
        connections = GaugeMetricFamily(
            f"{name}_exporter_http_connections", "Open HTTP connections to this exporter's port"
        )
        connections.add_metric([], float(self.http_connections))
        families.append(connections)
        client_errors = CounterMetricFamily(
            f"{name}_exporter_http_client_errors",
            "HTTP connections closed for misbehaving or for lack of room, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(dict(self.http_client_errors).items()):
            client_errors.add_metric([reason], float(count))
        families.append(client_errors)
        if self.prom.enabled:
            vm = GaugeMetricFamily(
                f"{name}_exporter_victoriametrics_up",
                "1 while the last request to VictoriaMetrics succeeded",
            )
            vm.add_metric([], 1.0 if self.prom.healthy else 0.0)
            families.append(vm)
        return families

    def publish(self, process: bytes) -> None:
        """Re-render the small self part and swap in the new plain chunks and gzip body."""
        plain = (*self._data, render_families(self.self_families()) + process)
        # One gzip member for the whole body: curl, wget and other single-member decoders stop
        # after the first member of a concatenation. ISA-L deflates a 2 MB body in ~1 ms.
        self.chunks = (plain, (gzip_member(plain),))

