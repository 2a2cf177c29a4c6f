"""Type stubs of the compiled text-format writer (exposition format 0.0.4)."""

def render_rows(
    name: bytes, blocks: list[bytes], values: list[float], head: bytes = b""
) -> bytes: ...
