"""End to end against a real VictoriaMetrics: the exporters' enrichment, outage and recovery.

The test starts the ``victoria-metrics`` binary (Debian package ``victoria-metrics``, installed by
.ci/run) on a free loopback port, imports RAPL power/energy, cAdvisor container CPU and
docker-stats series with explicit timestamps, writes a results file whose scenario windows lie
in that data, and runs the cost and results exporters as processes with ``--prometheus-url``.
Every enriched value is compared with a computation from the samples the test wrote, never with
the exporters' own output.

The series are shaped so that VictoriaMetrics' answers are known exactly: samples every 5 s (a
range query returns, at each step, the last sample at or before it), counters that start a minute
before every window (``increase`` over (end - W, end] is the last value minus the last one before
the window) and container counters with a constant slope from 30 s before each window on
(``rate[30s]`` is the slope). Values are multiples of 1/16, so every sum is exact in binary
floating point. One scenario has fractional epoch times, as the benchmark runner writes them.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Optional

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.slow, pytest.mark.victoriametrics]

STEP = 5
ENERGY_PRICE = 0.25  # USD/kWh (--energy-cost)
CPU_PRICE = 0.5  # USD per core-hour (--cpu-cost)
HOURS_PER_MONTH = 720.0
ENV_VARS = ("COST_EXPORTER_PORT", "QOE_EXPORTER_PORT", "RESULTS_EXPORTER_PORT", "RESULTS_DIR",
            "PROMETHEUS_URL", "REGION", "CURRENCY", "ENERGY_COST_PER_KWH", "CPU_COST_PER_HOUR",
            "GPU_COST_PER_HOUR", "ELECTRICITY_MAPS_TOKEN")

# Two hours ago, on a minute boundary: inside the default retention, far from "now" (no
# latency offset applies, and the windows are finished, so the exporters cache their answers).
T0 = (int(time.time()) - 7200) // 60 * 60
DATA_START, DATA_END = T0 - 60, T0 + 600

# Load regions of the written series (start offset from T0 -> region).
REGIONS = ((-60, "idle"), (120, "load"), (390, "heavy"))
ZONE_BASE = {  # watts at (k % period) == 0 per zone and region; zone -> (period, increment)
    "package-0": ({"idle": 8.0, "load": 45.0, "heavy": 70.0}, 7, 1.25),
    "package-1": ({"idle": 6.0, "load": 30.0, "heavy": 52.0}, 3, 0.5),
    "dram": ({"idle": 2.5, "load": 2.5, "heavy": 2.5}, 2, 0.75),
}
ENERGY_START = {"package-0": 1_000_000.0, "package-1": 2_000_000.0, "dram": 500_000.0}
# Container CPU counters (core-seconds per second, by region); the POD sandbox and the series
# without a ``name`` label must be excluded by the cost exporter's selector.
CONTAINER_SLOPES = {
    'name="encoder-a"': {"idle": 0.125, "load": 1.5, "heavy": 3.0},
    'name="encoder-b"': {"idle": 0.0625, "load": 0.25, "heavy": 0.5},
    'name="k8s_POD_encoder"': {"idle": 8.0, "load": 8.0, "heavy": 8.0},
    'id="/"': {"idle": 4.0, "load": 4.0, "heavy": 4.0},
}
DOCKER_CPU = {"idle": 2.0, "load": 140.0, "heavy": 250.0}  # percent, + (k % 4) * 2.5

BASELINE = {"name": "Baseline (Idle)", "bitrate": "0k", "resolution": "0x0", "fps": 0,
            "duration": 60, "start_time": T0, "end_time": T0 + 60}
LOADED = {"name": "2 Streams @ 2500k", "bitrate": "2500k", "resolution": "1280x720", "fps": 30,
          "duration": 120, "viewers": 4, "encoder_type": "libx264",
          "start_time": T0 + 180, "end_time": T0 + 300}
NO_DATA = {"name": "1 Stream @ 1000k", "bitrate": "1000k", "resolution": "1280x720", "fps": 30,
           "duration": 60, "start_time": T0 + 900, "end_time": T0 + 960}
# The benchmark runner writes float epoch times: off the 5 s grid of the samples.
FRACTIONAL = {"name": "3 Streams @ 1500k", "bitrate": "1500k", "resolution": "1920x1080",
              "fps": 30, "duration": 180.5, "viewers": 3, "start_time": T0 + 150.25,
              "end_time": T0 + 330.75}
# More than 30,000 steps of 5 s: VictoriaMetrics refuses the range queries (HTTP 422).
LONG = {"name": "Soak test @ 2500k", "bitrate": "2500k", "duration": 3 * 86400,
        "start_time": DATA_START - 3 * 86400 - 600, "end_time": DATA_START - 600}
HEAVY = {"name": "4 Streams @ 1000k", "bitrate": "1000k", "resolution": "640x360", "fps": 25,
         "duration": 60, "viewers": 2, "start_time": T0 + 420, "end_time": T0 + 480}


# ---------------------------------------------------------------------------------------------
# The series written, and what VictoriaMetrics must answer about them
# ---------------------------------------------------------------------------------------------


def region(t: int) -> str:
    name = REGIONS[0][1]
    for offset, label in REGIONS:
        if t >= T0 + offset:
            name = label
    return name


def timestamps() -> range:
    return range(DATA_START, DATA_END + 1, STEP)


def power(zone: str, t: int) -> float:
    base, period, increment = ZONE_BASE[zone]
    k = (t - DATA_START) // STEP
    return base[region(t)] + (k % period) * increment


def energy_counter(zone: str) -> dict[int, float]:
    """Joules counter: each 5 s interval adds the power at its start x 5 s."""
    values, total = {}, ENERGY_START[zone]
    for t in timestamps():
        values[t] = total
        total += power(zone, t) * STEP
    return values


def container_counter(selector: str) -> dict[int, float]:
    values, total = {}, 100.0
    for t in timestamps():
        values[t] = total
        total += CONTAINER_SLOPES[selector][region(t)] * STEP
    return values


def docker_cpu(t: int) -> float:
    return DOCKER_CPU[region(t)] + ((t - DATA_START) // STEP % 4) * 2.5


def exposition_lines() -> list[str]:
    lines = []
    energy = {zone: energy_counter(zone) for zone in ZONE_BASE}
    cpu = {selector: container_counter(selector) for selector in CONTAINER_SLOPES}
    for t in timestamps():
        ms = t * 1000
        for zone in ZONE_BASE:
            lines.append(f'rapl_power_watts{{zone="{zone}"}} {power(zone, t)!r} {ms}')
            lines.append(f'rapl_energy_joules_total{{zone="{zone}"}} {energy[zone][t]!r} {ms}')
        for selector, values in cpu.items():
            lines.append(f"container_cpu_usage_seconds_total{{{selector}}} {values[t]!r} {ms}")
        lines.append(f"docker_containers_total_cpu_percent {docker_cpu(t)!r} {ms}")
    return lines


def grid(scenario: dict) -> list[float]:
    """The 5 s step points of a range query over the scenario's window: start + k x 5 <= end."""
    start, end = scenario["start_time"], scenario["end_time"]
    return [start + k * STEP for k in range(int((end - start) // STEP) + 1)]


def last_sample(t: float) -> int:
    """Time of the last sample written at or before ``t`` (what a 5 s lookbehind finds)."""
    return DATA_START + int((t - DATA_START) // STEP) * STEP


def trapezoid(values: list[float], step: float) -> float:
    return step / 2 * (values[0] + values[-1] + 2 * math.fsum(values[1:-1]))


def all_zones_power(scenario: dict) -> list[float]:
    """``sum(rapl_power_watts)`` at each step (every zone: what the reference cost exporter
    asked for)."""
    return [math.fsum(power(zone, last_sample(t)) for zone in ZONE_BASE)
            for t in grid(scenario)]


def package_power(scenario: dict) -> list[float]:
    """``sum(rapl_power_watts{zone=~"package.*"})`` at each step (both exporters' query)."""
    return [power("package-0", last_sample(t)) + power("package-1", last_sample(t))
            for t in grid(scenario)]


def package_energy(scenario: dict) -> float:
    """``sum(increase(rapl_energy_joules_total{zone=~"package.*"}[W s]))`` at the end.

    W is the whole seconds of the window; the increase over (end - W, end] is the last counter
    value in it minus the last one before it.
    """
    start, end = scenario["start_time"], scenario["end_time"]
    first, last = last_sample(end - max(1, int(end - start))), last_sample(end)
    return math.fsum(energy_counter(z)[last] - energy_counter(z)[first]
                     for z in ("package-0", "package-1"))


def container_cores(scenario: dict) -> list[float]:
    """The cost exporter's CPU query: summed rate of the named, non-POD containers."""
    label = region(scenario["start_time"])
    assert region(scenario["start_time"] - 30) == label == region(scenario["end_time"])
    cores = sum(CONTAINER_SLOPES[f'name="encoder-{x}"'][label] for x in "ab")
    return [cores for _ in grid(scenario)]


def expected_cost(scenario: dict) -> dict[str, float]:
    watts = package_power(scenario)
    energy = trapezoid(watts, STEP) * ENERGY_PRICE / 3_600_000
    compute = trapezoid(container_cores(scenario), STEP) * CPU_PRICE / 3600
    total = energy + compute
    width, height = (int(x) for x in scenario["resolution"].split("x"))
    out = {
        "cost_energy_load_aware": energy,
        "cost_compute_load_aware": compute,
        "cost_total_load_aware": total,
        "cost_usd_per_hour": statistics.fmean(watts) / 1000 * ENERGY_PRICE,
        "cost_monthly_projection": statistics.fmean(watts) / 1000 * ENERGY_PRICE * 720,
    }
    pixels = width * height * scenario["fps"] * scenario["duration"]
    if pixels:
        out["cost_per_pixel"] = total / pixels
    if scenario.get("viewers"):
        out["cost_per_watch_hour"] = total / (scenario["duration"] / 3600 * scenario["viewers"])
    baseline_watts = statistics.fmean(package_power(BASELINE))
    out["cost_monthly_savings"] = (
        (baseline_watts - statistics.fmean(watts)) / 1000 * ENERGY_PRICE * HOURS_PER_MONTH)
    return out


def expected_results(scenario: dict) -> dict[str, float]:
    window = scenario["end_time"] - scenario["start_time"]
    joules = package_energy(scenario)
    mean = joules / window
    cpu = statistics.fmean(docker_cpu(last_sample(t)) for t in grid(scenario))
    baseline_mean = package_energy(BASELINE) / (BASELINE["end_time"] - BASELINE["start_time"])
    stdev = statistics.stdev(package_power(scenario))
    return {
        "results_scenario_duration_seconds": window,
        "results_scenario_total_energy_joules": joules,
        "results_scenario_total_energy_wh": joules / 3600,
        "results_scenario_mean_power_watts": mean,
        "results_scenario_measured_power_watts": mean,
        "results_scenario_energy_wh_per_min": joules / 3600 * 60 / window,
        "results_scenario_power_stdev": stdev,
        "results_scenario_prediction_confidence_high": mean + 2 * stdev,
        "results_scenario_container_cpu_percent": cpu,
        "results_scenario_estimated_docker_overhead_watts": min(1.0, cpu / 100) * mean,
        "results_scenario_delta_power_watts": mean - baseline_mean,
        "results_scenario_power_pct_increase": (mean - baseline_mean) / baseline_mean * 100,
    }


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0,
             alive: Optional[Callable[[], None]] = None) -> object:
    """Poll ``condition`` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            result = condition()
        except (OSError, KeyError, ValueError, AssertionError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


def victoria_metrics_binary() -> str:
    """The binary CI installs; its absence is a broken environment, not a reason to skip."""
    path = os.environ.get("VICTORIA_METRICS_BIN") or shutil.which("victoria-metrics") \
        or shutil.which("victoria-metrics-prod")  # the name inside the release archives
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"victoria-metrics binary not found ({path or 'not on PATH'}): install it "
                    "(Debian: `apt-get install -y victoria-metrics`, as .ci/run does) or set "
                    "VICTORIA_METRICS_BIN", pytrace=False)
    return path


def terminate(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL when the process has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class VictoriaMetrics:
    """A real single-node VictoriaMetrics on loopback with its data in a temporary directory."""

    def __init__(self, binary: str, data_dir: Path, log: Path, *extra: str) -> None:
        self.binary, self.data_dir, self.log, self.extra = binary, data_dir, log, extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"-httpListenAddr=127.0.0.1:{self.port}",
                 f"-storageDataPath={self.data_dir}", "-retentionPeriod=100y",
                 # Answer with what was just written: no response cache, no latency offset.
                 "-search.disableCache", "-search.latencyOffset=0s", "-loggerLevel=WARN",
                 *self.extra],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._get("/health") == b"OK", "VictoriaMetrics /health",
                 alive=self._alive)

    def _alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"victoria-metrics exited: {self.log.read_text()[-2000:]}")

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return response.read()

    def query_range(self, expr: str, start: int, end: int) -> list:
        params = urllib.parse.urlencode({"query": expr, "start": start, "end": end,
                                         "step": f"{STEP}s"})
        return json.loads(self._get(f"/api/v1/query_range?{params}"))["data"]["result"]

    def requests(self, path: str) -> float:
        """HTTP requests VictoriaMetrics has served on ``path`` since it started."""
        metrics = text_string_to_metric_families(self._get("/metrics").decode())
        return sum(sample.value for family in metrics for sample in family.samples
                   if sample.name == "vm_http_requests_total"
                   and sample.labels.get("path") == path)

    def import_prometheus(self, lines: list[str]) -> None:
        request = urllib.request.Request(f"{self.url}/api/v1/import/prometheus",
                                         data="\n".join(lines).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204
        self.flush()

    def flush(self) -> None:
        """Make the rows written so far searchable now, not at the next periodic flush."""
        self._get("/internal/force_flush")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 10.0)


@pytest.fixture
def victoria(tmp_path: Path):
    """VictoriaMetrics holding the test series; stopped at teardown."""
    server = VictoriaMetrics(victoria_metrics_binary(), tmp_path / "vmdata", tmp_path / "vm.log")
    server.start()
    try:
        server.import_prometheus(exposition_lines())
        points = len(timestamps())

        def imported() -> bool:
            result = server.query_range("rapl_power_watts", DATA_START, DATA_END)
            return len(result) == 3 and all(len(s["values"]) == points for s in result)

        wait_for(imported, "the imported series to be searchable")
        yield server
    finally:
        server.stop()


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Exporter:
    """One exporter console script (``python -m``) as a process on a free loopback port."""

    def __init__(self, module: str, results_dir: Path, url: str, log: Path) -> None:
        self.module, self.log = module, log
        self.port = free_port()
        # Pricing flags exist where they mean something: the cost exporter only.
        pricing = (["--region", "us-east-1", "--energy-cost", str(ENERGY_PRICE), "--cpu-cost",
                    str(CPU_PRICE)] if module.endswith("cost") else [])
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, "--port", str(self.port), "--listen-address",
                 "127.0.0.1", "--results-dir", str(results_dir), "--refresh-interval", "0.1",
                 "--prometheus-url", url, *pricing],
                env=clean_env(), stdout=out, stderr=subprocess.STDOUT)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.module} exited ({self.proc.returncode}): "
                                 f"{self.log.read_text()[-3000:]}")

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def metrics(self) -> dict:
        status, body = self.get("/metrics")
        assert status == 200
        return {f.name: f for f in text_string_to_metric_families(body.decode())}

    def wait(self, condition: Callable[[dict], bool], what: str, timeout: float = 20.0) -> dict:
        """Scrape until ``condition(parsed metrics)`` holds; return those metrics."""
        found: list[dict] = []

        def check() -> bool:
            parsed = self.metrics()
            if condition(parsed):
                found.append(parsed)
                return True
            return False

        wait_for(check, f"{self.module}: {what}", timeout, alive=self.alive)
        return found[0]

    def stop(self) -> None:
        terminate(self.proc, 5.0)


@pytest.fixture
def exporters(tmp_path: Path, victoria: VictoriaMetrics):
    """Cost and results exporters started together on one results file, pointed at VM."""
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    write_results(results_dir / "test_results_20250101_000000.json",
                  [BASELINE, LOADED, NO_DATA, FRACTIONAL, LONG])
    started = [Exporter(module, results_dir, victoria.url, tmp_path / f"{name}.log")
               for name, module in (("cost", "exporters.cost"),
                                    ("results", "exporters.results"))]
    try:
        for exporter in started:
            wait_for(lambda e=exporter: e.get("/health") == (200, b"OK\n"),
                     f"{exporter.module} /health", alive=exporter.alive)
        yield results_dir, started[0], started[1]
    finally:
        for exporter in started:
            exporter.stop()


def write_results(path: Path, scenarios: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"test_date": "2025-01-01T00:00:00", "scenarios": scenarios}))
    tmp.rename(path)  # atomic: the exporter never sees half a file


def gauge(parsed: dict, family: str, **labels: str) -> float:
    samples = [s.value for s in parsed[family].samples
               if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(samples) == 1, (family, labels, samples)
    return samples[0]


def scenarios_of(parsed: dict, family: str) -> set:
    samples = parsed[family].samples if family in parsed else []
    return {s.labels["scenario"] for s in samples if "scenario" in s.labels}


def enriched(parsed: dict, prefix: str, family: str, names: set) -> bool:
    return (gauge(parsed, f"{prefix}_exporter_victoriametrics_up") == 1.0
            and names <= scenarios_of(parsed, family))


def assert_cost(parsed: dict, scenario: dict) -> None:
    for family, expected in expected_cost(scenario).items():
        got = gauge(parsed, family, scenario=scenario["name"])
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-15), family


def assert_results(parsed: dict, scenario: dict) -> None:
    for family, expected in expected_results(scenario).items():
        got = gauge(parsed, family, scenario=scenario["name"])
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), family


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_enriched_values_equal_computations_from_the_written_series(
        exporters, victoria: VictoriaMetrics) -> None:
    _, cost, results = exporters
    names = {BASELINE["name"], LOADED["name"], FRACTIONAL["name"]}

    parsed = cost.wait(lambda p: enriched(p, "cost", "cost_total_load_aware", names),
                       "load-aware costs from VictoriaMetrics")
    for scenario in (BASELINE, LOADED, FRACTIONAL):
        assert_cost(parsed, scenario)
    # The baseline saves nothing against itself; the loaded scenario draws more (negative).
    assert gauge(parsed, "cost_monthly_savings", scenario=BASELINE["name"]) == 0.0
    assert gauge(parsed, "cost_monthly_savings", scenario=LOADED["name"]) < 0
    # No samples in the third window: no cost at all rather than a made-up 0.
    assert NO_DATA["name"] not in scenarios_of(parsed, "cost_total_load_aware")
    assert LONG["name"] not in scenarios_of(parsed, "cost_total_load_aware")
    assert gauge(parsed, "cost_exporter_skipped_scenarios", reason="no_load_aware_data") == 2.0
    assert gauge(parsed, "cost_exporter_up") == 1.0

    parsed = results.wait(
        lambda p: enriched(p, "results", "results_scenario_mean_power_watts", names),
        "power and energy from VictoriaMetrics")
    for scenario in (BASELINE, LOADED, FRACTIONAL):
        assert_results(parsed, scenario)
    assert gauge(parsed, "results_scenario_delta_power_watts", scenario=BASELINE["name"]) == 0.0
    assert NO_DATA["name"] not in scenarios_of(parsed, "results_scenario_mean_power_watts")
    assert gauge(parsed, "results_scenario_duration_seconds", scenario=NO_DATA["name"]) == 60.0
    assert gauge(parsed, "results_exporter_skipped_scenarios", reason="no_power_data") == 2.0
    # dram is not a package zone: both exporters' power excludes it (the one power is the
    # CPU package's; the reference cost exporter summed every zone).
    assert gauge(parsed, "results_scenario_mean_power_watts", scenario=LOADED["name"]) < (
        statistics.fmean(all_zones_power(LOADED)) - 2.0)

    # Every window is finished and answered (LONG's with a refusal): the exporters must not
    # ask again. Ten refresh intervals of both exporters without a single range query.
    sent = victoria.requests("/api/v1/query_range")
    time.sleep(1.0)
    assert victoria.requests("/api/v1/query_range") == sent
    for exporter in (cost, results):
        exporter.alive()


def test_outage_keeps_last_metrics_and_recovers(exporters, victoria: VictoriaMetrics) -> None:
    results_dir, cost, results = exporters
    names = {BASELINE["name"], LOADED["name"], FRACTIONAL["name"]}
    watched = (
        (cost, "cost", "cost_total_load_aware"),
        (results, "results", "results_scenario_mean_power_watts"),
    )
    before = {prefix: exporter.wait(lambda p, pr=prefix, f=family: enriched(p, pr, f, names),
                                    "first enrichment")
              for exporter, prefix, family in watched}

    victoria.stop()
    # A newer file with one more scenario whose window was never asked: the refresh has to go
    # to the database, finds it down, and must still publish everything else.
    write_results(results_dir / "test_results_20250102_000000.json",
                  [BASELINE, LOADED, NO_DATA, FRACTIONAL, LONG, HEAVY])
    for exporter, prefix, family in watched:
        parsed = exporter.wait(
            lambda p, pr=prefix: gauge(p, f"{pr}_scenarios_total") == 6.0
            and gauge(p, f"{pr}_exporter_victoriametrics_up") == 0.0,
            "the new file and victoriametrics_up 0")
        assert exporter.get("/health") == (200, b"OK\n")
        assert gauge(parsed, f"{prefix}_exporter_up") == 1.0
        assert gauge(parsed, f"{prefix}_exporter_refresh_errors") == 0.0
        # The windows already answered keep their values (finished windows are cached) ...
        # (model predictions excepted: a new run retrains the model in the background)
        for name in names:
            for fam in parsed:
                if fam.startswith(("cost_", "co2_", "results_scenario_")) and (
                        "_predicted_" not in fam) and name in scenarios_of(before[prefix], fam):
                    assert gauge(parsed, fam, scenario=name) == gauge(
                        before[prefix], fam, scenario=name), fam
        # ... and the unanswered one gets no invented numbers.
        assert HEAVY["name"] not in scenarios_of(parsed, family)

    # Back on the same port and data: the exporters retry (with backoff) and fill the gap.
    victoria.start()
    parsed = cost.wait(lambda p: enriched(p, "cost", "cost_total_load_aware",
                                          {*names, HEAVY["name"]}),
                       "recovery after the restart")
    for scenario in (BASELINE, LOADED, FRACTIONAL, HEAVY):
        assert_cost(parsed, scenario)
    parsed = results.wait(lambda p: enriched(p, "results", "results_scenario_mean_power_watts",
                                             {*names, HEAVY["name"]}),
                          "recovery after the restart")
    for scenario in (BASELINE, LOADED, FRACTIONAL, HEAVY):
        assert_results(parsed, scenario)
    for exporter in (cost, results):
        exporter.alive()
        assert "Traceback" not in exporter.log.read_text(), exporter.module
