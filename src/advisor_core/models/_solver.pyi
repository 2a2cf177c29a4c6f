"""Type stub of the compiled least-squares solver (see advisor_core.models.linalg for the public
API)."""

from typing import Any

def all_finite(x: Any) -> bool: ...
