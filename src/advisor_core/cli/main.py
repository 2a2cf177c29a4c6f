"""``advisor``: what to run and what it costs, from one benchmark run (docs/recommend.md).

The parser, the loading of a run and the error and log policy of the command: every error is one
line on stderr with exit status 2; library log records reach the terminal only with --verbose;
the command's own warnings go to stderr, its results to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from advisor_core import __version__
from advisor_core.cli.commands import (
    MAX_STREAMS,
    InputError,
    compare,
    floor_notes,
    predict,
    recommend,
)
from advisor_core.data.analysis import analysis_path
from advisor_core.data.argtypes import positive_seconds, price
from advisor_core.data.reader import RunRecord, read_run
from advisor_core.data.record import ScenarioRecord
from advisor_core.economics.decision import Prices, evaluate
from advisor_core.economics.regional_pricing import RegionalPricing, check_region
from advisor_core.models.intervals import check_confidence_level
from advisor_core.models.power import PowerPredictor

_T = TypeVar("_T")

PREDICTION_STREAMS = range(1, 17)
CONFIDENCE_LEVEL = 0.95

DESCRIPTION = """\
What to run and what it costs, from one benchmark run (a test_results_*.json file).

The analysis CSV beside the results file (<name>_analysis.csv, measured power for a basic-schema
run) is joined in when it exists. A table for people, --format json for scripts. Bad input exits
with status 2 and one line on stderr. "advisor COMMAND --help" describes each command.
"""

#: The currency of the built-in and --pricing-config electricity prices.
REGION_CURRENCY = "USD"
#: What the plot subcommand needs that only the 'plot' extra installs.
PLOT_EXTRA = "matplotlib"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Exit 2 with a one-line message (no usage dump)."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, metavar="RESULTS",
                        help="the run: a test_results_*.json file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--analysis", type=Path, metavar="CSV",
                        help="the run's analysis CSV (measured power per scenario); default: "
                             "RESULTS' <name>_analysis.csv when it exists")
    source.add_argument("--no-analysis", action="store_true",
                        help="use the results file alone, not the analysis CSV beside it")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print the library's log messages (model fitting, dropped "
                             "entries) on stderr")


def _output_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="a table for people or a JSON document for scripts "
                             "(docs/recommend.md lists its fields; default: table)")


def _pricing(parser: argparse.ArgumentParser) -> None:
    prices = parser.add_argument_group("pricing")
    prices.add_argument("--region", default="default",
                        help="electricity price and grid carbon region (default: default)")
    prices.add_argument("--energy-cost", type=price, default=0.0, metavar="PRICE",
                        help="electricity price per kWh; 0 = the region's price (default 0)")
    prices.add_argument("--cpu-cost", type=price, default=0.0, metavar="PRICE",
                        help="price per CPU-core hour (measured cores, else one instance; "
                             "default 0)")
    prices.add_argument("--gpu-cost", type=price, default=0.0, metavar="PRICE",
                        help="price per GPU hour, when cores are not measured (default 0)")
    prices.add_argument("--currency", default="USD",
                        help="currency of the prices, shown with every cost (default: USD; another "
                             "needs --energy-cost, the regions' prices are in USD)")
    prices.add_argument("--pricing-config", type=Path, metavar="JSON",
                        help="JSON file with electricity_prices / co2_intensity per region")


#: Each subcommand's one-line help and its description.
_COMMANDS = {
    "recommend": ("rankings, best configuration per ladder, Pareto fronts",
                  "Rank the configurations (one ranking per score unit), name the best "
                  "configuration of each output ladder and the quality/energy and quality/cost "
                  "Pareto fronts, with power, cost and CO2 for the region."),
    "predict": ("power of N streams with its interval, energy, cost, CO2",
                "Predict the mean power of N concurrent streams with its prediction interval, "
                "from a model trained on the run's scenarios (of one configuration, with the "
                "filters), and the energy, cost and CO2 of running them for a duration."),
    "compare": ("two configurations side by side",
                "Two configurations side by side: their power, cost, CO2, VMAF and score, "
                "B - A and the change in percent (scores only in the same unit)."),
    "plot": ("a PNG or SVG figure (needs the 'plot' extra)",
             "Draw a figure of the run into a PNG or SVG file. Needs the 'plot' extra "
             "(matplotlib): pip install 'advisor-core[plot]'."),
    "report": ("recommend plus the power model's table",
               "Everything recommend prints, plus the stream-count power model's predictions "
               "for 1..16 streams with their prediction intervals."),
}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="advisor", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"advisor-core {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                     metavar="COMMAND",
                                     help="the subcommand to run (one of those below)")
    sub = {name: commands.add_parser(name, help=short, description=text)
           for name, (short, text) in _COMMANDS.items()}
    for name, command in sub.items():
        _inputs(command)
        if name != "plot":  # a figure has no format and no prices
            _output_format(command)
            _pricing(command)
    pred = sub["predict"]
    pred.add_argument("--streams", type=int, required=True, metavar="N",
                      help=f"concurrent streams, 1 to {MAX_STREAMS}")
    pred.add_argument("--bitrate", help="train on scenarios of this bitrate (e.g. 2500k)")
    pred.add_argument("--resolution", help="train on scenarios of this resolution (WxH)")
    pred.add_argument("--encoder", help="train on scenarios of this encoder (type or name)")
    pred.add_argument("--duration", type=positive_seconds, default=3600.0, metavar="SECONDS",
                      help="seconds of running for energy, cost and CO2 (default 3600)")
    pred.add_argument("--confidence", type=float, default=CONFIDENCE_LEVEL, metavar="LEVEL",
                      help="prediction-interval level, in (0, 1) (default 0.95)")
    sub["compare"].add_argument("a", metavar="A", help="scenario name A (quote names with spaces)")
    sub["compare"].add_argument("b", metavar="B", help="scenario name B, compared with A")
    fig = sub["plot"]
    fig.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                     help="the figure: FILE.png (1200 x 750 pixels) or FILE.svg")
    fig.add_argument("--kind", choices=("power", "ranking", "pareto"), default="power",
                     help="power: measured and fitted power against streams; ranking: the "
                          "scores per unit; pareto: VMAF against power per stream "
                          "(default: power)")
    return parser


def analysis_source(results: Path, given: Optional[Path], enabled: bool) -> Optional[Path]:
    """The analysis CSV to join: ``given`` (--analysis), else the one beside ``results`` when it
    exists (the exporters' rule, ``advisor_core.data.analysis.analysis_path``); None when not
    ``enabled`` (--no-analysis) or there is none."""
    if not enabled:
        return None
    if given is not None:
        return given
    beside = analysis_path(results)
    # lexists: a dangling link beside the run is a CSV that cannot be read (warned), not none.
    return beside if os.path.lexists(beside) else None


def analysis_coverage(csv: Path, matched: int, scenarios: int, rows: int,
                      given: bool) -> Optional[str]:
    """The warning for an analysis CSV of ``rows`` rows whose names match ``matched`` of the
    run's ``scenarios`` scenarios (None when it covers them all). One that matches none is an
    InputError when ``given`` (--analysis); the caller leaves a default one out, with the
    returned warning."""
    if matched == scenarios:
        return None
    if matched == 0:
        if given:
            raise InputError(f"{csv}: no row names a scenario of the run "
                             f"({rows} rows, {scenarios} scenarios)")
        return (f"{csv}: no row names a scenario of the run ({rows} rows, {scenarios} "
                "scenarios); not used (--analysis names another CSV)")
    return (f"{csv}: rows for {matched} of the run's {scenarios} scenarios; the other "
            f"{scenarios - matched} get no measured power from it")


def _read(reader: Callable[[Path], _T], path: Path) -> _T:
    """``reader(path)``; an OSError the reader lets through (a directory opened as a file)
    becomes an InputError naming the path."""
    try:
        return reader(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _load(args: argparse.Namespace) -> tuple[RunRecord, list[str]]:
    """The run's records (with the analysis CSV joined) and the warnings for the person."""
    csv = analysis_source(args.results, args.analysis, not args.no_analysis)
    run = _read(lambda path: read_run(path, analysis=False if csv is None else csv),
                args.results)
    if csv is None:
        return run, []
    warnings = []
    error = run.analysis_error
    if error is not None and error.reason != "bad_rows":
        if args.analysis is not None:
            raise error
        # The one beside the run, not asked for: left out with a warning, as the exporters do.
        return run, [f"{error}; the run is read without it"]
    if error is not None:  # rows with more fields than the header, left out
        warnings.append(str(error))
    warning = analysis_coverage(csv, run.analysis_matched, len(run.scenarios),
                                run.analysis_rows or 0, args.analysis is not None)
    if warning:
        warnings.append(warning)
    return run, warnings


def _prices(args: argparse.Namespace) -> Prices:
    if args.command == "plot":  # no figure shows a price
        return Prices(energy_per_kwh=0.0)
    if args.currency != REGION_CURRENCY and args.energy_cost == 0:
        raise InputError(f"--currency {args.currency} needs --energy-cost: the regions' "
                         f"electricity prices are in {REGION_CURRENCY}/kWh")
    check_region(args.region, args.pricing_config)
    pricing = RegionalPricing(args.region, args.pricing_config)
    return Prices.for_region(pricing, args.energy_cost, args.cpu_cost, args.gpu_cost,
                             args.currency)


def _power_model(scenarios: Sequence[ScenarioRecord]) -> tuple[Optional[dict[str, Any]],
                                                                 Optional[str]]:
    """The report's power model table, or None and why none could be trained."""
    model = PowerPredictor()
    if not model.fit(scenarios):
        return None, model.fit_failure
    info = model.get_model_info()
    rows = []
    for n in PREDICTION_STREAMS:
        interval = model.predict_interval(n, CONFIDENCE_LEVEL)
        rows.append({"streams": n, "watts": interval["mean"], "pi_low_watts": interval["pi_low"],
                     "pi_high_watts": interval["pi_high"],
                     "extrapolated": interval["extrapolated"],
                     "no_interval": interval.get("no_interval"),
                     "interval_unavailable": interval.get("interval_unavailable"),
                     "floored": interval.get("floored")})
    return {"model_type": info["model_type"], "n_samples": info["n_samples"],
            "stream_range": list(info["stream_range"]), "confidence_level": CONFIDENCE_LEVEL,
            "predictions": rows}, None


def _power_model_warnings(model: Optional[dict[str, Any]]) -> list[str]:
    """What a person must know of the power model's table: no slope, bounds raised to a floor."""
    if model is None:
        return []
    rows = model["predictions"]
    warnings = []
    if any(row["no_interval"] for row in rows):
        low = model["stream_range"][0]
        warnings.append(f"the run measured only one stream count ({low}): the model has no "
                        f"slope along streams, so other counts get the level measured at {low}, "
                        "with no interval")
    unavailable: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["interval_unavailable"]:
            unavailable.setdefault(row["interval_unavailable"], []).append(row)
    warnings += [f"at {_streams_list(at)} no prediction interval: {why}"
                 for why, at in unavailable.items()]
    # Rows cut alike are said once: "at 1, 2 streams the mean ... raised ...".
    cuts: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["floored"]:
            for note in floor_notes(row["floored"], bounds=False):
                cuts.setdefault(note, []).append(row)
    warnings += [f"at {_streams_list(at)} {note}" for note, at in cuts.items()]
    return warnings


def _streams_list(rows: list[dict[str, Any]]) -> str:
    """"1, 2 streams" / "1 stream": the stream counts of table rows."""
    counts = [row["streams"] for row in rows]
    noun = "stream" if counts == [1] else "streams"
    return f"{', '.join(str(n) for n in counts)} {noun}"


def _plot(args: argparse.Namespace, scenarios: Sequence[ScenarioRecord],
          evaluations: Any) -> dict[str, Any]:
    from advisor_core.cli.plotting import PlotError, plot

    try:
        plot(args.kind, args.output, scenarios, evaluations.items)
    except PlotError as exc:
        raise InputError(f"nothing to plot ({args.kind}): {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    return {"version": __version__, "kind": args.kind, "output": str(args.output)}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The result of one parsed command as plain data (plot: where the figure went) and the
    warnings for the person running it."""
    if args.command == "plot":
        _require_plot_extra()
    loaded, warnings = _load(args)
    scenarios = loaded.scenarios
    prices = _prices(args)
    if args.command == "predict":
        try:
            check_confidence_level(args.confidence)
        except ValueError as exc:
            raise InputError(f"--confidence: {exc}") from None
        result = predict(scenarios, args.streams, prices, args.duration, args.confidence,
                         args.bitrate, args.resolution, args.encoder)
        if result["warning"]:
            warnings.append(result["warning"])
        return result, warnings
    evaluations = evaluate(loaded, prices)
    if args.command == "compare":
        return compare(evaluations, prices, args.a, args.b), warnings
    if args.command == "plot":
        return _plot(args, scenarios, evaluations), warnings
    result = recommend(evaluations, prices, loaded.entries)
    if args.command == "report":
        result["power_model"], result["power_model_unavailable"] = _power_model(scenarios)
        warnings.extend(_power_model_warnings(result["power_model"]))
    return result, warnings


def _require_plot_extra() -> None:
    """InputError naming the extra when matplotlib cannot be imported."""
    try:
        importlib.import_module(PLOT_EXTRA)
    except ImportError:
        raise InputError(f"{PLOT_EXTRA} is not installed; install the 'plot' extra: "
                         "pip install 'advisor-core[plot]'") from None


@contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Library log records and Python warnings on stderr with ``verbose``, else nowhere (without
    a handler Python would print warnings and worse on stderr); restored afterwards."""
    root = logging.getLogger()
    handler: logging.Handler = logging.NullHandler()
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("advisor: %(name)s: %(message)s"))
    level = root.level
    root.addHandler(handler)
    if verbose:
        root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(level)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and isinstance(exc.filename, str):
        return f"{exc.filename}: {exc.strerror or exc}"
    text = " ".join(str(exc).split())
    if isinstance(exc, (ValueError, OSError)):
        return text
    return f"unexpected {type(exc).__name__}: {text} (--verbose shows where)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``advisor`` command; return its exit status (2 for any error)."""
    args = _parser().parse_args(argv)
    if sys.stdout is None:  # started with standard output closed (>&-)
        print("advisor: error: standard output is closed: nowhere to write the result",
              file=sys.stderr)
        return 2
    with _logging(args.verbose):
        try:
            result, warnings = run(args)
            for warning in warnings:
                print(f"advisor: warning: {warning}", file=sys.stderr)
            if getattr(args, "format", "table") == "json":
                # allow_nan=False: a NaN or infinity that slipped through is an error, never
                # a non-JSON "Infinity" in the output.
                text = json.dumps(result, indent=2, allow_nan=False) + "\n"
            else:
                from advisor_core.cli.tables import render

                text = render(args.command, result)
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped early (| head)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # else Python fails again flushing at exit
            print("advisor: error: standard output was closed before the result was written",
                  file=sys.stderr)
            return 2
        except Exception as exc:  # one line for a person; the traceback with --verbose
            if args.verbose:
                logging.getLogger("advisor_core.cli.main").exception("the command failed")
            print(f"advisor: error: {_one_line(exc)}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
