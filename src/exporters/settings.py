"""Command-line flags and environment variables of the exporters, validated before any bind."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any, Optional
from urllib.parse import urlsplit

from advisor_core import __version__ as VERSION
from advisor_core.data.argtypes import positive_seconds

from ._launch import version_line
from .families import BodyBudget
from .metric_set import MetricSet
from .refresh import EXPORTER_LIMITS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Exit with status 2 and a one-line message (no usage dump)."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} outside 0..65535")
    return value


#: The longest refresh interval or timeout accepted (seconds): one day.
MAX_SECONDS = 86_400.0


def interval(text: str) -> float:
    """A refresh interval or timeout: seconds > 0, at most a day."""
    value = positive_seconds(text)
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{value:g} s is more than a day ({MAX_SECONDS:g} s)")
    return value


def _count(what: str, lower: int, upper: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``lower..upper``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}") from None
        if not lower <= value <= upper:
            raise argparse.ArgumentTypeError(f"{what} {value} outside {lower}..{upper}")
        return value

    return parse


def _address(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty listen address (0.0.0.0 listens everywhere)")
    return text


def _base_url(text: str) -> Optional[str]:
    """A VictoriaMetrics/Prometheus base URL: http(s)://host[:port][/path]; '' = none."""
    if text == "":
        return None
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port in URL {text!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"URL {text!r} must be http://host[:port] or https://host[:port]")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"URL {text!r} must not have a query or fragment")
    return text


def env(name: str, default: Any) -> Any:
    """The environment variable ``name`` when set and not empty, else ``default``."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def build_parser(prog: str, sets: Sequence[type[MetricSet]], description: str) -> _Parser:
    """Build the command-line parser shared by all exporters (flags win over env vars)."""
    parser = _Parser(prog=prog, description=description,
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=version_line(prog))
    parser.add_argument("--log-level", type=str.upper, default=env("LOG_LEVEL", "INFO"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help="least severe log messages written to stderr (env LOG_LEVEL)")
    net = parser.add_argument_group("server")
    if len(sets) == 1:
        only = sets[0]
        variable = f"{only.name.upper()}_EXPORTER_PORT"
        net.add_argument("--port", type=_port, default=env(variable, only.default_port),
                         help=f"TCP port to listen on (env {variable})")
    else:
        for cls in sets:
            variable = f"{cls.name.upper()}_EXPORTER_PORT"
            net.add_argument(f"--{cls.name}-port", type=_port,
                             default=env(variable, cls.default_port),
                             help=f"TCP port of the {cls.name} exporter (env {variable})")
    net.add_argument("--listen-address", type=_address, default="0.0.0.0",
                     help="IPv4 or IPv6 address or host name to listen on; a name is listened "
                          "on at each of its addresses (0.0.0.0 = all IPv4 interfaces, :: = "
                          "all interfaces, IPv4 too where the OS allows dual stack)")
    net.add_argument("--max-connections", type=_count("connection count", 1, 1_000_000),
                     default=512,
                     help="open HTTP connections per process; a new one evicts the oldest "
                          "connection waiting for a request")
    net.add_argument("--header-timeout", type=interval, default=10.0,
                     help="seconds a client has to send a whole request")
    net.add_argument("--idle-timeout", type=interval, default=30.0,
                     help="seconds an idle keep-alive connection stays open")
    net.add_argument("--results-dir", default=env("RESULTS_DIR", "./test_results"),
                     help="directory holding test_results_*.json files; must exist (env "
                          "RESULTS_DIR)")
    net.add_argument("--max-file-bytes", type=_count("file size", 1, 2**40),
                     default=EXPORTER_LIMITS.max_bytes,
                     help="largest results file read (bytes); a bigger one is refused")
    net.add_argument("--max-scenarios", type=_count("scenario count", 1, 10**8),
                     default=EXPORTER_LIMITS.max_scenarios,
                     help="most scenario entries a results file may have")
    net.add_argument("--max-label-length", type=_count("label length", 1, 10**7),
                     default=EXPORTER_LIMITS.max_text,
                     help="longest text field of a scenario (characters): a longer one skips "
                          "the scenario")
    net.add_argument("--max-parse-bytes", type=_count("parse budget", 1, 2**44),
                     default=EXPORTER_LIMITS.max_parse_bytes,
                     help="most bytes a results file's parsed objects may take, as estimated "
                          "from counts of its brackets, commas, colons, quotes and bytes "
                          "before parsing; a costlier file is refused")
    net.add_argument("--max-body-label-bytes", type=_count("label budget", 1, 2**40),
                     default=BodyBudget().label_bytes,
                     help="most bytes of label blocks one exporter's per-scenario samples may "
                          "take in its body; scenarios beyond it are left out and counted")
    net.add_argument("--max-series", type=_count("series budget", 1, 10**9),
                     default=BodyBudget().series,
                     help="most per-scenario samples (series) one exporter serves; scenarios "
                          "beyond it are left out and counted")
    net.add_argument("--refresh-interval", type=interval, default=2.0,
                     help="seconds between checks for a new or changed results file")
    net.add_argument("--prometheus-url", type=_base_url, default=env("PROMETHEUS_URL", None),
                     help="VictoriaMetrics/Prometheus base URL for enrichment, e.g. "
                          "http://victoriametrics:8428; unset = no queries (env PROMETHEUS_URL)")
    for cls in sets:
        cls.add_arguments(parser)
    return parser


def parse_settings(
    prog: str,
    sets: Sequence[type[MetricSet]],
    argv: Optional[Sequence[str]] = None,
    description: str = "",
) -> argparse.Namespace:
    """Parse and validate flags/env; on a bad value exit 2 with one line, before any bind."""
    parser = build_parser(prog, sets, description)
    settings = parser.parse_args(argv)
    if not os.path.isdir(settings.results_dir):
        parser.error(f"results directory {settings.results_dir!r} does not exist")
    for cls in sets:
        try:
            cls.check_settings(settings)
        except ValueError as exc:
            parser.error(str(exc))
    if len(sets) == 1:
        setattr(settings, f"{sets[0].name}_port", settings.port)
    else:
        settings.port = None
    settings.version = VERSION
    return settings


def port_of(settings: argparse.Namespace, metric_set: MetricSet) -> int:
    """Return the port a set listens on: ``<name>_port``, else ``port``, else its default."""
    for value in (getattr(settings, f"{metric_set.name}_port", None),
                  getattr(settings, "port", None)):
        if value is not None:
            return int(value)
    return metric_set.default_port

