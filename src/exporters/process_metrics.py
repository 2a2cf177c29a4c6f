"""Scrape-time text: prometheus_client's ``process_*`` families, and small families rendered
from prepared headers (docs/exporters.md §10).

A scrape appends these few numbers to a body rendered once per change. prometheus_client's
ProcessCollector and ``generate_latest`` take ~230 us per scrape (it parses /proc/self/limits
and builds objects for six numbers): more than the rest of a scrape. Here the families' headers
are prometheus_client's own, rendered once at start; a scrape reads /proc/self/stat and the
descriptor table and writes six lines (~30 us). The values are ProcessCollector's: the same
fields of the same files.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterable, Sequence

from prometheus_client import Metric, ProcessCollector
from prometheus_client.utils import floatToGoString

from .exposition import generate_latest_of

__all__ = ["ProcessMetrics", "family_header", "render_small"]

#: Rendered process text is reused for this long (seconds): the sets of one process scraped
#: together read /proc once.
REUSE_SECONDS = 1.0


def family_header(metric: Metric) -> tuple[bytes, str]:
    """(the ``# HELP`` and ``# TYPE`` lines of ``metric``, its samples' name), in
    prometheus_client's own words (a counter's samples end in ``_total``)."""
    empty = Metric(metric.name, metric.documentation, metric.type)
    header = generate_latest_of([empty])
    return header, header.split(b"\n", 2)[1].split(b" ")[2].decode()


def render_small(header: bytes, name: str,
                 samples: Iterable[tuple[Sequence[tuple[str, str]], float]]) -> bytes:
    """``header`` and one line per (labels, value) sample of ``name``, as generate_latest
    writes them; label values must be plain identifiers (reasons), not escaped here."""
    lines = [header]
    for labels, value in samples:
        text = ",".join(f'{key}="{val}"' for key, val in labels)
        lines.append(f"{name}{{{text}}} {floatToGoString(value)}\n".encode() if text
                     else f"{name} {floatToGoString(value)}\n".encode())
    return b"".join(lines)


class ProcessMetrics:
    """The ``process_*`` families of this process, rendered when a scrape asks."""

    def __init__(self) -> None:
        collected = list(ProcessCollector(registry=None).collect())
        # Each family's text up to its value: its header lines, its sample's name and a space.
        self._prefixes: dict[str, bytes] = {}
        for metric in collected:
            header, name = family_header(metric)
            self._prefixes[metric.name] = header + name.encode("ascii") + b" "
        # The start time does not change; ProcessCollector computed it from the boot time.
        self._start = next((sample.value for metric in collected for sample in metric.samples
                            if sample.name == "process_start_time_seconds"), None)
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page = resource.getpagesize()
        self._lock = threading.Lock()
        self._rendered = (-1.0, b"")

    def _values(self) -> dict[str, float]:
        """The current values by family name (none where /proc cannot be read)."""
        values: dict[str, float] = {}
        try:
            # os-level calls: a buffered file object costs a scrape five more system calls
            descriptor = os.open("/proc/self/stat", os.O_RDONLY | os.O_CLOEXEC)
            try:
                raw = os.read(descriptor, 4096)
            finally:
                os.close(descriptor)
            fields = raw.rsplit(b")", 1)[1].split()
            values["process_virtual_memory_bytes"] = float(fields[20])
            values["process_resident_memory_bytes"] = float(int(fields[21]) * self._page)
            values["process_cpu_seconds"] = (int(fields[11]) + int(fields[12])) / self._ticks
            values["process_open_fds"] = float(len(os.listdir("/proc/self/fd")))
        except (OSError, IndexError, ValueError):
            return {}
        if self._start is not None:
            values["process_start_time_seconds"] = self._start
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        values["process_max_fds"] = float(soft) if soft != resource.RLIM_INFINITY else \
            float("inf")
        return values

    def render(self) -> bytes:
        """The families' text with current values (reused for up to REUSE_SECONDS)."""
        now = time.monotonic()
        with self._lock:
            if now - self._rendered[0] < REUSE_SECONDS:
                return self._rendered[1]
            values = self._values()
            text = b"".join([prefix + floatToGoString(values[family]).encode("ascii") + b"\n"
                             for family, prefix in self._prefixes.items() if family in values])
            self._rendered = (now, text)
            return text
