"""Exporters as real child processes on loopback, for the slow tests."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DATA_DIR = Path(__file__).parent / "data"
EXTENDED = DATA_DIR / "test_results_20240115_103000.json"
ENV_VARS = ("COST_EXPORTER_PORT", "QOE_EXPORTER_PORT", "RESULTS_EXPORTER_PORT", "RESULTS_DIR",
            "PROMETHEUS_URL", "REGION", "CURRENCY", "ENERGY_COST_PER_KWH", "CPU_COST_PER_HOUR",
            "GPU_COST_PER_HOUR", "ELECTRICITY_MAPS_TOKEN")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT on a hung stop dumps every thread's stack
    return env


def request(port: int, path: str, method: str = "GET", headers: dict | None = None,
            host: str = "127.0.0.1"):
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def metrics(port: int, host: str = "127.0.0.1") -> dict:
    _, _, body = request(port, "/metrics", host=host)
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def wait_for_scenarios(port: int, names: list[str], since: float, within: float,
                       family: str = "qoe_vmaf_score") -> None:
    """Poll until ``family`` on ``port`` has exactly the samples of ``names`` (in that order);
    AssertionError once ``within`` seconds have passed since ``since`` (time.monotonic())."""
    while True:
        found = metrics(port).get(family)
        if found and [s.labels["scenario"] for s in found.samples] == names:
            return
        assert time.monotonic() - since < within, f"{names} not served within {within} s"
        time.sleep(0.02)


def started(port: int, host: str = "127.0.0.1") -> bool:
    """True once the exporter on ``port`` has finished its first refresh (``_starting`` 0)."""
    body = request(port, "/metrics", host=host)[2]
    return b"_exporter_starting 0.0\n" in body


def command(name: str) -> list[str]:
    """An installed console script (``advisor-...``, beside this interpreter) or a module."""
    if name.startswith("advisor-"):
        script = Path(sys.executable).parent / name
        assert script.is_file(), f"console script {name} is not installed next to {sys.executable}"
        return [str(script)]
    return [sys.executable, "-m", name]


class Exporter:
    """A console script as a child process, its stderr in a file (a pipe nobody reads can fill)."""

    def __init__(self, module: str, results_dir: Path, *extra: str,
                 ports: dict[str, int] | None = None, fd_limit: int | None = None,
                 host: str = "127.0.0.1", wait_started: bool = True) -> None:
        self.port = free_port()
        #: The address the exporter is asked on: a wildcard or a name is reached on loopback.
        self.host = {"::": "::1", "0.0.0.0": "127.0.0.1", "localhost": "127.0.0.1"}.get(host, host)
        port_flags = ["--port", str(self.port)]
        if ports is not None:
            port_flags = [flag for name, port in ports.items()
                          for flag in (f"--{name}-port", str(port))]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*command(module), *port_flags, "--listen-address", host,
             "--results-dir", str(results_dir), "--refresh-interval", "0.1", *extra],
            env=clean_env(), stdout=subprocess.DEVNULL, stderr=self.log,
            preexec_fn=None if fd_limit is None else lambda: resource.setrlimit(
                resource.RLIMIT_NOFILE, (fd_limit, fd_limit)),
        )
        deadline = time.monotonic() + 30
        for port in ports.values() if ports else (self.port,):
            while True:
                try:
                    # The ports answer before the first refresh; most tests want its result.
                    if request(port, "/health", host=self.host)[0] == 200 and (
                            not wait_started or started(port, self.host)):
                        break
                except OSError:
                    time.sleep(0.05)
                if self.proc.poll() is not None:
                    raise AssertionError(self.output())
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"exporter did not come up:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def kill(self) -> None:
        """Dump every thread's stack (faulthandler on SIGABRT), then kill."""
        self.proc.send_signal(signal.SIGABRT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> float:
        """SIGTERM; return the seconds to a clean exit (status 0), else fail with its stacks."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"no exit 5 s after SIGTERM:\n{self.output()}") from None
        elapsed = time.monotonic() - started
        assert self.proc.returncode == 0, self.output()
        return elapsed
