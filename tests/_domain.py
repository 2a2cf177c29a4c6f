"""Scenario generators shared by the cost, scoring and recommender tests.

``scenarios`` (hypothesis) produces arbitrary JSON-like scenario dicts: every field may be
missing, null, the wrong type, NaN, ±inf, negative or huge. ``random_scenarios`` produces
mostly plausible runs with a sprinkling of broken fields, for batch-vs-single comparisons.
"""

from __future__ import annotations

import math
import random

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)

odd_numbers = st.sampled_from(
    [0, 0.0, -0.0, -1, -1e-9, 1e308, 5e-324, 10**400, math.nan, math.inf, -math.inf, True, "60"]
)
plausible = st.floats(min_value=0, max_value=1e4, allow_nan=False)
numbers = st.one_of(plausible, odd_numbers, st.integers(), st.floats(), st.none())
samples = st.one_of(
    st.lists(st.one_of(plausible, plausible, odd_numbers, st.integers()), max_size=6),
    st.lists(plausible, min_size=1, max_size=6),
    json_values,
)
resolutions = st.sampled_from(
    ["1920x1080", "1280x720", "854x480", "0x0", "abc", "N/A", "", "100000x100000", "1920X1080"]
) | json_values
names = st.sampled_from(
    ["4 Streams @ 2500k", "1 Mbps Stream", "10 Mbps Stream", "Baseline (Idle)", "Multi Stream",
     "Multi-res ladder @ 2500k", "99999999999999999999999999999 streams", "9" * 400 + " streams"]
) | st.text(max_size=12) | json_values
bitrates = st.sampled_from(
    ["2500k", "5M", "0k", "N/A", "", "abc", "3000", "5Mbps", "1e308M", "-100k"]
) | json_values
power = st.one_of(
    st.none(),
    json_values,
    st.fixed_dictionaries({}, optional={"mean_watts": numbers, "total_energy_joules": numbers}),
)
gpu_power = st.one_of(
    st.none(), json_values, st.fixed_dictionaries({}, optional={"mean_watts": numbers})
)
rendition = st.fixed_dictionaries({}, optional={"resolution": resolutions, "fps": numbers})
outputs = st.one_of(st.none(), json_values, st.lists(st.one_of(rendition, json_values), max_size=4))

scenarios = st.fixed_dictionaries(
    {},
    optional={
        "name": names,
        "bitrate": bitrates,
        "resolution": resolutions,
        "fps": numbers,
        "duration": numbers,
        "outputs": outputs,
        "power": power,
        "gpu_power": gpu_power,
        "vmaf_score": numbers,
        "power_watts": samples,
        "cpu_usage_cores": samples,
        "gpu_usage_cores": samples,
        "step_seconds": numbers,
        "viewers": numbers,
    },
)

#: Anything a caller might pass where a scenario belongs.
anything = st.one_of(scenarios, scenarios, json_values)

_RUNGS = [("1920x1080", 30), ("1280x720", 30), ("854x480", 30), ("640x360", 25)]
_BROKEN = [None, "N/A", math.nan, -5, "abc", [], {}, math.inf, True]


def random_scenario(rng: random.Random, index: int) -> dict:
    """One plausible analysed scenario; about one field in twelve is broken."""
    streams = rng.choice([1, 2, 4, 8])
    kbps = rng.choice([0, 1000, 2500, 5000])
    duration = rng.choice([60, 120, 300.5])
    steps = int(duration // 5)
    watts = rng.uniform(20, 300)
    scenario: dict = {
        "name": rng.choice([f"{streams} Streams @ {kbps}k", f"{kbps / 1000:g} Mbps Stream",
                            "Baseline (Idle)", f"Multi-res ladder #{index}"]),
        "bitrate": f"{kbps}k",
        "resolution": rng.choice(_RUNGS)[0],
        "fps": 30,
        "duration": duration,
        "power": {"mean_watts": watts, "total_energy_joules": watts * duration},
        "power_watts": [rng.uniform(20, 300) for _ in range(steps)],
        "cpu_usage_cores": [rng.uniform(0, 8) for _ in range(steps)],
        "step_seconds": 5,
    }
    if rng.random() < 0.3:
        scenario["outputs"] = [
            {"resolution": r, "fps": f} for r, f in rng.sample(_RUNGS, rng.randint(1, 3))
        ]
    if rng.random() < 0.3:
        scenario["vmaf_score"] = rng.uniform(60, 99)
    if rng.random() < 0.2:
        scenario["gpu_power"] = {"mean_watts": rng.uniform(5, 80)}
        scenario["gpu_usage_cores"] = [rng.uniform(0, 2) for _ in range(steps)]
    if rng.random() < 0.3:
        scenario["viewers"] = rng.choice([1, 10, 400, 0])
    for key in list(scenario):
        if rng.random() < 1 / 12:
            scenario[key] = rng.choice(_BROKEN)
    return scenario


def random_scenarios(seed: int, n: int) -> list:
    """``n`` random scenarios (seeded); a few entries are not dicts at all."""
    rng = random.Random(seed)
    return [
        random_scenario(rng, i) if rng.random() > 0.02 else rng.choice([None, 7, "x"])
        for i in range(n)
    ]
