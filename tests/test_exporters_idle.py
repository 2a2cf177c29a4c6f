"""Idle and start-up behaviour (docs/exporters.md §10): one gzip member read by curl, wget and
Python; scrape-time numbers fresh without a refresh; no work between changes; a new file still
picked up at once; the ports answering before a slow first refresh finishes."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _process import EXTENDED, Exporter, metrics, request, wait_for_scenarios
from exporters._promql import PromClient
from exporters.cost import CostMetrics
from exporters.directory import Listing
from exporters.publisher import SCRAPE_TIME, ExporterState
from exporters.refresh import Refresher
from exporters.settings import parse_settings

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")


def _static_lines(body: bytes, prefix: str) -> list[bytes]:
    """The lines of a body that change only with a refresh (scrape-time families left out)."""
    moving = (*(f"{prefix}_{suffix}".encode() for suffix in SCRAPE_TIME), b"process_")
    return [line for line in body.split(b"\n")
            if not any(line.startswith(name) or line[7:].startswith(name)  # "# HELP "/"# TYPE "
                       for name in moving)]


@pytest.fixture
def extended(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(EXTENDED, results / EXTENDED.name)
    return results


@linux
@pytest.mark.slow
@pytest.mark.parametrize("module,prefix", [("advisor-cost-exporter", "cost"),
                                           ("advisor-qoe-exporter", "qoe")])
def test_gzip_body_is_one_member_read_whole_by_curl_wget_and_python(
        module: str, prefix: str, extended: Path, tmp_path: Path) -> None:
    exporter = Exporter(module, extended)
    try:
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        plain = request(exporter.port, "/metrics")[2]
        status, headers, raw = request(exporter.port, "/metrics",
                                       headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        reader = zlib.decompressobj(31)  # exactly one member, nothing after it
        decoded = reader.decompress(raw)
        assert reader.eof and reader.unused_data == b""
        assert gzip.decompress(raw) == decoded
        assert _static_lines(decoded, prefix) == _static_lines(plain, prefix)
        assert len(raw) <= 1.15 * len(gzip.compress(decoded, 6))
        by_curl = subprocess.run(["curl", "-sS", "--compressed", url], capture_output=True,
                                 check=True, timeout=30).stdout
        by_wget = subprocess.run(["wget", "-q", "-O", "-", "--compression=gzip", url],
                                 capture_output=True, check=True, timeout=30).stdout
        for body in (by_curl, by_wget):  # a single-member decoder got the whole body
            assert body.endswith(b"\n") and _static_lines(body, prefix) == \
                _static_lines(plain, prefix)
            parsed = {f.name for f in text_string_to_metric_families(body.decode())}
            assert {"process_cpu_seconds", f"{prefix}_exporter_scrapes"} <= parsed
    finally:
        exporter.stop()


@linux
@pytest.mark.slow
def test_scrape_time_numbers_move_between_scrapes_without_a_refresh(extended: Path) -> None:
    exporter = Exporter("advisor-cost-exporter", extended, "--refresh-interval", "2")
    try:
        first = metrics(exporter.port)
        second = metrics(exporter.port)
        gzipped = request(exporter.port, "/metrics", headers={"Accept-Encoding": "gzip"})[2]
        third = {f.name: f for f in text_string_to_metric_families(gzip.decompress(gzipped)
                                                                   .decode())}
        counts = [m["cost_exporter_scrapes"].samples[0].value for m in (first, second, third)]
        assert counts[1] == counts[0] + 1 and counts[2] == counts[1] + 1
        refreshed = {m["cost_exporter_last_refresh_timestamp_seconds"].samples[0].value
                     for m in (first, second, third)}
        assert len(refreshed) == 1  # the same refresh served all three
    finally:
        exporter.stop()


@linux
@pytest.mark.slow
def test_a_new_results_file_is_served_within_the_refresh_interval(extended: Path) -> None:
    exporter = Exporter("advisor-qoe-exporter", extended, "--refresh-interval", "2")
    try:
        time.sleep(2.5)  # the listing is settled and reused: only a change can show the file
        scenarios = [{"name": "fresh", "bitrate": "1000k", "vmaf_score": 91.5}]
        new = extended / "test_results_20990101_000000.json"
        # Written beside the directory and moved in, as a worker's atomic write: a temporary
        # file inside it would itself start a tick, and the next one waits out the interval.
        written = extended.parent / "incoming.json"
        written.write_text(json.dumps({"scenarios": scenarios}))
        started = time.monotonic()
        os.replace(written, new)
        wait_for_scenarios(exporter.port, ["fresh"], started, within=2.0)
    finally:
        exporter.stop()


SLOW_FIRST = r'''
import sys, time
from pathlib import Path
from exporters import qoe

compute = qoe.QoEMetrics.compute

def slow_compute(self, run, prom):
    release = Path(run.path).parent / "RELEASE"
    while not release.exists():  # a first refresh held up (a database that answers slowly)
        time.sleep(0.05)
    return compute(self, run, prom)

qoe.QoEMetrics.compute = slow_compute
sys.exit(qoe.main())
'''


@linux
@pytest.mark.slow
def test_ports_answer_before_a_slow_first_refresh_finishes(
        extended: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "slow_qoe.py").write_text(SLOW_FIRST)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path / "code"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    exporter = Exporter("slow_qoe", extended, wait_started=False)
    try:
        for _ in range(3):  # the first refresh is under way all along
            status, _, body = request(exporter.port, "/metrics",
                                      headers={"Accept-Encoding": "gzip"})
            parsed = {f.name: f for f in text_string_to_metric_families(
                gzip.decompress(body).decode())}
            assert status == 200
            assert parsed["qoe_exporter_up"].samples[0].value == 0.0
            assert parsed["qoe_exporter_starting"].samples[0].value == 1.0
            assert "qoe_vmaf_score" not in parsed
            time.sleep(0.2)
        (extended / "RELEASE").touch()
        deadline = time.monotonic() + 20
        while True:
            parsed = metrics(exporter.port)
            if parsed["qoe_exporter_starting"].samples[0].value == 0.0:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert parsed["qoe_exporter_up"].samples[0].value == 1.0
        assert parsed["qoe_vmaf_score"].samples
    finally:
        exporter.stop()


def test_ticks_without_a_change_publish_nothing_and_list_nothing(
        extended: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings("test", [CostMetrics], ["--results-dir", str(extended)])
    prom = PromClient(None)
    state = ExporterState(CostMetrics(settings), prom)
    refresher = Refresher([state], extended, 2.0, prom)
    refresher.tick()
    published = state.snapshot
    listed: list[Path] = []
    from exporters import directory

    original = directory.results_file_candidates
    monkeypatch.setattr(directory, "results_file_candidates",
                        lambda path: listed.append(path) or original(path))
    old = time.time() - 60  # a directory whose last change is long settled
    os.utime(extended, (old, old))
    for _ in range(5):
        refresher.tick()
    assert state.snapshot is published  # nothing rendered, nothing deflated
    assert refresher.loads == 1
    assert len(listed) == 1  # listed once after the utime; only stat calls since
    (extended / "test_results_20990101_000000.json").write_text('{"scenarios": []}')
    refresher.tick()
    assert len(listed) == 2 and state.snapshot is not published


def test_a_listing_made_within_the_settle_time_is_not_reused(tmp_path: Path) -> None:
    listing = Listing()
    (tmp_path / "test_results_20250101_000000.json").write_text("{}")
    assert [p.name for p in listing.candidates(tmp_path)] == ["test_results_20250101_000000.json"]
    # Same second, same mtime granularity: the listing above must not hide this name.
    (tmp_path / "test_results_20250102_000000.json").write_text("{}")
    stat = os.stat(tmp_path)
    os.utime(tmp_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert listing.candidates(tmp_path)[0].name == "test_results_20250102_000000.json"


def test_a_failing_analysis_csv_is_logged_once_while_retried(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "test_results_20250101_000000.json").write_text(
        json.dumps({"scenarios": [{"name": "a", "bitrate": "1000k"}]}))
    (tmp_path / "test_results_20250101_000000_analysis.csv").write_bytes(b"\xff\xfe not utf-8")
    settings = parse_settings("test", [CostMetrics], ["--results-dir", str(tmp_path)])
    prom = PromClient(None)
    state = ExporterState(CostMetrics(settings), prom)
    refresher = Refresher([state], tmp_path, 2.0, prom)
    with caplog.at_level("ERROR", logger="exporters"):
        for _ in range(4):
            refresher._retry_at = time.monotonic() - 1  # the retry is due at every tick
            refresher.tick()
    assert state.refresh_failures["analysis_unreadable"] == 4  # retried and counted each time
    assert len([r for r in caplog.records if "analysis" in r.getMessage()]) == 1


def test_the_startup_responder_answers_then_leaves_the_sockets_open(tmp_path: Path) -> None:
    import socket

    from exporters.listeners import bind_listeners
    from exporters.startup import StartupResponder

    settings = parse_settings("test", [CostMetrics], ["--results-dir", str(tmp_path)])
    state = ExporterState(CostMetrics(settings), PromClient(None))
    state.publish()
    sockets = bind_listeners("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    responder = StartupResponder([(sockets, state)])
    responder.start()
    try:
        status, headers, body = request(port, "/metrics", headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert b"cost_exporter_starting 1.0\n" in gzip.decompress(body)
        assert b"cost_exporter_up 0.0\n" in request(port, "/metrics")[2]
        assert request(port, "/health")[0] == 200
        assert request(port, "/elsewhere")[0] == 404
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"garbage\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
    finally:
        responder.stop()
    assert not responder.is_alive() and sockets[0].fileno() != -1  # the server's now
    sockets[0].close()


def test_the_database_is_probed_when_due_not_every_tick(
        extended: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings("test", [CostMetrics], ["--results-dir", str(extended)])
    prom = PromClient("http://127.0.0.1:9")
    probes: list[float] = []
    delay = [600.0]  # healthy: nothing asked for a while is 600 s away

    def probe(idle: float) -> None:  # a request made: the next one is 600 s away
        probes.append(idle)
        delay[0] = 600.0

    monkeypatch.setattr(prom, "probe", probe)
    monkeypatch.setattr(prom, "probe_delay", lambda idle: delay[0])
    state = ExporterState(CostMetrics(settings), prom)
    refresher = Refresher([state], extended, 2.0, prom)
    refresher.tick()  # a refresh: its own queries, no probe
    for _ in range(5):
        refresher.tick()
    assert probes == []
    delay[0] = -1.0  # the backoff is over (or 600 s passed): the next tick probes, once
    refresher._probe_at = time.monotonic() - 1
    refresher.tick()
    for _ in range(5):
        refresher.tick()
    assert probes == [600.0]
    prom.close()
