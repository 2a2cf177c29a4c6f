"""The built distributions, as .ci/run's dist stage makes them (ADVISOR_DIST_DIR).

The stage builds the sdist, the release wheel from the unpacked sdist and the auditwheel-repaired
wheel, installs that wheel into a clean venv and runs this file there; without ADVISOR_DIST_DIR
these tests are deselected (conftest.py), since there is nothing built to check.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

import advisor_core

pytestmark = pytest.mark.dist

REPO = Path(__file__).resolve().parent.parent
#: Files the sdist carries that git does not track: the metadata setuptools writes and the version
#: file setuptools-scm generates.
GENERATED = re.compile(
    r"^(PKG-INFO|setup\.cfg|src/advisor_core\.egg-info/.+|src/advisor_core/_version\.py)$"
)
#: A stripped release extension is about 0.1-0.5 MB; with debug info the biggest was 2.2 MB.
MAX_EXTENSION_BYTES = 1_000_000


@pytest.fixture(scope="module")
def dist_dir() -> Path:
    return Path(os.environ["ADVISOR_DIST_DIR"])


def _one(pattern: str, folder: Path) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"{folder}: {found}"
    return found[0]


@pytest.fixture(scope="module")
def sdist(dist_dir: Path) -> Path:
    return _one("*.tar.gz", dist_dir / "dist")


@pytest.fixture(scope="module")
def repaired_wheel(dist_dir: Path) -> Path:
    return _one("*.whl", dist_dir / "wheelhouse")


def test_sdist_holds_exactly_what_git_tracks(sdist: Path):
    tracked = set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.split())
    with tarfile.open(sdist) as archive:
        names = {member.name.split("/", 1)[1] for member in archive.getmembers()
                 if member.isfile()}
    assert tracked - names == set(), "tracked files missing from the sdist"
    extra = {name for name in names - tracked if not GENERATED.match(name)}
    assert extra == set(), "files in the sdist that git does not track"
    assert not [name for name in names if name.endswith((".c", ".so", ".pyd"))]
    # What the tests need to run from the sdist alone.
    for needed in ("tests/conftest.py", "tests/_oracle.py", "tests/_domain.py",
                   "tests/data/test_results_20251229_125651.json", "setup.py", "MANIFEST.in"):
        assert needed in names, needed


def test_sdist_and_wheel_carry_the_installed_version(sdist: Path, repaired_wheel: Path):
    version = importlib.metadata.version("advisor-core")
    assert advisor_core.__version__ == version
    assert sdist.name == f"advisor_core-{version}.tar.gz"
    assert repaired_wheel.name.startswith(f"advisor_core-{version}-")
    with tarfile.open(sdist) as archive:
        pkg_info = archive.extractfile(f"advisor_core-{version}/PKG-INFO").read().decode()
    assert f"\nVersion: {version}\n" in pkg_info


def _release_line() -> Version:
    found = re.search(r'^RELEASE_LINE = "([^"]+)"$', (REPO / "setup.py").read_text(),
                      flags=re.MULTILINE)
    assert found, "setup.py declares RELEASE_LINE"
    return Version(found.group(1))


def test_a_git_archive_builds_in_the_release_line(dist_dir: Path):
    """`git archive HEAD` output (no .git, no tags) builds an sdist and a wheel whose version is
    the checkout's release (its tag, else setup.py's RELEASE_LINE), never setuptools-scm's 0.0."""
    sdist = _one("*.tar.gz", dist_dir / "archive-dist")
    wheel = _one("*.whl", dist_dir / "archive-dist")
    version = sdist.name[len("advisor_core-"):-len(".tar.gz")]
    assert wheel.name.startswith(f"advisor_core-{version}-")
    with tarfile.open(sdist) as archive:
        pkg_info = archive.extractfile(f"advisor_core-{version}/PKG-INFO").read().decode()
        archival = archive.extractfile(f"advisor_core-{version}/.git_archival.txt").read()
    assert f"\nVersion: {version}\n" in pkg_info
    node = re.search(rb"^node: ([0-9a-f]{40})$", archival, flags=re.MULTILINE)
    assert node, archival  # export-subst filled in the archived commit, one of this history
    assert subprocess.run(["git", "merge-base", "--is-ancestor", node.group(1).decode(), "HEAD"],
                          cwd=REPO).returncode == 0
    built = Version(version)
    installed = Version(importlib.metadata.version("advisor-core"))  # built from the checkout
    assert built >= Version("0.3") and built.base_version == installed.base_version
    tagged = subprocess.run(["git", "describe", "--tags", "--match", "*[0-9]*"], cwd=REPO,
                            capture_output=True).returncode == 0
    if not tagged:  # setuptools-scm alone would say 0.0
        assert built == Version(f"{_release_line().base_version}.dev0")
    elif not installed.is_devrelease:  # on a release tag the archive knows it too
        assert built == installed


def test_the_tests_run_against_the_installed_wheel():
    """Not a source tree: the package comes from site-packages, with compiled kernels."""
    package = Path(advisor_core.__file__).resolve().parent
    assert "site-packages" in package.parts
    assert REPO not in package.parents
    assert list(package.glob("_linalg*.so")) or list(package.glob("_linalg*.pyd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF sections: Linux wheels")
def test_wheel_extensions_carry_no_debug_info(repaired_wheel: Path, tmp_path: Path):
    readelf = shutil.which("readelf")
    assert readelf, "readelf (binutils) comes with the C compiler the build needs"
    with zipfile.ZipFile(repaired_wheel) as archive:
        extensions = [name for name in archive.namelist()
                      if name.endswith(".so") and name.startswith(("advisor_core/", "exporters/"))]
        assert len(extensions) == 4, extensions
        for name in extensions:
            info = archive.getinfo(name)
            assert info.file_size < MAX_EXTENSION_BYTES, (name, info.file_size)
            path = Path(archive.extract(name, tmp_path))
            sections = subprocess.run([readelf, "-S", "-W", str(path)], capture_output=True,
                                      text=True, check=True).stdout
            assert ".text" in sections
            assert ".debug_" not in sections, name
            assert ".symtab" not in sections, f"{name} is not stripped"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="manylinux: Linux wheels")
def test_repaired_wheel_is_manylinux(repaired_wheel: Path):
    auditwheel = Path(sys.executable).with_name("auditwheel")
    assert auditwheel.is_file(), "the dist stage installs auditwheel into this venv"
    shown = subprocess.run([str(auditwheel), "show", str(repaired_wheel)], capture_output=True,
                           text=True, check=True).stdout
    tag = re.search(r'consistent with the following platform tag:\s*"(manylinux_\d+_\d+_\w+)"',
                    " ".join(shown.split()))
    assert tag, shown
    assert tag.group(1) in repaired_wheel.name
