"""Build the Cython kernels of advisor-core.

Set ADVISOR_CORE_DEBUG=1 to compile with bounds and wraparound checks (the test build).

Set ADVISOR_CORE_SANITIZE=1 (implies the debug build; GCC or Clang, not Windows) to also compile
and link with AddressSanitizer and UndefinedBehaviorSanitizer. Cython's bounds checks only cover
memoryview indexing at the Python-facing edges; the sanitizers check the raw-pointer inner loops
(every read and write of a malloc'ed or numpy buffer), and abort on the first finding. Python is
not instrumented, so run such a build with the ASan runtime preloaded, as .ci/run does:
LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 python -m pytest ...
GCC's target_clones/ifunc multiversioning works under the sanitizers: on an AVX2 machine the
checked clone is the x86-64-v3 one that release wheels run there.

Neither setuptools nor Cython notices a change of mode by itself (the sources are unchanged), so
the mode of the last build is kept in build/advisor-core-build-mode and a different mode forces
both to rebuild everything.
"""

import os
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

SANITIZE = os.environ.get("ADVISOR_CORE_SANITIZE", "") not in ("", "0")
DEBUG = SANITIZE or os.environ.get("ADVISOR_CORE_DEBUG", "") not in ("", "0")
MODE = "sanitize" if SANITIZE else "debug" if DEBUG else "release"

_stamp = Path(__file__).resolve().parent / "build" / "advisor-core-build-mode"
FORCE = not _stamp.is_file() or _stamp.read_text() != MODE
_stamp.parent.mkdir(exist_ok=True)
_stamp.write_text(MODE)

# One concern per module (README "Layout"). models: _buffers (work buffers of a kernel call),
# _solver (least squares; its inner loops are the C of _qr_kernels.c), _pipeline (scaling,
# expansion, fit, prediction), _resampling (bootstrap, percentiles), _guarded (leverage,
# prediction beyond the training box), _crossval (out-of-fold predictions), _lstsq (the
# solver's numpy entry point); data: _samples (sample lists); economics: _kernels (cost and
# scoring over a column table).
KERNELS = ["models._buffers", "models._solver", "models._pipeline", "models._resampling",
           "models._guarded", "models._crossval", "models._lstsq", "data._samples",
           "economics._kernels"]
# Hand-written C compiled into a kernel's extension (not generated: kept by MANIFEST.in).
C_SOURCES = {"models._solver": ["src/advisor_core/models/_qr_kernels.c"]}

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}

link_args = []
if os.name == "nt":
    if SANITIZE:
        raise SystemExit("ADVISOR_CORE_SANITIZE=1 needs GCC or Clang (not Windows)")
    compile_args = ["/O2"]
else:
    # Release builds carry no debug info (-g0 overrides the -g of Python's own CFLAGS, -s
    # strips at link): 1 MB of extensions instead of 5 in a wheel.
    compile_args = ["-O3", "-g0"] if not DEBUG else ["-O1", "-g"]
    if not DEBUG and sys.platform.startswith("linux"):
        link_args += ["-s"]
if SANITIZE:
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    compile_args += sanitize + ["-fno-omit-frame-pointer"]
    link_args += sanitize

extensions = [
    Extension(
        f"advisor_core.{name}",
        [f"src/advisor_core/{name.replace('.', '/')}.pyx", *C_SOURCES.get(name, [])],
        include_dirs=[np.get_include(), "src/advisor_core/models"],
        depends=["src/advisor_core/models/_qr_kernels.h"] if name in C_SOURCES else [],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in KERNELS
]
# The exporters' text-format writer (no numpy: the cost/QoE exporter processes never load it).
extensions.append(
    Extension(
        "exporters._render",
        ["src/exporters/_render.pyx"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
)


#: The release line of a copy without release tags and the version of a copy without git
#: metadata (see version_scheme). Raise it with each release tag.
RELEASE_LINE = "0.3.1.dev0"


def version_scheme(version):
    """setuptools-scm's default scheme (guess-next-dev), except for a copy without release tags.

    Such a copy (a clone without tags, a ``git archive`` of an untagged commit) gives
    setuptools-scm no tag, and it would count from 0.0 (0.1.devN; an archive: 0.0). It gets
    RELEASE_LINE's release with the commits setuptools-scm counted instead: 0.3.1.devN+g<hash>
    (N = 0 for an archive, which carries no history).
    """
    from setuptools_scm.version import guess_next_dev_version

    # No tag found: setuptools-scm < 10 stands in 0.0, 10 and later the fallback_version.
    if str(version.tag) in ("0.0", RELEASE_LINE):
        line = version.config.version_cls(RELEASE_LINE)
        return f"{line.base_version}.dev{version.distance}"
    return guess_next_dev_version(version)


setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, quiet=True, force=FORCE),
    options={"build_ext": {"force": FORCE}},
    # The version comes from the git tag (v0.3.0 -> 0.3.0; commits after it ->
    # 0.3.1.devN+g<hash>); the sdist carries it in PKG-INFO. The sdist holds every file git
    # tracks (setuptools-scm's file finder) minus MANIFEST.in's exclusions. A `git archive` reads
    # its commit and tag from .git_archival.txt (export-subst in .gitattributes). All of it is
    # configured here, not in pyproject.toml: a [tool.setuptools_scm] section beside this
    # keyword makes setuptools-scm infer the version twice.
    use_scm_version={
        "version_file": "src/advisor_core/_version.py",
        "version_scheme": version_scheme,
        "fallback_version": RELEASE_LINE,
    },
)
