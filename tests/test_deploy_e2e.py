"""The deployed stack end to end: a real VictoriaMetrics started with the shipped scrape config
(rewritten to test ports and a 1 s interval) scrapes ``advisor-exporters`` serving the bundled
examples, first the run the quick start serves, then the 240-entry extended run. Every
expression of every shipped dashboard (panels and template variables, Grafana's variables
substituted) must return at least one series on one of them, and so must the expressions the
reference's own dashboards query. vmagent with the same file remote-writes to a second
single-node server (how a cluster is fed; docs in the README's Deploy section).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from _process import Exporter, free_port
from test_victoriametrics import VictoriaMetrics, terminate, victoria_metrics_binary, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.victoriametrics]

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
EXAMPLES = ROOT / "examples" / "results"
QUICK_START = "test_results_20251229_125651"
EXTENDED = "test_results_20240115_103000.json"
#: What the reference stack's dashboards query of these exporters (its cost, QoE and results
#: dashboards; the health checker's and scheduler's metrics are other programs').
REFERENCE_EXPRESSIONS = [
    "cost_total_load_aware", "cost_energy_load_aware", "cost_compute_load_aware",
    "cost_per_pixel", "cost_per_watch_hour",
    "qoe_vmaf_score", "qoe_psnr_score", "qoe_quality_per_watt", "qoe_efficiency_score",
    "qoe_drop_rate", "qoe_ssim_score",
    "results_scenarios_total", "results_scenario_duration_seconds", "results_scenario_avg_fps",
    "results_scenario_total_frames", "results_scenario_dropped_frames",
    "results_scenario_vmaf_score", "results_scenario_psnr_score",
]
#: Grafana's variables as a dashboard with every template variable at "All" sends them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                     "$scenario": ".*", "$region": ".*"}


def dashboard_expressions() -> dict[str, str]:
    """{where: PromQL} of every panel target and template variable of the shipped dashboards."""
    out: dict[str, str] = {}
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                out[f"{path.stem}: {panel['title']} {target['refId']}"] = target["expr"]
        for variable in board.get("templating", {}).get("list", []):
            found = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["query"])
            assert found, variable["query"]
            out[f"{path.stem}: ${variable['name']}"] = \
                f"count by ({found.group(2)}) ({found.group(1)})"
    for where, expr in out.items():
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, f"{where}: unsubstituted variable in {expr}"
        out[where] = expr
    return out


def scrape_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    text = (DEPLOY / "victoriametrics" / "scrape.yml").read_text()
    for name, default in (("results", 9502), ("qoe", 9503), ("cost", 9504)):
        assert f"localhost:{default}" in text
        text = text.replace(f"localhost:{default}", f"127.0.0.1:{ports[name]}")
    text = text.replace("scrape_interval: 15s", "scrape_interval: 1s") \
        .replace("scrape_timeout: 10s", "scrape_timeout: 1s")
    path = tmp_path / "scrape.yml"
    path.write_text(text)
    return path


def instant(vm: VictoriaMetrics, expr: str) -> list:
    params = urllib.parse.urlencode({"query": expr, "time": f"{time.time():.3f}"})
    with urllib.request.urlopen(f"{vm.url}/api/v1/query?{params}", timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def scraped(vm: VictoriaMetrics, expr: str, predicate=lambda r: bool(r)) -> bool:
    vm.flush()
    return bool(predicate(instant(vm, expr)))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results directory holding the run the quick start serves, with its analysis."""
    directory = tmp_path / "results"
    directory.mkdir()
    for name in (f"{QUICK_START}.json", f"{QUICK_START}_analysis.csv"):
        shutil.copy(EXAMPLES / name, directory)
    return directory


@pytest.fixture
def ports() -> dict[str, int]:
    return {"cost": free_port(), "qoe": free_port(), "results": free_port()}


def test_every_dashboard_expression_returns_data(tmp_path: Path, results: Path,
                                                 ports: dict[str, int]) -> None:
    binary = victoria_metrics_binary()
    vm = VictoriaMetrics(binary, tmp_path / "vm", tmp_path / "vm.log",
                         f"-promscrape.config={scrape_config(tmp_path, ports)}")
    vm.start()
    exporter = Exporter("advisor-exporters", results, "--prometheus-url", vm.url, ports=ports)
    try:
        expressions = dashboard_expressions()
        empty = set(expressions)
        reference = set(REFERENCE_EXPRESSIONS)
        # The quick start's run: wait for the model's predictions, then every expression.
        wait_for(lambda: scraped(vm, "results_scenario_predicted_power_pi_high_watts"),
                 "predictions scraped", timeout=60)
        wait_for(lambda: scraped(vm, "up == 1", lambda r: len(r) == 3), "every job scraped")
        jobs = {r["metric"]["job"] for r in instant(vm, "up == 1")}
        assert jobs == {"results-exporter", "qoe-exporter", "cost-exporter"}
        for run in ("quick start", "extended"):
            if run == "extended":  # a newer file name: the exporters switch to it
                shutil.copy(EXAMPLES / EXTENDED, results / "test_results_20991231_000000.json")
                wait_for(lambda: scraped(vm, "results_scenarios_total",
                                         lambda r: r and float(r[0]["value"][1]) == 240),
                         "the extended run scraped", timeout=30)
                wait_for(lambda: scraped(vm, "qoe_ssim_score"), "QoE scraped", timeout=30)
                wait_for(lambda: scraped(
                    vm, 'results_model_info{trained_run_id="test_results_20991231_000000"}'),
                    "the extended run's model", timeout=60)
                time.sleep(2)  # one more scrape of every job
            for where in sorted(empty):
                if instant(vm, expressions[where]):
                    empty.discard(where)
            for expr in sorted(reference):
                if instant(vm, expr):
                    reference.discard(expr)
        assert not empty, "dashboard expressions without data: " + "; ".join(
            f"{w}: {expressions[w]}" for w in sorted(empty))
        assert not reference, f"reference dashboards' expressions without data: {reference}"
        # Same-named series of both runs are distinct through run_id (results) or the value;
        # the cost samples keep their own service label (honor_labels), not exported_service.
        assert not instant(vm, '{exported_service!=""}')
        assert instant(vm, 'cost_total_load_aware{service="cost-analysis",exporter="python"}')
        assert exporter.stop() < 1.0
    finally:
        if exporter.proc.poll() is None:
            exporter.kill()
        vm.stop()


def test_vmagent_remote_writes_what_the_scrape_config_scrapes(
        tmp_path: Path, results: Path, ports: dict[str, int]) -> None:
    storage = VictoriaMetrics(victoria_metrics_binary(), tmp_path / "vm", tmp_path / "vm.log")
    storage.start()
    vmagent = shutil.which("vmagent")
    assert vmagent, "vmagent not found (Debian's victoria-metrics package ships it)"
    exporter = Exporter("advisor-exporters", results, ports=ports)
    with open(tmp_path / "vmagent.log", "ab") as log:
        agent = subprocess.Popen(
            [vmagent, f"-promscrape.config={scrape_config(tmp_path, ports)}",
             f"-remoteWrite.url={storage.url}/api/v1/write", f"-httpListenAddr=127.0.0.1:"
             f"{free_port()}", f"-remoteWrite.tmpDataPath={tmp_path / 'vmagent-data'}",
             "-remoteWrite.flushInterval=200ms", "-loggerLevel=WARN"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        for job, expr in (("cost-exporter", "cost_energy_load_aware"),
                          ("qoe-exporter", "qoe_scenarios_total"),
                          ("results-exporter", "results_scenario_mean_power_watts")):
            selector = f'{expr}{{job="{job}",cluster="advisor"}}'
            wait_for(functools.partial(scraped, storage, selector),
                     f"{selector} written by vmagent", timeout=30)
        energy = instant(storage, 'cost_energy_load_aware{job="cost-exporter"}')
        assert len(energy) == 15
    finally:
        terminate(agent, 10.0)
        if exporter.proc.poll() is None:
            exporter.stop()
        storage.stop()
