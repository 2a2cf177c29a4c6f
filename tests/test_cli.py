"""The `advisor report` command, run as a user would run it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from advisor_core.analysis import join_analysis, read_analysis
from advisor_core.cli import main
from advisor_core.modeling import PowerPredictor
from advisor_core.scenario import load_results

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "report"
RESULTS = EXAMPLES / "test_results_20251229_125651.json"
ANALYSIS = EXAMPLES / "test_results_20251229_125651_analysis.csv"


def _report(capsys, *args: str) -> dict:
    assert main(["report", str(RESULTS), "--analysis", str(ANALYSIS), "--format", "json",
                 *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_ranks_by_score(capsys):
    report = _report(capsys)
    assert report["scenarios"] == 15
    ranked = [row for row in report["ranking"] if row["rank"] is not None]
    assert [row["rank"] for row in ranked] == list(range(1, len(ranked) + 1))
    scores = [row["efficiency_score"] for row in ranked]
    assert scores == sorted(scores, reverse=True)
    # The idle baseline has no throughput, so it is unranked and listed last.
    assert report["ranking"][-1]["name"] == "Baseline (Idle)"
    assert report["ranking"][-1]["rank"] is None


def test_cost_and_co2_follow_the_region(capsys):
    report = _report(capsys, "--region", "eu-central-1")
    assert report["electricity_price_usd_per_kwh"] == pytest.approx(0.28)
    assert report["co2_intensity_g_per_kwh"] == pytest.approx(380.0)
    with open(ANALYSIS, newline="") as handle:
        measured = {row["name"]: float(row["mean_power_w"]) for row in csv.DictReader(handle)}
    for row in report["ranking"]:
        watts = measured[row["name"]]
        assert row["mean_power_watts"] == pytest.approx(watts)
        assert row["cost_per_hour_usd"] == pytest.approx(watts / 1000 * 0.28)
        assert row["co2_grams_per_hour"] == pytest.approx(watts / 1000 * 380.0)


def test_power_model_matches_the_published_predictions(capsys):
    report = _report(capsys)
    with open(ANALYSIS, newline="") as handle:
        published = {}
        for row in csv.DictReader(handle):
            if row["predicted_mean_power_w"]:
                streams = int(row["name"].split()[0])
                published[streams] = float(row["predicted_mean_power_w"])
    model = report["power_model"]
    assert model["model_type"] == "linear"
    by_streams = {p["streams"]: p for p in model["predictions"]}
    assert sorted(by_streams) == list(range(1, 17))
    for streams, watts in published.items():
        assert by_streams[streams]["watts"] == pytest.approx(watts, rel=1e-9)
    power = PowerPredictor()
    assert power.fit(join_analysis(load_results(RESULTS), read_analysis(ANALYSIS)))
    for p in model["predictions"]:
        expected = power.predict_interval(p["streams"])
        assert p["pi_low_watts"] == pytest.approx(expected["pi_low"], rel=1e-12)
        assert p["pi_high_watts"] == pytest.approx(expected["pi_high"], rel=1e-12)
        assert p["pi_low_watts"] <= p["watts"] <= p["pi_high_watts"]
        assert p["extrapolated"] is (p["streams"] > 8)


def test_ladders_get_their_best_configuration(capsys):
    report = _report(capsys)
    ladder = "1920x1080@30,1280x720@30,854x480@30"
    assert report["best_per_ladder"][ladder]["name"].startswith("Multi-resolution ladder")
    assert report["best_per_ladder"]["1280x720@30"] is not None


def test_table_output_is_readable(capsys):
    assert main(["report", str(RESULTS), "--analysis", str(ANALYSIS)]) == 0
    out = capsys.readouterr().out
    assert "Ranked configurations" in out
    assert "8 Streams @ 5000k" in out
    assert "Power model: linear" in out
    assert out.count("extrapolated: outside the trained range") == 8  # 9..16 streams


@pytest.mark.parametrize(
    "content, problem",
    [("{\"scenarios\": [", "malformed JSON"), ("[1, 2]", "top level"),
     ("{\"scenarios\": 3}", "'scenarios'")],
)
def test_bad_file_is_one_line_and_exit_2(tmp_path, content, problem):
    bad = tmp_path / "test_results_bad.json"
    bad.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "advisor_core.cli", "report", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert problem in lines[0] and str(bad) in lines[0]
    assert proc.stdout == ""


def test_missing_file_is_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_join_analysis_reads_the_csv_like_the_reference(tmp_path):
    rows = read_analysis(ANALYSIS)
    joined = join_analysis(load_results(RESULTS), rows)
    by_name = {s["name"]: s for s in joined}
    power = by_name["8 Streams @ 5000k"]["power"]
    assert power == {"mean_watts": 34.07, "total_energy_joules": pytest.approx(1.1355 * 3600)}
    assert by_name["8 Streams @ 5000k"]["container_usage"] == {"cpu_percent": 22.98}
    assert sum("power" in s for s in joined) == 15
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="cannot read analysis CSV"):
        read_analysis(bad)
    with pytest.raises(ValueError):
        read_analysis(tmp_path / "missing.csv")


def test_python_dash_m_advisor_core_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "advisor_core", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("advisor-core ")
