"""Console-script entry points of the exporters: a missing extra is one line, not a traceback."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["all_exporters", "cost", "qoe", "results", "version_line"]

#: Modules the exporters need that only the ``exporters`` extra installs.
_EXTRA_MODULES = frozenset({"prometheus_client", "h11"})


def version_line(prog: str) -> str:
    """What ``--version`` prints for the console script ``prog``."""
    from advisor_core import __version__

    return f"{prog} {__version__}"


def _load(module: str, prog: str) -> ModuleType:
    if sys.argv[1:] == ["--version"]:
        # The version needs no extra: answered here, as the exporter's own parser would.
        print(version_line(prog))
        raise SystemExit(0)
    try:
        return importlib.import_module(f"exporters.{module}")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in _EXTRA_MODULES:
            raise
        print(f"{prog}: error: {missing} is not installed; install the 'exporters' extra: "
              "pip install 'advisor-core[exporters]'", file=sys.stderr)
        raise SystemExit(2) from None


def cost() -> int:
    """``advisor-cost-exporter``."""
    return _load("cost", "advisor-cost-exporter").main()


def qoe() -> int:
    """``advisor-qoe-exporter``."""
    return _load("qoe", "advisor-qoe-exporter").main()


def results() -> int:
    """``advisor-results-exporter``."""
    return _load("results", "advisor-results-exporter").main()


def all_exporters() -> int:
    """``advisor-exporters``."""
    return _load("all", "advisor-exporters").main()
