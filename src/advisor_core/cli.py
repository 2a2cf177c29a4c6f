"""``advisor``: what to run and what it costs, from one benchmark run (docs/recommend.md).

Subcommands: ``recommend`` (rankings of like with like, best per ladder, Pareto fronts),
``predict`` (power of N streams with its interval, energy, cost, CO2), ``compare`` (two
configurations side by side), ``plot`` (PNG/SVG figures) and ``report`` (recommend plus the
power model's table). A table for people, ``--format json`` for scripts; bad input exits 2
with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from . import __version__
from .argtypes import positive_seconds, price
from .commands import InputError, compare, predict, recommend
from .decision import Prices, evaluate
from .power import PowerPredictor
from .reader import RunRecord, read_run
from .record import ScenarioRecord
from .regional_pricing import RegionalPricing, check_region

PREDICTION_STREAMS = range(1, 17)
CONFIDENCE_LEVEL = 0.95


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Exit 2 with a one-line message (no usage dump)."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="a test_results_*.json file")
    parser.add_argument("--analysis", type=Path,
                        help="its _analysis.csv (measured power for a basic-schema run)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    prices = parser.add_argument_group("pricing")
    prices.add_argument("--region", default="default",
                        help="electricity price and grid carbon region (default: default)")
    prices.add_argument("--energy-cost", type=price, default=0.0,
                        help="electricity price per kWh; 0 = the region's price")
    prices.add_argument("--cpu-cost", type=price, default=0.0,
                        help="price per CPU-core hour (measured cores, else one instance)")
    prices.add_argument("--gpu-cost", type=price, default=0.0,
                        help="price per GPU hour (when cores are not measured)")
    prices.add_argument("--currency", default="USD", help="currency of the prices")
    prices.add_argument("--pricing-config", type=Path,
                        help="JSON file with electricity_prices / co2_intensity per region")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="advisor", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"advisor-core {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, text in (("recommend", "rank configurations, best per ladder, Pareto front"),
                       ("report", "recommend plus the power model's table")):
        _common(commands.add_parser(name, help=text, description=text))
    pred = commands.add_parser("predict", help="predict the power of N streams")
    _common(pred)
    pred.add_argument("--streams", type=int, required=True, help="concurrent streams (>= 1)")
    pred.add_argument("--bitrate", help="train on scenarios of this bitrate (e.g. 2500k)")
    pred.add_argument("--resolution", help="train on scenarios of this resolution (WxH)")
    pred.add_argument("--encoder", help="train on scenarios of this encoder (type or name)")
    pred.add_argument("--duration", type=positive_seconds, default=3600.0,
                      help="seconds of running for energy, cost and CO2 (default 3600)")
    pred.add_argument("--confidence", type=float, default=CONFIDENCE_LEVEL,
                      help="prediction-interval level, in (0, 1) (default 0.95)")
    comp = commands.add_parser("compare", help="two configurations side by side")
    _common(comp)
    comp.add_argument("a", help="scenario name A")
    comp.add_argument("b", help="scenario name B")
    fig = commands.add_parser("plot", help="draw a figure (needs the 'plot' extra)")
    _common(fig)
    fig.add_argument("-o", "--output", type=Path, required=True, help="FILE.png or FILE.svg")
    fig.add_argument("--kind", choices=("power", "ranking", "pareto"), default="power")
    return parser


def _load(args: argparse.Namespace) -> RunRecord:
    """The run's records (with the analysis joined); InputError/ValueError."""
    run = read_run(args.results, analysis=False if args.analysis is None else args.analysis)
    if run.analysis_error is not None:
        raise run.analysis_error
    if args.analysis is not None and not run.analysis_matched:
        raise InputError(f"{args.analysis}: no row names a scenario of {args.results}")
    return run


def _prices(args: argparse.Namespace) -> Prices:
    check_region(args.region, args.pricing_config)
    pricing = RegionalPricing(args.region, args.pricing_config)
    return Prices.for_region(pricing, args.energy_cost, args.cpu_cost, args.gpu_cost,
                             args.currency)


def _power_model(scenarios: Sequence[ScenarioRecord]) -> Optional[dict[str, Any]]:
    model = PowerPredictor()
    if not model.fit(scenarios):
        return None
    info = model.get_model_info()
    rows = []
    for n in PREDICTION_STREAMS:
        interval = model.predict_interval(n, CONFIDENCE_LEVEL)
        rows.append({"streams": n, "watts": interval["mean"], "pi_low_watts": interval["pi_low"],
                     "pi_high_watts": interval["pi_high"],
                     "extrapolated": interval["extrapolated"]})
    return {"model_type": info["model_type"], "n_samples": info["n_samples"],
            "stream_range": list(info["stream_range"]), "confidence_level": CONFIDENCE_LEVEL,
            "predictions": rows}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The result of one parsed command as plain data (plot: where the figure went)."""
    loaded = _load(args)
    scenarios = loaded.scenarios
    prices = _prices(args)
    if args.command == "predict":
        if not 0 < args.confidence < 1:
            raise InputError(f"--confidence must be in (0, 1), got {args.confidence}")
        return predict(scenarios, args.streams, prices, args.duration, args.confidence,
                       args.bitrate, args.resolution, args.encoder)
    evaluations = evaluate(loaded, prices)
    if args.command == "compare":
        return compare(evaluations, prices, args.a, args.b)
    if args.command == "plot":
        try:
            from .plotting import PlotError, plot
        except ImportError:
            raise InputError("matplotlib is not installed; install the 'plot' extra: "
                             "pip install 'advisor-core[plot]'") from None
        try:
            plot(args.kind, args.output, scenarios, evaluations.items)
        except PlotError as exc:
            raise InputError(f"nothing to plot ({args.kind}): {exc}") from None
        return {"version": __version__, "kind": args.kind, "output": str(args.output)}
    result = recommend(evaluations, prices, loaded.entries)
    if args.command == "report":
        result["power_model"] = _power_model(scenarios)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``advisor`` command; return its exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    try:
        result = run(args)
    except ValueError as exc:  # InputError, unreadable files, a bad pricing config
        print(f"advisor: error: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        from .cli_tables import render

        sys.stdout.write(render(args.command, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
