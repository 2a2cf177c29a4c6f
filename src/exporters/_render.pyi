"""Type stubs of the compiled text-format writer (exposition format 0.0.4)."""

from collections.abc import Sequence

def render_rows(
    name: bytes, blocks: list[bytes], values: list[float], head: bytes = b""
) -> bytes: ...
def label_block(
    parts: tuple[bytes, ...], order: tuple[int, ...], values: Sequence[str]
) -> bytes: ...
