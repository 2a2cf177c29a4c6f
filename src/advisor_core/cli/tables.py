"""Plain-text tables of the ``advisor`` subcommands' results (``advisor_core.cli.commands``)."""

from __future__ import annotations

from typing import Any, Optional

from advisor_core.cli.commands import floor_name

__all__ = ["render"]


#: From this magnitude on a number is printed as 4 significant digits (1.235e+06), not with
#: every digit of a fixed-point format (an absurd 1e300 W would print 300 of them).
_LARGE = 1e6
#: Below this magnitude a non-zero number is printed as 4 significant digits too (1e-300 W is
#: not 0.00 W).
_SMALL = 0.01
#: The mark of a value cut at its floor (raised to it, or an interval withdrawn below it).
_CUT = "*"


def _fmt(value: Optional[float], spec: str) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    return format(value, ".4g" if magnitude >= _LARGE or 0 < magnitude < _SMALL else spec)


def _cut_marks(floored: Optional[dict[str, Any]]) -> dict[str, str]:
    """The mark after each value of a prediction (mean, pi_low, pi_high): ``_CUT`` for the
    values its ``floored`` record cut, else a space."""
    marks = dict.fromkeys(("mean", "pi_low", "pi_high"), " ")
    if floored:
        for key in (*floored["keys"], *(floored.get("below_floor") or ())):
            if key in marks:
                marks[key] = _CUT
    return marks


def _cut_footnote(floored: Optional[dict[str, Any]]) -> list[str]:
    if not floored:
        return []
    return [f"{_CUT} cut at {floor_name(floored)}: a value below it raised to it, an interval "
            "wholly below it withdrawn (-)"]


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") else f"{n} {noun}s"


def _head(result: dict[str, Any]) -> list[str]:
    p = result["prices"]
    co2 = "-" if p["co2_g_per_kwh"] is None else f"{p['co2_g_per_kwh']:.4g}"
    return [
        f"advisor-core {result['version']}: region {p['region']} "
        f"({p['energy_per_kwh']:.4g} {p['currency']}/kWh, {co2} gCO2/kWh, "
        f"{p['cpu_core_per_hour']:.4g} {p['currency']}/core-h, "
        f"{p['gpu_per_hour']:.4g} {p['currency']}/GPU-h)",
    ]


def _recommend(result: dict[str, Any]) -> list[str]:
    cur = result["prices"]["currency"]
    lines = _head(result)
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(result["skipped"].items()))
    lines.append(f"{_count(result['entries'], 'entry')}, "
                 f"{_count(result['evaluated'], 'configuration')} evaluated, "
                 f"{_count(result['duplicates'], 'duplicate')} (last entry wins)"
                 + (f"; left out: {skipped}" if skipped else ""))
    for group in result["rankings"]:
        lines += ["", f"Ranking by {group['algorithm']} ({group['unit']}, higher is better)",
                  f"{'rank':>4}  {'scenario':<54} {'score':>11} {'W':>8} {cur + '/h':>10} "
                  f"{cur + '/stream-h':>15} {'gCO2/h':>8} {'VMAF':>5}"]
        for e in group["entries"]:
            lines.append(
                f"{e['rank']:>4}  {str(e['name'])[:54]:<54} {_fmt(e['score'], '.5g'):>11} "
                f"{_fmt(e['mean_power_watts'], '.1f'):>8} {_fmt(e['cost_per_hour'], '.4g'):>10} "
                f"{_fmt(e['cost_per_stream_hour'], '.4g'):>15} "
                f"{_fmt(e['co2_grams_per_hour'], '.1f'):>8} {_fmt(e['vmaf'], '.1f'):>5}")
    if result["best_per_ladder"]:
        lines += ["", "Best configuration per output ladder (within one score unit)"]
        for entry in result["best_per_ladder"]:
            lines.append(f"  {entry['output_ladder']}: {' = '.join(entry['best'])} (score "
                         f"{_fmt(entry['score'], '.5g')} {entry['unit']}, "
                         f"{_count(entry['candidates'], 'candidate')})")
    energy, cost = result["pareto"]["energy"], result["pareto"]["cost"]
    lines.append("")
    if not energy:
        lines.append("Pareto front: no configuration has both a VMAF score and a mean power")
    else:
        lines.append("Pareto front, VMAF against power per stream (no other is better on both)")
        lines += [f"  {p['name']}: VMAF {_fmt(p['vmaf'], '.2f')}, "
                  f"{_fmt(p['power_per_stream_watts'], '.2f')} W/stream" for p in energy]
        lines.append(f"Pareto front, VMAF against {cur} per stream-hour")
        lines += [f"  {p['name']}: VMAF {_fmt(p['vmaf'], '.2f')}, "
                  f"{_fmt(p['cost_per_stream_hour'], '.4g')} {cur}/stream-h" for p in cost]
    return lines


def _model(model: Optional[dict[str, Any]], unavailable: Optional[str]) -> list[str]:
    if model is None:
        return ["", f"Power model: none ({unavailable})"]
    lo, hi = model["stream_range"]
    lines = ["", f"Power model: {model['model_type']} in streams, "
                 f"{_count(model['n_samples'], 'sample')}, "
                 f"trained on {lo}..{hi} streams; {model['confidence_level']:.0%} prediction "
                 "interval for one new measurement",
             f"{'streams':>7} {'watts':>9} {'low':>9} {'high':>9}"]
    extrapolated = floored = None
    for p in model["predictions"]:
        if p["no_interval"]:
            note = "  no interval (one stream count measured)"
        elif p["extrapolated"]:
            note, extrapolated = "  extrapolated: outside the trained range", True
        else:
            note = ""
        floored = floored or p["floored"]
        mark = _cut_marks(p["floored"])
        # The mark takes the place of the space after each value: the columns stay aligned.
        lines.append(f"{p['streams']:>7} {_fmt(p['watts'], '.2f'):>9}{mark['mean']}"
                     f"{_fmt(p['pi_low_watts'], '.2f'):>9}{mark['pi_low']}"
                     f"{_fmt(p['pi_high_watts'], '.2f'):>9}{mark['pi_high']}{note}".rstrip())
    if extrapolated:
        lines.append(f"Rows marked extrapolated lie outside {lo}..{hi} streams: the model "
                     "continues its fitted curve there and the interval may not hold.")
    return lines + _cut_footnote(floored)


def _predict(result: dict[str, Any]) -> list[str]:
    cur = result["prices"]["currency"]
    m = result["model"]
    mark = _cut_marks(result["floored"])
    config = ", ".join(f"{k} {v}" for k, v in result["configuration"].items() if v) or "all"
    lines = [
        *_head(result),
        f"Model: {m['type']} in streams, trained on {_count(m['trained_on'], 'scenario')} "
        f"({config}), "
        f"streams {m['stream_range'][0]}..{m['stream_range'][1]}",
        f"{_count(result['streams'], 'stream')}: {_fmt(result['mean_power_watts'], '.2f')}"
        f"{mark['mean'].strip()} W, {result['confidence_level']:.0%} prediction interval "
        f"{_fmt(result['pi_low_watts'], '.2f')}{mark['pi_low'].strip()}.."
        f"{_fmt(result['pi_high_watts'], '.2f')}{mark['pi_high'].strip()} W",
        f"Over {result['duration_seconds']:g} s: {_fmt(result['energy_wh'], '.2f')} Wh, "
        f"cost {_fmt(result['cost'], '.4g')} {cur} (energy {_fmt(result['energy_cost'], '.4g')}, "
        f"compute {_fmt(result['compute_cost'], '.4g')}), {_fmt(result['co2_grams'], '.1f')} gCO2",
        *_cut_footnote(result["floored"]),
    ]
    return lines  # the warning of an extrapolation goes to stderr (advisor_core.cli.main)


def _labels(result: dict[str, Any]) -> dict[str, str]:
    cur = result["prices"]["currency"]
    unit = result["a"]["unit"] if result["scores_comparable"] else "units differ"
    return {"mean_power_watts": "power (W)", "power_per_stream_watts": "power per stream (W)",
            "cost_per_hour": f"cost ({cur}/h)", "cost_per_stream_hour": f"cost ({cur}/stream-h)",
            "co2_grams_per_hour": "CO2 (g/h)", "vmaf": "VMAF (0-100)", "score": f"score ({unit})"}


def _scored(side: dict[str, Any], score: Optional[float]) -> str:
    if score is None:  # its algorithm's unit would tag a score it does not have
        return f"{side['name']} (no score)"
    return f"{side['name']} ({side['algorithm']}, score in {side['unit']})"


def _compare(result: dict[str, Any]) -> list[str]:
    a, b = result["a"], result["b"]
    labels = _labels(result)
    scores = next(row for row in result["rows"] if row["field"] == "score")
    width = max(len(text) for text in labels.values())
    lines = [*_head(result), f"A: {_scored(a, scores['a'])}", f"B: {_scored(b, scores['b'])}",
             f"{'':<{width}} {'A':>12} {'B':>12} {'B - A':>12} {'change':>8}"]
    for row in result["rows"]:
        change = "-" if row["percent"] is None else f"{row['percent']:+.1f}%"
        lines.append(f"{labels[row['field']]:<{width}} {_fmt(row['a'], '.5g'):>12} "
                     f"{_fmt(row['b'], '.5g'):>12} {_fmt(row['difference'], '+.4g'):>12} "
                     f"{change:>8}")
    if not result["scores_comparable"]:
        lines.append(f"Scores are not compared: {a['unit']} and {b['unit']} are different units.")
    return lines


def render(command: str, result: dict[str, Any]) -> str:
    """The table of one subcommand's result."""
    if command == "plot":
        lines = [f"wrote {result['kind']} plot to {result['output']}"]
    elif command == "predict":
        lines = _predict(result)
    elif command == "compare":
        lines = _compare(result)
    else:
        lines = _recommend(result)
        if command == "report":
            lines += _model(result["power_model"], result["power_model_unavailable"])
    return "\n".join(lines) + "\n"
