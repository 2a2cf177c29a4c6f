"""The installed package is what pyproject.toml promises: compiled kernels, typing, API."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import advisor_core

#: The compiled kernels setup.py builds (its KERNELS list: one concern per module).
KERNELS = ("models._buffers", "models._solver", "models._pipeline", "models._resampling",
           "models._guarded", "models._crossval", "models._lstsq", "data._samples",
           "economics._kernels")


def test_kernels_are_compiled_extension_modules():
    for name in KERNELS:
        module = importlib.import_module(f"advisor_core.{name}")
        suffix = Path(module.__file__).name[len(module.__name__.rsplit(".", 1)[-1]):]
        assert suffix in importlib.machinery.EXTENSION_SUFFIXES, module.__file__


def test_typing_markers_and_stubs_ship_with_the_package():
    package = Path(advisor_core.__file__).parent
    assert (package / "py.typed").is_file()
    for name in KERNELS:
        assert (package / f"{name.replace('.', '/')}.pyi").is_file(), name


def test_top_level_api():
    names = {
        "PowerPredictor", "MultivariatePredictor", "CostModel", "EnergyEfficiencyScorer",
        "TranscodingRecommender", "RegionalPricing", "get_available_regions",
        "create_regional_pricing_config", "__version__", "ScenarioRecord", "read_run",
    }
    assert names <= set(dir(advisor_core))
    assert set(advisor_core.__all__) >= names - {"__version__"}
    # One version source: the git tag through setuptools-scm, the same in the metadata.
    assert advisor_core.__version__ == importlib.metadata.version("advisor-core")
    from advisor_core.economics import cost, recommender, regional_pricing, scoring
    from advisor_core.models import modeling

    assert advisor_core.PowerPredictor is modeling.PowerPredictor
    assert advisor_core.MultivariatePredictor is modeling.MultivariatePredictor
    assert advisor_core.CostModel is cost.CostModel
    assert advisor_core.EnergyEfficiencyScorer is scoring.EnergyEfficiencyScorer
    assert advisor_core.TranscodingRecommender is recommender.TranscodingRecommender
    assert advisor_core.RegionalPricing is regional_pricing.RegionalPricing
    from advisor_core.data import reader, record

    assert advisor_core.read_run is reader.read_run
    assert advisor_core.ScenarioRecord is record.ScenarioRecord


def _console_scripts() -> list[str]:
    entry_points = importlib.metadata.distribution("advisor-core").entry_points
    return sorted(ep.name for ep in entry_points if ep.group == "console_scripts")


def test_console_scripts_are_the_five_commands():
    assert _console_scripts() == ["advisor", "advisor-cost-exporter", "advisor-exporters",
                                  "advisor-qoe-exporter", "advisor-results-exporter"]


@pytest.mark.parametrize("script", _console_scripts())
def test_every_console_script_reports_the_package_version(script: str):
    path = Path(sys.executable).with_name(script)
    command = [str(path)] if path.is_file() else [shutil.which(script) or script]
    proc = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [proc.stdout.split()[0], advisor_core.__version__]


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")
            for req in requirements}


def test_dev_extra_holds_the_build_requirements_and_linters():
    """`pip install --no-build-isolation -e ".[dev]"` needs the build requirements present."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli")  # in the test extra for Python < 3.11
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    build = _requirement_names(config["build-system"]["requires"])
    dev = _requirement_names(config["project"]["optional-dependencies"]["dev"])
    assert build <= dev, build - dev
    assert {"ruff", "mypy", "cython-lint", "advisor-core"} <= dev
    # The dev extra pulls in the test, exporters and trees extras.
    assert any(req.startswith("advisor-core[") and "test" in req
               for req in config["project"]["optional-dependencies"]["dev"])


def test_github_ci_runs_the_stages_of_ci_run_not_a_copy():
    """ci.yml calls .ci/run's stages; it holds no test, lint or install command of its own."""
    root = Path(__file__).resolve().parent.parent
    workflow = (root / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    script = (root / ".ci" / "run").read_text(encoding="utf-8")
    stages = re.search(r"case \"\$stage\" in ([\w|]+)\)", script)
    assert stages, "the stage list of .ci/run"
    known = set(stages.group(1).split("|"))
    called = re.findall(r"^\s*- run: \.ci/run((?: \w+)+)\s*$", workflow, flags=re.MULTILINE)
    assert called, "ci.yml calls .ci/run"
    assert set().union(*(set(c.split()) for c in called)) == known
    for command in ("pytest", "pip install", "ruff", "mypy", "cython-lint", "setup.py"):
        assert command not in workflow, command


def test_a_copy_without_tags_is_in_the_release_line():
    """A clone without release tags (shallow, a fork) says 0.3.x, not setuptools-scm's 0.1.devN
    (setup.py's version_scheme); the checkouts CI tests have no tags or a release tag."""
    from packaging.version import Version

    version = Version(advisor_core.__version__)
    assert version >= Version("0.3"), version


def test_every_module_path_the_documentation_names_imports():
    """README, docs/ and benchmarks/README.md name modules and attributes that exist."""
    root = Path(__file__).resolve().parents[1]
    texts = [root / "README.md", root / "benchmarks" / "README.md",
             *sorted((root / "docs").glob("*.md"))]
    refs = set()
    for text in texts:
        refs |= set(re.findall(r"\badvisor_core(?:\.[A-Za-z_]\w*)+", text.read_text()))
    assert len(refs) > 20  # the documents do name modules: an empty scan proves nothing
    missing = []
    for ref in sorted(refs):
        parts = ref.split(".")
        for split in range(len(parts), 0, -1):
            try:
                target = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            for attribute in parts[split:]:
                target = getattr(target, attribute, None)
            if target is None:
                missing.append(ref)
            break
    assert missing == []


#: What each package's compiled sources may import of advisor_core (README "Layout"; the
#: import-linter contracts in pyproject.toml say the same for .py files, which are all it reads).
KERNEL_IMPORTS = {"data": {"data"}, "models": {"data", "models"},
                  "economics": {"data", "economics"}}


def test_compiled_sources_keep_the_package_layers():
    """Every ``.pyx``/``.pxd`` imports and cimports only what its package's layer allows."""
    package_dir = Path(__file__).resolve().parents[1] / "src" / "advisor_core"
    sources = sorted([*package_dir.glob("*/*.pyx"), *package_dir.glob("*/*.pxd")])
    assert len(sources) >= 9
    found, broken = 0, []
    for source in sources:
        own = source.parent.name
        for line in source.read_text().splitlines():
            match = re.match(r"\s*(?:from|c?import)\s+advisor_core\.(\w+)", line)
            if match:
                found += 1
                if match.group(1) not in KERNEL_IMPORTS.get(own, set()):
                    broken.append(f"{source.relative_to(package_dir)}: {line.strip()}")
    assert found >= 10  # the kernels do cimport each other: an empty scan proves nothing
    assert broken == []
