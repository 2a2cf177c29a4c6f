"""Text exposition format 0.0.4 and gzip: families in, bytes out."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Union

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

try:
    # ISA-L's deflate writes the same gzip format four to five times faster than zlib at level 1
    # (a multi-MB body is most of a refresh's compression time); it releases the GIL like zlib.
    from isal import isal_zlib as _deflate
except ImportError:  # isal not installed (no wheel for the platform): the standard library's
    _deflate = zlib  # type: ignore[misc]

from .families import Family, TableFamily

#: Deflate level 1: a third of level 6's time on multi-MB bodies, ~40 % larger (still >10x smaller
#: than plain text); the refresh budget matters more than a few hundred kB on the wire.
GZIP_LEVEL = 1
#: generate_latest writes the classic text format; newer clients' CONTENT_TYPE_LATEST names 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StaticCollector:
    """Collector yielding a fixed list of families (no describe: registration stays cheap)."""

    def __init__(self, families: Sequence[Family]) -> None:
        self._families = families

    def collect(self) -> Sequence[Family]:
        return self._families


def generate_latest_of(families: Sequence[Family]) -> bytes:
    """prometheus_client's own rendering of ``families`` (the reference for render_families)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StaticCollector(families))  # type: ignore[arg-type]
    return generate_latest(registry)



def render_chunks(families: Iterable[Family]) -> list[bytes]:
    """Render metric families in the text format 0.0.4: one UTF-8 bytes chunk per family.

    Byte-identical to prometheus_client's generate_latest (tests compare both): TableFamily
    rows (the per-scenario families, nearly all of a body) are written by compiled code, the
    few other samples by generate_latest itself.
    """
    return [metric.render() if isinstance(metric, TableFamily) else generate_latest_of([metric])
            for metric in families]


def render_families(families: Iterable[Family]) -> bytes:
    """Render metric families in the text exposition format 0.0.4 (UTF-8 bytes)."""
    return b"".join(render_chunks(families))


def gzip_member(data: Union[bytes, Iterable[bytes]]) -> bytes:
    """One gzip member (mtime 0) of ``data``, bytes or chunks of it."""
    packer = _deflate.compressobj(GZIP_LEVEL, _deflate.DEFLATED, 31)
    # Chunk by chunk: no joined copy of a multi-MB body beside its chunks at the memory peak.
    parts = [packer.compress(chunk) for chunk in ((data,) if isinstance(data, bytes) else data)]
    parts.append(packer.flush())
    return b"".join(parts)

