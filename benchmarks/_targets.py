"""Timing targets: asserted on the machine CI is known to run on, reported elsewhere.

`.ci/run` runs on the project's own CI machine (2 cores, Debian), where the floors in these
benchmarks were measured. On shared runners of unknown speed (GitHub Actions), set
``ADVISOR_BENCH_TIMING=report``: a missed timing target is then a warning in pytest's summary,
not a failure. Correctness checks and memory targets are asserted everywhere.
"""

from __future__ import annotations

import os
import warnings


def timing_target(ok: bool, message: str) -> None:
    """Assert a timing target, or only report a miss where ADVISOR_BENCH_TIMING=report."""
    if ok:
        return
    if os.environ.get("ADVISOR_BENCH_TIMING", "assert") == "report":
        warnings.warn(f"timing target missed (reported, not asserted): {message}", stacklevel=2)
        return
    raise AssertionError(message)
