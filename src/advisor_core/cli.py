"""`advisor report`: rank the configurations of one benchmark run, for people and scripts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from . import __version__
from .analysis import join_analysis, read_analysis
from .cost import scenario_power
from .modeling import PowerPredictor
from .recommender import TranscodingRecommender
from .regional_pricing import RegionalPricing, get_available_regions
from .scenario import as_number, load_results, output_ladder

PREDICTION_STREAMS = range(1, 17)
CONFIDENCE_LEVEL = 0.95
HOURS_PER_MONTH = 720.0


def _with_power(scenarios: list[dict]) -> list[dict]:
    """Give scenarios the ``power`` summary (W, J) the library reads in every schema."""
    result = []
    for scenario in scenarios:
        if isinstance(scenario, dict) and not isinstance(scenario.get("power"), dict):
            power = scenario_power(scenario)
            if power is not None:
                scenario = {**scenario, "power": power}
        result.append(scenario)
    return result


def _mean_watts(scenario: dict) -> Optional[float]:
    power = scenario.get("power")
    return as_number(power.get("mean_watts")) if isinstance(power, dict) else None


def build_report(scenarios: list[dict], region: str) -> dict[str, Any]:
    """Return the report as plain data: ranking, best per ladder and the power model."""
    pricing = RegionalPricing(region)
    price = pricing.get_electricity_price()
    intensity = pricing.get_co2_intensity()
    recommender = TranscodingRecommender()

    ranked = []
    for item in recommender.analyze_and_rank(scenarios):
        watts = _mean_watts(item)
        ranked.append({
            "rank": item.get("efficiency_rank"),
            "name": item.get("name"),
            "efficiency_score": item.get("efficiency_score"),
            "output_ladder": output_ladder(item),
            "mean_power_watts": watts,
            "cost_per_hour_usd": watts / 1000.0 * price if watts is not None else None,
            "co2_grams_per_hour": watts / 1000.0 * intensity if watts is not None else None,
        })

    best_per_ladder = {}
    for ladder, best in recommender.get_best_per_ladder(scenarios).items():
        best_per_ladder[ladder] = None if best is None else {
            "name": best.get("name"),
            "efficiency_score": best.get("efficiency_score"),
        }

    return {
        "version": __version__,
        "region": region,
        "electricity_price_usd_per_kwh": price,
        "co2_intensity_g_per_kwh": intensity,
        "scenarios": len(scenarios),
        "ranking": ranked,
        "best_per_ladder": best_per_ladder,
        "power_model": _power_model(scenarios),
    }


def _power_model(scenarios: list[dict]) -> Optional[dict[str, Any]]:
    predictor = PowerPredictor()
    if not predictor.fit(scenarios):
        return None
    info = predictor.get_model_info()
    predictions = []
    for n in PREDICTION_STREAMS:
        interval = predictor.predict_interval(n, CONFIDENCE_LEVEL)
        predictions.append({
            "streams": n,
            "watts": interval["mean"],
            "pi_low_watts": interval["pi_low"],
            "pi_high_watts": interval["pi_high"],
            "extrapolated": interval["extrapolated"],
        })
    return {
        "model_type": info["model_type"],
        "n_samples": info["n_samples"],
        "stream_range": list(info["stream_range"]),
        "confidence_level": CONFIDENCE_LEVEL,
        "predictions": predictions,
    }


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(report: dict[str, Any]) -> str:
    """Return the report as aligned plain-text tables."""
    lines = [
        f"advisor-core {report['version']} report: {report['scenarios']} scenarios, "
        f"region {report['region']} ({report['electricity_price_usd_per_kwh']:.4g} USD/kWh, "
        f"{report['co2_intensity_g_per_kwh']:.4g} gCO2/kWh)",
        "",
        "Ranked configurations",
        f"{'rank':>4}  {'scenario':<54} {'score':>12} {'power W':>9} {'USD/h':>10} {'gCO2/h':>9}",
    ]
    for row in report["ranking"]:
        lines.append(
            f"{_fmt(row['rank'], 'd'):>4}  {str(row['name'])[:54]:<54} "
            f"{_fmt(row['efficiency_score'], '.6g'):>12} {_fmt(row['mean_power_watts'], '.2f'):>9} "
            f"{_fmt(row['cost_per_hour_usd'], '.5f'):>10} "
            f"{_fmt(row['co2_grams_per_hour'], '.2f'):>9}"
        )
    lines += ["", "Best configuration per output ladder"]
    for ladder, best in report["best_per_ladder"].items():
        text = "-" if best is None else f"{best['name']} (score {best['efficiency_score']:.6g})"
        lines.append(f"  {ladder}: {text}")
    model = report["power_model"]
    lines.append("")
    if model is None:
        lines.append("Power model: not enough scenarios with power and a stream count")
    else:
        lo, hi = model["stream_range"]
        lines.append(
            f"Power model: {model['model_type']} in streams, {model['n_samples']} samples, "
            f"trained on {lo}..{hi} streams; {model['confidence_level']:.0%} prediction "
            "interval for one new measurement"
        )
        lines.append(f"{'streams':>7} {'watts':>9} {'low':>9} {'high':>9}")
        for p in model["predictions"]:
            lines.append(
                f"{p['streams']:>7} {_fmt(p['watts'], '.2f'):>9} "
                f"{_fmt(p['pi_low_watts'], '.2f'):>9} {_fmt(p['pi_high_watts'], '.2f'):>9}"
                + ("  extrapolated: outside the trained range" if p["extrapolated"] else "")
            )
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="advisor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"advisor-core {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="rank the configurations of a results file")
    report.add_argument("results", type=Path, help="a test_results_*.json file")
    report.add_argument("--analysis", type=Path, help="its _analysis.csv (measured power)")
    report.add_argument("--region", default="default", choices=get_available_regions(),
                        help="electricity price and grid carbon region (default: default)")
    report.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``advisor`` command; return its exit code."""
    args = _parser().parse_args(argv)
    try:
        scenarios = load_results(args.results)
        if args.analysis is not None:
            scenarios = join_analysis(scenarios, read_analysis(args.analysis))
        scenarios = _with_power(scenarios)
    except ValueError as exc:
        print(f"advisor: error: {exc}", file=sys.stderr)
        return 2
    report = build_report(scenarios, args.region)
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(render_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
