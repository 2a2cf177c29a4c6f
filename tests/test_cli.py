"""The `advisor report` command, run as a user would run it."""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advisor_core.cli.main import _parser, main
from advisor_core.data.analysis import AnalysisError, read_analysis
from advisor_core.data.reader import read_run
from advisor_core.data.scenario import load_results
from advisor_core.models.modeling import PowerPredictor

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "results"
RESULTS = EXAMPLES / "test_results_20251229_125651.json"
ANALYSIS = EXAMPLES / "test_results_20251229_125651_analysis.csv"


DATA = Path(__file__).resolve().parent / "data"
EXTENDED = DATA / "test_results_20240115_103000.json"
SMALL = EXAMPLES / "test_results_20251229_121342.json"


def _json(capsys, *args: str) -> dict:
    assert main([*args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def _report(capsys, *args: str) -> dict:
    return _json(capsys, "report", str(RESULTS), "--analysis", str(ANALYSIS), *args)


def _measured() -> dict[str, float]:
    with open(ANALYSIS, newline="") as handle:
        return {row["name"]: float(row["mean_power_w"]) for row in csv.DictReader(handle)}


def test_rankings_never_mix_units(capsys):
    report = _report(capsys)
    assert (report["entries"], report["evaluated"], report["duplicates"]) == (15, 15, 0)
    assert report["skipped"] == {"no_score": 1}  # the idle baseline has no throughput
    units = [(g["algorithm"], g["unit"]) for g in report["rankings"]]
    assert units == [("throughput_per_watt", "Mbps/W"), ("pixels_per_joule", "pixels/J")]
    streams, ladders = report["rankings"]
    assert all(e["name"].split()[1] == "Streams" for e in streams["entries"])
    assert all(e["name"].startswith("Multi-resolution ladder") for e in ladders["entries"])
    for group in report["rankings"]:
        scores = [e["score"] for e in group["entries"]]
        assert scores == sorted(scores, reverse=True)
        assert [e["rank"] for e in group["entries"]] == list(range(1, len(scores) + 1))
    # "8 Streams @ 5000k": 8 x 5 Mbps / 34.07 W
    top = streams["entries"][0]
    assert top["name"] == "8 Streams @ 5000k"
    assert top["score"] == pytest.approx(40 / 34.07)


def test_cost_and_co2_follow_the_region_and_prices(capsys):
    report = _report(capsys, "--region", "eu-central-1", "--cpu-cost", "0.5")
    assert report["prices"]["energy_per_kwh"] == pytest.approx(0.28)
    assert report["prices"]["co2_g_per_kwh"] == pytest.approx(380.0)
    measured = _measured()
    with open(ANALYSIS, newline="") as handle:
        cpu = {row["name"]: float(row["container_cpu_pct"]) for row in csv.DictReader(handle)}
    for group in report["rankings"]:
        for row in group["entries"]:
            watts = measured[row["name"]]
            hourly = watts / 1000 * 0.28 + cpu[row["name"]] / 100 * 0.5
            assert row["mean_power_watts"] == pytest.approx(watts)
            assert row["cost_per_hour"] == pytest.approx(hourly)
            assert row["cost_per_stream_hour"] == pytest.approx(hourly / row["streams"])
            assert row["co2_grams_per_hour"] == pytest.approx(watts / 1000 * 380.0)


def test_energy_cost_flag_wins_over_the_region(capsys):
    report = _report(capsys, "--energy-cost", "1.5")
    row = report["rankings"][0]["entries"][0]
    assert row["cost_per_hour"] == pytest.approx(row["mean_power_watts"] / 1000 * 1.5)


def test_pricing_config_regions_are_accepted(capsys, tmp_path):
    config = tmp_path / "pricing.json"
    config.write_text('{"electricity_prices": {"mars": 2.0}, "co2_intensity": {"mars": 10}}')
    report = _report(capsys, "--region", "mars", "--pricing-config", str(config))
    assert report["prices"]["energy_per_kwh"] == 2.0
    assert report["prices"]["co2_g_per_kwh"] == 10.0


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
    assert power.fit(list(read_run(RESULTS, analysis=ANALYSIS).scenarios))
    for p in model["predictions"]:
        expected = power.predict_interval(p["streams"])
        assert p["pi_low_watts"] == pytest.approx(expected["pi_low"], rel=1e-12)
        assert p["pi_high_watts"] == pytest.approx(expected["pi_high"], rel=1e-12)
        assert p["pi_low_watts"] <= p["watts"] <= p["pi_high_watts"]
        assert p["extrapolated"] is (p["streams"] > 8)


def test_ladders_get_their_best_configuration(capsys):
    report = _report(capsys)
    best = {entry["output_ladder"]: entry for entry in report["best_per_ladder"]}
    ladder = best["1920x1080@30,1280x720@30,854x480@30"]
    assert ladder["unit"] == "pixels/J" and ladder["candidates"] == 2
    assert ladder["best"][0].startswith("Multi-resolution ladder")
    assert best["1280x720@30"]["best"] == ["8 Streams @ 5000k"]
    assert report["pareto"] == {"energy": [], "cost": []}  # no VMAF in this run


def test_table_output_is_readable(capsys):
    assert main(["report", str(RESULTS), "--analysis", str(ANALYSIS)]) == 0
    out = capsys.readouterr().out
    assert "Ranking by throughput_per_watt (Mbps/W, higher is better)" in out
    assert "Ranking by pixels_per_joule (pixels/J, higher is better)" in out
    assert "8 Streams @ 5000k" in out
    assert "Power model: linear" in out
    assert out.count("extrapolated: outside the trained range") == 8  # 9..16 streams
    assert "Rows marked extrapolated lie outside 1..8 streams" in out
    assert "Warning" not in out  # warnings go to stderr


def test_extended_run_counts_duplicates_and_skips_instead_of_printing_them(capsys):
    report = _json(capsys, "recommend", str(EXTENDED))
    assert report["entries"] == 240
    kept = len({s["name"] for s in load_results(EXTENDED)})
    assert report["duplicates"] == 240 - kept
    assert report["evaluated"] + report["skipped"]["no_power_data"] == kept
    names = [e["name"] for g in report["rankings"] for e in g["entries"]]
    assert len(names) == len(set(names))  # each configuration once
    front = report["pareto"]["energy"]
    assert front, "the extended run has VMAF scores"
    rated = [e for g in report["rankings"] for e in g["entries"] if e["vmaf"] is not None]
    for point in front:  # nobody beats a front member on both
        assert not any(o["vmaf"] >= point["vmaf"]
                       and o["power_per_stream_watts"] <= point["power_per_stream_watts"]
                       and (o["vmaf"], o["power_per_stream_watts"])
                       != (point["vmaf"], point["power_per_stream_watts"]) for o in rated)
    assert main(["recommend", str(EXTENDED)]) == 0
    table = capsys.readouterr().out
    assert "Pareto front, VMAF against power per stream" in table
    assert "no_power_data" in table and " - " not in table.split("Best configuration")[0][-2000:]


def test_predict_gives_interval_energy_cost_and_a_warning(capsys):
    result = _json(capsys, "predict", str(RESULTS), "--analysis", str(ANALYSIS), "--streams",
                   "12", "--duration", "1800", "--energy-cost", "0.3", "--cpu-cost", "0.5")
    power = PowerPredictor()
    assert power.fit(list(read_run(RESULTS, analysis=ANALYSIS).scenarios))
    expected = power.predict_interval(12)
    assert result["mean_power_watts"] == pytest.approx(expected["mean"])
    assert result["pi_low_watts"] == pytest.approx(expected["pi_low"])
    assert result["pi_high_watts"] == pytest.approx(expected["pi_high"])
    assert result["extrapolated"] is True and "outside the trained range 1..8" in result["warning"]
    assert result["energy_wh"] == pytest.approx(expected["mean"] / 2)
    assert result["cost"] == pytest.approx(expected["mean"] / 2 / 1000 * 0.3 + 0.5 / 2)
    inside = _json(capsys, "predict", str(RESULTS), "--analysis", str(ANALYSIS), "--streams", "4")
    assert inside["extrapolated"] is False and inside["warning"] is None


def test_predict_trains_on_the_configuration_asked_for(capsys):
    result = _json(capsys, "predict", str(RESULTS), "--analysis", str(ANALYSIS), "--streams",
                   "3", "--bitrate", "5M")
    assert result["model"]["trained_on"] == 4  # 1, 2, 4 and 8 streams @ 5000k
    five = [s for s in read_run(RESULTS, analysis=ANALYSIS).scenarios
            if s.name.endswith("Streams @ 5000k")]
    power = PowerPredictor()
    assert power.fit(five)
    assert result["mean_power_watts"] == pytest.approx(power.predict(3))


def test_compare_shows_differences_and_refuses_mixed_units(capsys):
    result = _json(capsys, "compare", str(RESULTS), "--analysis", str(ANALYSIS),
                   "4 Streams @ 2500k", "8 Streams @ 5000k")
    rows = {row["field"]: row for row in result["rows"]}
    measured = _measured()
    a, b = measured["4 Streams @ 2500k"], measured["8 Streams @ 5000k"]
    assert rows["mean_power_watts"]["difference"] == pytest.approx(b - a)
    assert rows["mean_power_watts"]["percent"] == pytest.approx((b / a - 1) * 100)
    assert rows["power_per_stream_watts"]["b"] == pytest.approx(b / 8)
    assert result["scores_comparable"] is True and rows["score"]["difference"] is not None
    mixed = _json(capsys, "compare", str(RESULTS), "--analysis", str(ANALYSIS),
                  "4 Streams @ 2500k", "Multi-resolution ladder test 1080p+720p+480p @ 5000k")
    assert mixed["scores_comparable"] is False
    assert {row["field"]: row for row in mixed["rows"]}["score"]["difference"] is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--streams", "0"], "--streams must be a whole number from 1 to"),
        (["--streams", "-3"], "--streams must be a whole number from 1 to"),
        (["--streams", "4", "--bitrate", "fast"], "not a bitrate"),
        (["--streams", "4", "--bitrate", "9999k"], "no scenario of the run matches"),
    ],
)
def test_predict_bad_input_exits_2(capsys, args, message):
    assert main(["predict", str(RESULTS), "--analysis", str(ANALYSIS), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_unknown_names_regions_and_analysis_exit_2(capsys, tmp_path):
    assert main(["compare", str(RESULTS), "--analysis", str(ANALYSIS), "4 Streams @ 2500",
                 "8 Streams @ 5000k"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean: '4 Streams @ 2500k'" in err
    assert main(["recommend", str(RESULTS), "--region", "atlantis"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'atlantis'" in err and "eu-central-1" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,mean_power_w\nsomething else,10\n")
    for analysis, message in ((empty, "no 'name' column"), (wrong, "no row names a scenario")):
        assert main(["recommend", str(RESULTS), "--analysis", str(analysis)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("kind", ["power", "ranking", "pareto"])
@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_writes_a_decodable_figure_of_the_right_size(tmp_path, capsys, kind, suffix):
    import xml.etree.ElementTree as ET

    import matplotlib.image

    source = ["--analysis", str(ANALYSIS)] if kind != "pareto" else []
    results = str(RESULTS) if kind != "pareto" else str(EXTENDED)
    output = tmp_path / f"figure{suffix}"
    assert main(["plot", results, *source, "-o", str(output), "--kind", kind]) == 0
    assert output.stat().st_size > 1000
    if suffix == ".png":
        image = matplotlib.image.imread(output)
        assert image.shape[:2] == (750, 1200)  # 8 x 5 in at 150 dpi
        assert image[..., :3].std() > 0.01  # something was drawn
    else:
        root = ET.parse(output).getroot()
        assert root.tag.endswith("svg")
        assert root.get("width") == "576pt" and root.get("height") == "360pt"  # 8 x 5 in


def test_plot_without_anything_to_draw_exits_2(tmp_path, capsys):
    output = tmp_path / "figure.png"
    assert main(["plot", str(RESULTS), "--analysis", str(ANALYSIS), "-o", str(output),
                 "--kind", "pareto"]) == 2
    assert "no configuration has both a VMAF score" in capsys.readouterr().err
    assert not output.exists()
    assert main(["plot", str(RESULTS), "-o", str(tmp_path / "figure.pdf")]) == 2


@pytest.mark.parametrize(
    "content, problem",
    [("{\"scenarios\": [", "malformed JSON"), ("[1, 2]", "top level"),
     ("{\"scenarios\": 3}", "'scenarios'")],
)
def test_bad_file_is_one_line_and_exit_2(tmp_path, content, problem):
    bad = tmp_path / "test_results_bad.json"
    bad.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "advisor_core.cli.main", "report", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert problem in lines[0] and str(bad) in lines[0]
    assert proc.stdout == ""


def test_missing_file_is_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_analysis_csv_joins_like_the_reference(tmp_path):
    rows, skipped, total = read_analysis(ANALYSIS)
    assert skipped == 0 and len(rows) == total == 15
    # Only the rows of the names asked for are kept (a CSV of other names costs nothing).
    assert list(read_analysis(ANALYSIS, names={"8 Streams @ 5000k", "x"}).rows) == [
        "8 Streams @ 5000k"]
    run = read_run(RESULTS, analysis=ANALYSIS)
    by_name = {s.name: s for s in run.scenarios}
    eight = by_name["8 Streams @ 5000k"]
    assert (eight.power_w, eight.energy_j) == (34.07, pytest.approx(1.1355 * 3600))
    assert eight.cpu_pct == 22.98
    assert sum(s.power_w is not None for s in run.scenarios) == 15
    assert run.analysis_matched == 15 and run.analysis_rows == 15
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(AnalysisError, match="not UTF-8") as caught:
        read_analysis(bad)
    assert caught.value.reason == "not_utf8"
    with pytest.raises(AnalysisError) as caught:
        read_analysis(tmp_path / "missing.csv")
    assert caught.value.reason == "vanished"


def test_python_dash_m_advisor_core_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "advisor_core", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("advisor-core ")


def test_json_documents_have_the_documented_fields(capsys):
    """The field sets docs/recommend.md §5 lists, exactly (scripts read them)."""
    entry = {"rank", "name", "score", "streams", "output_ladder", "mean_power_watts",
             "power_per_stream_watts", "cost_per_hour", "cost_per_stream_hour",
             "co2_grams_per_hour", "vmaf"}
    for command in ("recommend", "report"):
        result = _json(capsys, command, str(EXTENDED))
        top = {"version", "prices", "entries", "evaluated", "duplicates", "skipped", "rankings",
               "best_per_ladder", "pareto"} | (
                   {"power_model", "power_model_unavailable"} if command == "report" else set())
        assert set(result) == top
        assert set(result["prices"]) == {"region", "currency", "energy_per_kwh",
                                         "cpu_core_per_hour", "gpu_per_hour", "co2_g_per_kwh"}
        for group in result["rankings"]:
            assert set(group) == {"algorithm", "unit", "entries"}
            assert all(set(e) == entry for e in group["entries"])
        assert all(set(b) == {"output_ladder", "algorithm", "unit", "best", "score", "candidates"}
                   for b in result["best_per_ladder"])
        assert all(set(p) == {"name", "vmaf", "power_per_stream_watts"}
                   for p in result["pareto"]["energy"])
        assert all(set(p) == {"name", "vmaf", "cost_per_stream_hour"}
                   for p in result["pareto"]["cost"])
    predicted = _json(capsys, "predict", str(EXTENDED), "--streams", "3")
    assert set(predicted) == {"version", "streams", "configuration", "model", "confidence_level",
                              "mean_power_watts", "pi_low_watts", "pi_high_watts",
                              "extrapolated", "no_interval", "interval_unavailable", "floored",
                              "warning", "duration_seconds", "energy_wh", "unavailable",
                              "energy_cost", "compute_cost", "cost", "co2_grams", "prices"}
    compared = _json(capsys, "compare", str(EXTENDED), "2 streams @ 2500k", "4 streams @ 5000k")
    assert set(compared) == {"version", "prices", "a", "b", "scores_comparable", "rows"}
    assert all(set(r) == {"field", "a", "b", "difference", "percent"} for r in compared["rows"])


# The command as a person runs it: a child process, its stdout and stderr apart.

def _advisor(*args: str, cwd: Path | None = None, pre: str = "") -> subprocess.CompletedProcess:
    """``python -m advisor_core ARGS`` (``pre``: Python run first, in the same process)."""
    code = (f"{pre}\nimport sys\nfrom advisor_core.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def _one_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("advisor: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _run_copy(directory: Path, analysis: bool) -> Path:
    """A copy of the 15-scenario run in ``directory``, with its analysis CSV beside it or not."""
    directory.mkdir(parents=True, exist_ok=True)
    results = directory / RESULTS.name
    shutil.copy(RESULTS, results)
    if analysis:
        shutil.copy(ANALYSIS, directory / ANALYSIS.name)
    return results


@pytest.mark.slow
def test_a_directory_given_as_a_file_is_one_line(tmp_path):
    _one_error(_advisor("recommend", str(tmp_path)), str(tmp_path))
    _one_error(_advisor("recommend", str(RESULTS), "--analysis", str(tmp_path)), str(tmp_path))
    _one_error(_advisor("recommend", str(RESULTS), "--pricing-config", str(tmp_path)),
               str(tmp_path))
    # A directory where the analysis CSV of the run would be: not asked for, so the run is read
    # without it, with a warning (the exporters' rule); --no-analysis does not look for it.
    results = _run_copy(tmp_path, analysis=False)
    (tmp_path / ANALYSIS.name).mkdir()
    proc = _advisor("recommend", str(results), "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["evaluated"] == 0
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"advisor: warning: {tmp_path / ANALYSIS.name}: ")
    assert line.endswith("; the run is read without it")
    proc = _advisor("recommend", str(results), "--no-analysis")
    assert proc.returncode == 0 and proc.stderr == ""


@pytest.mark.slow
def test_an_unwritable_plot_output_is_one_line(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "x.png"
    _one_error(_advisor("plot", str(RESULTS), "-o", str(missing)), f"cannot write {missing}")
    directory = tmp_path / "d.png"
    directory.mkdir()
    _one_error(_advisor("plot", str(RESULTS), "-o", str(directory)), f"cannot write {directory}")


@pytest.mark.slow
def test_plot_without_matplotlib_names_the_extra(tmp_path):
    proc = _advisor("plot", str(RESULTS), "-o", str(tmp_path / "x.png"),
                    pre="import sys; sys.modules['matplotlib'] = None  # not installed")
    _one_error(proc, "matplotlib is not installed", "pip install 'advisor-core[plot]'")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_library_log_records_stay_off_the_terminal_unless_verbose(tmp_path):
    # No power in the JSON alone: PowerPredictor logs a warning, the command says why in one line.
    line = _one_error(_advisor("predict", str(RESULTS), "--no-analysis", "--streams", "4"),
                      "no scenario of the run has a stream count and a mean power")
    verbose = _advisor("predict", str(RESULTS), "--no-analysis", "--streams", "4", "--verbose")
    assert verbose.returncode == 2
    assert "PowerPredictor: no scenario with a stream count and a mean power" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == line
    # Entries that are not objects: the library logs them, the command counts them.
    mixed = tmp_path / "test_results_mixed.json"
    mixed.write_text(json.dumps({"scenarios": [1, "x", *load_results(RESULTS)]}))
    proc = _advisor("recommend", str(mixed), "--analysis", str(ANALYSIS), "--format", "json")
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout)["skipped"]["not_an_object"] == 2
    loud = _advisor("recommend", str(mixed), "--analysis", str(ANALYSIS), "-v")
    assert "dropped 2 scenario entries that are not objects" in loud.stderr


@pytest.mark.slow
def test_the_analysis_csv_beside_the_run_is_used_by_default(tmp_path):
    def evaluated(*args: str) -> tuple[dict, str]:
        proc = _advisor("recommend", *args, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout), proc.stderr

    alone = _run_copy(tmp_path / "alone", analysis=False)
    beside = _run_copy(tmp_path / "beside", analysis=True)
    report, err = evaluated(str(alone))
    assert (report["evaluated"], report["skipped"]) == (0, {"no_power_data": 15}) and err == ""
    report, err = evaluated(str(beside))
    assert (report["evaluated"], report["skipped"]) == (15, {"no_score": 1}) and err == ""
    report, _ = evaluated(str(beside), "--no-analysis")
    assert report["evaluated"] == 0
    report, _ = evaluated(str(alone), "--analysis", str(ANALYSIS))  # --analysis names any CSV
    assert report["evaluated"] == 15
    both = _advisor("recommend", str(beside), "--analysis", str(ANALYSIS), "--no-analysis")
    assert both.returncode == 2 and "not allowed with" in both.stderr


@pytest.mark.slow
def test_an_analysis_csv_matching_few_scenarios_warns_with_the_counts(tmp_path):
    rows = list(csv.DictReader(ANALYSIS.open(newline="")))
    other = tmp_path / "other_run_analysis.csv"
    with other.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow(next(r for r in rows if r["name"] == "8 Streams @ 5000k"))
        for n in range(5):
            writer.writerow({**rows[0], "name": f"another run's scenario {n}"})
    proc = _advisor("recommend", str(RESULTS), "--analysis", str(other), "--format", "json")
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [
        f"advisor: warning: {other}: rows for 1 of the run's 15 scenarios; the other 14 get no "
        "measured power from it"]
    assert json.loads(proc.stdout)["evaluated"] == 1
    # The default CSV naming none of the run: a warning, and the run goes on without it.
    results = _run_copy(tmp_path / "run", analysis=False)
    foreign = results.with_name(ANALYSIS.name)
    foreign.write_text("name,mean_power_w\nsomething else,10\n")
    proc = _advisor("recommend", str(results), "--format", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["evaluated"] == 0
    assert proc.stderr.splitlines() == [
        f"advisor: warning: {foreign}: no row names a scenario of the run (1 rows, 15 "
        "scenarios); not used (--analysis names another CSV)"]
    _one_error(_advisor("recommend", str(results), "--analysis", str(foreign)),
               "no row names a scenario of the run")


@pytest.mark.slow
@pytest.mark.parametrize("output", ["table", "json"])
def test_the_predict_warning_goes_to_stderr(output):
    proc = _advisor("predict", str(RESULTS), "--streams", "12", "--format", output)
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [
        "advisor: warning: 12 streams is outside the trained range 1..8: the model continues "
        "its fitted curve there and the interval may not hold"]
    assert "warning" not in proc.stdout.lower().replace('"warning": "12 streams', "")
    if output == "json":
        assert "outside the trained range" in json.loads(proc.stdout)["warning"]


@pytest.mark.slow
def test_help_describes_every_command_and_option_without_markup():
    top = _advisor("--help")
    assert top.returncode == 0 and "``" not in top.stdout and "**" not in top.stdout
    for name in ("recommend", "predict", "compare", "plot", "report"):
        assert re.search(rf"^    {name}\s+\S", top.stdout, flags=re.MULTILINE) or \
            re.search(rf"^    {name}\n\s+\S", top.stdout, flags=re.MULTILINE), name
        proc = _advisor(name, "--help")
        assert proc.returncode == 0 and "``" not in proc.stdout
        description = proc.stdout.split("\n\n")[1]
        assert not description.startswith(("positional", "options")), proc.stdout


def test_every_option_of_every_command_has_help():
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"recommend", "predict", "compare", "plot", "report"}
    for name, command in subparsers.choices.items():
        assert command.description, name
        for action in command._actions:
            assert action.help and "``" not in action.help, (name, action.dest)


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--format", "json"], ["--region", "eu-west-1"],
                                  ["--cpu-cost", "1"], ["--currency", "EUR"]])
def test_options_that_mean_nothing_for_plot_are_refused(tmp_path, args):
    proc = _advisor("plot", str(RESULTS), "-o", str(tmp_path / "x.png"), *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"advisor: error: unrecognized arguments: {' '.join(args)}"]
    assert not (tmp_path / "x.png").exists()


def test_table_rows_carry_their_units_and_currency(capsys):
    assert main(["compare", str(RESULTS), "Baseline (Idle)", "8 Streams @ 5000k",
                 "--currency", "EUR", "--energy-cost", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "A: Baseline (Idle) (no score)" in out and "Mbps/W]" not in out
    assert "B: 8 Streams @ 5000k (throughput_per_watt, score in Mbps/W)" in out
    assert re.search(r"^cost \(EUR/h\) ", out, flags=re.MULTILINE)
    assert re.search(r"^cost \(EUR/stream-h\) ", out, flags=re.MULTILINE)
    assert re.search(r"^score \(Mbps/W\) ", out, flags=re.MULTILINE)
    for line in out.splitlines()[4:]:  # every figure's row names its unit
        assert re.match(r"^\S.*\(.+\)\s", line), line
    assert main(["recommend", str(SMALL)]) == 0
    assert "(score 0.27809 Mbps/W, 1 candidate)" in capsys.readouterr().out
    assert main(["recommend", str(RESULTS)]) == 0
    assert "(score 1.1741 Mbps/W, 12 candidates)" in capsys.readouterr().out


@pytest.mark.slow
def test_a_closed_standard_output_is_one_line():
    code = "import sys\nfrom advisor_core.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "report", str(EXTENDED), "--format",
                             "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the command has its result (reading 240 entries takes longer)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 2
    *warnings, error = err.splitlines()
    assert error == "advisor: error: standard output was closed before the result was written"
    assert all(line.startswith("advisor: warning: ") for line in warnings)  # the report's own


@pytest.mark.slow
def test_another_currency_needs_its_own_energy_price():
    """The regions' electricity prices are in USD: never shown as EUR."""
    _one_error(_advisor("recommend", str(RESULTS), "--currency", "EUR"),
               "--currency EUR needs --energy-cost", "USD/kWh")
    proc = _advisor("recommend", str(RESULTS), "--currency", "EUR", "--energy-cost", "0.25")
    assert proc.returncode == 0 and "(0.25 EUR/kWh," in proc.stdout.splitlines()[0]


@pytest.mark.parametrize("kind", ["power", "pareto"])
def test_plot_legends_stay_off_the_data_and_titles_name_the_axes(kind):
    """The legend lies outside the axes (it covers no point), the title is "Y against X"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advisor_core.cli import plotting
    from advisor_core.economics.decision import Prices, evaluate

    scenarios = (read_run(RESULTS, analysis=ANALYSIS) if kind == "power"
                 else read_run(EXTENDED)).scenarios
    fig = plt.figure(figsize=plotting.FIGSIZE, dpi=plotting.DPI)
    try:
        ax = fig.add_subplot()
        if kind == "power":
            plotting._power(ax, scenarios, 0.95)
        else:
            plotting._pareto(ax, evaluate(scenarios, Prices(energy_per_kwh=0.1)).items)
        fig.tight_layout()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legend, axes = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
        assert legend.x0 >= axes.x1, (legend, axes)  # right of the axes, not over them
        assert legend.x1 <= fig.bbox.x1  # and still on the figure
        def unitless(label: str) -> str:
            return re.sub(r"\s*\(.*\)$", "", label).lower()
        assert ax.get_title().lower() == \
            f"{unitless(ax.get_ylabel())} against {unitless(ax.get_xlabel())}"
    finally:
        plt.close(fig)


@pytest.mark.slow
def test_an_unexpected_failure_is_one_line_and_the_traceback_needs_verbose():
    pre = ("import advisor_core.cli.main as cli\n"
           "def evaluate(*args):\n"
           "    raise RuntimeError('boom\\nsecond line')\n"
           "cli.evaluate = evaluate")
    _one_error(_advisor("recommend", str(RESULTS), pre=pre),
               "unexpected RuntimeError: boom second line (--verbose shows where)")
    verbose = _advisor("recommend", str(RESULTS), "--verbose", pre=pre)
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr
    assert verbose.stderr.splitlines()[-1].startswith("advisor: error: unexpected RuntimeError")


def _one_count_run(tmp_path: Path) -> Path:
    """A run whose stream tests all used one stream, with an idle baseline."""
    scenarios = [{"name": "Baseline (Idle)", "bitrate": "0k", "duration": 60,
                  "power": {"mean_watts": 10.2, "total_energy_joules": 612.0}}]
    for kbps, watts in ((1000, 14.0), (2500, 14.5), (5000, 15.3)):
        scenarios.append({"name": f"1 Streams @ {kbps}k", "bitrate": f"{kbps}k", "duration": 60,
                          "power": {"mean_watts": watts, "total_energy_joules": watts * 60}})
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": scenarios}))
    return path


def test_predict_on_a_run_with_one_stream_count_says_it_has_no_slope(tmp_path):
    proc = _advisor("predict", str(_one_count_run(tmp_path)), "--streams", "4",
                    "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["pi_low_watts"] is None and result["pi_high_watts"] is None
    assert result["no_interval"]["reason"] == "single_trained_value"
    (line,) = proc.stderr.splitlines()
    assert "only one stream count (1)" in line and "no interval" in line


@pytest.mark.parametrize("kind", ["ranking", "pareto"])
def test_a_name_that_reads_as_math_is_drawn_as_text(tmp_path, kind):
    pytest.importorskip("matplotlib")
    scenarios = [{"name": f"{n} Streams @ $\\foo{{$ 2500k", "bitrate": "2500k", "duration": 60,
                  "vmaf_score": 80 + n, "resolution": "1280x720", "fps": 30,
                  "power": {"mean_watts": 10.0 + n, "total_energy_joules": 60 * (10.0 + n)}}
                 for n in (1, 2, 4)]
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": scenarios}))
    out = tmp_path / "x.png"
    proc = _advisor("plot", str(path), "--kind", kind, "-o", str(out))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert out.stat().st_size > 1000


def test_bounds_raised_to_the_idle_baseline_are_said(tmp_path):
    # The bundled run's idle baseline is 6.17 W; its 1-stream interval's low bound falls below.
    proc = _advisor("predict", str(RESULTS), "--streams", "1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["floored"] == {"floor": "idle_baseline", "value": 6.17, "keys": ["pi_low"]}
    assert result["pi_low_watts"] == 6.17
    (line,) = proc.stderr.splitlines()
    assert "raised to the run's idle baseline (6.17 W)" in line
    report = _advisor("report", str(RESULTS), "--format", "json")
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["power_model"]["predictions"]
    assert rows[0]["floored"]["keys"] == ["pi_low"] and rows[1]["floored"] is None
    assert "idle baseline" in report.stderr


def test_report_on_a_run_with_one_stream_count_says_it_has_no_slope(tmp_path):
    proc = _advisor("report", str(_one_count_run(tmp_path)), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["power_model"]["predictions"]
    assert rows[0]["no_interval"] is None and rows[3]["no_interval"] is not None
    assert rows[3]["pi_low_watts"] is None
    assert "only one stream count (1)" in proc.stderr


def test_confidence_levels_too_close_to_0_or_1_are_one_line():
    proc = _advisor("predict", str(RESULTS), "--streams", "4", "--confidence", "1e-300")
    _one_error(proc, "--confidence", "too close to 0 or 1")


def test_a_dangling_link_as_the_csv_beside_the_run_is_warned_about(tmp_path):
    path = tmp_path / RESULTS.name
    shutil.copy(RESULTS, path)
    (tmp_path / f"{RESULTS.stem}_analysis.csv").symlink_to(tmp_path / "nowhere.csv")
    proc = _advisor("recommend", str(path))
    assert proc.returncode == 0
    assert "the run is read without it" in proc.stderr
