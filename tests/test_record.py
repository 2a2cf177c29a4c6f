"""advisor_core.data.record and advisor_core.data.reader: every field read and bounded once, at the
reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor_core.data.fields import MAX_OUTPUTS, Unusable
from advisor_core.data.reader import ReadLimits, read_run, run_record
from advisor_core.data.record import ScenarioRecord, as_record, read_scenario
from advisor_core.economics.columns import read_columns
from advisor_core.economics.cost import CostModel
from advisor_core.economics.scoring import ALGORITHMS, EnergyEfficiencyScorer

T0 = 1_735_812_000.0


def record(**fields_: object) -> ScenarioRecord:
    return read_scenario({"name": "4 Streams @ 2500k", **fields_})


# -- one rule per field --------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "attribute", "expected", "problems"), [
    ({"bitrate": "2500k"}, "bitrate_mbps", 2.5, ()),
    ({"bitrate": "3000"}, "bitrate_mbps", 3.0, ()),  # a bare number in text is kbps
    ({"bitrate": 2500}, "bitrate", "2500", ()),  # a JSON number labels the scenario...
    ({"bitrate": 2500}, "bitrate_mbps", None, ()),  # ...but has no unit to price it with
    ({"bitrate": [0] * 5}, "bitrate", None, ("bitrate_invalid",)),
    ({"bitrate": "9" * 65 + "k"}, "bitrate_mbps", None, ()),  # too long to be a number
    ({"fps": 29.97}, "fps_text", "29.97", ()),
    ({"fps": 30.0}, "fps_text", "30", ()),
    ({"fps": "abc"}, "fps", None, ("fps_invalid",)),
    ({"duration": 60, "start_time": T0, "end_time": T0 + 61}, "duration_s", 60.0, ()),
    ({"start_time": T0, "end_time": T0 + 61}, "duration_s", 61.0, ()),
    ({"duration": -3}, "duration_s", None, ("duration_invalid",)),
    ({"power": {"mean_watts": 100}}, "power_w", 100.0, ()),
    ({"power": {"mean_watts": 100}, "gpu_power": {"mean_watts": 50}}, "power_w", 150.0, ()),
    ({"power": {"mean_watts": 100}, "gpu_power": {"mean_watts": "x"}}, "power_w", None,
     ("gpu_power_invalid",)),
    ({"power": {"mean_watts": 100}, "gpu_power": None}, "power_w", 100.0, ()),
    ({"power": {"mean_watts": [100]}}, "power_w", None, ("power_invalid",)),
    ({"power": "100 W"}, "power_w", None, ("power_invalid",)),
    ({"power_watts": [10, 20], "step_seconds": 5}, "energy_j", 75.0, ()),
    ({"power_watts": [10, 20]}, "energy_j", None, ()),  # no step: never guessed
    ({"power_watts": [10, True]}, "power_w", None, ("power_watts_invalid",)),
    ({"power_watts": "10"}, "power_w", None, ("power_watts_invalid",)),
    ({"power": {"total_energy_joules": 3600}, "duration": 60}, "power_w", 60.0, ()),
    ({"power": {"mean_watts": 10, "total_energy_joules": 600}, "duration": 60,
      "gpu_power": {"mean_watts": 5}}, "energy_j", 900.0, ()),
    ({"container_usage": {"cpu_percent": 150}, "duration": 10}, "core_s", 15.0, ()),
    ({"cpu_usage_cores": [1, 3], "step_seconds": 10}, "cpu_pct", 200.0, ()),
    ({"cpu_usage_cores": [1, 3], "step_seconds": 10}, "core_s", 20.0, ()),
    ({"cpu_usage_cores": [1, 3], "gpu_usage_cores": [1, 1], "step_seconds": 10}, "core_s",
     30.0, ()),
    ({"vmaf_score": 150}, "vmaf", None, ("vmaf_score_out_of_range",)),
    ({"vmaf_score": "90"}, "vmaf", None, ("vmaf_score_invalid",)),
    ({"vmaf_score": 0}, "vmaf", 0.0, ()),
    ({"ssim_score": 1.5}, "ssim", None, ("ssim_score_out_of_range",)),
    ({"viewers": 0}, "viewers", None, ("viewers_invalid",)),
    ({"encoder": "h264_nvenc", "encoder_type": "ffmpeg"}, "encoder", "h264_nvenc", ()),
    ({"encoder_type": "ffmpeg"}, "encoder", "ffmpeg", ()),
    ({}, "encoder", "h264", ()),
    ({"encoder": ["x"]}, "encoder", "h264", ("encoder_invalid",)),
    ({"hardware": {"cpu_model": "EPYC"}}, "hardware", "EPYC", ()),
    ({"hardware": "EPYC"}, "hardware", None, ("hardware_invalid",)),
    ({"pixels_processed": 0}, "pixels", None, ()),
    ({"resolution": "1920x1080", "fps": 30, "duration": 2}, "pixels", 1920 * 1080 * 60.0, ()),
    ({"resolution": "1" * 1000 + "x1080", "fps": 30, "duration": 2}, "pixels", None, ()),
    ({"outputs": [{"resolution": "1" * 4301 + "x1080", "fps": 30}], "resolution": "640x360",
      "fps": 25, "duration": 1}, "output_ladder", "640x360@25", ("outputs_invalid",)),
    ({"outputs": [{"resolution": "1920x1080", "fps": 30}, None]}, "ladder_entries", 2,
     ("outputs_invalid",)),
])
def test_each_field_has_one_rule(entry, attribute, expected, problems):
    read = record(**entry)
    value = getattr(read, attribute)
    assert value == (pytest.approx(expected) if isinstance(expected, float) else expected)
    assert read.problems == problems


def test_a_stream_count_with_more_digits_than_any_count_is_unknown():
    digits = "9" * 5000  # past Python's integer-digit limit, were it ever given to int()
    assert as_record({"name": f"{digits} streams"}).streams is None
    assert as_record({"name": f"{digits} concurrent"}).streams is None
    assert as_record({"name": "1000000 streams"}).streams == 1_000_000


def test_entries_that_are_no_scenario_raise_unusable_with_a_reason():
    for entry, reason in ((None, "not_an_object"), ([1], "not_an_object"),
                          ({"name": 7}, "invalid_name"), ({"name": "x" * 2000}, "text_too_long"),
                          ({"name": "a", "preset": "p" * 2000}, "text_too_long"),
                          ({"name": "a", "outputs": [{}] * (MAX_OUTPUTS + 1)},
                           "too_many_outputs")):
        with pytest.raises(Unusable) as caught:
            read_scenario(entry)
        assert caught.value.reason == reason
    # A caller's own dict needs no name and has no label budget.
    assert as_record({"preset": "p" * 2000}).name == ""


def test_a_lone_surrogate_becomes_one_replacement_character():
    read = read_scenario(json.loads('{"name": "a \\ud800 b", "encoder": "x\\udfffy"}'))
    assert (read.name, read.encoder) == ("a \ufffd b", "x\ufffdy")
    assert read.problems == ("text_repaired", "text_repaired")


# -- nothing raises past the reader, every figure is finite or absent ---------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["2500k", "1920x1080", "4 streams", "0x0", "\ud800", "5M", "1e999"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
FIELDS = ["name", "bitrate", "resolution", "fps", "duration", "start_time", "end_time",
          "outputs", "encoder", "preset", "encoder_type", "power", "gpu_power", "power_watts",
          "cpu_usage_cores", "gpu_usage_cores", "step_seconds", "viewers", "container_usage",
          "docker_overhead", "hardware", "vmaf_score", "psnr_score", "ssim_score", "avg_fps",
          "total_frames", "dropped_frames", "pixels_processed", "efficiency_score"]
NESTED = {"power": ["mean_watts", "total_energy_joules", "stdev_watts"],
          "gpu_power": ["mean_watts"], "container_usage": ["cpu_percent"],
          "docker_overhead": ["cpu_percent"], "hardware": ["cpu_model"]}
ENTRY = st.fixed_dictionaries({}, optional={
    **{key: JSON for key in FIELDS},
    **{key: st.fixed_dictionaries({}, optional={inner: JSON for inner in keys}) | JSON
       for key, keys in NESTED.items()},
    "outputs": st.lists(st.fixed_dictionaries({}, optional={"resolution": JSON, "fps": JSON}))
    | JSON,
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(ENTRY | JSON, max_size=5))
def test_arbitrary_json_values_never_raise_past_the_reader(entries):
    run = run_record(Path("test_results_x.json"), entries)
    for read in run.scenarios:
        for name, value in zip(read._fields, read):
            if isinstance(value, float):
                assert math.isfinite(value), (name, value)
        for number in (read.throughput_mbps, read.energy_or_estimate_j, read.cores):
            assert number is None or math.isfinite(number)
        assert isinstance(read.encoder_class, str) and isinstance(read.audience, float)
    columns = read_columns(run.scenarios)
    for value in CostModel(0.12, 0.5, 1.0).cost_columns(columns):
        assert math.isnan(value) or math.isfinite(value)
    for algorithm in ALGORITHMS:
        for value in EnergyEfficiencyScorer(algorithm).score_columns(columns):
            assert math.isnan(value) or math.isfinite(value)


# -- the file reader ---------------------------------------------------------------------------


def test_a_results_file_with_an_integer_beyond_the_digit_limit_is_read(tmp_path: Path):
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text('{"scenarios": [{"name": "a", "viewers": ' + "9" * 5000 + "},"
                    ' {"name": "b", "viewers": 3}]}')
    run = read_run(path)
    assert [(s.name, s.viewers) for s in run.scenarios] == [("a", None), ("b", 3.0)]
    assert run.skipped == {"viewers_invalid": 1}


def test_read_run_joins_the_csv_beside_and_reports_an_unusable_one(tmp_path: Path):
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": [
        {"name": "a", "duration": 60}, {"name": "b", "power": {"mean_watts": 5}}]}))
    csv = tmp_path / "test_results_20250101_000000_analysis.csv"
    csv.write_text("name,mean_power_w,total_energy_wh,container_cpu_pct\n"
                   "a,10,0.5,50\nb,99,1,1\nextra,1,2,3,4,5\n")
    run = read_run(path)
    by_name = {s.name: s for s in run.scenarios}
    assert (by_name["a"].power_w, by_name["a"].energy_j, by_name["a"].cpu_pct) == (
        10.0, 1800.0, 50.0)
    assert by_name["b"].power_w == 5.0  # the JSON's own power wins
    assert run.analysis_matched == 2 and run.analysis_rows == 3  # one of them skipped
    assert run.analysis_error is not None and run.analysis_error.reason == "bad_rows"
    assert read_run(path, analysis=False).scenarios[0].power_w is None
    csv.write_bytes(b"name,mean_power_w\na,\xe9\n")
    run = read_run(path)
    assert run.analysis_error.reason == "not_utf8" and run.scenarios[0].power_w is None


def test_a_wide_analysis_header_is_refused_before_rows_are_kept(tmp_path: Path):
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": [{"name": "a"}]}))
    header = ",".join(["name", *(f"c{i}" for i in range(1000))])
    (tmp_path / "test_results_20250101_000000_analysis.csv").write_text(
        header + "\n" + "a,1\n" * 20_000)
    run = read_run(path)
    assert run.analysis_error.reason == "too_many_columns"


def test_limits_bound_what_a_record_keeps(tmp_path: Path):
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": [
        {"name": "a" * 30}, {"name": "ok", "bitrate": [0] * 200_000}, {"name": "fine"}]}))
    run = read_run(path, ReadLimits(max_text=20))
    assert [s.name for s in run.scenarios] == ["ok", "fine"]
    assert run.skipped == {"text_too_long": 1, "bitrate_invalid": 1}
    assert run.scenarios[0].bitrate is None


def test_the_database_never_fills_a_total_whose_gpu_part_is_unknown():
    from advisor_core.data.record import with_measurements

    unknown = record(gpu_power={"mean_watts": "x"}, duration=60)
    assert with_measurements(unknown, power_w=100.0, energy_j=6000.0).power_w is None
    known = record(gpu_power={"mean_watts": 50}, duration=60)
    filled = with_measurements(known, power_w=100.0, energy_j=6000.0)
    assert (filled.power_w, filled.energy_j) == (150.0, 9000.0)
    assert with_measurements(record(), power_w=100.0).power_w == 100.0


def test_an_analysis_csv_of_other_names_keeps_no_rows(tmp_path: Path):
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": [{"name": "a", "duration": 60}]}))
    rows = "".join(f"{i:x},1.5,2.5,3.5\n" for i in range(50_000))
    (tmp_path / "test_results_20250101_000000_analysis.csv").write_text(
        "name,mean_power_w,total_energy_wh,container_cpu_pct\n" + rows + "a,10,1,5\n")
    run = read_run(path)
    assert run.analysis_rows == 50_001 and run.analysis_matched == 1
    assert run.scenarios[0].power_w == 10.0


@pytest.mark.parametrize("cell", ["1_000", "\uff11\uff12", "\u0663", "nan", "inf", "0x10",
                                  "1e", "12 W", ""])
def test_an_analysis_cell_is_a_number_only_in_ascii_decimal_notation(tmp_path: Path, cell):
    """Python's float() reads "1_000" and full-width digits; a CSV writer never prints them."""
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text(json.dumps({"scenarios": [{"name": "a", "duration": 60}]}))
    csv = tmp_path / "test_results_20250101_000000_analysis.csv"
    csv.write_text(f"name,mean_power_w\na,{cell}\n", encoding="utf-8")
    assert read_run(path).scenarios[0].power_w is None
    csv.write_text("name,mean_power_w\na, 12.5e0 \n", encoding="utf-8")
    assert read_run(path).scenarios[0].power_w == 12.5
