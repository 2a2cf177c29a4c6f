"""Tests of advisor_core.data.scenario: the one home of results-file parsing (README difference
1-4)."""

from __future__ import annotations

import json
import math
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor_core.data import scenario as sc
from advisor_core.data.record import as_record


def total_pixels(scenario):
    record = as_record(scenario)
    return None if record is None else record.pixels


def output_ladder(scenario):
    record = as_record(scenario)
    return None if record is None else record.output_ladder


def encoder_class(scenario):
    return as_record(scenario).encoder_class

# ---------------------------------------------------------------------------------------------
# Stream count: the reference's examples under README difference 1 (one rule for everyone)
# ---------------------------------------------------------------------------------------------

STREAM_COUNTS = [
    ("4 Streams @ 2500k", 4),
    ("1 Stream @ 2500k", 1),
    ("12 Streams", 12),
    ("4-stream test", 4),
    ("4streams", 4),
    ("2 -  streams", 2),
    ("6 concurrent streams", 6),
    ("Single Stream @ 2500k", 1),
    ("singlestream", 1),
    ("Multi Stream Test", None),
    # Leading count followed by a non-unit word: the reference rule (H2) keeps the count.
    ("4 multi-bitrate outputs", 4),
    ("Multi 4 streams", 4),
    ("Baseline (Idle)", None),
    ("High Quality Test", None),
    ("", None),
    ("1 Mbps Stream", 1),
    # README difference 1: a number followed by a bitrate unit is a bitrate; H1/H2 said 5 and 10.
    ("5 Mbps Stream", 1),
    ("10 Mbps Stream", 1),
    # README difference 1: one stream named after its bitrate (H1/H2 said unknown, H3 said 1).
    ("2.5 Mbps Stream", 1),
    ("480p @ 2.5Mbps", None),
    ("30fps @ 5Mbps", None),
    ("Multi-resolution ladder test 1080p+720p+480p @ 2500k", None),
    ("4 livestreams", 4),
    # names whose stream counts the reference's examples read
    ("8 streams @ 1080p", 8),
    ("2 Stream Test", 2),
    ("4 streams @ 5M", 4),
    ("8 Streams @ 1000k", 8),
    ("2 streams @ 2500k", 2),
    ("4 Streams @ 5000k", 4),
    ("8 streams", 8),
    ("Single stream test", 1),
    ("5 M stream", 1),
]


@pytest.mark.parametrize(("name", "expected"), STREAM_COUNTS)
def test_stream_count_examples(name, expected):
    assert sc.stream_count(name) == expected


@pytest.mark.parametrize("value", [None, 4, 4.0, b"4 streams", ["4 streams"], {"name": "x"}])
def test_stream_count_of_non_string_is_unknown(value):
    assert sc.stream_count(value) is None


# ---------------------------------------------------------------------------------------------
# Bitrate → Mbps (README difference 2; docs/results-files.md §3)
# ---------------------------------------------------------------------------------------------

BITRATES = [
    ("2500k", 2.5),
    ("1000k", 1.0),
    ("5M", 5.0),
    ("5m", 5.0),
    (" 5 M", 5.0),
    ("5 M", 5.0),
    ("10M", 10.0),
    ("0k", 0.0),
    ("3000", 3.0),
    ("1001", 1.001),
    ("1000", 1.0),
    ("999", 0.999),
    ("1000000", 1000.0),
    ("1500.5", 1.5005),
    ("2500.0", 2.5),
    ("1e3", 1.0),  # README difference 2: a bare number is kbps (B2 said 1000 Mbps; "1000" too)
    ("2.5m", 2.5),
    (" 2500K ", 2.5),
    # README difference 2: unit suffixes are understood (B1 gave 0.0 for these).
    ("5Mbps", 5.0),
    ("5 mbps", 5.0),
    ("2500kbps", 2.5),
    ("2.5Mbps", 2.5),
    ("8000000bps", 8.0),
    ("5000000bps", 5.0),
]


@pytest.mark.parametrize(("text", "mbps"), BITRATES)
def test_bitrate_examples(text, mbps):
    assert sc.bitrate_mbps(text) == pytest.approx(mbps, rel=1e-12, abs=0.0)


# README difference 2: garbage is unknown (B1 gave 0.0; "-100k" gave -0.1), never an exception.
@pytest.mark.parametrize("value", ["N/A", "", "abc", "-100k", "5 Mbps extra", "k", None, 2500,
                                   2.5, ["2500k"], True])
def test_bitrate_unknown(value):
    assert sc.bitrate_mbps(value) is None


# ---------------------------------------------------------------------------------------------
# Resolution (README difference 3; the reference's parsing examples)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "size"),
    [("1920x1080", (1920, 1080)), ("1280x720", (1280, 720)), ("854x480", (854, 480)),
     ("1920X1080", (1920, 1080)), (" 1920 x 1080 ", (1920, 1080))],
)
def test_resolution_parses(text, size):
    assert sc.resolution(text) == size


# README difference 3: positive integers only, so "0x0" (reference: (0, 0)) is unknown too.
@pytest.mark.parametrize("text", ["N/A", "invalid", "", "1920x1080x3", "0x0", "-1x5",
                                  "1920.5x1080", "1920×1080", "x1080", "1920x", None, 1920,
                                  ("1920", "1080")])
def test_resolution_unknown(text):
    assert sc.resolution(text) is None


# ---------------------------------------------------------------------------------------------
# Pixels and ladders (the reference's pixel and ladder examples)
# ---------------------------------------------------------------------------------------------

LADDER3 = [
    {"resolution": "1920x1080", "fps": 30},
    {"resolution": "1280x720", "fps": 30},
    {"resolution": "854x480", "fps": 30},
]


def test_total_pixels_single_output():
    assert total_pixels({"resolution": "1280x720", "fps": 30, "duration": 120}) == (
        1280 * 720 * 30 * 120
    )


def test_total_pixels_ladder():
    scenario = {"outputs": LADDER3, "duration": 120, "resolution": "1920x1080", "fps": 30}
    assert total_pixels(scenario) == 12_258_432_000
    assert total_pixels(dict(scenario, duration=60)) == 6_129_216_000


@pytest.mark.parametrize(
    "scenario",
    [
        {"resolution": "1280x720", "fps": 30},
        {"resolution": "1280x720", "fps": 30, "duration": 0},
        {"resolution": "1280x720", "fps": 30, "duration": -5},
        {"resolution": "1280x720", "fps": 30, "duration": "60"},
        {"resolution": "1280x720", "fps": "N/A", "duration": 60},
        {"resolution": "N/A", "fps": 30, "duration": 60},
        {"name": "only a name"},
        {"resolution": "100000x100000", "fps": 1e300, "duration": 1e10},  # overflows to inf
    ],
)
def test_total_pixels_none(scenario):
    assert total_pixels(scenario) is None


def test_the_duration_field_wins_over_the_measured_window():
    scenario = {"resolution": "1280x720", "fps": 30, "duration": 120, "start_time": 100.0,
                "end_time": 110.0}
    assert total_pixels(scenario) == 1280 * 720 * 30 * 120
    assert as_record(scenario).duration_s == 120.0
    del scenario["duration"]
    assert total_pixels(scenario) == 1280 * 720 * 30 * 10
    assert as_record(scenario).duration_s == 10.0


def test_output_ladder_single():
    assert output_ladder({"resolution": "1280x720", "fps": 30}) == "1280x720@30"
    assert output_ladder({"resolution": "1280x720", "fps": 29.97}) == "1280x720@29.97"


def test_output_ladder_sorted_regardless_of_input_order():
    expected = "1920x1080@30,1280x720@30,854x480@30"
    assert output_ladder({"outputs": LADDER3}) == expected
    assert output_ladder({"outputs": [LADDER3[2], LADDER3[0], LADDER3[1]]}) == expected


def test_output_ladder_stable_for_equal_sizes():
    outputs = [
        {"resolution": "1280x720", "fps": 30},
        {"resolution": "1280x1080", "fps": 60},
        {"resolution": "1280x720", "fps": 60},
    ]
    assert output_ladder({"outputs": outputs}) == "1280x1080@60,1280x720@30,1280x720@60"


def test_output_ladder_one_entry():
    assert output_ladder({"outputs": [{"resolution": "1280x720", "fps": 30}]}) == (
        "1280x720@30"
    )


def test_output_ladder_none():
    assert output_ladder({"name": "x"}) is None
    assert output_ladder({"resolution": "1280x720", "fps": "N/A"}) is None
    # README difference 3: the reference echoed unparsable text ("abc@30"); now unknown.
    assert output_ladder({"resolution": "abc", "fps": 30}) is None
    assert output_ladder(None) is None


def test_output_ladder_falls_back_to_top_level_when_no_entry_is_valid():
    scenario = {"outputs": [{"resolution": "bad", "fps": 30}], "resolution": "1280x720",
                "fps": 30}
    assert output_ladder(scenario) == "1280x720@30"


# ---------------------------------------------------------------------------------------------
# Numbers, encoder class, baselines, durations
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (2.5, 2.5), (-3, -3.0), (0, 0.0), (None, None), (True, None), ("1", None),
     (math.nan, None), (math.inf, None), (10**400, None), ([1], None)],
)
def test_as_number(value, expected):
    assert sc.as_number(value) == expected


def _python_as_number(value):
    """The number rule as the docs state it (float() of a non-bool int or float, if finite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class _Ratio(float):
    pass


class _Count(int):
    pass


@settings(max_examples=500, deadline=None)
@given(value=st.floats() | st.integers(min_value=-10**320, max_value=10**320) | st.booleans()
       | st.none() | st.text(max_size=3) | st.floats().map(_Ratio) | st.integers().map(_Count))
def test_number_rules_on_arbitrary_values(value):
    expected = _python_as_number(value)
    got = sc.as_number(value)
    assert got == expected and type(got) is type(expected)
    positive = sc.positive_number(value)
    assert positive == (expected if expected is not None and expected > 0 else None)
    if type(value) is float and expected is not None:
        assert got is value  # no new float object for the common case


def test_positive_number():
    assert sc.positive_number(2) == 2.0
    assert sc.positive_number(0) is None
    assert sc.positive_number(-1.0) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [("GPU transcode test", "gpu"), ("NVENC encoding", "gpu"), ("QSV test", "gpu"),
     ("vaapi x", "gpu"), ("gpu cpu", "gpu"), ("CPU transcode", "cpu"), ("x264 encoding", "cpu"),
     ("libx264 test", "cpu"), ("Generic test", "cpu")],
)
def test_encoder_class_from_name(name, expected):
    assert encoder_class({"name": name}) == expected


def test_encoder_class_prefers_field():
    assert encoder_class({"name": "GPU test", "encoder_type": "libx264"}) == "libx264"


def test_is_baseline_and_measured_duration():
    assert sc.is_baseline("Baseline (Idle)") and sc.is_baseline("baseline idle")
    assert not sc.is_baseline("4 streams") and not sc.is_baseline(None)
    assert as_record({"start_time": 100.0, "end_time": 125.0}).duration_s == 25.0
    assert as_record({"start_time": 0, "end_time": 125.0}).duration_s is None
    assert as_record({"start_time": "1", "end_time": 125.0, "duration": 7}).duration_s == 7.0
    assert as_record({"start_time": 125.0, "end_time": 125.0}).window is None


# ---------------------------------------------------------------------------------------------
# Files (README difference 4)
# ---------------------------------------------------------------------------------------------

def test_latest_results_file(tmp_path):
    for name in ["test_results_20251229_121342.json", "test_results_20251229_125651.json",
                 "test_results_20251229_125651_analysis.csv", "other.json"]:
        (tmp_path / name).write_text("{}")
    assert sc.latest_results_file(tmp_path) == tmp_path / "test_results_20251229_125651.json"
    with pytest.raises(OSError):  # not "no file": the caller keeps what it had
        sc.latest_results_file(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sc.latest_results_file(empty) is None
    (empty / "test_results_99999999_999999.json").mkdir()  # not a file: not a candidate
    assert sc.latest_results_file(empty) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_under_a_results_name_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "test_results_fifo.json"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    started = time.monotonic()
    with pytest.raises(sc.ResultsFileError, match="not a regular file") as info:
        sc.read_results(fifo)
    assert info.value.reason == "not_a_file" and time.monotonic() - started < 1.0


@pytest.mark.skipif(not os.path.exists("/dev/urandom"), reason="needs /dev/urandom")
def test_a_name_flipped_to_an_endless_device_is_refused_not_read(tmp_path):
    link = tmp_path / "test_results_flip.json"
    link.symlink_to("/dev/urandom")
    with pytest.raises(sc.ResultsFileError) as info:
        sc.read_results(link)
    assert info.value.reason == "not_a_file"


def test_a_file_over_the_cap_is_refused_and_at_most_cap_plus_one_bytes_are_read(tmp_path):
    path = tmp_path / "test_results_big.json"
    path.write_text(json.dumps({"scenarios": [{"name": "a" * 200}]}))
    with pytest.raises(sc.ResultsFileError, match="more than the 100 allowed") as info:
        sc.read_results(path, max_bytes=100)
    assert info.value.reason == "too_large"
    assert sc.read_results(path, max_bytes=path.stat().st_size)[1] == 1


def test_load_results_valid(tmp_path):
    path = tmp_path / "test_results_1.json"
    path.write_text(json.dumps({"scenarios": [{"name": "a"}, 3, {"name": "b"}]}))
    assert sc.load_results(path) == [{"name": "a"}, {"name": "b"}]


REAL = os.path.join(os.path.dirname(__file__), "data", "test_results_20251229_125651.json")


def test_nan_and_infinity_literals_are_invalid_fields_not_a_bad_file(tmp_path):
    # Python's json.dump writes them; the run stays usable and the fields are counted.
    from advisor_core.data.reader import read_run

    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text('{"scenarios": [{"name": "a", "duration": NaN, "power": {"mean_watts": '
                    'Infinity}}, {"name": "b", "duration": 60}]}')
    run = read_run(path)
    assert [(s.name, s.duration_s, s.power_w) for s in run.scenarios] == [
        ("a", None, None), ("b", 60.0, None)]
    assert run.skipped == {"duration_invalid": 1, "power_invalid": 1}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "malformed JSON"),
        (None, "malformed JSON"),  # truncated copy of a real file
        ("[1, 2]", "top level"),
        ('"text"', "top level"),
        ('{"scenarios": null}', "scenarios"),
        ('{"scenarios": {"a": 1}}', "scenarios"),
        ('{"test_date": "x"}', "scenarios"),
        (b"\xff\xfe{", "malformed JSON"),
    ],
)
def test_load_results_errors_name_the_file(tmp_path, content, problem):
    path = tmp_path / "test_results_bad.json"
    if content is None:
        with open(REAL, "rb") as handle:
            raw = handle.read()
        path.write_bytes(raw[: len(raw) // 2])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError) as info:
        sc.load_results(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_load_results_missing_file(tmp_path):
    path = tmp_path / "test_results_none.json"
    with pytest.raises(ValueError, match="cannot read") as info:
        sc.load_results(path)
    assert str(path) in str(info.value)


def test_load_results_real_file():
    scenarios = sc.load_results(REAL)
    with open(REAL, encoding="utf-8") as handle:
        assert scenarios == json.load(handle)["scenarios"]


# ---------------------------------------------------------------------------------------------
# Properties: parsers never raise
# ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

unit_text = st.from_regex(r"\s*-?[0-9.]{0,6}(e[+-]?[0-9]{1,3})?\s*(k|K|m|M|kbps|Mbps|bps|x)?\s*",
                          fullmatch=True)
name_text = st.from_regex(r"[0-9 ]{0,4}(single|multi|live)?[ -]*(streams?|Stream|mbps|k)?.{0,8}",
                          fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(value=json_values | unit_text | name_text | st.text())
def test_string_parsers_never_raise(value):
    count = sc.stream_count(value)
    assert count is None or (isinstance(count, int) and count >= 0)
    rate = sc.bitrate_mbps(value)
    assert rate is None or (isinstance(rate, float) and math.isfinite(rate) and rate >= 0)
    size = sc.resolution(value)
    assert size is None or (size[0] > 0 and size[1] > 0)
    assert isinstance(sc.is_baseline(value), bool)
    number = sc.as_number(value)
    assert number is None or math.isfinite(number)


scenario_like = st.dictionaries(
    st.sampled_from(["name", "resolution", "fps", "duration", "outputs", "encoder_type",
                     "start_time", "end_time"]),
    json_values
    | st.lists(st.fixed_dictionaries({}, optional={"resolution": json_values | unit_text,
                                                   "fps": json_values}), max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(scenario=scenario_like | json_values)
def test_scenario_parsers_never_raise(scenario):
    record = as_record(scenario)
    if not isinstance(scenario, dict):
        assert record is None
        return
    assert record.pixels is None or (math.isfinite(record.pixels) and record.pixels >= 0)
    assert record.output_ladder is None or isinstance(record.output_ladder, str)
    assert isinstance(record.encoder_class, str)
    assert record.duration_s is None or record.duration_s > 0


def test_absurd_stream_counts_are_unknown():
    from advisor_core.data.scenario import MAX_STREAMS, stream_count

    assert stream_count(f"{MAX_STREAMS} streams") == MAX_STREAMS
    assert stream_count(f"{MAX_STREAMS + 1} streams") is None
    assert stream_count("99999999999999999999999 concurrent encodes") is None


def test_total_pixels_falls_back_to_the_scheduler_pixel_count():
    described = {"resolution": "1280x720", "fps": 30, "duration": 10, "pixels_processed": 5}
    assert total_pixels(described) == 1280 * 720 * 30 * 10  # renditions win when they exist
    counted = {"resolution": "1920x1080", "duration": 120.5, "pixels_processed": 8957952000}
    assert total_pixels(counted) == 8957952000.0  # no fps: the file's own count
    assert total_pixels({"pixels_processed": 1000}) == 1000.0
    for bad in (0, -5, "100", None, float("nan"), True):
        assert total_pixels({"resolution": "1920x1080", "pixels_processed": bad}) is None
