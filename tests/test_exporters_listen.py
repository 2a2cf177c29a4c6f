"""Listening addresses: IPv6 literals, the dual-stack wildcard and names with several addresses."""

from __future__ import annotations

import errno
import logging
import shutil
import socket
import sys
from pathlib import Path

import pytest

from _process import EXTENDED, Exporter, metrics, request
from exporters import serving
from exporters._promql import PromClient
from exporters.metric_set import MetricSet, Run
from exporters.publisher import ExporterState
from exporters.refresh import Refresher
from exporters.serving import Server, bind_listeners

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="Linux process semantics")


def _can_bind_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _can_bind_ipv6_loopback(),
                                reason="this host cannot bind ::1 at all")


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    shutil.copy(EXTENDED, tmp_path / EXTENDED.name)
    return tmp_path


def refused(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


@needs_ipv6
@pytest.mark.slow
def test_an_ipv6_loopback_address_is_listened_on_and_only_it(results_dir: Path) -> None:
    exporter = Exporter("exporters.qoe", results_dir, host="::1")
    try:
        assert metrics(exporter.port, host="::1")["qoe_exporter_up"].samples[0].value == 1.0
        assert refused("127.0.0.1", exporter.port)  # ::1 is IPv6 only
    finally:
        exporter.stop()
    assert f"qoe exporter listening on [::1]:{exporter.port}" in exporter.output()


@needs_ipv6
@pytest.mark.slow
def test_the_ipv6_wildcard_takes_ipv4_too_where_the_os_allows(results_dir: Path) -> None:
    exporter = Exporter("exporters.qoe", results_dir, host="::")
    try:
        assert request(exporter.port, "/metrics", host="::1")[0] == 200
        if socket.has_dualstack_ipv6():
            assert request(exporter.port, "/metrics", host="127.0.0.1")[0] == 200
    finally:
        exporter.stop()


@pytest.mark.slow
def test_a_name_is_listened_on_at_each_of_its_addresses(results_dir: Path) -> None:
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", 0,
                                                             type=socket.SOCK_STREAM)}
    exporter = Exporter("exporters.qoe", results_dir, host="localhost")
    try:
        for address in addresses:
            assert request(exporter.port, "/", host=address)[0] == 200, address
    finally:
        exporter.stop()


class Empty(MetricSet):
    name = "demo"
    default_port = 9999

    def compute(self, run: Run, prom: PromClient) -> list:
        return []


def _addresses_of(mapping: dict[str, list[str]]):
    """A getaddrinfo that resolves the names of ``mapping`` to its addresses."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in mapping:
            return real(host, port, *args, **kwargs)
        return [info for address in mapping[host]
                for info in real(address, port, *args, **kwargs)]

    return getaddrinfo


@needs_ipv6
def test_every_address_of_a_two_family_name_serves_on_one_port(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(serving.socket, "getaddrinfo",
                        _addresses_of({"both": ["127.0.0.1", "::1", "127.0.0.1"]}))
    prom = PromClient(None)
    state = ExporterState(Empty(), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    refresher.tick()
    server = Server([(("both", 0), state)], refresher)  # port 0: one port for both
    server.start()
    try:
        port = server.ports["demo"]
        assert sorted(server.listening) == [("demo", f"127.0.0.1:{port}"),
                                            ("demo", f"[::1]:{port}")]
        for host in ("127.0.0.1", "::1"):
            assert request(port, "/", host=host)[0] == 200
    finally:
        server.stop()


def test_an_address_this_host_does_not_have_is_skipped_when_another_binds(monkeypatch,
                                                                          caplog) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this host: binding it fails with EADDRNOTAVAIL.
    monkeypatch.setattr(serving.socket, "getaddrinfo",
                        _addresses_of({"partly": ["192.0.2.1", "127.0.0.1"],
                                       "nowhere": ["192.0.2.1"]}))
    with caplog.at_level(logging.WARNING):
        sockets = bind_listeners("partly", 0)
    try:
        assert [sock.getsockname()[0] for sock in sockets] == ["127.0.0.1"]
        assert "not listening on 192.0.2.1 (of partly)" in caplog.text
    finally:
        for sock in sockets:
            sock.close()
    with pytest.raises(OSError) as raised:
        bind_listeners("nowhere", 0)
    assert raised.value.errno == errno.EADDRNOTAVAIL


def test_an_address_in_use_fails_even_when_the_name_has_others(monkeypatch) -> None:
    monkeypatch.setattr(serving.socket, "getaddrinfo",
                        _addresses_of({"busy": ["127.0.0.1", "127.0.0.2"]}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError) as raised:
            bind_listeners("busy", taken.getsockname()[1])
    assert raised.value.errno == errno.EADDRINUSE
