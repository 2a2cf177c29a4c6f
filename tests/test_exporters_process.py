"""The console scripts as real processes on loopback: HTTP surface, refresh, signals, flags."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _process import EXTENDED, Exporter, clean_env, free_port, metrics, request

pytestmark = [
    pytest.mark.slow,
    # The exporters run on the Linux master node: SIGTERM handling and /proc-based process
    # metrics are Linux behaviour (the wheels built for macOS/Windows still run every other test).
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process semantics"),
]


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    shutil.copy(EXTENDED, tmp_path / EXTENDED.name)
    return tmp_path


@pytest.mark.parametrize("module,prefix", [
    ("advisor-cost-exporter", "cost"), ("advisor-qoe-exporter", "qoe"),
    ("advisor-results-exporter", "results"), ("exporters.cost", "cost"),
])
def test_http_surface_refresh_and_sigterm(module: str, prefix: str, results_dir: Path) -> None:
    pricing = ["--region", "us-east-1", "--cpu-cost", "0.5"] if prefix == "cost" else []
    exporter = Exporter(module, results_dir, *pricing)
    try:
        port = exporter.port
        status, headers, body = request(port, "/health")
        assert (status, body) == (200, b"OK\n")
        status, headers, body = request(port, "/metrics?x=1")  # query string ignored
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert int(headers["Content-Length"]) == len(body)
        parsed = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert parsed[f"{prefix}_scenarios_total"].samples[0].value == 240.0
        assert "process_resident_memory_bytes" in parsed
        status, headers, zipped = request(port, "/metrics", headers={"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip"
        assert text_string_to_metric_families(gzip.decompress(zipped).decode())
        status, headers, empty = request(port, "/metrics", method="HEAD")
        assert status == 200 and empty == b"" and int(headers["Content-Length"]) > 1000
        assert request(port, "/nope")[0] == 404
        assert request(port, "/metricsx")[0] == 404
        status, headers, page = request(port, "/")
        assert status == 200 and b'href="/metrics"' in page and b'href="/health"' in page

        # a truncated newer file: metrics unchanged, error counter up
        before = metrics(port)
        families = [n for n in before
                    if n.startswith(("cost_total", "qoe_vmaf", "results_scenario_mean"))]
        assert families
        truncated = results_dir / "test_results_20990101_000000.json"
        truncated.write_bytes(EXTENDED.read_bytes()[:5000])
        deadline = time.monotonic() + 5
        while metrics(port)[f"{prefix}_exporter_refresh_errors"].samples[0].value < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = metrics(port)
        for name in families:
            assert after[name].samples == before[name].samples

        # a new valid file is picked up without restart
        truncated.write_text(json.dumps({"scenarios": [
            {"name": "new one", "bitrate": "1000k", "vmaf_score": 77.0, "step_seconds": 5,
             "power_watts": [10.0, 12.0], "cpu_usage_cores": [1.0, 1.0]}]}))
        deadline = time.monotonic() + 5
        while metrics(port)[f"{prefix}_scenarios_total"].samples[0].value != 1.0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        family = {"cost": "cost_total_load_aware", "qoe": "qoe_vmaf_score",
                  "results": "results_scenario_mean_power_watts"}[prefix]
        assert [s.labels["scenario"] for s in metrics(port)[family].samples] == ["new one"]

        # 50 concurrent scrapes all answered
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda _: request(port, "/metrics"), range(50)))
        assert all(status == 200 and len(body) > 0 for status, _, body in answers)
    finally:
        elapsed = exporter.stop()
    assert exporter.proc.returncode == 0
    assert elapsed < 1.0


@pytest.mark.parametrize(
    "argv",
    [["--port", "-1"], ["--port", "65536"], ["--refresh-interval", "0"],
     ["--energy-cost", "-1"], ["--results-dir", "/nonexistent/results"],
     ["--pricing-config", "/nonexistent/pricing.json"]],
)
@pytest.mark.parametrize("module", ["exporters.cost", "exporters.qoe"])
def test_bad_flags_exit_2_with_one_line_before_binding(module: str, argv: list,
                                                       tmp_path: Path) -> None:
    port = free_port()
    if "--results-dir" not in argv:
        argv = [*argv, "--results-dir", str(tmp_path)]
    if "--port" not in argv:
        argv = [*argv, "--port", str(port)]
    proc = subprocess.run([sys.executable, "-m", module, *argv], env=clean_env(),
                          capture_output=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]
    assert proc.stdout == b""


def test_port_in_use_fails_cleanly(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "exporters.qoe", "--port", str(port), "--listen-address",
             "127.0.0.1", "--results-dir", str(tmp_path)],
            env=clean_env(), capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert "cannot listen" in proc.stderr.decode()


def catches(pid: int, signum: int) -> bool:
    """True once the process has a handler for the signal (Linux /proc SigCgt mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def test_sigterm_during_startup_exits_cleanly(results_dir: Path) -> None:
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporters.cost", "--port", str(free_port()), "--listen-address",
         "127.0.0.1", "--results-dir", str(results_dir)],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not catches(proc.pid, signal.SIGTERM):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
        log.seek(0)
        started_up = b"listening" in log.read()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.seek(0)
    output = log.read().decode(errors="replace")
    assert not started_up, "the signal came after start-up: the test did not test start-up"
    assert proc.returncode == 0, output
    assert "listening" in output and output.rstrip().endswith("stopped")


def test_all_in_one_serves_three_ports_from_one_process(results_dir: Path) -> None:
    pytest.importorskip("exporters.results")
    ports = {name: free_port() for name in ("cost", "qoe", "results")}
    exporter = Exporter("advisor-exporters", results_dir, ports=ports)
    try:
        for prefix, port in ports.items():
            parsed = metrics(port)
            assert parsed[f"{prefix}_scenarios_total"].samples[0].value == 240.0
            assert parsed["process_resident_memory_bytes"].samples
        pids = {metrics(p)["process_start_time_seconds"].samples[0].value for p in ports.values()}
        assert len(pids) == 1  # one process
    finally:
        elapsed = exporter.stop()
    assert elapsed < 1.0


def test_results_exporter_trains_its_model_without_loading_numpy(results_dir: Path) -> None:
    """numpy is ~20 MB of resident memory: the native model path must never load it."""
    exporter = Exporter("exporters.results", results_dir)
    try:
        deadline = time.monotonic() + 30
        while True:
            families = metrics(exporter.port)
            predicted = families.get("results_scenario_predicted_power_watts")
            if predicted is not None and predicted.samples:
                break
            assert time.monotonic() < deadline, "the model never produced predictions"
            time.sleep(0.1)
        assert families["results_model_trainings"].samples[0].value >= 1
        maps = Path(f"/proc/{exporter.proc.pid}/maps").read_text()
        assert "numpy" not in maps
        assert "_pipeline" in maps  # the compiled pipeline did the training
    finally:
        exporter.stop()


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["cost", "qoe", "results", "all_exporters"])
def test_a_missing_exporters_extra_is_one_line_and_exit_2(entry):
    # prometheus_client made unimportable, as in an install without the 'exporters' extra.
    code = ("import sys; sys.modules['prometheus_client'] = None\n"
            f"from exporters._launch import {entry}\n"
            f"sys.exit({entry}())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "advisor-core[exporters]" in lines[0] and "prometheus_client" in lines[0]


@pytest.mark.slow
def test_exporters_report_their_version_and_take_a_log_level(tmp_path):
    from importlib.metadata import version

    from exporters._launch import cost

    proc = subprocess.run([sys.executable, "-m", "exporters.cost", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"advisor-cost-exporter {version('advisor-core')}"
    assert callable(cost)
    proc = subprocess.run([sys.executable, "-m", "exporters.cost", "--log-level", "loud",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "--log-level" in proc.stderr
