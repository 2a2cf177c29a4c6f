"""Start-up (docs/exporters.md §10): the start-up responder serves clients together with a
deadline each, so no client holds up a scrape; a stop signal during a long first refresh ends
the process at once."""

from __future__ import annotations

import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _process import Exporter, metrics, request, wait_for_scenarios
from exporters._promql import PromClient
from exporters.cost import CostMetrics
from exporters.listeners import bind_listeners
from exporters.publisher import ExporterState
from exporters.settings import parse_settings
from exporters.startup import StartupResponder
from test_exporters_idle import SLOW_FIRST, extended  # noqa: F401  (a fixture)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")


@pytest.fixture
def responder(tmp_path: Path):
    settings = parse_settings("test", [CostMetrics], ["--results-dir", str(tmp_path)])
    state = ExporterState(CostMetrics(settings), PromClient(None))
    state.publish()
    sockets = bind_listeners("127.0.0.1", 0)
    responder = StartupResponder([(sockets, state)], max_clients=50)
    responder.start()
    yield responder, sockets[0].getsockname()[1]
    if responder.is_alive():
        responder.stop()
    sockets[0].close()


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the answer closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _slowloris(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /metrics HTTP/1.1\r\n")
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Keep trickling a byte every 0.2 s; True once the other end has closed."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"X")
            if sock.recv(100) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def test_a_slow_client_never_holds_up_a_scrape_and_is_closed_after_a_second(responder) -> None:
    _, port = responder
    slow = _slowloris(port)
    try:
        for _ in range(4):
            started = time.monotonic()
            status, _, body = request(port, "/metrics")
            assert status == 200 and b"cost_exporter_starting 1.0\n" in body
            assert time.monotonic() - started < 0.5
            slow.sendall(b"X")
        assert _closed_within(slow, 2.0)  # its whole request had a second from its accept
    finally:
        slow.close()


def test_silent_connections_are_capped_and_never_starve_a_scrape(responder) -> None:
    _, port = responder
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(120)]
    try:
        started = time.monotonic()
        assert request(port, "/health")[0] == 200
        assert time.monotonic() - started < 0.5
        silent[0].settimeout(0.5)
        assert silent[0].recv(10) == b""  # among the oldest: closed to make room (cap 50)
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda _: request(port, "/metrics")[0], range(16))) == {200}
    finally:
        for sock in silent:
            sock.close()


def test_answers_match_the_server_proper(responder) -> None:
    _, port = responder
    assert _raw(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").startswith(
        b"HTTP/1.1 405")
    bare = _raw(port, b"GET /health HTTP/1.1\nHost: x\n\n")
    assert bare.startswith(b"HTTP/1.1 200") and bare.endswith(b"OK\n")
    assert _raw(port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    head = _raw(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    # The request target is read by the same rule (http_policy.request_path) as the server's.
    absolute = _raw(port, b"GET http://x/health?y HTTP/1.1\r\nHost: x\r\n\r\n")
    assert absolute.startswith(b"HTTP/1.1 200") and absolute.endswith(b"OK\n")
    assert _raw(port, b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405")
    for bad in (b"http://[::1/health", b"\x01/health", b"mailto:/health"):
        assert _raw(port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % bad).startswith(
            b"HTTP/1.1 400")


def test_a_request_accepted_at_the_hand_over_is_answered_not_reset(responder) -> None:
    server, port = responder
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        time.sleep(0.1)  # accepted, its head not sent yet
        stopping = ThreadPoolExecutor(1).submit(server.stop)
        time.sleep(0.05)
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        stopping.result(timeout=5)
    assert answer.startswith(b"HTTP/1.1 200") and b"cost_exporter_starting 1.0\n" in answer


def test_stop_closes_every_client_at_once(responder) -> None:
    server, port = responder
    slow = [_slowloris(port) for _ in range(3)]
    try:
        time.sleep(0.2)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 0.5  # 0.2 s for the clients accepted
        assert not server.is_alive()
        for sock in slow:
            sock.settimeout(1)
            assert sock.recv(10) == b""
    finally:
        for sock in slow:
            sock.close()


@linux
@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_during_a_long_first_refresh_ends_the_process_at_once(
        extended: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        signame: str) -> None:
    import signal

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "slow_qoe.py").write_text(SLOW_FIRST)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path / "code"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    exporter = Exporter("slow_qoe", extended, wait_started=False)
    try:
        assert b"qoe_exporter_starting 1.0\n" in request(exporter.port, "/metrics")[2]
        started = time.monotonic()
        exporter.proc.send_signal(getattr(signal, signame))
        exporter.proc.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if exporter.proc.poll() is None:
            exporter.kill()
    output = exporter.output()
    assert exporter.proc.returncode == 0, output
    assert elapsed < 1.5, output
    assert "abandoning the first refresh" in output and output.rstrip().endswith("stopped")
    assert not (extended / "RELEASE").exists()  # the refresh was still held up


# -- idle while the database is down, and recovery -------------------------------------------

def _cost_refresher(directory: Path, prom: PromClient, interval: float):
    from exporters.refresh import Refresher

    settings = parse_settings("test", [CostMetrics], [
        "--results-dir", str(directory), "--energy-cost", "0.12", "--cpu-cost", "0.5"])
    state = ExporterState(CostMetrics(settings), prom)
    return state, Refresher([state], directory, interval, prom)


@linux
def test_an_unreachable_database_is_probed_at_each_backoff_end_not_recomputed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from _fakeprom import FakeProm
    from test_exporters_database import _write_windows

    _write_windows(tmp_path, 2)
    with FakeProm() as fake, caplog.at_level("INFO", logger="exporters"):
        fake.mode = "error"
        prom = PromClient(fake.url, backoff_initial=0.2, backoff_max=0.4)
        _, refresher = _cost_refresher(tmp_path, prom, 0.02)
        refresher.start()
        try:
            time.sleep(0.5)
            assert refresher._sleeper is not None and refresher._sleeper.watching()
            ticks, loads, requests = refresher.ticks, refresher.loads, prom.requests
            time.sleep(2.0)  # five backoff ends: one probe each, no reload, no polling
            assert refresher.loads == loads == 1
            assert 3 <= prom.requests - requests <= 7  # the probes
            assert refresher.ticks - ticks <= 12  # not one every 0.02 s (100)
            assert "recovered" not in caplog.text
            fake.mode = "ok"
            deadline = time.monotonic() + 5
            while refresher.loads == 1 or not prom.healthy:
                assert time.monotonic() < deadline, "not recomputed once the database answers"
                time.sleep(0.05)
            time.sleep(0.1)
            assert caplog.text.count("recovered: VictoriaMetrics answers again") == 1
        finally:
            refresher.stop()
            refresher.join(5)
            prom.close()


def test_a_cleared_failure_is_logged_once_as_recovered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json

    results = tmp_path / "test_results_20250101_000000.json"
    results.write_text(json.dumps({"scenarios": [{"name": "a", "bitrate": "1000k"}]}))
    csv = tmp_path / "test_results_20250101_000000_analysis.csv"
    csv.write_bytes(b"\xff\xfe not utf-8")
    prom = PromClient(None)
    state, refresher = _cost_refresher(tmp_path, prom, 2.0)
    with caplog.at_level("INFO", logger="exporters"):
        refresher.tick()
        assert state.refresh_failures["analysis_unreadable"] == 1
        csv.write_text("name,bitrate,mean_power_w\na,1000k,8.5\n")
        refresher.tick()
        refresher.tick()
    recovered = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(recovered) == 1 and recovered[0].levelname == "INFO"
    assert "analysis unreadable" in recovered[0].getMessage()
    assert results.name in recovered[0].getMessage()


# -- the results directory: a retargeted link, network filesystems, inotify retried ----------

@linux
@pytest.mark.slow
def test_a_retargeted_directory_link_is_served_within_the_refresh_interval(
        tmp_path: Path) -> None:
    import json

    from test_exporters_idle import EXTENDED

    run_a, run_b, link = tmp_path / "runA", tmp_path / "runB", tmp_path / "current"
    run_a.mkdir()
    run_b.mkdir()
    (run_a / EXTENDED.name).write_bytes(EXTENDED.read_bytes())
    scenarios = [{"name": "fresh", "bitrate": "1000k", "vmaf_score": 91.5}]
    (run_b / "test_results_20990101_000000.json").write_text(json.dumps({"scenarios": scenarios}))
    link.symlink_to(run_a)
    exporter = Exporter("advisor-qoe-exporter", link, "--refresh-interval", "1")
    try:
        time.sleep(1.5)  # settled: only a wake-up can show the new target
        (tmp_path / "next").symlink_to(run_b)
        started = time.monotonic()
        os.replace(tmp_path / "next", link)  # ln -sfn runB current
        wait_for_scenarios(exporter.port, ["fresh"], started, within=3.0)
    finally:
        exporter.stop()


def test_a_network_filesystem_is_polled_not_watched(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from exporters import watch

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /mnt/lab\\040runs rw,relatime shared:20 - nfs4 srv:/runs rw,vers=4.2\n"
        "41 40 0:51 / /mnt/lab\\040runs/local rw shared:21 - tmpfs tmpfs rw\n"
        "42 22 0:52 / /mnt/s rw shared:22 - fuse.sshfs host:/x rw\n")
    assert watch.filesystem_type("/mnt/lab runs/a", str(mountinfo)) == "nfs4"
    assert watch.filesystem_type("/mnt/lab runs/local/a", str(mountinfo)) == "tmpfs"
    assert watch.filesystem_type("/mnt/lab runsx", str(mountinfo)) == "ext4"
    assert watch.filesystem_type("/mnt/s/a", str(mountinfo)) == "fuse.sshfs"
    assert [watch.is_remote(t) for t in ("nfs4", "cifs", "fuse.sshfs", "ext4", "tmpfs", None)] \
        == [True, True, True, False, False, False]
    assert watch.filesystem_type(str(tmp_path)) is not None  # this host's own table is read
    monkeypatch.setattr(watch, "filesystem_type", lambda path: "nfs4")
    sleeper = watch.Sleeper(tmp_path)
    try:
        assert sleeper.remote and not sleeper.watching()
    finally:
        sleeper.close()


@linux
def test_an_inotify_instance_that_failed_is_made_again_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exporters import watch

    if watch.INotify is None:
        pytest.skip("inotify_simple is not installed")
    real, calls = watch.INotify, []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OSError(24, "Too many open files")
        return real(**kwargs)

    monkeypatch.setattr(watch, "INotify", flaky)
    monkeypatch.setattr(watch, "filesystem_type", lambda path: "ext4")
    sleeper = watch.Sleeper(tmp_path)
    try:
        assert not sleeper.watching()
        assert not sleeper.watching() and len(calls) == 1  # not again at every look
        monkeypatch.setattr(watch, "RETRY_NOTIFY_SECONDS", 0.0)
        assert sleeper.watching() and len(calls) == 2
        (tmp_path / "x").touch()
        assert sleeper.sleep(2.0)  # the change ends the sleep
    finally:
        sleeper.close()


@linux
@pytest.mark.slow
def test_head_requests_are_not_counted_as_scrapes(extended: Path) -> None:  # noqa: F811
    exporter = Exporter("advisor-qoe-exporter", extended)
    try:
        def scrapes() -> float:
            return metrics(exporter.port)["qoe_exporter_scrapes"].samples[0].value

        before = scrapes()
        for _ in range(3):
            status, headers, body = request(exporter.port, "/metrics", method="HEAD",
                                            headers={"Accept-Encoding": "*;q=0, gzip"})
            assert status == 200 and body == b"" and headers["Content-Encoding"] == "gzip"
        assert scrapes() == before + 1  # only the GET of the line above
    finally:
        exporter.stop()
