"""Text exposition format 0.0.4 and gzip: families in, bytes out.

A body served gzipped is one gzip member holding one deflate stream: the static part (data and
the self-metrics that change only with a refresh) is deflated once per change and ends on a
sync flush; each scrape appends its few fresh numbers as the stream's final block
(``gzip_tail``) and the trailer. curl, wget and every single-member decoder read it whole.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, Union

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

try:
    # ISA-L's deflate writes the same format four to five times faster than zlib (a multi-MB
    # body is most of a refresh's compression time); it releases the GIL like zlib.
    from isal import isal_zlib as _deflate
except ImportError:  # isal not installed (no wheel for the platform): the standard library's
    _deflate = zlib  # type: ignore[misc]

from .families import Family, TableFamily

#: zlib's level for the body served: the size gzip's default writes (the target is within 1.15x
#: of ``gzip.compress(body, 6)``).
GZIP_LEVEL = 6
#: A static part up to this size is deflated at GZIP_LEVEL during the refresh (a few ms); a larger
#: one is deflated fast first (ISA-L level 1, ~1.5x larger) and at GZIP_LEVEL by the refresh's
#: next tick, so a multi-MB body does not hold a refresh for ~100 ms.
COMPACT_INLINE_BYTES = 256 * 1024
_FAST_LEVEL = 1
#: ISA-L writes a block per ``compress`` call of a small input: chunks are grouped to this size.
_GROUP_BYTES = 64 * 1024
#: The gzip header of every body (RFC 1952): deflate, no name, mtime 0, no extra flags, OS unknown.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
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


class DeflatedPrefix(NamedTuple):
    """The static part of a body as the start of one gzip member: header and deflate blocks
    ending on a sync flush (not final), with the CRC-32 and length of the bytes they hold."""

    parts: tuple[bytes, ...]  # sent back to back: no joined copy beside them at the peak
    crc: int
    size: int

    @property
    def data(self) -> bytes:
        """The parts as one bytes object (tests and tools)."""
        return b"".join(self.parts)


def _grouped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` with runs of small ones joined up to _GROUP_BYTES (big ones pass as they are)."""
    group: list[bytes] = []
    size = 0
    for chunk in chunks:
        if len(chunk) >= _GROUP_BYTES and not group:
            yield chunk
            continue
        group.append(chunk)
        size += len(chunk)
        if size >= _GROUP_BYTES:
            yield b"".join(group)
            group, size = [], 0
    if group:
        yield b"".join(group)


def deflate_prefix(chunks: Sequence[bytes], compact: bool = True) -> DeflatedPrefix:
    """One deflate stream of ``chunks`` (bytes), sync-flushed so that more can follow.

    ``compact``: zlib at GZIP_LEVEL; otherwise ISA-L's fast level (zlib's where isal is
    missing). Chunk by chunk: no joined copy of a multi-MB body beside its chunks.
    """
    engine, level = (zlib, GZIP_LEVEL) if compact else (_deflate, _FAST_LEVEL)
    packer = engine.compressobj(level, engine.DEFLATED, -15)
    crc = size = 0

    def output() -> Iterator[bytes]:
        nonlocal crc, size
        yield _GZIP_HEADER
        for chunk in _grouped(chunks):
            yield packer.compress(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
        yield packer.flush(engine.Z_SYNC_FLUSH)

    # The compressor's small outputs joined into pieces of ~64 kB: a scrape hands the socket a
    # few pieces, not hundreds of small ones.
    parts = tuple(_grouped(output()))
    return DeflatedPrefix(parts, crc, size)


def gzip_tail(prefix: DeflatedPrefix, tail: bytes) -> bytes:
    """What ends the gzip member that ``prefix`` starts: ``tail`` deflated (final block), then
    the CRC-32 and length of the whole body (RFC 1952).

    The prefix ends on a byte boundary, so a fresh compressor continues the stream; it never
    refers back into the prefix. The small window and memory level keep it at ~30 kB and a
    few tens of microseconds for the ~2 kB tail of scrape-time numbers.
    """
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -12, 4)
    deflated = packer.compress(tail) + packer.flush()
    return deflated + struct.pack("<II", zlib.crc32(tail, prefix.crc),
                                  (prefix.size + len(tail)) & 0xFFFFFFFF)


def gzip_member(data: Union[bytes, Iterable[bytes]]) -> bytes:
    """One gzip member (mtime 0) of ``data``, bytes or chunks of it, at GZIP_LEVEL."""
    chunks = [data] if isinstance(data, bytes) else list(data)
    prefix = deflate_prefix(chunks)
    return prefix.data + gzip_tail(prefix, b"")
