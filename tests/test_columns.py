"""advisor_core.economics.columns: records laid out as the kernels' typed columns, by hand-worked
values."""

from __future__ import annotations

import math

import pytest

from advisor_core.data.record import as_record, as_records
from advisor_core.economics import _kernels
from advisor_core.economics.columns import COLUMNS, auto_algorithm, read_columns


def _column(columns, name):
    n = columns.n
    row = COLUMNS.index(name)
    return list(columns.table[row * n:(row + 1) * n])


@pytest.fixture
def scenarios():
    return [
        {
            "name": "4 Streams @ 2500k",
            "bitrate": "2500k",
            "resolution": "1280x720",
            "fps": 30,
            "duration": 60,
            "step_seconds": 5,
            "viewers": 100,
            "power": {"mean_watts": 120.0, "total_energy_joules": 7200.0},
            "gpu_power": {"mean_watts": 30},
            "power_watts": [100.0, 140.0, 120.0],
            "cpu_usage_cores": [2, 4],
            "vmaf_score": 93.5,
        },
        "not a scenario",
        {
            "name": "ladder",
            "outputs": [{"resolution": "1920x1080", "fps": 30}, {"resolution": "640x360",
                                                                   "fps": 25}],
            "duration": 10,
            "gpu_usage_cores": [1.0, "x"],
            "step_seconds": 2,
        },
    ]


def test_every_column_of_a_hand_worked_run(scenarios):
    columns = read_columns(as_records(scenarios))
    assert columns.n == 3
    assert list(columns.ok) == [1, 0, 1]
    nan = math.nan
    expected = {
        "power_w": [150.0, nan, nan],  # power + gpu_power; the ladder has no power
        "duration_s": [60.0, nan, 10.0],
        # 1280 x 720 x 30 x 60; (1920 x 1080 x 30 + 640 x 360 x 25) x 10
        "pixels": [1_658_880_000.0, nan, 679_680_000.0],
        "viewers": [100.0, nan, nan],
        # Two CPU samples at 5 s do not span 60 s: mean 3 cores x 60 s; the ladder has no CPU,
        # and a GPU list holding "x" is invalid
        "core_s": [180.0, nan, nan],
        "bitrate_mbps": [2.5, nan, nan],  # no bitrate: unknown
        "streams": [4.0, nan, 1.0],  # no stated count: one stream
        # The power object's energy wins over the samples' 1250 J, + 30 W GPU x 60 s.
        "energy_j": [9000.0, nan, nan],
        "vmaf": [93.5, nan, nan],
    }
    assert set(expected) == set(COLUMNS)
    for name, values in expected.items():
        got = _column(columns, name)
        for a, b in zip(got, values):
            assert (math.isnan(a) and math.isnan(b)) or a == b, (name, got, values)


def test_auto_algorithm_codes(scenarios):
    columns = read_columns(as_records(scenarios))
    assert list(columns.auto) == [
        _kernels.ALGO_QOE_EFFICIENCY,  # a VMAF score
        _kernels.ALGO_THROUGHPUT_PER_WATT,  # not a dict
        _kernels.ALGO_PIXELS_PER_JOULE,  # more than one output
    ]
    assert auto_algorithm(as_record({"outputs": [{"resolution": "640x360", "fps": 25}]})) == (
        _kernels.ALGO_THROUGHPUT_PER_WATT)
    # A VMAF score out of range still picks the QoE score (which then has no value).
    assert auto_algorithm(as_record({"vmaf_score": 150})) == _kernels.ALGO_QOE_EFFICIENCY


@pytest.mark.parametrize("empty", [[], (), None, iter(())])
def test_no_scenarios_give_empty_columns(empty):
    columns = read_columns(as_records(empty))
    assert columns.n == 0 and len(columns.ok) == 0 and len(columns.table) == 0


def test_the_kernels_reject_a_table_of_another_shape(scenarios):
    columns = read_columns(as_records(scenarios))
    with pytest.raises(ValueError, match="column table"):
        _kernels.score_batch(columns.auto, columns.table[:-1])
    with pytest.raises(ValueError, match="column table"):
        _kernels.costs_batch(columns.table[:-1], columns.n, 1.0, 1.0, False,
                             0.1, 0.0, 0.0, 0.0, 0.0)
