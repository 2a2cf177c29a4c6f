"""deploy/: dashboards, alert rules, systemd units and the scrape config, each checked by the
tool that will run it (promtool, vmalert, systemd-analyze, VictoriaMetrics' -dryRun).

The end-to-end check of the dashboards' expressions against a real VictoriaMetrics scraping the
exporters is tests/test_deploy_e2e.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCE_UID = "DS_VICTORIAMETRICS"


def tool(name: str) -> str:
    """A tool .ci/run installs; its absence is a broken environment, not a reason to skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install it (.ci/run does: Debian's prometheus, "
                    "victoria-metrics and systemd packages)", pytrace=False)
    return path


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


# -- dashboards -------------------------------------------------------------------------------


def panels(board: dict) -> list[dict]:
    """Every panel, rows' nested panels included."""
    out = []
    for panel in board.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_the_five_dashboards_are_there() -> None:
    assert {p.stem for p in DASHBOARDS} == {"cost", "qoe", "results", "recommendations",
                                            "exporter-health"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_load_with_unique_ids_on_the_provisioned_datasource(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    provisioned = (DEPLOY / "grafana/provisioning/datasources/victoriametrics.yml").read_text()
    assert re.search(rf"^\s+uid: {DATASOURCE_UID}$", provisioned, re.M)
    assert board["uid"] and board["title"] and board["panels"]
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}: {ids}"
    for panel in panels(board):
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert panel["targets"], f"{panel['title']} queries nothing"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
            assert target["expr"].strip()
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
    for variable in board.get("templating", {}).get("list", []):
        assert variable["datasource"]["uid"] == DATASOURCE_UID


def test_regenerating_the_dashboards_gives_the_committed_files(tmp_path: Path) -> None:
    # grafana-foundation-sdk is a development dependency (the dev extra), as is this check.
    pytest.importorskip("grafana_foundation_sdk")
    spec = importlib.util.spec_from_file_location("generate", DEPLOY / "grafana/generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    sys.modules["generate"] = generate
    try:
        spec.loader.exec_module(generate)
        assert generate.main(["-o", str(tmp_path)]) == 0
    finally:
        del sys.modules["generate"]
    for path in DASHBOARDS:
        assert (tmp_path / path.name).read_text() == path.read_text(), \
            f"{path.name} is stale: run python deploy/grafana/generate.py"
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in DASHBOARDS]


# -- alert rules ------------------------------------------------------------------------------


def test_alert_rules_pass_promtool_and_vmalert() -> None:
    rules = DEPLOY / "alerts" / "advisor-exporters.yml"
    checked = run(tool("promtool"), "check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    tested = run(tool("promtool"), "test", "rules", "advisor-exporters.test.yml",
                 cwd=rules.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    vmalert = run(tool("vmalert"), f"-rule={rules}", "-dryRun", "-loggerLevel=ERROR")
    assert vmalert.returncode == 0, vmalert.stdout + vmalert.stderr


def test_promtool_would_catch_an_alert_that_stays_silent(tmp_path: Path) -> None:
    """The unit tests are not vacuous: with a threshold no fixture reaches, they fail."""
    rules = (DEPLOY / "alerts" / "advisor-exporters.yml").read_text()
    broken = rules.replace('_exporter_up"} == 0', '_exporter_up"} == 2')
    assert broken != rules
    (tmp_path / "advisor-exporters.yml").write_text(broken)
    shutil.copy(DEPLOY / "alerts" / "advisor-exporters.test.yml", tmp_path)
    tested = run(tool("promtool"), "test", "rules", "advisor-exporters.test.yml", cwd=tmp_path)
    assert tested.returncode != 0 and "AdvisorExporterRefreshFailing" in tested.stdout + \
        tested.stderr


# -- systemd ----------------------------------------------------------------------------------


def unit_for_this_machine(tmp_path: Path, name: str) -> Path:
    """The unit with its ExecStart pointed at this environment's console script (verify checks
    that the binary exists)."""
    text = (DEPLOY / "systemd" / name).read_text()
    script = Path(sys.executable).parent / "advisor-exporters"
    text = text.replace("/opt/advisor-core/bin/advisor-exporters", str(script))
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["advisor-exporters.service", "victoria-metrics.service"])
def test_units_verify_and_are_hardened(tmp_path: Path, name: str) -> None:
    unit = unit_for_this_machine(tmp_path, name)
    verified = run(tool("systemd-analyze"), "verify", str(unit))
    # verify exits 0 on unknown keys too; they are printed, hence the empty output.
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    text = unit.read_text()
    for setting in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                    "Restart=on-failure"):
        assert setting in text, setting
    if name == "advisor-exporters.service":
        results = re.search(r"^    --results-dir (\S+)", text, re.M)
        assert results and f"ReadOnlyPaths={results.group(1)}" in text
    security = run(tool("systemd-analyze"), "security", "--offline=yes", str(unit))
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert level, security.stdout + security.stderr
    assert float(level.group(1)) <= 2.0, security.stdout  # "OK" on systemd's 0-10 scale


def test_verify_would_catch_a_misspelt_key(tmp_path: Path) -> None:
    unit = unit_for_this_machine(tmp_path, "advisor-exporters.service")
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    verified = run(tool("systemd-analyze"), "verify", str(unit))
    assert "Unknown key" in verified.stderr


# -- scrape config ----------------------------------------------------------------------------


def test_scrape_config_passes_victoriametrics_dry_run(tmp_path: Path) -> None:
    config = DEPLOY / "victoriametrics" / "scrape.yml"
    binary = tool("victoria-metrics")
    checked = run(binary, f"-promscrape.config={config}", "-dryRun", "-loggerLevel=ERROR")
    assert checked.returncode == 0, checked.stderr
    text = config.read_text()
    for job, port in (("results-exporter", 9502), ("qoe-exporter", 9503),
                      ("cost-exporter", 9504)):
        assert re.search(rf"job_name: {job}\n(?:.*\n){{0,3}}.*localhost:{port}", text), job
    broken = tmp_path / "scrape.yml"
    broken.write_text(text.replace("static_configs", "static_config", 1))
    refused = run(binary, f"-promscrape.config={broken}", "-dryRun", "-loggerLevel=ERROR")
    assert refused.returncode != 0
