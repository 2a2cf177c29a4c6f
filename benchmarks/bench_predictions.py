"""Held-out accuracy and interval coverage of the power predictors on the repo's real runs.

Leave one scenario out, train on the rest, predict it: MAPE of the stream-count OLS line (the
textbook baseline), of ``PowerPredictor`` and of ``MultivariatePredictor``'s selected model;
pooled coverage and median width of the 95 % prediction intervals. Prints the table of
``benchmarks/README.md`` and asserts the targets. Run:
``python -m pytest benchmarks/bench_predictions.py --benchmark-only -s``.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from _loo import coverage, evaluate, median_width  # noqa: E402
from advisor_core.data.scenario import load_results  # noqa: E402
from conftest import (  # noqa: E402
    EXTENDED_RESULTS,
    REAL_ANALYSIS,
    REAL_RESULTS,
    join_analysis,
    read_analysis,
)


def test_held_out_real_scenarios(benchmark):
    models = ["linear", "poly2", "poly3"]  # the results exporter's candidates
    runs = {
        "15-scenario run + analysis CSV": join_analysis(load_results(REAL_RESULTS),
                                                        read_analysis(REAL_ANALYSIS)),
        "extended run (power_watts samples)": load_results(EXTENDED_RESULTS),
    }
    evaluations = benchmark.pedantic(
        lambda: [evaluate(name, s, models) for name, s in runs.items()], rounds=1, iterations=1)
    print(f"\nmodels {models}")
    print("| run | held out | MAPE OLS line | MAPE PowerPredictor | MAPE selected | selected |")
    print("| --- | --- | --- | --- | --- | --- |")
    for ev in evaluations:
        chosen = sorted({h.multi["model"] for h in ev.holdouts})
        print(f"| {ev.name} | {len(ev.holdouts)} | {ev.mape('ols'):.1f} % | "
              f"{ev.mape('power'):.1f} % | {ev.mape('multi'):.1f} % | {', '.join(chosen)} |")
        assert ev.mape("multi") <= 1.15 * ev.mape("ols") + 1.0
    base = median_width(evaluations, "ols")
    print("| interval | covered / given | median width | width / OLS |")
    print("| --- | --- | --- | --- |")
    for which in ("ols", "power", "multi"):
        held, given = coverage(evaluations, which)
        width = median_width(evaluations, which)
        print(f"| {which} | {held} / {given} ({100 * held / given:.0f} %) | {width:.2f} W | "
              f"{width / base:.2f} |")
        assert 0.85 <= held / given <= 1.0 and width <= 1.5 * base
