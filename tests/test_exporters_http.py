"""The HTTP layer against hostile and broken clients: bounded, deadlines, no tracebacks."""

from __future__ import annotations

import errno
import http.client
import logging
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _process import request
from exporters._promql import PromClient
from exporters.http_policy import ClientLog, HttpLimits, keeps_alive
from exporters.metric_set import MetricSet, Run
from exporters.publisher import ExporterState
from exporters.refresh import Refresher
from exporters.serving import Server


class OneGauge(MetricSet):
    name = "demo"
    default_port = 9999

    def compute(self, run: Run, prom: PromClient) -> list:
        return []


#: Bigger than every socket buffer on the way: a client that does not read blocks the answer.
BIG = b"x" * (48 * 1024 * 1024)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def start(limits: HttpLimits | None = None, body: bytes | None = None) -> tuple:
        prom = PromClient(None)
        state = ExporterState(OneGauge(), prom)
        refresher = Refresher([state], tmp_path, 1.0, prom)
        refresher.tick()
        if body is not None:
            halves = (body[: len(body) // 2], body[len(body) // 2:])
            state.answer = (  # type: ignore[method-assign]
                lambda gzipped, count=True: (body,) if gzipped else halves)
        server = Server([(("127.0.0.1", 0), state)], refresher, limits or HttpLimits())
        server.start()
        servers.append(server)
        return server.ports["demo"], state, server

    yield start
    for server in servers:
        server.stop()


def raw(port: int, data: bytes = b"", rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    if data:
        sock.sendall(data)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def scrape(port: int, path: str = "/metrics") -> tuple[int, bytes]:
    status, _, body = request(port, path)
    return status, body


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r for r in caplog.records if r.exc_info] == []


def test_http_0_9_and_garbage_get_400_one_line_and_no_traceback(serve, caplog) -> None:
    port, state, _ = serve()
    with caplog.at_level(logging.WARNING):
        for request in (b"GET /\r\n\r\n", b"\x16\x03\x01\x00\xa5garbage\r\n\r\n",
                        b"GET / HTTP/1.1\r\n\r\n"):  # HTTP/1.1 without Host
            sock = raw(port, request)
            answer = read_until_closed(sock)
            sock.close()
            assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:80]
        assert scrape(port)[0] == 200  # the server is unaffected
    assert state.http_client_errors["bad_request"] == 3
    no_tracebacks(caplog)
    assert len([r for r in caplog.records if "malformed request" in r.getMessage()]) == 3


def test_a_head_that_never_ends_is_closed_at_the_header_deadline(serve) -> None:
    port, state, _ = serve(HttpLimits(header_timeout=0.4))
    sock = raw(port, b"GET /metrics HTTP/1.1\r\n")
    started = time.monotonic()
    for _ in range(20):  # slowloris: a byte now and then never extends the deadline
        try:
            sock.sendall(b"X")
        except OSError:
            break
        time.sleep(0.05)
    assert read_until_closed(sock) == b""
    assert 0.3 < time.monotonic() - started < 2.0
    sock.close()
    assert state.http_client_errors["header_timeout"] == 1


def test_an_idle_keep_alive_connection_is_closed_quietly(serve) -> None:
    port, state, _ = serve(HttpLimits(idle_timeout=0.3))
    sock = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"</html>\n")
    started = time.monotonic()
    assert read_until_closed(sock) == b""  # closed by the server
    assert 0.2 < time.monotonic() - started < 2.0
    assert state.http_client_errors == {}  # idling is not misbehaving


def test_at_the_limit_a_new_connection_evicts_the_oldest_waiting_one(serve) -> None:
    port, state, _ = serve(HttpLimits(max_connections=4))
    held = []
    for _ in range(4):
        held.append(raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"))
        time.sleep(0.05)  # admitted in this order
    assert scrape(port)[0] == 200  # room made by closing held[0]
    for _ in range(2):  # the second one closes held[1]
        held.append(raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"))
        time.sleep(0.05)
    assert read_until_closed(held[0]) == b"" and read_until_closed(held[1]) == b""
    for sock in held[2:]:
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):  # still open, still waiting for their requests
            sock.recv(1)
        sock.close()
    assert state.http_client_errors["evicted"] == 2


def test_when_every_connection_is_answering_a_new_one_gets_503(serve) -> None:
    port, state, _ = serve(HttpLimits(max_connections=1), body=BIG)
    slow = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=4096)
    assert slow.recv(100).startswith(b"HTTP/1.1 200 OK")  # the answer started; then no reads
    time.sleep(0.2)
    answer = read_until_closed(raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable")
    slow.close()
    assert state.http_client_errors["over_capacity"] == 1


def test_a_client_that_stops_reading_is_cut_at_the_write_deadline(serve, caplog) -> None:
    port, state, _ = serve(HttpLimits(write_timeout=0.5), body=BIG)
    slow = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=4096)
    assert slow.recv(100).startswith(b"HTTP/1.1 200 OK")
    deadline = time.monotonic() + 5
    # The error is counted when the deadline fires, the connection once its close is done.
    while (state.http_client_errors.get("write_timeout") != 1
           or state.http_connections != 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.http_client_errors.get("write_timeout") == 1
    assert state.http_connections == 0
    slow.close()
    assert scrape(port, "/")[0] == 200
    no_tracebacks(caplog)


def test_a_client_that_disconnects_mid_body_leaves_no_traceback(serve, caplog) -> None:
    port, state, _ = serve(body=BIG)
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            sock = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(100_000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST while the server writes
        status, body = scrape(port)
        assert status == 200 and body == BIG
    no_tracebacks(caplog)
    deadline = time.monotonic() + 5
    while state.http_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.http_connections == 0


def test_pipelined_requests_are_answered_in_order(serve) -> None:
    port, _, _ = serve()
    sock = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n"
                     b"\r\nHEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = read_until_closed(sock)
    heads = re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", answer)
    assert heads == [b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]
    assert answer.endswith(b"\r\n\r\n")  # HEAD: headers only


@pytest.mark.parametrize(("version", "connection", "expected"), [
    ("1.1", "", True), ("1.1", "keep-alive", True), ("1.1", "close", False),
    ("1.1", "Keep-Alive, Close", False), ("1.1", "upgrade,  CLOSE ", False),
    ("1.1", "closed", True), ("1.0", "", False), ("1.0", "keep-alive", False),
])
def test_keeps_alive_follows_the_version_and_the_close_option(version, connection,
                                                              expected) -> None:
    assert keeps_alive(version, connection) is expected


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, Close\r\n\r\n",
])
def test_an_answer_that_ends_the_connection_says_so_and_closes_it(serve, head) -> None:
    port, _, _ = serve()
    answer = read_until_closed(raw(port, head))  # returns only because the server closed
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"</html>\n")
    assert b"\r\nConnection: close\r\n" in answer


def test_a_keep_alive_connection_reads_a_body_then_answers_the_next_request(serve) -> None:
    port, state, _ = serve()
    sock = raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
                     + b"y" * 5000 + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while not received.endswith(b"</html>\n"):
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    assert re.findall(rb"HTTP/1\.1 \d{3}", received) == [b"HTTP/1.1 405", b"HTTP/1.1 200"]
    assert b"Connection: close" not in received
    sock.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert read_until_closed(sock).startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert state.http_client_errors == {}


def test_a_request_sent_in_pieces_and_a_half_closed_client_are_answered(serve) -> None:
    port, _, _ = serve()
    sock = raw(port)
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\n\r\n":
        sock.sendall(bytes([byte]))
        time.sleep(0.002)
    sock.shutdown(socket.SHUT_WR)  # no more requests: the answer must still come
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"</html>\n")


def test_a_kept_connection_serves_a_later_request_and_counts_one_left_half_sent(serve) -> None:
    port, state, _ = serve(HttpLimits(idle_timeout=2.0))
    sock = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    time.sleep(0.2)  # the keep-alive wait: no parser for the next request yet
    sock.sendall(b"GET /nope HTTP/1.1\r\n")
    time.sleep(0.1)
    sock.sendall(b"Host: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 404 Not Found")
    time.sleep(0.2)
    sock.sendall(b"GET /metr")  # part of a third request, then the client leaves
    sock.close()
    deadline = time.monotonic() + 5
    while state.http_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.http_connections == 0
    assert state.http_client_errors == {"disconnected": 1}
    quiet = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # answered, then closed by it
    assert quiet.recv(65536).startswith(b"HTTP/1.1 200 OK")
    quiet.close()
    time.sleep(0.3)
    assert state.http_client_errors == {"disconnected": 1}


def test_a_request_started_in_the_keep_alive_wait_has_the_header_deadline(serve) -> None:
    port, state, _ = serve(HttpLimits(header_timeout=0.3, idle_timeout=30.0))
    sock = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    sock.sendall(b"GET / HTTP/1.1\r\n")  # never finished
    started = time.monotonic()
    assert read_until_closed(sock) == b""
    assert 0.2 < time.monotonic() - started < 3.0  # not the 30 s keep-alive wait
    assert state.http_client_errors == {"header_timeout": 1}


def wait_closed(state: ExporterState) -> None:
    deadline = time.monotonic() + 5
    while state.http_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.http_connections == 0


def test_a_target_urllib_cannot_split_gets_400_and_a_close(serve, caplog) -> None:
    port, state, _ = serve()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            answer = read_until_closed(raw(port, b"GET http://[::1/metrics HTTP/1.1\r\n"
                                                 b"Host: x\r\n\r\n"))
            assert answer.startswith(b"HTTP/1.1 400 Bad Request")
    wait_closed(state)
    assert state.http_client_errors == {"bad_request": 3}
    no_tracebacks(caplog)


def test_a_request_asking_for_an_upgrade_is_answered_and_the_connection_goes_on(serve) -> None:
    port, state, _ = serve(HttpLimits(header_timeout=30.0, idle_timeout=30.0))
    sock = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")  # as curl --http2 asks
    sock.sendall(b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 405")
    sock.sendall(b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(65536).endswith(b"</html>\n")
    sock.close()
    wait_closed(state)  # noticed at once, not at a deadline
    assert state.http_client_errors == {}


def test_an_unforeseen_error_ends_its_connection_alone(serve, caplog) -> None:
    port, state, _ = serve(HttpLimits(header_timeout=0.5))

    def broken(gzipped: bool, count: bool = True) -> tuple:
        raise RuntimeError("a bug in the answer")

    answer = state.answer
    state.answer = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        for _ in range(20):  # raised inside the accept's own read: no deadline was made yet
            assert read_until_closed(raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")) \
                == b""
        wait_closed(state)
        late = raw(port, b"GET /metr")  # raised from a later read callback
        time.sleep(0.1)
        late.sendall(b"ics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_closed(late) == b""
        wait_closed(state)
    assert state.http_client_errors == {"internal_error": 21}
    no_tracebacks(caplog)
    lines = [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()]
    assert 1 <= len(lines) <= 6  # the client log's rate limit, not one line per request
    state.answer = answer  # type: ignore[method-assign]
    assert scrape(port)[0] == 200
    quiet = raw(port, b"GET / HTTP/1.1\r\n")  # deadlines still made after the errors
    started = time.monotonic()
    assert read_until_closed(quiet) == b""
    assert 0.4 < time.monotonic() - started < 3.0


def test_a_client_that_resets_in_the_middle_of_a_head_is_counted(serve) -> None:
    port, state, _ = serve()
    sock = raw(port, b"GET /metrics HTTP/1.1\r\nHo")
    time.sleep(0.1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    wait_closed(state)
    assert state.http_client_errors == {"disconnected": 1}


class _FailingListener:
    """A listening socket whose next ``accept`` fails as when no descriptor is left."""

    def __init__(self, sock: socket.socket, failures: int) -> None:
        self.sock, self.failures = sock, failures

    def accept(self) -> tuple:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def test_an_accept_without_descriptors_is_counted_and_retried(tmp_path, caplog) -> None:
    prom = PromClient(None)
    state = ExporterState(OneGauge(), prom)
    refresher = Refresher([state], tmp_path, 1.0, prom)
    refresher.tick()
    server = Server([(("127.0.0.1", 0), state)], refresher)
    site = server.sites[0]
    site.sock = _FailingListener(site.sock, failures=1)  # type: ignore[assignment]
    server.start()
    try:
        with caplog.at_level(logging.WARNING):
            started = time.monotonic()
            assert scrape(server.ports["demo"], "/")[0] == 200
            assert 0.8 < time.monotonic() - started < 3.0  # waited in the backlog for the retry
        assert state.http_client_errors == {"accept_failed": 1}
        assert [r.getMessage() for r in caplog.records if "accept failed" in r.getMessage()]
        no_tracebacks(caplog)
    finally:
        server.stop()


def test_thousands_of_pipelined_requests_in_one_read_are_all_answered(serve, caplog) -> None:
    port, _, _ = serve()
    count = 3000  # ~2,400 fit in one read: answering them must not nest a call per request
    sock = raw(port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" * (count - 1)
               + b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = read_until_closed(sock)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == count
    no_tracebacks(caplog)


def test_methods_other_than_get_and_head_get_405(serve) -> None:
    port, _, _ = serve()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/metrics", body=b"x" * 1000)
    response = conn.getresponse()
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"
    response.read()
    conn.close()


def test_an_oversized_head_is_refused(serve) -> None:
    port, state, _ = serve()
    sock = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert state.http_client_errors["bad_request"] == 1


def test_stop_returns_quickly_with_hundreds_of_clients_attached(serve) -> None:
    port, _, server = serve(body=BIG)
    held = [raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n") for _ in range(200)]
    readers = [raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf=4096)
               for _ in range(5)]
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    for sock in held + readers:
        sock.close()


def test_connections_and_client_errors_are_self_metrics(serve) -> None:
    port, state, _ = serve()
    read_until_closed(raw(port, b"GET /\r\n\r\n"))
    held = raw(port, b"GET /metrics HTTP/1.1\r\n")
    time.sleep(0.1)
    plain = state.body[0].decode()  # rendered when asked: no refresh or publish in between
    assert "demo_exporter_http_connections 1.0" in plain
    assert 'demo_exporter_http_client_errors_total{reason="bad_request"} 1.0' in plain
    held.close()


def test_client_log_writes_a_burst_then_counts_what_it_suppressed(caplog) -> None:
    log = ClientLog(burst=3, period=0.3)
    with caplog.at_level(logging.WARNING, logger="exporters.http"):
        for index in range(20):
            log.warning("client %d misbehaved", index)
        assert len(caplog.records) == 3
        time.sleep(0.35)
        log.warning("client %d misbehaved", 99)
    assert len(caplog.records) == 4
    assert caplog.records[-1].getMessage() == "client 99 misbehaved (17 similar lines suppressed)"


@pytest.mark.parametrize("fields", [
    b"Content-Length: 45\r\nTransfer-Encoding: chunked\r\n",  # both: RFC 9112 6.1
    b"Transfer-Encoding: chunked\r\nContent-Length: 45\r\n",
    b"Content-Length: 45\r\nContent-Length: 45\r\n",  # repeated, even when equal
    b"Content-Length: 45, 45\r\n",  # a list
    b"Content-Length: 45\r\nContent-Length: 46\r\n",  # conflicting
    b"Content-Length: -45\r\n",  # invalid
    b"Content-Length: 4 5\r\n",
    b"Content-Length: 0x2d\r\n",
])
def test_ambiguous_body_framing_gets_400_and_nothing_behind_it_is_answered(serve, fields) -> None:
    port, state, _ = serve()
    # Framed by Transfer-Encoding, the body is the empty chunk and a smuggled GET follows; by
    # Content-Length (45), the GET is the body. Either way only the 400 may come back.
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    sock = raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n" + body)
    answer = read_until_closed(sock)  # returns only because the server closed the connection
    sock.close()
    assert re.findall(rb"HTTP/1\.1 \d{3}", answer) == [b"HTTP/1.1 400"], answer
    assert b"\r\nConnection: close\r\n" in answer
    assert state.http_client_errors == {"bad_request": 1}
    assert scrape(port, "/")[0] == 200  # the server is unaffected


def test_one_content_length_or_chunked_alone_is_read_and_the_next_request_answered(serve) -> None:
    port, state, _ = serve()
    sock = raw(port, b"POST /a HTTP/1.1\r\nHost: x\r\ncontent-length: 3\r\n\r\nabc"
                     b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n0\r\n\r\n"
                     b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = read_until_closed(sock)
    sock.close()
    assert re.findall(rb"HTTP/1\.1 \d{3}", answer) == [b"HTTP/1.1 405", b"HTTP/1.1 405",
                                                        b"HTTP/1.1 404"]
    assert state.http_client_errors == {}


def test_a_head_sent_a_byte_at_a_time_is_still_checked_for_its_framing(serve) -> None:
    port, state, _ = serve()
    sock = raw(port)
    # The head alone: the server answers once the head is complete and closes, and a body
    # byte it never reads could make the close a reset that loses the answer in transit.
    for byte in (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n"):
        sock.sendall(bytes([byte]))
    answer = read_until_closed(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert state.http_client_errors == {"bad_request": 1}
