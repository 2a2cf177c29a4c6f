"""Shared machinery of the exporters: settings, refresh thread, pre-rendered bodies, HTTP server.

Design (README difference 10): a scrape only copies pre-rendered bytes. One background refresh
thread polls the results directory, loads the latest file once, de-duplicates scenario names, runs
every metric set's ``compute`` and renders each set's families once. Every tick it also
re-renders the small self/process part, so the body served is ``data + self + process``, and
compresses that body into one gzip member (every decoder reads one member; curl and wget stop
after the first of several). The pair of bodies is swapped atomically as one tuple.
"""

from __future__ import annotations

import abc
import argparse
import html
import json
import logging
import math
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Metric, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.samples import Sample

try:
    # ISA-L's deflate writes the same gzip format four to five times faster than zlib at level 1
    # (a multi-MB body is most of a refresh's compression time); it releases the GIL like zlib.
    from isal import isal_zlib as _deflate
except ImportError:  # isal not installed (no wheel for the platform): the standard library's
    _deflate = zlib  # type: ignore[misc]

from advisor_core import __version__
from advisor_core.scenario import latest_results_file, read_results

from ._promql import PromClient
from ._render import label_block, render_rows

logger = logging.getLogger("exporters")

__all__ = [
    "VERSION",
    "ExporterState",
    "LabelSchema",
    "LabelSet",
    "MetricSet",
    "Refresher",
    "Run",
    "StopSignals",
    "TableFamily",
    "build_parser",
    "exporter_main",
    "make_run",
    "parse_settings",
    "render_families",
    "run_exporters",
]

VERSION = __version__

#: Even without a file change every set is recomputed this often (seconds), so slowly changing
#: inputs (grid carbon intensity, windows still being ingested) reach the metrics.
RECOMPUTE_SECONDS = 600.0
#: Deflate level 1: a third of level 6's time on multi-MB bodies, ~40 % larger (still >10x smaller
#: than plain text); the refresh budget matters more than a few hundred kB on the wire.
GZIP_LEVEL = 1
#: generate_latest writes the classic text format; newer clients' CONTENT_TYPE_LATEST names 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# ---------------------------------------------------------------------------------------------
# Data model shared with the metric sets
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def label_text(value: Any) -> str:
    """The label value of a scenario field in every exporter: text as it is, null or missing
    as "", a whole float as an integer ("2500", not "2500.0", so series join across
    exporters), any other value as Python prints it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class LabelSet:
    """One label set (e.g. a scenario's labels), escaped and encoded once for every family."""

    __slots__ = ("_names", "_values", "block")

    def __init__(self, labels: Mapping[str, str], block: Optional[bytes] = None) -> None:
        self._names = tuple(labels)
        self._values = tuple(labels.values())
        if block is None:
            text = _label_block(tuple(zip(self._names, self._values)))
            if text is None:
                raise ValueError(f"label names must match [a-zA-Z_][a-zA-Z0-9_]*: {list(labels)}")
            block = text.encode("utf-8")
        self.block = block

    @property
    def labels(self) -> dict[str, str]:
        """The label values by name (built on each access; rendering only needs ``block``)."""
        return dict(zip(self._names, self._values))


class LabelSchema:
    """Builds LabelSets of fixed label names: names checked and sorted once, values escaped."""

    def __init__(self, names: Sequence[str]) -> None:
        for name in names:
            if not _LEGACY_LABEL_NAME.match(name):
                raise ValueError(f"label name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        if len(set(names)) != len(names):
            raise ValueError(f"repeated label name in {list(names)}")
        self.names = tuple(names)
        # generate_latest sorts label names; positions of the values in that order
        self._order = tuple(sorted(range(len(names)), key=lambda i: names[i]))
        # The encoded names and quotes around the values, written once here:
        # {a="  ",b="  ",c="  "} (generate_latest's layout).
        ordered = [names[i] for i in self._order]
        texts = ([f'{{{ordered[0]}="', *(f'",{name}="' for name in ordered[1:]), '"}']
                 if names else [""])
        self._parts = tuple(text.encode("ascii") for text in texts)

    def __call__(self, values: Sequence[str]) -> LabelSet:
        """The LabelSet of ``values`` (one str per name, in the schema's order)."""
        if len(values) != len(self.names):
            raise ValueError(f"expected {len(self.names)} label values, got {len(values)}")
        labels = LabelSet.__new__(LabelSet)
        labels._names = self.names
        labels._values = tuple(values)
        labels.block = label_block(self._parts, self._order, values)
        return labels


class TableFamily:
    """A gauge or counter family kept as rows of (LabelSet, value).

    The per-scenario families hold tens of thousands of samples; this keeps two list slots per
    sample instead of a Sample namedtuple and renders them in compiled code. ``samples`` builds
    prometheus_client Samples on demand (generate_latest, the tests' oracle, reads them).
    """

    __slots__ = ("documentation", "keys", "name", "type", "values")

    def __init__(self, name: str, documentation: str, typ: str = "gauge") -> None:
        if typ not in ("gauge", "counter") or not _LEGACY_METRIC_NAME.match(name):
            raise ValueError(f"unsupported family {name!r} of type {typ!r}")
        self.name = name
        self.documentation = documentation
        self.type = typ
        self.keys: list[LabelSet] = []
        self.values: list[float] = []

    def add(self, labels: LabelSet, value: float) -> None:
        """Append one sample (value in the family's unit)."""
        self.keys.append(labels)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def samples(self) -> list[Sample]:
        """The rows as prometheus_client Samples (built on each access)."""
        name = self.name + "_total" if self.type == "counter" else self.name
        return [Sample(name, key.labels, value) for key, value in zip(self.keys, self.values)]

    def render(self, blocks: Optional[list[bytes]] = None) -> bytes:
        """HELP, TYPE and sample lines in the text format 0.0.4 (as generate_latest writes).

        ``blocks``: the rows' label blocks when the caller has listed them already.
        """
        name = self.name + "_total" if self.type == "counter" else self.name
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        head = f"# HELP {name} {doc}\n# TYPE {name} {self.type}\n".encode()
        if blocks is None:
            blocks = [key.block for key in self.keys]
        return render_rows(name.encode("ascii"), blocks, self.values, head)


Family = Union[Metric, TableFamily]


class _StaticCollector:
    """Collector yielding a fixed list of families (no describe: registration stays cheap)."""

    def __init__(self, families: Sequence[Family]) -> None:
        self._families = families

    def collect(self) -> Sequence[Family]:
        return self._families


def _generate_latest(families: Sequence[Family]) -> bytes:
    """prometheus_client's own rendering of ``families`` (the reference for render_families)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StaticCollector(families))  # type: ignore[arg-type]
    return generate_latest(registry)


_LEGACY_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LEGACY_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _label_block(items: tuple) -> Optional[str]:
    """Return '{a="x",b="y"}' (names sorted, values escaped), or None for non-legacy names."""
    if not items:
        return ""
    parts = []
    for key, value in sorted(items):
        if not _LEGACY_LABEL_NAME.match(key):
            return None
        parts.append(f'{key}="{_escape_label_value(value)}"')
    return "{" + ",".join(parts) + "}"


def render_chunks(families: Iterable[Family]) -> list[bytes]:
    """Render metric families in the text format 0.0.4: one UTF-8 bytes chunk per family.

    Byte-identical to prometheus_client's generate_latest (tests compare both): TableFamily
    rows (the per-scenario families, nearly all of a body) are written by compiled code, the
    few other samples by generate_latest itself.
    """
    return [metric.render() if isinstance(metric, TableFamily) else _generate_latest([metric])
            for metric in families]


def render_families(families: Iterable[Family]) -> bytes:
    """Render metric families in the text exposition format 0.0.4 (UTF-8 bytes)."""
    return b"".join(render_chunks(families))


def _gzip(data: Union[bytes, Iterable[bytes]]) -> bytes:
    """One gzip member (mtime 0) of ``data``, bytes or chunks of it."""
    packer = _deflate.compressobj(GZIP_LEVEL, _deflate.DEFLATED, 31)
    # Chunk by chunk: no joined copy of a multi-MB body beside its chunks at the memory peak.
    parts = [packer.compress(chunk) for chunk in ((data,) if isinstance(data, bytes) else data)]
    parts.append(packer.flush())
    return b"".join(parts)


class _ProcessPart:
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
        # The latest refresh attempt of this set succeeded (a bad newer file makes up 0).
        self.refresh_errors_last_ok = True
        # The rendered data part: plain chunks, one per family.
        self._data: tuple[bytes, ...] = ()
        # The one object a scrape reads, replaced as a whole: (plain chunks, gzip chunks). The
        # chunks are sent back to back; the big data part is never copied into a joined body.
        self.chunks: tuple[tuple[bytes, ...], tuple[bytes, ...]] = ((), ())

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
        self.chunks = (plain, (_gzip(plain),))


# ---------------------------------------------------------------------------------------------
# Refresh thread
# ---------------------------------------------------------------------------------------------


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
        self._process = _ProcessPart()
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


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

_INDEX = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/health">/health</a></p>
</body></html>
"""


def _accepts_gzip(header: Optional[str]) -> bool:
    """Return True when an Accept-Encoding header allows gzip (q > 0)."""
    if not header:
        return False
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() not in ("gzip", "*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        return quality > 0
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "advisor-exporter/" + VERSION

    def version_string(self) -> str:
        """Server header without the Python version."""
        return self.server_version
    timeout = 30  # idle keep-alive connections do not pin a thread forever

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Access log suppressed (scrapes every second would flood it)."""

    def _send(self, status: int, body: Sequence[bytes], content_type: str, head: bool,
              headers: Sequence[tuple[str, str]] = ()) -> None:
        # The head is written here rather than by send_header()/end_headers(), which would send
        # it on its own: it goes out with the body in one write.
        fields = [
            ("Server", self.version_string()),
            ("Date", self.date_time_string()),
            ("Content-Type", content_type),
            ("Content-Length", str(sum(len(chunk) for chunk in body))),
            *headers,
        ]
        head_bytes = "".join([
            f"{self.protocol_version} {status} {HTTPStatus(status).phrase}\r\n",
            *(f"{key}: {value}\r\n" for key, value in fields),
            "\r\n",
        ]).encode("latin-1")
        _send_all(self.connection, (head_bytes,) if head else (head_bytes, *body))

    def _serve(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            plain, compressed = self.server.state.chunks
            if _accepts_gzip(self.headers.get("Accept-Encoding")):
                self._send(200, compressed, CONTENT_TYPE, head,
                           (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")))
            else:
                self._send(200, plain, CONTENT_TYPE, head, (("Vary", "Accept-Encoding"),))
        elif path == "/health":
            if self.server.refresher.is_alive():
                self._send(200, (b"OK\n",), "text/plain; charset=utf-8", head)
            else:
                self._send(503, (b"refresh thread stopped\n",), "text/plain; charset=utf-8",
                           head)
        elif path == "/":
            self._send(200, (self.server.index,), "text/html; charset=utf-8", head)
        else:
            self._send(404, (b"Not Found\n",), "text/plain; charset=utf-8", head)

    def do_GET(self) -> None:
        """Serve /metrics, /health, / (GET)."""
        self._serve(head=False)

    def do_HEAD(self) -> None:
        """Serve /metrics, /health, / (HEAD: headers only)."""
        self._serve(head=True)


#: Buffers handed to one sendmsg call (Linux's IOV_MAX is 1024).
_MAX_BUFFERS = 512


def _send_all(sock: Any, buffers: Sequence[bytes]) -> None:
    """Write the buffers back to back: one gathering sendmsg per call where the OS has it.

    A scrape answer is the headers and a few dozen pre-rendered chunks; one system call for all
    of them instead of one per chunk.
    """
    if not hasattr(sock, "sendmsg"):  # Windows
        for buffer in buffers:
            sock.sendall(buffer)
        return
    pending = [memoryview(buffer) for buffer in buffers if buffer]
    while pending:
        sent = sock.sendmsg(pending[:_MAX_BUFFERS])
        while sent:
            size = len(pending[0])
            if sent < size:
                pending[0] = pending[0][sent:]
                break
            sent -= size
            pending.pop(0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: ExporterState, refresher: Refresher):
        self.state = state
        self.refresher = refresher
        title = html.escape(f"advisor-core {state.metric_set.name} exporter {VERSION}")
        self.index = _INDEX.format(title=title).encode()
        super().__init__(address, _Handler)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Exit with status 2 and a one-line message (no usage dump)."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} outside 0..65535")
    return value


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid price {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"price must be a finite number >= 0, got {text!r}")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"interval must be > 0 seconds, got {text!r}")
    return value


def _env(name: str, default: Any) -> Any:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _check_pricing_config(path: str) -> Optional[str]:
    """Return why a pricing config file is unusable, or None when it is valid."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        return f"cannot read pricing config {path}: {exc.strerror or exc}"
    except ValueError as exc:
        return f"pricing config {path} is not valid JSON: {exc}"
    if not isinstance(document, dict):
        return f"pricing config {path}: top level must be an object"
    for section in ("electricity_prices", "co2_intensity"):
        table = document.get(section, {})
        if not isinstance(table, dict):
            return f"pricing config {path}: {section} must be an object"
        for region, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0
            ):
                return f"pricing config {path}: {section}.{region} must be a number >= 0"
    return None


def build_parser(prog: str, sets: Sequence[type[MetricSet]], description: str) -> _Parser:
    """Build the command-line parser shared by all exporters (flags win over env vars)."""
    parser = _Parser(prog=prog, description=description,
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{prog} {VERSION}")
    parser.add_argument("--log-level", type=str.upper, default=_env("LOG_LEVEL", "INFO"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help="least severe log messages written to stderr (env LOG_LEVEL)")
    net = parser.add_argument_group("server")
    if len(sets) == 1:
        only = sets[0]
        env = f"{only.name.upper()}_EXPORTER_PORT"
        net.add_argument("--port", type=_port, default=_env(env, only.default_port),
                         help=f"TCP port to listen on (env {env})")
    else:
        for cls in sets:
            env = f"{cls.name.upper()}_EXPORTER_PORT"
            net.add_argument(f"--{cls.name}-port", type=_port,
                             default=_env(env, cls.default_port),
                             help=f"TCP port of the {cls.name} exporter (env {env})")
    net.add_argument("--listen-address", default="0.0.0.0",
                     help="address to bind (0.0.0.0 = all interfaces)")
    net.add_argument("--results-dir", default=_env("RESULTS_DIR", "./test_results"),
                     help="directory holding test_results_*.json files; must exist (env "
                          "RESULTS_DIR)")
    net.add_argument("--refresh-interval", type=_interval, default=2.0,
                     help="seconds between checks for a new or changed results file")
    net.add_argument("--prometheus-url", default=_env("PROMETHEUS_URL", None),
                     help="VictoriaMetrics/Prometheus base URL for enrichment, e.g. "
                          "http://victoriametrics:8428; unset = no queries (env PROMETHEUS_URL)")
    cost = parser.add_argument_group("pricing (used by the cost exporter)")
    cost.add_argument("--region", default=_env("REGION", "default"),
                      help="region for electricity price and grid carbon intensity (env REGION)")
    cost.add_argument("--energy-cost", type=_price, default=_env("ENERGY_COST_PER_KWH", 0.0),
                      help="electricity price per kWh; 0 = the region's price "
                           "(env ENERGY_COST_PER_KWH)")
    cost.add_argument("--cpu-cost", type=_price, default=_env("CPU_COST_PER_HOUR", 0.0),
                      help="price per CPU-core hour (env CPU_COST_PER_HOUR)")
    cost.add_argument("--gpu-cost", type=_price, default=_env("GPU_COST_PER_HOUR", 0.0),
                      help="price per GPU hour; reported in the pricing info only, load-aware "
                           "costs price GPU usage like CPU cores (env GPU_COST_PER_HOUR)")
    cost.add_argument("--currency", default=_env("CURRENCY", "USD"),
                      help="currency code used as label value (env CURRENCY)")
    cost.add_argument("--pricing-config", default=None,
                      help="JSON file with electricity_prices / co2_intensity per region; "
                           "must be readable and valid when given")
    cost.add_argument("--electricity-maps-token", default=_env("ELECTRICITY_MAPS_TOKEN", None),
                      help="Electricity Maps API token for live carbon intensity, fetched in "
                           "the refresh thread (env ELECTRICITY_MAPS_TOKEN)")
    cost.add_argument("--disable-load-aware", action="store_true",
                      help="do not query VictoriaMetrics for scenarios without samples")
    for cls in sets:
        add = getattr(cls, "add_arguments", None)
        if callable(add):
            add(parser)
    return parser


def parse_settings(
    prog: str,
    sets: Sequence[type[MetricSet]],
    argv: Optional[Sequence[str]] = None,
    description: str = "",
) -> argparse.Namespace:
    """Parse and validate flags/env; on a bad value exit 2 with one line, before any bind."""
    parser = build_parser(prog, sets, description)
    settings = parser.parse_args(argv)
    if not os.path.isdir(settings.results_dir):
        parser.error(f"results directory {settings.results_dir!r} does not exist")
    if settings.pricing_config is not None:
        problem = _check_pricing_config(settings.pricing_config)
        if problem:
            parser.error(problem)
    if len(sets) == 1:
        setattr(settings, f"{sets[0].name}_port", settings.port)
    else:
        settings.port = None
    settings.version = VERSION
    return settings


def port_of(settings: argparse.Namespace, metric_set: MetricSet) -> int:
    """Return the port a set listens on: ``<name>_port``, else ``port``, else its default."""
    for value in (getattr(settings, f"{metric_set.name}_port", None),
                  getattr(settings, "port", None)):
        if value is not None:
            return int(value)
    return metric_set.default_port


# ---------------------------------------------------------------------------------------------
# Process entry points
# ---------------------------------------------------------------------------------------------


class Exporters:
    """Running servers plus their refresh thread; ``stop()`` ends everything."""

    def __init__(self, servers: list[_Server], refresher: Refresher, prom: PromClient) -> None:
        self.servers = servers
        self.refresher = refresher
        self.prom = prom
        self._threads: list[threading.Thread] = []

    @property
    def ports(self) -> dict[str, int]:
        """Bound port of each set, by set name."""
        return {s.state.metric_set.name: s.server_address[1] for s in self.servers}

    def start(self) -> None:
        """Run the first refresh synchronously, then start the refresh thread and servers."""
        self.refresher.tick()
        self.refresher.start()
        for server in self.servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                      name=f"http-{server.state.metric_set.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop serving and refreshing (returns within a fraction of a second)."""
        self.refresher.stop()
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.refresher.join(timeout=0.3)
        self.prom.close()


def start_exporters(metric_sets: Sequence[MetricSet], settings: argparse.Namespace) -> Exporters:
    """Bind every set's port, then start one refresh thread and one server thread per set."""
    prom = PromClient(getattr(settings, "prometheus_url", None))
    states = [ExporterState(metric_set, prom) for metric_set in metric_sets]
    refresher = Refresher(states, Path(settings.results_dir), settings.refresh_interval, prom)
    servers: list[_Server] = []
    try:
        for state in states:
            address = (settings.listen_address, port_of(settings, state.metric_set))
            servers.append(_Server(address, state, refresher))
    except OSError:
        for server in servers:
            server.server_close()
        raise
    exporters = Exporters(servers, refresher, prom)
    exporters.start()
    return exporters


def _no_op_handler(signum: int, frame: Any) -> None:
    """Python-level half of a signal that StopSignals receives through its socket."""


class StopSignals:
    """Context manager: SIGTERM/SIGINT become bytes on a socket that ``wait()`` reads.

    Python runs a signal handler in the main thread between two bytecodes, also while that
    thread holds a lock; a handler that sets a ``threading.Event`` deadlocks when it interrupts
    the ``Event.wait`` holding the event's lock (a hung SIGTERM in CI). Here the interpreter's
    C-level handler writes the signal number to a socket (``signal.set_wakeup_fd``), the Python
    handler does nothing, and no lock is taken. A signal that arrives before ``wait()`` waits
    in the socket. Main thread only.
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signals = frozenset(int(s) for s in signals)
        self._reader: Optional[socket.socket] = None
        self._writer: Optional[socket.socket] = None
        self._previous_fd = -1
        self._previous_handlers: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in self.signals:
            self._previous_handlers[signum] = signal.signal(signum, _no_op_handler)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()
        signal.set_wakeup_fd(self._previous_fd)
        for sock in (self._reader, self._writer):
            if sock is not None:
                sock.close()
        self._reader = self._writer = None

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Block until one of the signals arrives; return its number, or None after timeout (s)."""
        if self._reader is None:
            raise RuntimeError("StopSignals.wait() outside its with block")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._reader], [], [], remaining)
            if not ready:
                return None
            try:
                received = self._reader.recv(256)
            except BlockingIOError:
                continue
            if not received:  # the writer is gone (closed elsewhere): nothing can arrive
                return None
            # Other signals with Python handlers write their numbers to the same socket.
            for signum in received:
                if signum in self.signals:
                    return signum


def run_exporters(metric_sets: Sequence[MetricSet], settings: argparse.Namespace) -> int:
    """Serve the given sets until SIGTERM/SIGINT; return the process exit status."""
    # Handlers go in before the ports are bound: a SIGTERM during start-up stops the process
    # cleanly once it is up instead of killing it half-started.
    with StopSignals() as stop_signals:
        try:
            exporters = start_exporters(metric_sets, settings)
        except OSError as exc:
            print(f"cannot listen on {settings.listen_address}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        for name, port in exporters.ports.items():
            logger.info("%s exporter listening on %s:%d", name, settings.listen_address, port)
        stop_signals.wait()
        exporters.stop()
    logger.info("stopped")
    return 0


#: glibc mallopt parameters: M_MMAP_THRESHOLD and M_ARENA_MAX.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8


def tune_malloc() -> bool:
    """Make glibc return big buffers to the OS on free; False where that is not glibc.

    Bodies are rendered in chunks of a few hundred kB. glibc raises its mmap threshold after
    freeing such a chunk, so later ones come from the heap and their pages stay resident after
    the next refresh frees them; a fixed 128 kB threshold keeps every body chunk in its own
    mapping (the results exporter's peak drops by ~6 MB). Two arenas instead of eight per core
    stop the refresh, model and HTTP threads from each pinning their own freed memory.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, 128 * 1024) == 1
    return mallopt(_M_ARENA_MAX, 2) == 1 and ok


def exporter_main(
    factories: Sequence[Callable[[argparse.Namespace], MetricSet]],
    prog: str,
    argv: Optional[Sequence[str]] = None,
    description: str = "",
) -> int:
    """Parse flags for the given MetricSet classes, build them and serve until stopped."""
    tune_malloc()
    classes = [f for f in factories if isinstance(f, type)]
    settings = parse_settings(prog, classes, argv, description)
    logging.basicConfig(level=getattr(logging, settings.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        metric_sets = [factory(settings) for factory in factories]
    except ValueError as exc:  # a setting only the set itself can judge
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return run_exporters(metric_sets, settings)
