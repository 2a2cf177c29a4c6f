"""The results directory: names that cannot be opened are passed over and counted, content
rewritten behind the same size and mtime is noticed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _process import Exporter, metrics
from advisor_core.data.results_files import latest_results_file
from exporters._promql import PromClient
from exporters.publisher import ExporterState
from exporters.refresh import Refresher
from test_exporters_failures import Valued

posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX links and FIFOs")


def write(directory: Path, name: str, value: float) -> Path:
    path = directory / name
    path.write_text(json.dumps({"scenarios": [{"name": "a", "viewers": value}]}),
                    encoding="utf-8")
    return path


def served(state: ExporterState) -> tuple[float, float, dict, dict]:
    """(value, up, refresh failures by reason, skipped files by reason) of the served body."""
    parsed = {f.name: f.samples for f in text_string_to_metric_families(state.body[0].decode())}
    by_reason = {name: {s.labels["reason"]: s.value for s in parsed[f"demo_exporter_{name}"]}
                 for name in ("refresh_failures", "skipped_files")}
    return (parsed["demo_value"][0].value, parsed["demo_exporter_up"][0].value,
            by_reason["refresh_failures"], by_reason["skipped_files"])


def unusable(directory: Path, name: str, kind: str) -> Path:
    path = directory / name
    if kind == "symlink_loop":
        path.symlink_to(path.name)  # a link to itself: ELOOP
    elif kind == "dangling_link":
        path.symlink_to(directory / "nowhere.json")
    elif kind == "unusable_link":
        path.symlink_to("a" * 300)  # a target whose name is too long: ENAMETOOLONG
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    return path


REASON = {"symlink_loop": "symlink_loop", "dangling_link": "dangling_link",
          "unusable_link": "unusable_link", "fifo": "not_a_file", "directory": "not_a_file"}


@posix
@pytest.mark.parametrize("kind", sorted(REASON))
def test_an_unusable_newest_name_is_passed_over_and_counted(tmp_path, kind, caplog) -> None:
    write(tmp_path, "test_results_20250101_000000.json", 1.0)
    bad = unusable(tmp_path, "test_results_20250102_000000.json", kind)
    prom = PromClient(None)
    state = ExporterState(Valued(), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    started = time.monotonic()
    refresher.tick()
    assert time.monotonic() - started < 1.0  # a FIFO is never opened
    assert served(state) == (1.0, 1.0, {}, {REASON[kind]: 1.0})  # the older file is served
    assert f"passing over {bad.name}" in caplog.text
    refresher.tick()
    assert caplog.text.count("passing over") == 1  # logged when it appears, not every tick
    write(tmp_path, "test_results_20250103_000000.json", 3.0)  # a newer usable file
    refresher.tick()
    assert served(state) == (3.0, 1.0, {}, {})  # the unusable name is older: not looked at


@posix
def test_every_kind_at_once_and_the_command_line_reader_passes_them_over_too(tmp_path) -> None:
    write(tmp_path, "test_results_20250101_000000.json", 1.0)
    for index, kind in enumerate(sorted(REASON)):
        unusable(tmp_path, f"test_results_2025010{index + 2}_000000.json", kind)
    assert latest_results_file(tmp_path) == tmp_path / "test_results_20250101_000000.json"
    prom = PromClient(None)
    state = ExporterState(Valued(), prom)
    Refresher([state], tmp_path, 1.0, prom).tick()
    assert served(state) == (1.0, 1.0, {}, {"dangling_link": 1.0, "not_a_file": 2.0,
                                            "symlink_loop": 1.0, "unusable_link": 1.0})


@posix
def test_thousands_of_unusable_names_cost_one_short_log_line(tmp_path, caplog) -> None:
    write(tmp_path, "test_results_20250101_000000.json", 1.0)
    for index in range(2000):
        unusable(tmp_path, f"test_results_20250102_{index:06d}.json", "dangling_link")
    prom = PromClient(None)
    state = ExporterState(Valued(), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    refresher.tick()
    refresher.tick()
    assert served(state) == (1.0, 1.0, {}, {"dangling_link": 2000.0})
    lines = [r.getMessage() for r in caplog.records if "passing over" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("and 1995 more") and len(lines[0]) < 500


@posix
def test_only_unusable_names_serve_nothing_as_before(tmp_path) -> None:
    unusable(tmp_path, "test_results_20250102_000000.json", "symlink_loop")
    prom = PromClient(None)
    state = ExporterState(Valued(), prom)
    Refresher([state], tmp_path, 1.0, prom).tick()
    parsed = {f.name: f.samples for f in text_string_to_metric_families(state.body[0].decode())}
    assert parsed["demo_scenarios_total"][0].value == 0.0
    assert {s.labels["reason"]: s.value for s in parsed["demo_exporter_skipped_files"]} == {
        "symlink_loop": 1.0}


def test_content_rewritten_behind_the_same_size_and_mtime_is_noticed(tmp_path) -> None:
    path = write(tmp_path, "test_results_20250101_000000.json", 1.0)
    before = path.stat()
    prom = PromClient(None)
    state = ExporterState(Valued(), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    refresher.tick()
    assert served(state)[0] == 1.0
    with open(path, "r+b") as handle:  # in place: same inode, same size
        data = handle.read().replace(b'"viewers": 1.0', b'"viewers": 7.0')
        handle.seek(0)
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the mtime put back
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    refresher.tick()
    assert served(state)[0] == 7.0


@posix
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")
def test_a_process_serves_past_a_self_looping_link_and_notices_a_rewrite(tmp_path) -> None:
    (tmp_path / "test_results_20250101_000000.json").write_text(json.dumps({"scenarios": [
        {"name": "a", "bitrate": "1000k", "vmaf_score": 80.0}]}))
    unusable(tmp_path, "test_results_20250102_000000.json", "symlink_loop")
    exporter = Exporter("exporters.qoe", tmp_path)
    try:
        parsed = metrics(exporter.port)
        assert parsed["qoe_exporter_up"].samples[0].value == 1.0
        assert [s.value for s in parsed["qoe_vmaf_score"].samples] == [80.0]
        assert {s.labels["reason"]: s.value
                for s in parsed["qoe_exporter_skipped_files"].samples} == {"symlink_loop": 1.0}
        path = tmp_path / "test_results_20250101_000000.json"
        before = path.stat()
        path.write_bytes(path.read_bytes().replace(b"80.0", b"90.0"))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        deadline = time.monotonic() + 10
        while [s.value for s in metrics(exporter.port)["qoe_vmaf_score"].samples] != [90.0]:
            assert time.monotonic() < deadline, "a rewrite behind the same mtime was missed"
            time.sleep(0.1)
    finally:
        exporter.stop()
    assert "passing over test_results_20250102_000000.json (symlink loop)" in exporter.output()
