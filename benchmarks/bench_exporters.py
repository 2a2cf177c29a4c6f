"""Exporter benchmarks: scrape latency vs a re-render-per-request baseline, refresh time, memory.

1,000 generated scenarios in the extended schema (sample arrays, VMAF/PSNR/SSIM, frames, windows
in the past). Everything runs on loopback; each loop is bounded. Targets: gzip scrape median
< 1 ms and p99 < 5 ms, plain p99 < 10 ms, >= 5x faster than the baseline (a minimal http.server
handler that renders the same families with prometheus_client on every request, measured in the
same run), gzip median <= 1.5x the same handler answering bytes rendered once (the floor of a
Python server, same run), refresh of all three sets after a file change (load + compute + render
+ gzip) >= 5x faster than only loading the file and serialising the same families with
prometheus_client (``generate_latest`` + ``gzip.compress``, what the reference paid on every
scrape), measured in the same run; peak RSS cost/QoE < 35 MB, results < 60 MB, all three
< 70 MB. The figures are printed and every target is asserted except the plain p99 (a 9.8 MB
body on the results exporter), asserted at 25 ms: a regression guard with headroom on a shared
machine.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _targets import timing_target

ENV_VARS = ("COST_EXPORTER_PORT", "QOE_EXPORTER_PORT", "RESULTS_EXPORTER_PORT", "RESULTS_DIR",
            "PROMETHEUS_URL", "REGION", "CURRENCY", "ENERGY_COST_PER_KWH", "CPU_COST_PER_HOUR")
SCENARIOS = 1000
SCRAPES = 300
BASELINE_SCRAPES = 40
MODULES = {"cost": "exporters.cost", "qoe": "exporters.qoe", "results": "exporters.results"}

BASELINE = r"""
import gzip, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from advisor_core.data.scenario import load_results
from advisor_core.data.reader import run_record
from exporters.settings import parse_settings
from exporters.exposition import _StaticCollector
from exporters._promql import PromClient
import importlib
kind, port, results_dir, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
module = importlib.import_module("exporters." + kind)
cls = {"cost": "CostMetrics", "qoe": "QoEMetrics", "results": "ResultsMetrics"}[kind]
cls = getattr(module, cls)
settings = parse_settings("baseline", [cls], ["--results-dir", results_dir, "--port", "0"])
path = sorted(Path(results_dir).glob("test_results_*.json"))[-1]
families = cls(settings).compute(run_record(path, load_results(path)), PromClient(None))

def render():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StaticCollector(families))
    return generate_latest(registry)

# "static": the same bytes rendered and compressed once, the least a Python server can do
static = render()
static = (static, gzip.compress(static, 6))  # the exporters serve level 6 too

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        gz = "gzip" in self.headers.get("Accept-Encoding", "")
        if mode == "static":
            body = static[1] if gz else static[0]
        else:
            body = render()
            if gz:
                body = gzip.compress(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = HTTPServer(("127.0.0.1", port), Handler)
print("ready", flush=True)
server.serve_forever()
"""


def generate_scenarios(count: int, seed: int = 0) -> list[dict]:
    """Extended-schema scenarios with sample arrays and quality scores (unique-ish names)."""
    rng = random.Random(seed)
    out = []
    start = 1_700_000_000
    for i in range(count):
        streams = rng.choice([1, 2, 4, 8])
        bitrate = rng.choice([1000, 2500, 5000, 8000])
        samples = rng.randint(12, 36)
        base_w = 20 + 8 * streams
        name = f"{streams} streams @ {bitrate}k #{i % (count - 5)}"  # a few duplicates
        if i == 0:
            name = "baseline idle"
        out.append({
            "name": name, "bitrate": f"{bitrate}k", "resolution": "1920x1080", "fps": 30,
            "duration": samples * 5, "start_time": start, "end_time": start + samples * 5,
            "encoder_type": rng.choice(["libx264", "h264_nvenc", "libx265"]),
            "step_seconds": 5, "viewers": rng.randint(1, 500),
            "power_watts": [round(base_w + rng.uniform(-3, 3), 2) for _ in range(samples)],
            "cpu_usage_cores": [round(streams * 1.1 + rng.uniform(-.2, .2), 3)
                                for _ in range(samples)],
            "vmaf_score": round(rng.uniform(70, 99), 2),
            "psnr_score": round(rng.uniform(35, 48), 2),
            "ssim_score": round(rng.uniform(0.9, 0.999), 4), "avg_fps": 29.97,
            "total_frames": samples * 150, "dropped_frames": rng.randint(0, 20),
            "pixels_processed": 1920 * 1080 * 30 * samples * 5,
        })
        start += samples * 5 + 10
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ENV_VARS}


def scrape(port: int, gzip_ok: bool) -> int:
    """One scrape on a new TCP connection; reads the whole response; returns its size."""
    accept = "Accept-Encoding: gzip\r\n" if gzip_ok else ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"
                     .encode())
        size = 0
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return size
            size += len(chunk)


def timings(port: int, gzip_ok: bool, count: int) -> list[float]:
    for _ in range(5):
        scrape(port, gzip_ok)  # warm
    out = []
    for _ in range(count):
        started = time.perf_counter()
        scrape(port, gzip_ok)
        out.append(time.perf_counter() - started)
    return out


def timings_paired(port: int, other: int, count: int) -> tuple[list[float], list[float]]:
    """Gzip scrape times of two servers, taken one request of each in turn."""
    for _ in range(5):
        scrape(port, True)
        scrape(other, True)
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(count):
        for series, target in zip(out, (port, other)):
            started = time.perf_counter()
            scrape(target, True)
            series.append(time.perf_counter() - started)
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * 0.99))]


def status_mb(pid: int, field: str) -> float:
    """A memory field of /proc/<pid>/status (VmHWM, RssAnon, RssFile, ...) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def vm_hwm_mb(pid: int) -> float:
    return status_mb(pid, "VmHWM")


def get(port: int, path: str = "/metrics") -> bytes:
    """The whole answer (head and body) to a GET on a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return b"".join(iter(lambda: sock.recv(1 << 16), b""))


def wait_ready(port: int, proc: subprocess.Popen) -> None:
    """Wait until the exporter on ``port`` has finished its first refresh (the port answers
    before it does, with ``_exporter_starting 1``)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if b"_exporter_starting 0.0\n" in get(port):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not start")


def wait_trained(port: int) -> None:
    """Wait until a results exporter's power model has been trained (or failed to be): its
    background job would otherwise share the two cores with the scrapes being timed."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = get(port)
        for name in (b"results_model_trainings_total", b"results_model_training_failures_total"):
            line = next(ln for ln in answer.split(b"\n") if ln.startswith(name + b" "))
            if float(line.split()[1]) > 0:
                return
        time.sleep(0.2)
    raise AssertionError("the results model was not trained within 120 s")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("results")
    (directory / "test_results_20250101_000000.json").write_text(
        json.dumps({"scenarios": generate_scenarios(SCENARIOS)}))
    return directory


@pytest.fixture(scope="module")
def exporters(results_dir: Path):
    """One process per exporter, plus the all-in-one process."""
    procs: dict[str, tuple[subprocess.Popen, dict]] = {}
    common = ["--listen-address", "127.0.0.1", "--results-dir", str(results_dir)]
    try:
        for kind, module in MODULES.items():
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port), *common],
                                    env=env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            procs[kind] = (proc, {kind: port})
        ports = {kind: free_port() for kind in MODULES}
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporters.all", *common,
             *[arg for kind, port in ports.items() for arg in (f"--{kind}-port", str(port))]],
            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs["all"] = (proc, ports)
        for proc, port_map in procs.values():
            for port in port_map.values():
                wait_ready(port, proc)
        for _, port_map in procs.values():
            if "results" in port_map:
                wait_trained(port_map["results"])
        # The re-render with the model's predictions deflates its big body once more on the
        # job thread (docs/exporters.md §10): let it finish before scrapes are timed.
        time.sleep(2.0)
        yield procs
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def baselines(results_dir: Path):
    """{mode: {kind: port}}: per exporter, a minimal http.server that re-renders the families
    with prometheus_client on every request ("rerender") or answers bytes rendered once
    ("static")."""
    procs = {}
    try:
        for mode in ("rerender", "static"):
            for kind in MODULES:
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, "-c", BASELINE, kind, str(port), str(results_dir), mode],
                    env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                procs[mode, kind] = (proc, port)
        for proc, _ in procs.values():
            assert proc.stdout.readline().strip() == b"ready"
        yield {mode: {kind: port for (m, kind), (_, port) in procs.items() if m == mode}
               for mode in ("rerender", "static")}
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.parametrize("kind", list(MODULES))
def test_scrape_latency_vs_baselines(benchmark, kind: str, exporters, baselines) -> None:
    port = exporters[kind][1][kind]
    benchmark.pedantic(scrape, args=(port, True), rounds=SCRAPES, warmup_rounds=5)
    gz = list(benchmark.stats.stats.data)
    plain = timings(port, False, SCRAPES)
    base_gz = timings(baselines["rerender"][kind], True, BASELINE_SCRAPES)
    base_plain = timings(baselines["rerender"][kind], False, BASELINE_SCRAPES)
    # Against the floor, one scrape of each in turn: both see the same moments of the machine.
    paired = timings_paired(port, baselines["static"][kind], SCRAPES)
    sizes = scrape(port, False), scrape(port, True)
    ratio_gz = statistics.median(base_gz) / statistics.median(gz)
    ratio_plain = statistics.median(base_plain) / statistics.median(plain)
    ours_ms, floor_ms = (statistics.median(series) * 1e3 for series in paired)
    versus_static = ours_ms / floor_ms
    print(f"\n{kind}: body {sizes[0]} B plain / {sizes[1]} B gzip; "
          f"gzip median {statistics.median(gz) * 1e3:.3f} ms p99 {p99(gz) * 1e3:.3f} ms; "
          f"plain median {statistics.median(plain) * 1e3:.3f} ms p99 {p99(plain) * 1e3:.3f} ms; "
          f"re-render baseline gzip median {statistics.median(base_gz) * 1e3:.2f} ms "
          f"plain {statistics.median(base_plain) * 1e3:.2f} ms; "
          f"speed-up gzip {ratio_gz:.1f}x plain {ratio_plain:.1f}x; "
          f"paired with the same-bytes baseline, gzip median ours {ours_ms:.3f} ms, "
          f"it {floor_ms:.3f} ms (ours / it {versus_static:.2f})")
    timing_target(statistics.median(gz) < 1e-3, f"{kind}: gzip median >= 1 ms")
    timing_target(p99(gz) < 5e-3, f"{kind}: gzip p99 >= 5 ms")
    # A plain results body is 9.8 MB (p99 ~6 ms here): a guard with headroom, target 10 ms.
    timing_target(p99(plain) < 25e-3, f"{kind}: plain p99 >= 25 ms")
    timing_target(ratio_gz >= 5.0 and ratio_plain >= 5.0, f"{kind}: speed-up below 5x")
    timing_target(versus_static <= 1.5,
                  f"{kind}: gzip median {versus_static:.2f}x the same-bytes server's (> 1.5x)")


def test_refresh_all_three_after_file_change(benchmark, results_dir: Path, tmp_path: Path) -> None:
    # A private copy: touching the shared file would make the exporter processes of the other
    # benchmarks refresh at the same time and steal the CPU being measured.
    private = tmp_path / "test_results_20250101_000000.json"
    private.write_bytes((results_dir / private.name).read_bytes())
    results_dir = tmp_path
    from exporters._promql import PromClient
    from exporters.cost import CostMetrics
    from exporters.publisher import ExporterState
    from exporters.qoe import QoEMetrics
    from exporters.refresh import Refresher
    from exporters.results import ResultsMetrics
    from exporters.settings import parse_settings

    classes = [CostMetrics, QoEMetrics, ResultsMetrics]
    settings = parse_settings("bench", classes, ["--results-dir", str(results_dir)])
    prom = PromClient(None)
    states = [ExporterState(cls(settings), prom) for cls in classes]
    refresher = Refresher(states, results_dir, 2.0, prom)
    refresher.tick()
    path = results_dir / "test_results_20250101_000000.json"

    # Two contents with different numbers and labels, written alternately before each round
    # (not timed): every family really changes, so nothing rendered before can be reused.
    variants = [path.read_bytes(),
                json.dumps({"scenarios": generate_scenarios(SCENARIOS, seed=1)}).encode()]
    from advisor_core.data.reader import run_record
    from advisor_core.data.scenario import load_results
    from exporters.exposition import generate_latest_of

    def families_of(content: bytes) -> list:
        path.write_bytes(content)
        run = run_record(path, load_results(path))
        return [cls(settings).compute(run, prom) for cls in classes]  # fresh: no shared state

    outputs = [families_of(content) for content in variants]
    rounds = iter(range(1_000_000))
    baseline: list[float] = []

    def prometheus_client_way(content: bytes, families: list) -> None:
        """Load the file and serialise the same families as prometheus_client's exposition does."""
        start = time.perf_counter()
        json.loads(content)
        for family in families:
            gzip.compress(generate_latest_of(family))
        baseline.append(time.perf_counter() - start)

    def change() -> None:
        # The previous round's new run trains the results model on its worker thread; in service
        # the next file comes minutes later, so let it finish rather than time the overlap.
        assert refresher.wait_for_jobs(30.0)
        index = next(rounds) % 2 - 1
        if index == 0 and len(baseline) < 5:  # interleaved, so a slow spell hits both sides
            prometheus_client_way(variants[index], outputs[index])
        path.write_bytes(variants[index])

    per_set: dict[str, list[float]] = {state.metric_set.name: [] for state in states}

    def measured() -> None:
        refresher.tick()  # a changed file: the full load + compute + render + gzip path
        for state in states:  # load (shared) + this set's compute + render + gzip
            per_set[state.metric_set.name].append(state.refresh_duration)

    benchmark.pedantic(measured, setup=change, rounds=15, warmup_rounds=1)
    median = benchmark.stats.stats.median
    base = statistics.median(baseline)
    parts = {name: statistics.median(values) for name, values in per_set.items()}
    print(f"\nrefresh of cost+qoe+results after a file change ({SCENARIOS} scenarios): "
          f"median {median * 1e3:.1f} ms, max {benchmark.stats.stats.max * 1e3:.1f} ms; "
          "per set (each incl. the shared load): "
          + ", ".join(f"{name} {value * 1e3:.1f} ms" for name, value in parts.items())
          + f"; load + prometheus_client render + gzip of the same families {base * 1e3:.0f} ms, "
          f"ratio {base / median:.1f}x (target >= 5x); machine speed: {machine_speed_ms():.0f} ms "
          "for a fixed pure-Python loop (~100-150 ms on a usual day)")
    assert all(state.refresh_errors == 0 for state in states)
    # A same-run ratio, not a wall-clock bound: the CI machine's speed varies up to 3x from one
    # day to the next (benchmarks/README.md); 5x is where the 150 ms bound sat on a usual day.
    timing_target(base / median >= 5.0, f"refresh only {base / median:.1f}x faster than "
                  f"prometheus_client's serialisation of its output (need 5x)")


def machine_speed_ms() -> float:
    """Milliseconds for a fixed pure-Python loop: printed beside timings as the machine's pace."""
    start = time.perf_counter()
    sum(range(10**7))
    return (time.perf_counter() - start) * 1e3


def import_floor_mb(module: str) -> float:
    """Peak RSS of a bare interpreter that only imports ``module`` (same interpreter, same env)."""
    code = ("import importlib, sys; importlib.import_module(sys.argv[1]);"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", code, module], env=env(), capture_output=True,
                         check=True, timeout=60)
    return int(out.stdout) / 1024


def test_peak_memory(benchmark, exporters) -> None:
    for _proc, ports in exporters.values():
        for port in ports.values():
            for _ in range(20):
                scrape(port, True)
                scrape(port, False)
    time.sleep(2.5)  # at least one more refresh tick everywhere
    peaks = benchmark.pedantic(
        lambda: {kind: vm_hwm_mb(proc.pid) for kind, (proc, _) in exporters.items()},
        rounds=1)
    floors = {kind: import_floor_mb(module)
              for kind, module in {**MODULES, "all": "exporters.all"}.items()}
    targets = {"cost": 35, "qoe": 35, "results": 60, "all": 70}
    print("\npeak RSS (VmHWM) with 1000 scenarios / import-only floor / target: " + ", ".join(
        f"{k} {peaks[k]:.1f} / {floors[k]:.1f} / {targets[k]} MB" for k in peaks))
    # File-backed pages (shared library code) depend on the page cache: freshly installed
    # libraries are fully cached, so the kernel's fault-around maps more of them.
    print("now, anonymous / file-backed RSS: " + ", ".join(
        f"{k} {status_mb(proc.pid, 'RssAnon'):.1f} / {status_mb(proc.pid, 'RssFile'):.1f} MB"
        for k, (proc, _) in exporters.items()))
    # Peak memory barely depends on machine load, so the targets themselves are asserted.
    over = {k: round(v, 1) for k, v in peaks.items() if v > targets[k]}
    assert not over, f"peak RSS above target (MB): {over}"
