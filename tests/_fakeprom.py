"""A fake Prometheus HTTP API on loopback for the enrichment tests: it answers, fails, stalls,
trickles, floods or answers hostile JSON on request."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from exporters._promql_answer import MAX_ANSWER_BYTES
from exporters.cost import CPU_QUERY, POWER_QUERY


def long_window_value(index: int) -> float:
    """The power of modes "long" and "long2" at the ``index``-th step since the epoch (W)."""
    return 40.0 + index % 3


class FakeProm:
    """A loopback Prometheus API: records requests, answers per query, can fail or stall."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        # ok | error | slow | hang | trickle | huge | huge_unannounced | flood | deep | bomb | fixed
        # | edges | shuffled | split
        self.mode = "ok"
        self.fixed = b""  #: the answer of mode "fixed" to every request
        #: Size of the valid points a "flood" answer adds outside the window asked (bytes).
        self.flood_bytes = MAX_ANSWER_BYTES - 64 * 1024
        self._floods: dict[tuple, bytes] = {}
        self._grids: dict[tuple, bytes] = {}
        self.release = threading.Event()  # ends a hanging or trickling answer
        self.error_status = 503  # the HTTP status of mode "error"
        self.range_values = {CPU_QUERY: [2.0, 3.0, 4.0], POWER_QUERY: [100.0, 110.0, 120.0]}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append((url.path, params))
                if fake.mode == "error":
                    self.send_response(fake.error_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fake.mode == "slow":
                    time.sleep(0.5)
                if fake.mode == "hang":  # accepts the request, never answers
                    fake.release.wait(10)
                    return
                if fake.mode == "trickle":  # a head that never ends, one byte every 50 ms
                    try:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                        while not fake.release.wait(0.05):
                            self.wfile.write(b"a")
                            self.wfile.flush()
                    except OSError:
                        pass
                    return
                if fake.mode in ("huge", "huge_unannounced"):
                    # 100 MB sent until the client leaves, announced or not
                    self.send_response(200)
                    if fake.mode == "huge":
                        self.send_header("Content-Length", str(100 * 1024 * 1024))
                    self.end_headers()
                    self.close_connection = True
                    try:
                        for _ in range(1600):
                            self.wfile.write(b"[" * 65536)
                    except OSError:
                        pass
                    return
                if fake.mode == "fixed":
                    fake._send(self, fake.fixed)
                    return
                if fake.mode == "deep":  # valid JSON nested far beyond any parser's recursion
                    fake._send(self, b'{"status":"success","data":{"result":['
                               + b"[" * 100_000 + b"]" * 100_000 + b"]}}")
                    return
                if fake.mode == "bomb":  # ~4 MiB of empty lists: ~90 MB once parsed
                    count = (MAX_ANSWER_BYTES - 64) // 3
                    fake._send(self, b'{"status":"success","data":{"result":['
                               + b"[]," * count + b'{"values":[]}]}}')
                    return
                if fake.mode in ("long", "long2"):
                    # An honest database over long windows: a point on every step of each
                    # piece asked (power 40, 41, 42 W by the step's index, 2 cores of CPU), one
                    # series or ("long2") the same for two zones; no instant energy.
                    fake._send(self, fake._grid_answer(url.path, params))
                    return
                if url.path == "/api/v1/query_range" and params["query"] == "grid":
                    # Two series with a sample on every step, refused beyond Prometheus' limit
                    start, end = float(params["start"]), float(params["end"])
                    step = float(params["step"].rstrip("s"))
                    count = int((end - start) // step) + 1
                    if count > 11_000:
                        self.send_response(422)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    times = [start + i * step for i in range(count)]
                    result = [{"metric": {"s": name}, "values": [[t, str(sign * t)] for t in times]}
                              for name, sign in (("a", 1), ("b", -1))]
                    data = {"resultType": "matrix", "result": result}
                elif url.path == "/api/v1/query_range":
                    values = fake.range_values.get(params["query"], [])
                    start = float(params["start"])
                    result = [{"metric": {}, "values": [[start + 5 * i, str(v)]
                                                        for i, v in enumerate(values)]}]
                    if fake.mode == "flood" and values:
                        # The same points, each followed by another 1 s later, amid ~4 MiB of
                        # valid points in 2001 and in 2096, outside any window asked.
                        pairs = [p for pair in result[0]["values"]
                                 for p in (pair, [pair[0] + 1, "1e6"])]
                        fake._send(self, b'{"status":"success","data":{"resultType":"matrix",'
                                   b'"result":[{"metric":{},"values":[' + fake._outside(0)
                                   + json.dumps(pairs, separators=(",", ":"))[1:-1].encode()
                                   + b"," + fake._outside(1) + b"]}]}}")
                        return
                    if fake.mode == "shuffled" and values:
                        # The same points, every other one first, the rest backwards.
                        pairs = result[0]["values"]
                        result[0]["values"] = pairs[::2] + pairs[1::2][::-1]
                    if fake.mode == "split" and values:
                        # One series in two entries of the same labels, later points first,
                        # and a second value at the first point's time (the first one counts).
                        pairs = result[0]["values"]
                        result[0]["values"] = pairs[len(pairs) // 2:]
                        result.append({"metric": {}, "values": [
                            *pairs[:len(pairs) // 2], [pairs[0][0], "1e6"]]})
                        result.append({"metric": {}, "values": [[pairs[0][0], "1e6"]]})
                    if fake.mode == "edges" and values:
                        # A point less than a step before the window and one on the grid less
                        # than a step after it: what a one-step slack would integrate.
                        end = float(params["end"])
                        later = start + 5 * len(values)
                        assert later - 5 <= end < later
                        result[0]["values"] = [[start - 4.5, "1e6"], *result[0]["values"],
                                               [later, "1e6"]]
                    if values:
                        result.append({"metric": {"x": "2"}, "values": [[start, "NaNx"]]})
                    data = {"resultType": "matrix", "result": result if values else []}
                else:
                    data = {"resultType": "vector",
                            "result": [{"metric": {}, "value": [params.get("time", 0), "42.5"]}]}
                fake._send(self, json.dumps({"status": "success", "data": data},
                                            separators=(",", ":")).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except OSError:
            pass

    def _grid_answer(self, path: str, params: dict) -> bytes:
        """The answer of modes "long" and "long2" (``long_window_value`` gives the points),
        built once per request (several sets ask the same)."""
        key = (self.mode, path, tuple(sorted(params.items())))
        if key not in self._grids:
            self._grids[key] = self._build_grid_answer(path, params)
        return self._grids[key]

    def _build_grid_answer(self, path: str, params: dict) -> bytes:
        if path != "/api/v1/query_range":
            return b'{"status":"success","data":{"resultType":"vector","result":[]}}'
        start, end = float(params["start"]), float(params["end"])
        step = float(params["step"].rstrip("s"))
        first, last = round(start / step), int(end // step + 1e-9)
        power = params["query"] == POWER_QUERY
        points = b",".join(b'[%d,"%r"]' % (index * step, long_window_value(index) if power
                                               else 2.0) for index in range(first, last + 1))
        zones = (b"package-0", b"package-1") if self.mode == "long2" else (b"package-0",)
        return (b'{"status":"success","data":{"resultType":"matrix","result":['
                + b",".join(b'{"metric":{"zone":"%s"},"values":[%s]}' % (zone, points)
                            for zone in zones) + b"]}}")

    def _outside(self, which: int) -> bytes:
        """Half the flood: valid points every second, in 2001 (0) or in 2096 (1), joined by
        commas, ``flood_bytes / 2`` bytes (built once)."""
        key = (which, self.flood_bytes)
        if key not in self._floods:
            first = (1_000_000_000, 4_000_000_000)[which]
            count = self.flood_bytes // 2 // 24  # [1000000000.0,"123.25"],
            self._floods[key] = b"".join(b'[%d.0,"123.25"],' % (first + i)
                                         for i in range(count))
        return self._floods[key][:-1] if which else self._floods[key]

    def __enter__(self) -> FakeProm:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
