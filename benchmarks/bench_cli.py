"""``advisor`` subcommands on the 240-entry extended run: each answers within 0.5 s.

Measured in process (``advisor_core.cli.main``, output to a buffer), medians of repeated runs
after one warm-up call, so the figure is the command's work, not the interpreter's start-up
(``python -c pass`` is measured beside it as the fixed cost a shell user adds).
"""

from __future__ import annotations

import contextlib
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _targets import timing_target
from advisor_core.cli.main import main

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
EXTENDED = DATA / "test_results_20240115_103000.json"
TARGET_SECONDS = 0.5
ROUNDS = 7

COMMANDS = {
    "recommend": ["recommend", str(EXTENDED)],
    "report": ["report", str(EXTENDED)],
    "predict": ["predict", str(EXTENDED), "--streams", "6"],
    "compare": ["compare", str(EXTENDED), "2 streams @ 2500k", "4 streams @ 5000k"],
    "plot-power": ["plot", str(EXTENDED), "--kind", "power"],
    "plot-pareto": ["plot", str(EXTENDED), "--kind", "pareto"],
}


def _once(argv: list[str]) -> float:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    elapsed = time.perf_counter() - start
    assert status == 0, out.getvalue()
    return elapsed


@pytest.mark.parametrize("name", list(COMMANDS))
def test_subcommand_answers_within_half_a_second(benchmark, name: str, tmp_path: Path) -> None:
    argv = list(COMMANDS[name])
    if argv[0] == "plot":
        argv += ["-o", str(tmp_path / "figure.png")]
    _once(argv)  # warm-up: imports (matplotlib for plot) and caches
    benchmark.pedantic(_once, args=(argv,), rounds=ROUNDS, iterations=1)
    median = statistics.median(benchmark.stats.stats.data)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    startup = time.perf_counter() - start
    print(f"\nadvisor {name} on 240 entries: median {median * 1e3:.0f} ms "
          f"(target < {TARGET_SECONDS * 1e3:.0f} ms; interpreter start-up {startup * 1e3:.0f} ms)")
    timing_target(median < TARGET_SECONDS,
                  f"advisor {name} median {median * 1e3:.0f} ms >= {TARGET_SECONDS * 1e3:.0f} ms")
