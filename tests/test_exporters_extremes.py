"""Every exporter on scenarios of extreme, wrong-typed and missing values: no crash, no inf/NaN."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from advisor_core.data.reader import run_record
from advisor_core.data.scenario import load_results
from exporters._promql import PromClient
from exporters.cost import CostMetrics
from exporters.exposition import render_families
from exporters.qoe import QoEMetrics
from exporters.results import ResultsMetrics
from exporters.settings import parse_settings

# Values at the edges of the float range (subnormals, 1.7e308), beyond it as JSON integers
# (10**400), and of the wrong type; plus ordinary ones so that scenarios have baselines, ladders
# and deltas to compute.
EXTREMES = st.sampled_from([
    0, 0.0, 5e-324, 1e-320, 1e-300, 1e-10, 0.25, 1.0, 7.5, 30, 100.0, 1e6, 1e15, 1e200, 1e300,
    1.7e308, 10**30, 10**400, -1.0, -1e308, True, None, "x", "2500k", [], {},
])
NUMBERS = EXTREMES | st.floats(allow_nan=False, allow_infinity=False)
SAMPLES = st.lists(EXTREMES | st.floats(min_value=0, max_value=500), max_size=4) | EXTREMES
SCENARIO = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["baseline idle", "2 Streams @ 2500k", "1 stream 720p", "idle",
                                 "4 streams @ 5M", "ladder 1080p+720p"]),
        "bitrate": st.sampled_from(["2500k", "1e308k", "0k", "1e-300M", None, 5, "5M"]),
        "resolution": st.sampled_from(["1920x1080", "99999x99999", "1x1", None, 7]),
        "fps": NUMBERS, "duration": NUMBERS, "step_seconds": NUMBERS,
        "vmaf_score": NUMBERS, "psnr_score": NUMBERS, "ssim_score": NUMBERS,
        "power_watts": SAMPLES, "cpu_usage_cores": SAMPLES,
        "power": st.none() | st.fixed_dictionaries(
            {}, optional={"mean_watts": NUMBERS, "total_energy_joules": NUMBERS,
                          "stdev_watts": NUMBERS}),
        "gpu_power": st.none() | st.fixed_dictionaries({"mean_watts": NUMBERS}),
        "start_time": st.sampled_from([1.7e9, None, 1e300, -5.0]),
        "end_time": st.sampled_from([1.7e9 + 60, 1.7e9 + 1e-6, None, 1.7e308]),
        "container_usage": st.none() | st.fixed_dictionaries({"cpu_percent": NUMBERS}),
        "frames_total": NUMBERS, "dropped_frames": NUMBERS, "avg_fps": NUMBERS,
        "outputs": st.none() | st.lists(st.fixed_dictionaries(
            {"resolution": st.sampled_from(["1280x720", "0x0", None]), "fps": NUMBERS,
             "bitrate": st.sampled_from(["1500k", "1e308k", None])}), max_size=2),
    },
    optional={"viewers": NUMBERS, "encoder_type": st.sampled_from(["gpu", "cpu", 3])},
)


@pytest.fixture(scope="module")
def metric_sets(tmp_path_factory) -> Iterator[list]:
    settings_ = parse_settings("t", [CostMetrics], ["--results-dir",
                                                     str(tmp_path_factory.mktemp("r"))])
    yield [CostMetrics(settings_), QoEMetrics(), ResultsMetrics()]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios=st.lists(SCENARIO, min_size=1, max_size=5))
def test_every_exported_value_is_finite_and_compute_never_raises(metric_sets, scenarios) -> None:
    for index, scenario in enumerate(scenarios):
        scenario["name"] = f"{scenario['name']} #{index}"
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "test_results_20990101_000000.json"
        path.write_text(json.dumps({"scenarios": scenarios}))  # 10**400 is a valid JSON number
        run = run_record(path, load_results(path))
    for metric_set in metric_sets:
        text = render_families(metric_set.compute(run, PromClient(None))).decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                assert math.isfinite(sample.value), (metric_set.name, sample)
        assert all(count > 0 for count in metric_set.skipped().values())
