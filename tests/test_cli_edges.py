"""Edges of the command-line tools: numeric failures named, absurd numbers printed sanely,
grammar, help texts, and ``--version`` without the exporters extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from advisor_core import __version__
from advisor_core.cli.main import _parser, main


def _run(tmp_path: Path, watts: float, counts=(1, 2, 4, 8), idle: float = 10.0) -> Path:
    """A run of stream tests drawing ``watts`` x (0.1 + 0.1 x streams), with an idle baseline."""
    scenarios = [{"name": "Baseline (Idle)", "bitrate": "0k", "duration": 60,
                  "power": {"mean_watts": idle}}]
    for n in counts:
        scenarios.append({"name": f"{n} Streams @ 2500k", "bitrate": "2500k", "duration": 60,
                          "resolution": "1280x720", "fps": 30, "vmaf_score": 90,
                          "power": {"mean_watts": watts * (0.1 + 0.1 * n)}})
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": scenarios}))
    return path


def test_predict_names_a_numeric_fit_failure_not_missing_data(tmp_path, capsys):
    path = _run(tmp_path, 1e308)
    assert main(["predict", str(path), "--streams", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "to train on" not in err
    assert err.startswith("advisor: error: no power model for the run: power cannot "
                          "be fitted against the stream count")
    assert "the power values reach 9e+307 W" in err
    assert main(["report", str(path), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["power_model"] is None
    assert report["power_model_unavailable"].startswith("power cannot be fitted")
    assert main(["report", str(path)]) == 0
    assert "Power model: none (power cannot be fitted" in capsys.readouterr().out


def test_predict_without_pairs_still_says_there_is_nothing_to_train_on(tmp_path, capsys):
    path = _run(tmp_path, 10.0, counts=())
    assert main(["predict", str(path), "--streams", "3"]) == 2
    assert "no scenario of the run has a stream count and a mean power to train on" \
        in capsys.readouterr().err
    assert main(["report", str(path)]) == 0
    assert "Power model: none (no scenario with a stream count and a mean power)" \
        in capsys.readouterr().out


def test_absurd_watts_print_as_four_significant_digits(tmp_path, capsys):
    path = _run(tmp_path, 1e300)
    assert main(["predict", str(path), "--streams", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 streams: 4e+299 W" in out and "Over 3600 s: 4e+299 Wh" in out
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) < 160, out
    assert "VMAF 90.00, 1.125e+299 W/stream" in out
    assert "      1    2e+299         -" in out


@pytest.mark.parametrize(("watts", "counts", "why"), [
    (1e200, (1, 2, 4, 8), "the residual variance is outside the float range"),
    (20.0, (1, 2), "no residual degree of freedom")])
def test_a_missing_interval_is_explained(tmp_path, capsys, watts, counts, why):
    path = _run(tmp_path, watts, counts=counts)
    assert main(["predict", str(path), "--streams", "2", "--format", "json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["pi_low_watts"] is None and result["interval_unavailable"].startswith(why)
    assert f"no prediction interval: {why}" in captured.err


def test_one_stream_is_singular(tmp_path, capsys):
    path = _run(tmp_path, 20.0, counts=(1, 2, 4))
    assert main(["predict", str(path), "--streams", "1"]) == 0
    out = capsys.readouterr().out
    assert "\n1 stream: " in out and "1 streams" not in out
    assert "trained on 3 scenarios" in out
    assert main(["recommend", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 entries, 4 configurations evaluated, 0 duplicates" in out


def test_interval_wholly_below_the_idle_baseline_is_withdrawn_and_said(tmp_path, capsys):
    path = _run(tmp_path, 20.0, counts=(1, 1, 2, 2, 3, 3), idle=100.0)
    assert main(["predict", str(path), "--streams", "2", "--format", "json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["mean_power_watts"] == 100.0
    assert result["pi_low_watts"] is None and result["pi_high_watts"] is None
    below = result["floored"]["below_floor"]
    assert below["pi_low"] == pytest.approx(6.0) and below["pi_high"] == pytest.approx(6.0)
    assert "whole prediction interval" in captured.err and "no interval" in captured.err
    assert main(["report", str(path)]) == 0
    err = capsys.readouterr().err
    assert "at 1, 2, 3" in err and "whole prediction interval lies below the run's idle" in err


def test_the_command_positional_has_help():
    text = _parser().format_help()
    rest = text.partition("positional arguments:")[2]
    assert rest.split("\n")[1].split() == ["COMMAND", "the", "subcommand", "to", "run", "(one",
                                            "of", "those", "below)"], text


@pytest.mark.slow
@pytest.mark.parametrize(("entry", "prog"), [("all_exporters", "advisor-exporters"),
                                             ("cost", "advisor-cost-exporter")])
def test_exporters_version_works_without_the_extra(entry, prog):
    code = ("import sys; sys.modules['prometheus_client'] = None; sys.modules['h11'] = None\n"
            f"sys.argv = [{prog!r}, '--version']\n"
            f"from exporters._launch import {entry}\n"
            f"sys.exit({entry}())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{prog} {__version__}"


# -- Issue 24's review: the filtered run's floor, bounds on --streams, non-finite figures ------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "results" / \
    "test_results_20251229_125651.json"


def _strict_json(text: str) -> dict:
    """JSON as the standard defines it: Infinity and NaN are errors."""
    def refuse(name: str) -> None:
        raise AssertionError(f"non-JSON constant {name} in the output")

    return json.loads(text, parse_constant=refuse)


def test_a_filtered_prediction_keeps_the_runs_idle_baseline_as_its_floor(capsys):
    # The 2500k scenarios leave the 0k idle baseline (6.17 W) out of the training set; its
    # unfloored 95 % interval at 1 stream reaches down to 4.76 W.
    assert main(["predict", str(EXAMPLE), "--streams", "1", "--bitrate", "2500k",
                 "--format", "json"]) == 0
    captured = capsys.readouterr()
    result = _strict_json(captured.out)
    assert result["model"]["trained_on"] == 4
    assert result["pi_low_watts"] == 6.17
    assert result["floored"] == {"floor": "idle_baseline", "value": 6.17, "keys": ["pi_low"]}
    assert "the interval's lower bound was raised to the run's idle baseline (6.17 W)" \
        in captured.err


@pytest.mark.parametrize("streams", ["0", "-1", "1000001", str(10**400)])
def test_stream_counts_outside_1_to_the_maximum_are_one_line_errors(capsys, streams):
    assert main(["predict", str(EXAMPLE), "--streams", streams]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and len(err) < 200, err
    assert err.startswith("advisor: error: --streams must be a whole number from 1 to 1000000")
    assert "unexpected" not in err


def test_the_maximum_stream_count_is_answered(capsys):
    assert main(["predict", str(EXAMPLE), "--streams", "1000000", "--format", "json"]) == 0
    result = _strict_json(capsys.readouterr().out)
    assert result["mean_power_watts"] > 1e6 and result["extrapolated"] is True


def test_figures_beyond_the_float_range_are_null_with_a_reason(capsys):
    args = ["predict", str(EXAMPLE), "--streams", "8", "--cpu-cost", "1e308",
            "--gpu-cost", "1e308"]
    assert main([*args, "--format", "json"]) == 0
    captured = capsys.readouterr()
    result = _strict_json(captured.out)
    assert result["cost"] is None and result["compute_cost"] is None
    assert result["energy_cost"] == pytest.approx(result["energy_wh"] / 1000 * 0.12)
    assert result["unavailable"] == {"compute_cost": "beyond the float range",
                                     "cost": "beyond the float range"}
    assert "cost not computed: beyond the float range" in captured.err
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "inf" not in out and "cost - USD" in out


def test_a_mean_beyond_the_float_range_leaves_every_figure_null(tmp_path, capsys):
    # 1e304 W more per stream, continued to a million streams, passes the float range.
    path = _run(tmp_path, 1e305, counts=(1, 2, 3, 4))
    assert main(["predict", str(path), "--streams", "1000000", "--format", "json"]) == 0
    captured = capsys.readouterr()
    result = _strict_json(captured.out)
    assert result["mean_power_watts"] is None
    assert result["unavailable"]["mean_power_watts"].endswith("passes the float range")
    assert result["energy_wh"] is None and result["unavailable"]["energy_wh"] == "no mean power"
    assert result["compute_cost"] == 0.0


def test_json_output_refuses_a_non_finite_number(monkeypatch, capsys):
    import advisor_core.cli.main as cli

    def leaky(*args, **kwargs):
        return {"version": __version__, "figure": float("inf")}, []

    monkeypatch.setattr(cli, "run", leaky)
    assert main(["predict", str(EXAMPLE), "--streams", "1", "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Out of range float values" in captured.err


def test_the_report_table_marks_cut_values_and_the_warning_names_what_was_cut(capsys):
    assert main(["report", str(EXAMPLE)]) == 0
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines()
            if line[:7].strip().isdigit() and line.startswith("   ")}
    assert rows["1"].split()[:4] == ["1", "10.41", "6.17*", "15.83"]
    assert "*" not in rows["2"]
    assert "* cut at the run's idle baseline (6.17 W)" in captured.out
    assert "at 1 stream the interval's lower bound was raised to the run's idle baseline " \
           "(6.17 W): the model's interval reaches below it there" in captured.err
    assert "fitted curve" not in captured.err


def test_a_one_count_report_says_no_interval_rather_than_extrapolated(tmp_path, capsys):
    path = _run(tmp_path, 20.0, counts=(1, 1, 1))
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("no interval (one stream count measured)") == 15  # 2..16 streams
    assert "extrapolated" not in out and "may not hold" not in out


def test_a_cut_at_zero_is_not_said_twice(tmp_path, capsys):
    path = _run(tmp_path, 10.0, counts=(1, 2, 3), idle=0.0)
    path.write_text(path.read_text().replace('"Baseline (Idle)"', '"Warm-up"'))
    data = json.loads(path.read_text())
    for scenario, watts in zip(data["scenarios"][1:], (3.0, 1.0, 0.5)):
        scenario["power"]["mean_watts"] = watts
    data["scenarios"].append({**data["scenarios"][2], "name": "2 Streams @ 2500k (b)",
                              "power": {"mean_watts": 5.0}})
    path.write_text(json.dumps(data))
    assert main(["predict", str(path), "--streams", "3"]) == 0
    captured = capsys.readouterr()
    assert "raised to 0 W: " in captured.err and "0 W (0 W)" not in captured.err
    assert "0.00*.." in captured.out and "* cut at 0 W" in captured.out


def test_tiny_watts_print_with_significant_digits_and_no_interval_is_explained(tmp_path, capsys):
    path = _run(tmp_path, 1e-300, counts=(1, 2, 3, 4, 5))
    data = json.loads(path.read_text())
    for n, scenario in enumerate(data["scenarios"][1:], 1):  # off the line, not on it
        scenario["power"]["mean_watts"] *= 1 + 0.05 * (n % 3)
    data["scenarios"][0]["power"]["mean_watts"] = 0.0
    path.write_text(json.dumps(data))
    assert main(["predict", str(path), "--streams", "3"]) == 0
    captured = capsys.readouterr()
    assert "W, 95% prediction interval -..- W" in captured.out
    assert "0.00 W" not in captured.out and "e-301 W" in captured.out
    assert "no prediction interval" in captured.err
    assert main(["report", str(path)]) == 0
    captured = capsys.readouterr()
    assert "e-301" in captured.out and "no prediction interval" in captured.err
