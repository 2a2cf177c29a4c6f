"""Exporter infrastructure: runs, rendering, gzip bodies, refresh thread, settings."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from advisor_core.data.reader import run_record
from exporters._promql import PromClient
from exporters.cost import CostMetrics
from exporters.exposition import deflate_prefix, gzip_member, gzip_tail, render_families
from exporters.http_policy import accepts_gzip, request_path
from exporters.jobs import BackgroundJobs
from exporters.metric_set import MetricSet, Run
from exporters.process_metrics import ProcessMetrics
from exporters.publisher import SELF_FAMILIES, ExporterState
from exporters.qoe import QoEMetrics
from exporters.refresh import Refresher
from exporters.settings import parse_settings


class CountingSet(MetricSet):
    """A minimal metric set: one gauge per scenario holding its ``value`` field."""

    name = "demo"
    default_port = 9999

    def __init__(self) -> None:
        self.calls = 0

    def compute(self, run: Run, prom: PromClient) -> list:
        self.calls += 1
        family = GaugeMetricFamily("demo_value", "value field", labels=["scenario"])
        for scenario in run.scenarios:
            family.add_metric([scenario.name], float(scenario.viewers or 0))
        return [family]


def families_of(body: bytes) -> dict:
    """Parse an exposition body into {family name: [samples]} (fails on invalid text)."""
    parsed: dict = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        assert family.name not in parsed, f"family {family.name} split or repeated"
        parsed[family.name] = family.samples
    return parsed


def write_results(directory: Path, name: str, scenarios: list, mtime: float | None = None) -> Path:
    path = directory / name
    path.write_text(json.dumps({"scenarios": scenarios}), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# -- runs ------------------------------------------------------------------------------------


def test_a_run_keeps_the_last_duplicate_at_its_position() -> None:
    scenarios = [
        {"name": "a", "viewers": 1},
        {"name": "b", "viewers": 2},
        {"name": "a", "viewers": 3},
        {"name": None},
        {"name": "c"},
        {"name": "b", "viewers": 4},
    ]
    run = run_record(Path("/x/test_results_20250101_000000.json"), scenarios)
    assert [s.viewers for s in run.scenarios] == [3, None, 4]
    assert [s.name for s in run.scenarios] == ["a", "c", "b"]
    assert run.duplicates == 2
    assert run.skipped == {"invalid_name": 1}
    assert run.run_id == "test_results_20250101_000000"


def test_real_extended_file_duplicates_counted(extended_results_path: Path) -> None:
    raw = json.loads(extended_results_path.read_text())["scenarios"]
    run = run_record(extended_results_path, raw)
    names = [s["name"] for s in raw]
    assert len(run.scenarios) == len(set(names))
    assert run.duplicates == len(names) - len(set(names))
    # the survivor of each name is its last occurrence
    last = {s["name"]: s for s in raw}
    assert all(s.window[0] == last[s.name]["start_time"] for s in run.scenarios)


# -- rendering and gzip ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ['A "q" b', "back\\slash", "new\nline", "näme – 漢字 🎬", 'all \\ " \n of them', ""],
)
def test_label_values_survive_render_and_parse(name: str) -> None:
    family = GaugeMetricFamily("x_value", "help", labels=["scenario"])
    family.add_metric([name], 1.5)
    parsed = families_of(render_families([family]))
    assert parsed["x_value"][0].labels == {"scenario": name}
    assert parsed["x_value"][0].value == 1.5


def test_full_precision_values() -> None:
    family = GaugeMetricFamily("x_value", "help")
    value = 4.465306122448979e-14
    family.add_metric([], value)
    assert families_of(render_families([family]))["x_value"][0].value == value


def _one_member(member: bytes) -> bytes:
    """The body of a gzip member, checked to be exactly one member (what curl and wget read)."""
    reader = zlib.decompressobj(31)
    body = reader.decompress(member)
    assert reader.eof and reader.unused_data == b""
    assert member[:4] == b"\x1f\x8b\x08\x00" and member[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    return body


def test_gzip_prefix_fast_with_isal_compact_with_zlib_tail_appended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from exporters import exposition

    text = b"".join(b'm{scenario="s%d"} %d.5\n' % (i, i) for i in range(20000))
    # The test extra installs isal: CI measures the compressor the exporters ship with.
    assert exposition._deflate.__name__ == "isal.isal_zlib"
    fast = deflate_prefix([text], compact=False)
    compact = deflate_prefix([text])
    monkeypatch.setattr(exposition, "_deflate", zlib)
    fallback = deflate_prefix([text], compact=False)
    assert len({fast.data, compact.data, fallback.data}) == 3  # really three encoders
    tail = b"# TYPE tail gauge\ntail 1.0\n"
    for prefix in (fast, compact, fallback):
        assert (prefix.crc, prefix.size) == (zlib.crc32(text), len(text))
        assert _one_member(prefix.data + gzip_tail(prefix, tail)) == text + tail
        assert gzip.decompress(prefix.data + gzip_tail(prefix, b"")) == text
    assert len(compact.data) <= 1.15 * len(gzip.compress(text, 6))
    # Small chunks (one per family) deflate as well as the joined text: ISA-L writes a block per
    # call, so they are grouped first (the cost exporter's body was 3.5x its joined size).
    chunks = [text[i:i + 700] for i in range(0, len(text), 700)]
    monkeypatch.undo()
    assert len(deflate_prefix(chunks, compact=False).data) <= 1.02 * len(fast.data)
    assert gzip_member(chunks) == compact.data + gzip_tail(compact, b"")


@pytest.mark.parametrize("target,path", [
    ("/metrics", "/metrics"), ("/metrics?x=1#y", "/metrics"), ("/", "/"), ("//", "//"),
    ("/%2e%2e/metrics", "/%2e%2e/metrics"), ("*", "*"),
    ("http://host/metrics", "/metrics"), ("HTTPS://h:9504/metrics?x", "/metrics"),
    ("http://[::1]:80/health", "/health"), ("http://host", "/"), ("http://host?x", "/"),
    ("http://[::1/metrics", None), ("http://[::1]]/metrics", None), ("mailto:/metrics", None),
    ("http:/metrics", None), ("metrics", None), ("\x01/metrics", None), ("/m\xe9trics", None),
    ("/metrics\x7f", None), ("/a b", None), ("", None),
])
def test_request_path_reads_the_three_target_forms(target: str, path) -> None:
    assert request_path(target) == path


def test_accepts_gzip_header_rules() -> None:
    assert accepts_gzip("gzip")
    assert accepts_gzip("deflate, gzip;q=0.5")
    assert accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0")
    assert accepts_gzip("*;q=0, gzip")  # an explicit gzip wins over *, wherever each stands
    assert not accepts_gzip("*, gzip;q=0")
    assert not accepts_gzip("gzip;q=0, *")
    assert not accepts_gzip("identity")
    assert not accepts_gzip(None)
    assert not accepts_gzip("")


def _state_after_tick(tmp_path: Path, scenarios: list) -> tuple[ExporterState, Refresher]:
    write_results(tmp_path, "test_results_20250101_000000.json", scenarios)
    prom = PromClient(None)
    state = ExporterState(CountingSet(), prom)
    refresher = Refresher([state], tmp_path, 0.05, prom)
    refresher.tick()
    return state, refresher


def test_gzip_body_is_one_member_that_decodes_to_plain(tmp_path: Path) -> None:
    state, _ = _state_after_tick(tmp_path, [{"name": f"s{i}", "viewers": i} for i in range(50)])
    plain, compressed = state.body
    # One member: a single-member decoder (curl, wget) reads the whole body, nothing is left.
    decoder = zlib.decompressobj(wbits=31)
    assert decoder.decompress(compressed) == plain
    assert decoder.eof and decoder.unused_data == b""
    parsed = families_of(plain)
    assert len(parsed["demo_value"]) == 50
    assert "process_cpu_seconds" in parsed
    assert parsed["demo_exporter_up"][0].value == 1.0
    assert parsed["demo_scenarios_total"][0].value == 50.0


def test_process_metrics_agree_with_prometheus_clients_collector() -> None:
    ours = {family.name: family.samples[0].value
            for family in text_string_to_metric_families(ProcessMetrics().render().decode())}
    theirs = {metric.name: metric.samples[0].value
              for metric in ProcessCollector(registry=None).collect()}
    assert set(ours) == set(theirs) and len(ours) == 6
    assert ours["process_start_time_seconds"] == theirs["process_start_time_seconds"]
    assert ours["process_max_fds"] == theirs["process_max_fds"]
    assert abs(ours["process_open_fds"] - theirs["process_open_fds"]) <= 2
    assert abs(ours["process_cpu_seconds"] - theirs["process_cpu_seconds"]) <= 0.5
    for name in ("process_virtual_memory_bytes", "process_resident_memory_bytes"):
        assert ours[name] > 0 and abs(ours[name] - theirs[name]) <= 32 * 2**20


def test_scrape_time_families_follow_their_values(tmp_path: Path) -> None:
    state, _ = _state_after_tick(tmp_path, [{"name": "a", "viewers": 1}])
    for expected in (1, 2):
        state.http_client_errors["bad_request"] = expected
        parsed = families_of(b"".join(state.answer(False)))
        assert parsed["demo_exporter_scrapes"][0].value == expected
        assert [(s.labels, s.value) for s in parsed["demo_exporter_http_client_errors"]] == [
            ({"reason": "bad_request"}, float(expected))]


def test_self_metrics_refresh_without_recompute(tmp_path: Path) -> None:
    state, refresher = _state_after_tick(tmp_path, [{"name": "a", "viewers": 1}])
    data_before = state._data
    calls = state.metric_set.calls
    refresher.tick()
    refresher.tick()
    assert state.metric_set.calls == calls  # no file change, no recompute
    assert state._data is data_before  # the data part was not re-rendered
    assert refresher.ticks == 3


def _self_part(body: bytes, set_name: str) -> dict:
    """{family name: (type, samples)} of the families named after the set (its self-metrics)."""
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(body.decode())
            if f.name.startswith(f"{set_name}_") and f.name != f"{set_name}_value"}


def test_served_self_metrics_are_the_declared_families(tmp_path: Path) -> None:
    state, _ = _state_after_tick(tmp_path, [{"name": "a", "viewers": 1}, {"name": "a"}, 7])
    served = _self_part(state.body[0], "demo")
    declared = {f"demo_{suffix}": kind for suffix, kind, _, _ in SELF_FAMILIES
                if not suffix.startswith("exporter_victoriametrics_")}  # no enrichment URL here
    assert {name: kind for name, (kind, _) in served.items()} == declared
    values = {name: {tuple(sorted(s.labels.items())): s.value for s in samples}
              for name, (_, samples) in served.items()}
    assert values["demo_exporter_up"] == {(): 1.0}
    assert values["demo_duplicate_scenarios"] == {(): 1.0}
    assert values["demo_scenarios_total"] == {(): 3.0}
    assert values["demo_exporter_skipped_scenarios"] == {(("reason", "not_an_object"),): 1.0}
    assert values["demo_exporter_refresh_errors"] == {(): 0.0}  # parsed name drops _total


def test_self_metrics_reference_documents_every_declared_family() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "exporters.md").read_text()
    section = text[text.index("## 8. Self-metrics"):]
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2].strip()
            for line in section.splitlines() if line.startswith("| `<set>_")}
    expected = {f"<set>_{suffix}" + ("_total" if kind == "counter" else ""): kind
                for suffix, kind, _, _ in SELF_FAMILIES}
    assert rows == expected


# -- refresh behaviour -----------------------------------------------------------------------


class JobSet(CountingSet):
    """A set whose compute asks for a background job that doubles the values it renders."""

    name = "jobs"

    def __init__(self) -> None:
        super().__init__()
        self.factor = 1.0
        self.rows: list = []
        self.job_threads: list = []
        self.rerenders = 0

    def compute(self, run: Run, prom: PromClient) -> list:
        self.calls += 1
        self.rows = [(s.name, float(s.viewers or 0)) for s in run.scenarios]
        return self.rerender()

    def take_job(self):
        def job() -> bool:
            self.job_threads.append(threading.get_ident())
            self.factor = 2.0
            return True
        return job if self.factor == 1.0 else None

    def rerender(self) -> list:
        self.rerenders += 1
        family = GaugeMetricFamily("jobs_value", "value field x factor", labels=["scenario"])
        for name, value in self.rows:
            family.add_metric([name], value * self.factor)
        return [family]


def test_a_finished_job_rerenders_only_its_set_without_reloading(tmp_path: Path) -> None:
    write_results(tmp_path, "test_results_20250101_000000.json", [{"name": "a", "viewers": 3}])
    prom = PromClient(None)
    plain, with_job = ExporterState(CountingSet(), prom), ExporterState(JobSet(), prom)
    refresher = Refresher([plain, with_job], tmp_path, 0.05, prom)
    try:
        refresher.tick()
        assert families_of(with_job.body[0])["jobs_value"][0].value == 3.0
        assert refresher.wait_for_jobs(10)
        assert with_job.metric_set.job_threads[0] != threading.get_ident()
        plain_data = plain._data
        refresher.tick()
        assert families_of(with_job.body[0])["jobs_value"][0].value == 6.0
        assert (refresher.loads, plain.metric_set.calls, with_job.metric_set.calls) == (1, 1, 1)
        assert plain._data is plain_data  # the other set was not rendered again
        refresher.tick()
        assert with_job.metric_set.rerenders == 2  # once per finished job, not per tick
    finally:
        refresher.stop()


class BlockingJobSet(JobSet):
    """A set whose job runs until released (a long training)."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()

    def take_job(self):
        def job() -> bool:
            self.started.set()
            assert self.release.wait(10)
            return True
        return job


def test_a_new_file_is_read_only_once_the_running_job_has_ended(tmp_path: Path) -> None:
    """A job and a load each hold a run's worth of memory: never both at once."""
    write_results(tmp_path, "test_results_20250101_000000.json", [{"name": "a", "viewers": 3}])
    prom = PromClient(None)
    state = ExporterState(BlockingJobSet(), prom)
    refresher = Refresher([state], tmp_path, 0.05, prom)
    try:
        refresher.tick()
        assert state.metric_set.started.wait(10)
        write_results(tmp_path, "test_results_20250102_000000.json", [{"name": "b", "viewers": 4}])
        ticking = threading.Thread(target=refresher.tick)
        ticking.start()
        ticking.join(0.5)
        assert ticking.is_alive() and refresher.loads == 1  # waiting for the job, not loading
        state.metric_set.release.set()
        ticking.join(10)
        assert not ticking.is_alive() and refresher.loads == 2
        assert [s.labels["scenario"] for s in families_of(state.body[0])["jobs_value"]] == ["b"]
        # The next run's job was queued by that refresh and starts once it is over.
        assert state.metric_set.started.wait(10)
    finally:
        state.metric_set.release.set()
        refresher.stop()


def test_a_job_queued_during_a_load_starts_after_it() -> None:
    jobs = BackgroundJobs(lambda owner: None)
    ran = threading.Event()
    try:
        with jobs.held():
            jobs.submit("a", lambda: ran.set() or False)
            assert not ran.wait(0.3)
        assert ran.wait(10)
    finally:
        jobs.close()


def test_the_refresh_thread_wakes_for_a_finished_job(tmp_path: Path) -> None:
    write_results(tmp_path, "test_results_20250101_000000.json", [{"name": "a", "viewers": 3}])
    prom = PromClient(None)
    state = ExporterState(JobSet(), prom)
    refresher = Refresher([state], tmp_path, 3600.0, prom)  # never ticks on its own interval
    refresher.tick()
    refresher.start()
    try:
        deadline = time.monotonic() + 10
        while families_of(state.body[0])["jobs_value"][0].value != 6.0:
            assert time.monotonic() < deadline, "the job's result was not shown"
            time.sleep(0.01)
    finally:
        refresher.stop()
        refresher.join(5)
    assert not refresher.is_alive()



def test_truncated_newer_file_keeps_last_good_metrics(tmp_path: Path) -> None:
    state, refresher = _state_after_tick(tmp_path, [{"name": "a", "viewers": 7}])
    good = families_of(state.body[0])["demo_value"]
    newer = tmp_path / "test_results_20250102_000000.json"
    newer.write_text('{"scenarios": [{"name": "a", "val', encoding="utf-8")
    refresher.tick()
    parsed = families_of(state.body[0])
    assert parsed["demo_value"] == good
    assert parsed["demo_exporter_refresh_errors"][0].value == 1.0
    assert parsed["demo_exporter_up"][0].value == 0.0
    refresher.tick()  # same bad file: counted once, not every tick
    assert families_of(state.body[0])["demo_exporter_refresh_errors"][0].value == 1.0
    # wrong types are as bad as truncation
    newer.write_text('{"scenarios": {"name": "a"}}', encoding="utf-8")
    refresher.tick()
    assert families_of(state.body[0])["demo_exporter_refresh_errors"][0].value == 2.0
    # the writer finishes: picked up without restart
    newer.write_text(json.dumps({"scenarios": [{"name": "b", "viewers": 9}]}), encoding="utf-8")
    refresher.tick()
    parsed = families_of(state.body[0])
    assert [(s.labels["scenario"], s.value) for s in parsed["demo_value"]] == [("b", 9.0)]
    assert parsed["demo_exporter_up"][0].value == 1.0


def test_changed_file_same_name_is_noticed(tmp_path: Path) -> None:
    state, refresher = _state_after_tick(tmp_path, [{"name": "a", "viewers": 1}])
    path = tmp_path / "test_results_20250101_000000.json"
    stamp = path.stat().st_mtime + 5
    write_results(tmp_path, path.name, [{"name": "a", "viewers": 2}], mtime=stamp)
    refresher.tick()
    assert families_of(state.body[0])["demo_value"][0].value == 2.0


def test_latest_file_is_lexicographic_not_mtime(tmp_path: Path) -> None:
    write_results(tmp_path, "test_results_20250103_000000.json", [{"name": "new", "viewers": 3}],
                  mtime=1_000_000)
    write_results(tmp_path, "test_results_20250101_000000.json", [{"name": "old", "viewers": 1}])
    prom = PromClient(None)
    state = ExporterState(CountingSet(), prom)
    Refresher([state], tmp_path, 1.0, prom).tick()
    assert families_of(state.body[0])["demo_value"][0].labels["scenario"] == "new"


def test_empty_directory_serves_self_metrics(tmp_path: Path) -> None:
    prom = PromClient(None)
    state = ExporterState(CountingSet(), prom)
    Refresher([state], tmp_path, 1.0, prom).tick()
    parsed = families_of(state.body[0])
    assert parsed["demo_scenarios_total"][0].value == 0.0
    assert parsed["demo_value"] == []
    # Nothing recorded yet is the reference's up 1 (docs/exporters.md "Results directory").
    assert parsed["demo_exporter_up"][0].value == 1.0


def _served(state: ExporterState) -> tuple[list, float, dict]:
    """(demo_value samples, up, refresh failures by reason) of the served body."""
    parsed = families_of(state.body[0])
    failures = {s.labels["reason"]: s.value for s in parsed["demo_exporter_refresh_failures"]}
    return ([(s.labels["scenario"], s.value) for s in parsed["demo_value"]],
            parsed["demo_exporter_up"][0].value, failures)


def test_a_directory_that_cannot_be_listed_keeps_the_last_good_metrics(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    state, refresher = _state_after_tick(results, [{"name": "a", "viewers": 7}])
    results.rename(tmp_path / "away")  # listing fails (as for EACCES or EMFILE)
    refresher.tick()
    assert _served(state) == ([("a", 7.0)], 0.0, {"list_failed": 1.0})
    (tmp_path / "away").rename(results)
    refresher.tick()
    assert _served(state) == ([("a", 7.0)], 1.0, {"list_failed": 1.0})


def test_every_file_gone_after_one_was_served_keeps_it_and_says_so(tmp_path: Path) -> None:
    state, refresher = _state_after_tick(tmp_path, [{"name": "a", "viewers": 7}])
    (tmp_path / "test_results_20250101_000000.json").unlink()
    refresher.tick()
    assert _served(state) == ([("a", 7.0)], 0.0, {"no_results_file": 1.0})
    write_results(tmp_path, "test_results_20250102_000000.json", [{"name": "b", "viewers": 1}])
    refresher.tick()
    assert _served(state)[:2] == ([("b", 1.0)], 1.0)


def test_a_newest_file_that_vanishes_while_read_is_replaced_by_the_new_newest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import exporters.refresh as refresh_module
    from advisor_core.data.scenario import ResultsFileError

    state, refresher = _state_after_tick(tmp_path, [{"name": "a", "viewers": 7}])
    real = refresh_module.read_run
    write_results(tmp_path, "test_results_20250102_000000.json", [{"name": "b", "viewers": 2}])

    def rotated_away(path, *limits):
        # A rotation between the listing and the open: the file is gone, a newer one is in.
        monkeypatch.setattr(refresh_module, "read_run", real)
        Path(path).unlink()
        write_results(tmp_path, "test_results_20250103_000000.json", [{"name": "c", "viewers": 3}])
        raise ResultsFileError(f"{path}: cannot read: no such file", "vanished")

    monkeypatch.setattr(refresh_module, "read_run", rotated_away)
    refresher.tick()
    assert _served(state) == ([("c", 3.0)], 1.0, {})


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_as_the_newest_file_neither_blocks_nor_replaces_good_data(tmp_path: Path) -> None:
    state, refresher = _state_after_tick(tmp_path, [{"name": "a", "viewers": 7}])
    os.mkfifo(tmp_path / "test_results_20250102_000000.json")
    (tmp_path / "test_results_20250103_000000.json").symlink_to(
        tmp_path / "test_results_20250102_000000.json")
    started = time.monotonic()
    refresher.tick()
    assert time.monotonic() - started < 1.0
    assert _served(state) == ([("a", 7.0)], 1.0, {})  # neither is a candidate when listed


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_name_flipped_to_a_fifo_after_listing_is_refused_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import exporters.refresh as refresh_module

    state, refresher = _state_after_tick(tmp_path, [{"name": "a", "viewers": 7}])
    real = refresh_module.read_run
    newer = write_results(tmp_path, "test_results_20250102_000000.json", [{"name": "b"}])

    def flipped(path, *limits):
        newer.unlink()
        os.mkfifo(newer)  # no writer: a blocking open would hang the refresh thread
        return real(path, *limits)

    monkeypatch.setattr(refresh_module, "read_run", flipped)
    started = time.monotonic()
    refresher.tick()
    assert time.monotonic() - started < 1.0
    assert _served(state) == ([("a", 7.0)], 0.0, {"not_a_file": 1.0})


def test_failing_compute_is_counted_and_isolated(tmp_path: Path) -> None:
    class Broken(CountingSet):
        name = "broken"

        def compute(self, run: Run, prom: PromClient) -> list:
            raise RuntimeError("bug")

    write_results(tmp_path, "test_results_20250101_000000.json", [{"name": "a", "viewers": 1}])
    prom = PromClient(None)
    good, bad = ExporterState(CountingSet(), prom), ExporterState(Broken(), prom)
    Refresher([good, bad], tmp_path, 1.0, prom).tick()
    assert families_of(good.body[0])["demo_value"][0].value == 1.0
    assert families_of(bad.body[0])["broken_exporter_refresh_errors"][0].value == 1.0


def test_shared_refresh_loads_once_for_all_sets(tmp_path: Path, extended_results_path) -> None:
    (tmp_path / extended_results_path.name).write_bytes(extended_results_path.read_bytes())
    prom = PromClient(None)
    settings = parse_settings("t", [CostMetrics, QoEMetrics],
                              ["--results-dir", str(tmp_path), "--region", "us-east-1"])
    states = [ExporterState(CostMetrics(settings), prom), ExporterState(QoEMetrics(), prom)]
    Refresher(states, tmp_path, 1.0, prom).tick()
    assert states[0].run is states[1].run  # one load, one de-duplicated Run for everybody
    cost, qoe = families_of(states[0].body[0]), families_of(states[1].body[0])
    assert cost["cost_scenarios_total"][0].value == 240.0
    assert qoe["qoe_duplicate_scenarios"][0].value == cost["cost_duplicate_scenarios"][0].value
    assert cost["cost_duplicate_scenarios"][0].value > 0
    info = cost["cost_exporter_info"][0].labels
    assert info["region"] == "us-east-1" and info["currency"] == "USD" and info["version"]


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "-1"],
        ["--port", "65536"],
        ["--port", "http"],
        ["--refresh-interval", "0"],
        ["--refresh-interval", "-2"],
        ["--refresh-interval", "nan"],
        ["--refresh-interval", "1e308"],  # more than a day: would kill the refresh thread
        ["--refresh-interval", "86401"],
        ["--listen-address", ""],
        ["--listen-address", " "],
        ["--prometheus-url", "victoriametrics"],  # no scheme
        ["--prometheus-url", "ftp://vm:8428"],
        ["--prometheus-url", "http://vm:port"],
        ["--prometheus-url", "http://"],
        ["--max-connections", "0"],
        ["--max-connections", "many"],
        ["--header-timeout", "0"],
        ["--idle-timeout", "-1"],
        ["--energy-cost", "-0.1"],
        ["--cpu-cost", "-1"],
        ["--gpu-cost", "inf"],
        ["--results-dir", "/nonexistent/dir/for/sure"],
        ["--pricing-config", "/nonexistent/pricing.json"],
    ],
)
def test_bad_settings_exit_2_with_one_line(argv, tmp_path: Path, capsys) -> None:
    if "--results-dir" not in argv:
        argv = [*argv, "--results-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        parse_settings("advisor-cost-exporter", [CostMetrics], argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("advisor-cost-exporter: error:")


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '{"electricity_prices": {"us-east-1": -1}}',
     '{"co2_intensity": {"default": "high"}}', '{"electricity_prices": [0.1]}'],
)
def test_invalid_pricing_config_exits_2(content: str, tmp_path: Path, capsys) -> None:
    config = tmp_path / "pricing.json"
    config.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        parse_settings("x", [CostMetrics], ["--results-dir", str(tmp_path),
                                            "--pricing-config", str(config)])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_unknown_region_exits_2_listing_the_known_ones(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings("x", [CostMetrics], ["--results-dir", str(tmp_path), "--region", "mars"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'mars'" in err and "us-east-1" in err and "eu-west-1" in err


def test_a_region_named_by_the_pricing_config_is_known(tmp_path: Path) -> None:
    config = tmp_path / "pricing.json"
    config.write_text('{"electricity_prices": {"mars": 0.5}}', encoding="utf-8")
    settings = parse_settings("x", [CostMetrics], ["--results-dir", str(tmp_path), "--region",
                                                   "mars", "--pricing-config", str(config)])
    assert CostMetrics(settings).energy_price == 0.5


def test_pricing_flags_belong_to_the_cost_exporter_only(capsys) -> None:
    for sets, expected in (([QoEMetrics], False), ([CostMetrics, QoEMetrics], True)):
        with pytest.raises(SystemExit):
            parse_settings("x", sets, ["--help"])
        text = capsys.readouterr().out
        for flag in ("--region", "--energy-cost", "--pricing-config", "--disable-load-aware"):
            assert (flag in text) is expected, (sets, flag)
        assert text.count("pricing (cost exporter)") == int(expected)  # one group per process


def test_env_vars_apply_and_flags_win(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COST_EXPORTER_PORT", "9999")
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("REGION", "eu-west-1")
    monkeypatch.setenv("CURRENCY", "EUR")
    monkeypatch.setenv("ENERGY_COST_PER_KWH", "0.3")
    monkeypatch.setenv("CPU_COST_PER_HOUR", "0.5")
    monkeypatch.setenv("PROMETHEUS_URL", "http://vm:8428")
    monkeypatch.setenv("ELECTRICITY_MAPS_TOKEN", "tok")
    settings = parse_settings("x", [CostMetrics], [])
    assert settings.port == 9999 and settings.cost_port == 9999
    assert settings.results_dir == str(tmp_path)
    assert (settings.region, settings.currency) == ("eu-west-1", "EUR")
    assert (settings.energy_cost, settings.cpu_cost) == (0.3, 0.5)
    assert settings.prometheus_url == "http://vm:8428"
    assert settings.electricity_maps_token == "tok"
    assert settings.refresh_interval == 2.0 and settings.listen_address == "0.0.0.0"
    flags = parse_settings("x", [CostMetrics], ["--port", "1234", "--region", "us-west-2",
                                                "--energy-cost", "0.2"])
    assert (flags.port, flags.region, flags.energy_cost) == (1234, "us-west-2", 0.2)


def test_bad_env_value_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("QOE_EXPORTER_PORT", "70000")
    with pytest.raises(SystemExit) as info:
        parse_settings("x", [QoEMetrics], ["--results-dir", str(tmp_path)])
    assert info.value.code == 2


def test_all_in_one_has_one_port_flag_per_set(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("COST_EXPORTER_PORT", raising=False)
    monkeypatch.delenv("QOE_EXPORTER_PORT", raising=False)
    monkeypatch.setenv("QOE_EXPORTER_PORT", "19503")
    settings = parse_settings("x", [CostMetrics, QoEMetrics],
                              ["--results-dir", str(tmp_path), "--cost-port", "19504"])
    assert (settings.cost_port, settings.qoe_port, settings.port) == (19504, 19503, None)


def test_help_documents_every_flag(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings("advisor-cost-exporter", [CostMetrics], ["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--port", "--listen-address", "--results-dir", "--refresh-interval",
                 "--prometheus-url", "--region", "--energy-cost", "--cpu-cost", "--gpu-cost",
                 "--currency", "--pricing-config", "--electricity-maps-token",
                 "--disable-load-aware", "COST_EXPORTER_PORT", "RESULTS_DIR", "PROMETHEUS_URL",
                 "REGION", "CURRENCY", "ENERGY_COST_PER_KWH", "CPU_COST_PER_HOUR",
                 "ELECTRICITY_MAPS_TOKEN"):
        assert flag in text, flag


# -- the fast renderer is byte-identical to prometheus_client ----------------------------------


def test_render_families_matches_generate_latest_on_edge_values() -> None:
    from prometheus_client.core import CounterMetricFamily, InfoMetricFamily

    from exporters.exposition import generate_latest_of

    gauge = GaugeMetricFamily("edge_value", 'help with \\ and \n and "quotes"',
                              labels=["z", "a", "scenario"])
    values = [0.0, -0.0, 1.0, -1.5, 1e-300, 5e-324, 123456789.0, 1234567.0, 12345678.9,
              1e22, -1e22, float("inf"), float("-inf"), float("nan"), 0.1 + 0.2, 3]
    for i, v in enumerate(values):
        gauge.add_metric([f"z{i}", 'a"\\\n', f"näme {i} ✓"], v)
    counter = CounterMetricFamily("edge_events", "a counter", labels=["reason"])
    counter.add_metric(["x"], 3.0)
    plain = GaugeMetricFamily("edge_plain", "no labels")
    plain.add_metric([], 2.5)
    timestamped = GaugeMetricFamily("edge_ts", "with timestamp")
    timestamped.add_metric([], 1.0, timestamp=1700000000.5)
    info = InfoMetricFamily("edge_build", "info", value={"version": "1"})
    families = [gauge, counter, plain, timestamped, info, GaugeMetricFamily("edge_empty", "x")]
    assert render_families(families) == generate_latest_of(families)


DATA_FILES = sorted((Path(__file__).parent / "data").glob("test_results_*.json"))


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_render_families_matches_generate_latest_on_real_data(path: Path) -> None:
    from advisor_core.data.scenario import load_results
    from exporters.exposition import generate_latest_of

    run = run_record(path, load_results(path))
    settings = parse_settings("t", [CostMetrics], ["--results-dir", str(path.parent),
                                                   "--cpu-cost", "0.5"])
    for metric_set in (CostMetrics(settings), QoEMetrics()):
        families = metric_set.compute(run, PromClient(None))
        assert render_families(families) == generate_latest_of(families)


def test_health_is_503_when_the_refresh_thread_is_dead(tmp_path: Path) -> None:
    import http.client

    from exporters.serving import Server

    prom = PromClient(None)
    state = ExporterState(CountingSet(), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)  # never started: not alive
    refresher.tick()
    server = Server([(("127.0.0.1", 0), state)], refresher)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.ports["demo"], timeout=5)
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 503 and response.read() == b"refresh thread stopped\n"
        conn.request("GET", "/metrics")  # the last bytes are still served, keep-alive works
        response = conn.getresponse()
        assert response.status == 200 and b"demo_exporter_up 1.0" in response.read()
        conn.close()
    finally:
        server.stop()


# -- lean tables, label schemas, numpy-free processes ------------------------------------------


def test_table_family_renders_like_generate_latest_on_edge_values() -> None:
    from exporters.exposition import generate_latest_of
    from exporters.families import LabelSchema, TableFamily

    schema = LabelSchema(["z", "scenario", "a"])
    values = [0.0, -0.0, 1.0, -1.5, 1e-300, 5e-324, 123456789.0, 1234567.0, 12345678.9,
              999999.9, 1e7, 9999999999999998.0, 1e16, 1e22, -1e22, float("inf"),
              float("-inf"), float("nan"), 0.1 + 0.2, 3, 4.465306122448979e-14]
    gauge = TableFamily("edge_value", 'help with \\ and \n and "quotes"')
    counter = TableFamily("edge_events", "a counter", "counter")
    for i, value in enumerate(values):
        labels = schema([f"z{i}", f'näme {i} ✓ "q" \\ \n', 'a"\\\n'])
        gauge.add(labels, value)
        counter.add(labels, abs(value))
    families = [gauge, counter, TableFamily("edge_empty", "no rows")]
    assert render_families(families) == generate_latest_of(families)
    assert len(gauge) == len(values)


def _double_classes(rng) -> list[float]:
    """Doubles where shortest-repr algorithms go wrong: every binade edge, powers of ten,
    subnormals, integers, short decimals, ties and random bit patterns."""
    import math

    import numpy as np

    edges = [2.0 ** e for e in range(-1074, 1024)]
    edges += [math.nextafter(x, math.inf) for x in edges] + [math.nextafter(x, 0.0) for x in edges]
    tens = [float(f"{m}e{e}") for e in range(-324, 309) for m in (1, 5, 9.999999999999999)]
    # exact multiples of large powers of five: the trailing-zero bookkeeping of the digits
    fives = [math.ldexp(float(5**j * m), k) for j in range(23) for m in (1, 3, 7, 2**53 // 5**j - 1)
             for k in range(-60, 80) if 5**j * m < 2**53]
    bits = rng.integers(0, 2**64 - 1, size=200_000, dtype=np.uint64, endpoint=True)
    random_doubles = bits.view(np.float64)
    decimals = rng.integers(-10**9, 10**9, size=100_000) / 10.0 ** rng.integers(0, 12, 100_000)
    scaled = rng.random(100_000) * 10.0 ** rng.integers(-30, 30, size=100_000)
    values = [*edges, *tens, *fives, *random_doubles.tolist(), *decimals.tolist(), *scaled.tolist(),
              *(5e-324 * k for k in range(1, 5000)), *(float(i) for i in range(-5000, 5000)),
              0.1 + 0.2, 1 / 3, 2.2250738585072014e-308, 2.225073858507201e-308,
              1.7976931348623157e308, 9007199254740993.0, 4.35, 0.3, 5e-05, 1e16, 1e-4]
    values += [-x for x in values]
    return [x for x in values if math.isfinite(x)]


def test_compiled_repr_equals_python_repr_on_hard_doubles() -> None:
    import numpy as np

    from exporters._render import _repr_text

    values = _double_classes(np.random.default_rng(20261126))
    assert len(values) > 500_000
    wrong = [(value, _repr_text(value)) for value in values if _repr_text(value) != repr(value)]
    assert wrong == []


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=3000, deadline=None)
def test_compiled_repr_equals_python_repr(value: float) -> None:
    from exporters._render import _repr_text

    assert _repr_text(value) == repr(value)


def test_render_rows_formats_every_class_of_double_like_prometheus_client() -> None:
    import numpy as np
    from prometheus_client.utils import floatToGoString

    from exporters._render import render_rows

    values = _double_classes(np.random.default_rng(7))[::7]
    values += [float("inf"), float("-inf"), float("nan"), 1234567.0, 12345678.9, 999999.9]
    text = render_rows(b"m", [b""] * len(values), values)
    assert text == b"".join(b"m " + floatToGoString(v).encode() + b"\n" for v in values)


def test_render_rows_writes_the_longest_values_and_the_head_exactly() -> None:
    from prometheus_client.utils import floatToGoString

    from exporters._render import render_rows

    # The longest texts a value can have (the buffer is sized from a per-value bound).
    values = [-2.2250738585072014e-308, -1.2345678901234567e-300, -0.00012345678901234567,
              1234567890123456.7, -1234567890123456.7, 1.7976931348623157e308, 5e-324,
              float("-inf"), float("nan"), 7]
    blocks = [b"", b'{a="x"}'] * 5
    expected = b"# HELP h\n" + b"".join(
        b"m" + block + b" " + floatToGoString(value).encode() + b"\n"
        for block, value in zip(blocks, values))
    assert render_rows(b"m", blocks, values, b"# HELP h\n") == expected
    assert render_rows(b"m", blocks, values) == expected[len(b"# HELP h\n"):]
    assert render_rows(b"m", [], [], b"head") == b"head"
    assert render_rows(b"m", [], []) == b""
    with pytest.raises(ValueError):
        render_rows(b"m", [b""], [])
    with pytest.raises(TypeError):
        render_rows(b"m", ["not bytes"], [1.0])


def test_label_schema_rejects_bad_names_and_counts() -> None:
    from exporters.families import LabelSchema

    with pytest.raises(ValueError):
        LabelSchema(["ok", "not-ok"])
    with pytest.raises(ValueError):
        LabelSchema(["a", "a"])
    with pytest.raises(ValueError):
        LabelSchema(["a", "b"])(["only one"])


_LABEL_NAMES = st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), max_size=6,
                        unique=True)


@given(data=st.data(), names=_LABEL_NAMES)
@settings(max_examples=400, deadline=None)
def test_label_schema_blocks_are_prometheus_client_label_blocks(data, names) -> None:
    from prometheus_client.core import GaugeMetricFamily

    from exporters.exposition import generate_latest_of
    from exporters.families import LabelSchema

    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
        ['"', "\\", "\n", '\\"\n', "näme ✓ 🎬", ""])
    values = data.draw(st.lists(text, min_size=len(names), max_size=len(names)))
    block = LabelSchema(names)(values).block
    family = GaugeMetricFamily("x", "h", labels=names)
    family.add_metric(values, 1.0)
    line = generate_latest_of([family]).split(b"\n")[2]
    assert line == b"x" + block + b" 1.0"


def test_label_schema_rejects_values_that_are_not_text() -> None:
    from exporters.families import LabelSchema

    schema = LabelSchema(["a", "b"])
    with pytest.raises(TypeError):
        schema(["x", 3])
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate has no UTF-8 form
        schema(["x", "\ud800"])
    assert schema(("x", "y")).block == b'{a="x",b="y"}'  # tuples and lists alike


def test_unchanged_tables_reuse_their_text_and_changed_ones_render_again() -> None:
    from exporters.exposition import generate_latest_of
    from exporters.families import LabelSchema, TableFamily

    schema = LabelSchema(["scenario"])
    state = ExporterState(CountingSet(), PromClient(None))

    def families(second: float) -> list:
        first = TableFamily("x_first", "first")
        other = TableFamily("x_second", "second")
        for name in ("a", "b"):
            first.add(schema([name]), 1.0)
            other.add(schema([name]), second)
        return [first, other]

    state.set_data(families(2.0))
    before = state._data
    state.set_data(families(2.0))
    assert state._data[0] is before[0] and state._data[1] is before[1]
    state.set_data(families(-0.0))  # equal to 0.0 as a float, different text
    state.set_data(families(0.0))
    assert b"".join(state._data) == generate_latest_of(families(0.0))


def test_cost_and_qoe_exporters_never_import_numpy() -> None:
    code = ("import sys, exporters.cost, exporters.qoe, exporters.runtime;"
            "assert 'numpy' not in sys.modules, 'numpy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cost_and_qoe_compute_without_numpy(extended_results_path: Path) -> None:
    code = (
        "import sys\n"
        "from advisor_core.data.scenario import load_results\n"
        "from exporters.exposition import render_families\n"
        "from advisor_core.data.reader import run_record\n"
        "from exporters.settings import parse_settings\n"
        "from exporters._promql import PromClient\n"
        "from exporters.cost import CostMetrics\n"
        "from exporters.qoe import QoEMetrics\n"
        "path = sys.argv[1]\n"
        "run = run_record(path, load_results(path))\n"
        "settings = parse_settings('t', [CostMetrics], ['--results-dir', sys.argv[2]])\n"
        "for metric_set in (CostMetrics(settings), QoEMetrics()):\n"
        "    assert render_families(metric_set.compute(run, PromClient(None)))\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code, str(extended_results_path),
                    str(extended_results_path.parent)], check=True, timeout=60)


def test_scenarios_total_counts_every_entry_objects_or_not(tmp_path: Path) -> None:
    entries = [{"name": "a", "viewers": 1}, 7, None, "text", [1], {"name": "a", "viewers": 2}]
    state, _ = _state_after_tick(tmp_path, entries)
    parsed = families_of(state.body[0])
    assert parsed["demo_scenarios_total"][0].value == 6.0  # as its HELP says
    assert parsed["demo_duplicate_scenarios"][0].value == 1.0
    assert len(parsed["demo_value"]) == 1


def test_a_lone_surrogate_repairs_its_scenario_not_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "test_results_20250101_000000.json"
    path.write_text('{"scenarios": [{"name": "bad \\ud800 name", "viewers": 1},'
                    ' {"name": "good", "viewers": 2}]}', encoding="utf-8")
    prom = PromClient(None)
    state = ExporterState(CountingSet(), prom)
    Refresher([state], tmp_path, 1.0, prom).tick()
    parsed = families_of(state.body[0])
    assert sorted((s.labels["scenario"], s.value) for s in parsed["demo_value"]) == [
        ("bad \ufffd name", 1.0), ("good", 2.0)]  # one replacement character per surrogate
    assert parsed["demo_exporter_up"][0].value == 1.0
    skipped = {s.labels["reason"]: s.value for s in parsed["demo_exporter_skipped_scenarios"]}
    assert skipped == {"text_repaired": 1.0}


def test_read_limits_refuse_a_file_or_skip_a_scenario_and_count_why(tmp_path: Path) -> None:
    from exporters.refresh import ReadLimits

    write_results(tmp_path, "test_results_20250101_000000.json", [{"name": "a", "viewers": 7}])
    prom = PromClient(None)
    state = ExporterState(CountingSet(), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom,
                          ReadLimits(max_bytes=2000, max_scenarios=5, max_text=20))
    refresher.tick()
    write_results(tmp_path, "test_results_20250102_000000.json",
                  [{"name": f"s{i}"} for i in range(6)])
    refresher.tick()
    assert _served(state) == ([("a", 7.0)], 0.0, {"too_many_scenarios": 1.0})
    write_results(tmp_path, "test_results_20250103_000000.json", [{"name": "x" * 3000}])
    refresher.tick()
    assert _served(state) == ([("a", 7.0)], 0.0, {"too_many_scenarios": 1.0, "too_large": 1.0})
    # The ladder label is built from the outputs list: 3 renditions make 47 characters.
    ladder = [{"resolution": "1920x1080", "fps": 30}, {"resolution": "1280x720", "fps": 30},
              {"resolution": "854x480", "fps": 30}]
    write_results(tmp_path, "test_results_20250104_000000.json",
                  [{"name": "n" * 21, "viewers": 1}, {"name": "ok", "encoder": "e" * 21},
                   {"name": "fine", "viewers": 3}, {"name": "ladder", "outputs": ladder},
                   {"name": "short", "viewers": 4, "outputs": ladder[:1]}])
    refresher.tick()
    assert _served(state)[:2] == ([("fine", 3.0), ("short", 4.0)], 1.0)
    skipped = {s.labels["reason"]: s.value
               for s in families_of(state.body[0])["demo_exporter_skipped_scenarios"]}
    assert skipped == {"text_too_long": 3.0}


def test_read_limit_flags_reach_the_refresher(tmp_path: Path) -> None:
    from exporters.runtime import start_exporters

    settings = parse_settings("t", [CostMetrics], [
        "--results-dir", str(tmp_path), "--port", "0", "--listen-address", "127.0.0.1",
        "--max-file-bytes", "1000", "--max-scenarios", "3", "--max-label-length", "9"])
    exporters = start_exporters([CostMetrics(settings)], settings)
    try:
        limits = exporters.refresher.limits
        assert (limits.max_bytes, limits.max_scenarios, limits.max_text) == (1000, 3, 9)
    finally:
        exporters.stop()
