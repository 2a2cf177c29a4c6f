"""Tests of advisor_core.economics.regional_pricing (the reference's pricing examples) with a fake
carbon API on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from advisor_core.economics import regional_pricing as rp
from advisor_core.economics.regional_pricing import (
    RegionalPricing,
    create_regional_pricing_config,
    get_available_regions,
)

F1_CONFIG = {
    "electricity_prices": {"us-east-1": 0.08, "default": 0.10},
    "co2_intensity": {"us-east-1": 300, "default": 350},
}


@pytest.fixture
def config_file(tmp_path):
    def write(content):
        path = tmp_path / "pricing.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    return write


class FakeCarbonApi:
    """Loopback HTTP server answering like the Electricity Maps latest-intensity endpoint."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.body: bytes = json.dumps({"zone": "US-VA", "carbonIntensity": 123}).encode()
        self.delay = 0.0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                api.requests.append({"path": parts.path, "query": parse_qs(parts.query),
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
                if api.delay:
                    time.sleep(api.delay)
                try:
                    self.send_response(api.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(api.body)))
                    self.end_headers()
                    self.wfile.write(api.body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3/carbon-intensity/latest"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def answer(self, body, status=200):
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.status = status

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    server = FakeCarbonApi()
    yield server
    server.close()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def live(api, region="us-east-1", **kwargs):
    pricing = RegionalPricing(region, electricity_maps_token="secret", api_url=api.url, **kwargs)
    pricing._clock = Clock()
    return pricing


# ---------------------------------------------------------------------------------------------
# Static table and config (F.1 - F.11)
# ---------------------------------------------------------------------------------------------

def test_config_override(config_file):
    pricing = RegionalPricing("us-east-1", config_file=config_file(F1_CONFIG))
    assert pricing.get_electricity_price() == 0.08
    assert pricing.get_co2_intensity() == 300.0
    assert type(pricing.get_co2_intensity()) is float


def test_config_default_beats_table(config_file):
    pricing = RegionalPricing("eu-west-1", config_file=config_file(F1_CONFIG))
    assert pricing.get_electricity_price() == 0.10
    assert pricing.get_co2_intensity() == 350.0


def test_zero_overrides_are_honoured(config_file):
    config = {"electricity_prices": {"us-east-1": 0}, "co2_intensity": {"us-east-1": 0,
                                                                        "default": 350}}
    pricing = RegionalPricing("us-east-1", config_file=config_file(config))
    assert pricing.get_electricity_price() == 0.0
    # Reference defect fixed (README, further differences): it ignored a 0 intensity, gave 350.
    assert pricing.get_co2_intensity() == 0.0


def test_invalid_override_values_fall_through(config_file):
    config = {"electricity_prices": {"us-east-1": "cheap", "default": -1},
              "co2_intensity": {"us-east-1": 1e9, "default": 333}}
    pricing = RegionalPricing("us-east-1", config_file=config_file(config))
    assert pricing.get_electricity_price() == 0.12
    assert pricing.get_co2_intensity() == 333.0


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '"x"', '{"co2_intensity": [1]}'])
def test_unusable_config_uses_table(config_file, content):
    pricing = RegionalPricing("us-east-1", config_file=config_file(content))
    assert pricing.get_electricity_price() == 0.12
    assert pricing.get_co2_intensity() == 390.0


def test_missing_config_file_is_ignored(tmp_path):
    pricing = RegionalPricing("us-west-2", config_file=tmp_path / "absent.json")
    assert pricing.get_electricity_price() == 0.10
    assert pricing.get_electricity_price() == pricing.get_electricity_price()


@pytest.mark.parametrize("region", ["default", "nowhere"])
def test_default_and_unknown_region(region):
    pricing = RegionalPricing(region)
    assert pricing.get_electricity_price() == 0.12
    assert pricing.get_co2_intensity() == 400.0


@pytest.mark.parametrize(
    ("region", "kg"),
    [("us-west-2", 12.96), ("eu-central-1", 27.36), ("ap-southeast-2", 46.80), ("default", 28.8)],
)
def test_monthly_co2(region, kg):
    intensity = {"us-west-2": 180, "eu-central-1": 380, "ap-southeast-2": 650, "default": 400}
    value = RegionalPricing(region).compute_monthly_co2(100, 24)
    assert value == pytest.approx(intensity[region] * 72 / 1000, rel=1e-12)
    assert value == pytest.approx(kg, rel=1e-12)


@pytest.mark.parametrize(("region", "usd"), [("us-east-1", 8.64), ("us-west-1", 13.68),
                                            ("eu-west-1", 15.84)])
def test_monthly_cost_of_72_kwh(region, usd):
    assert RegionalPricing(region).get_electricity_price() * 72 == pytest.approx(usd, rel=1e-12)


def test_co2_emissions():
    pricing = RegionalPricing("default")
    assert pricing.compute_co2_emissions(1) == pytest.approx(0.4)
    for bad in (-1, float("nan"), "1", None):
        assert pricing.compute_co2_emissions(bad) is None
    assert pricing.compute_monthly_co2(-5) is None


def test_pricing_info():
    assert RegionalPricing("eu-central-1").get_pricing_info() == {
        "region": "eu-central-1",
        "electricity_price_usd_per_kwh": 0.28,
        "co2_intensity_g_per_kwh": 380.0,
    }


def test_available_regions():
    regions = get_available_regions()
    assert regions == ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1",
                       "eu-central-1", "ap-northeast-1", "ap-southeast-1", "ap-southeast-2",
                       "default"]
    assert all(type(rp.CO2_INTENSITY[r]) is float for r in regions)
    assert set(rp.CARBON_ZONES) == set(regions) - {"default"}


def test_create_config_round_trip(tmp_path):
    path = tmp_path / "out.json"
    create_regional_pricing_config(path, {"us-east-1": 0.09, "default": 0.11},
                                   {"us-east-1": 320, "default": 380})
    assert json.loads(path.read_text()) == {
        "electricity_prices": {"us-east-1": 0.09, "default": 0.11},
        "co2_intensity": {"us-east-1": 320, "default": 380},
    }
    assert path.read_text().startswith('{\n  "electricity_prices"')
    create_regional_pricing_config(path)
    assert json.loads(path.read_text()) == {}
    pricing = RegionalPricing("us-east-1", config_file=path)
    assert pricing.get_co2_intensity() == 390.0


def test_invalid_cache_ttl():
    with pytest.raises(ValueError):
        RegionalPricing(cache_ttl=-1)


# ---------------------------------------------------------------------------------------------
# Carbon API (fake server on loopback)
# ---------------------------------------------------------------------------------------------

def test_api_request_and_value(api):
    pricing = live(api)
    value = pricing.get_co2_intensity()
    assert value == 123.0 and type(value) is float
    assert len(api.requests) == 1
    request = api.requests[0]
    assert request["path"] == "/v3/carbon-intensity/latest"
    assert request["query"] == {"zone": ["US-VA"]}
    assert request["headers"]["auth-token"] == "secret"
    assert request["headers"]["accept"] == "application/json"


def test_api_result_cached_for_ttl(api):
    pricing = live(api, cache_ttl=600)
    assert pricing.get_co2_intensity() == 123.0
    api.answer({"carbonIntensity": 200})
    pricing._clock.now += 599
    assert pricing.get_co2_intensity() == 123.0
    assert len(api.requests) == 1
    pricing._clock.now += 2
    assert pricing.get_co2_intensity() == 200.0
    assert len(api.requests) == 2


def test_zero_ttl_asks_every_time(api):
    pricing = live(api, cache_ttl=0)
    pricing.get_co2_intensity()
    pricing.get_co2_intensity()
    assert len(api.requests) == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"error": "no"}, 500),
        ({"error": "unauthorized"}, 401),
        (b"{not json", 200),
        (b"", 200),
        ({"zone": "US-VA"}, 200),
        ({"carbonIntensity": "high"}, 200),
        ({"carbonIntensity": None}, 200),
        ({"carbonIntensity": True}, 200),
        ({"carbonIntensity": -5}, 200),
        ({"carbonIntensity": 1e6}, 200),
        ([1, 2, 3], 200),
        (b"x" * (70 * 1024), 200),
    ],
)
def test_api_failure_falls_back_to_table(api, body, status):
    api.answer(body, status)
    assert live(api).get_co2_intensity() == 390.0
    assert len(api.requests) == 1


def test_api_nan_literal_falls_back(api):
    api.answer(b'{"carbonIntensity": NaN}')
    assert live(api).get_co2_intensity() == 390.0


def test_api_timeout_falls_back(api, monkeypatch):
    assert rp.API_TIMEOUT_SECONDS == 2.0
    monkeypatch.setattr(rp, "API_TIMEOUT_SECONDS", 0.2)
    api.delay = 1.0
    start = time.monotonic()
    assert live(api).get_co2_intensity() == 390.0
    assert time.monotonic() - start < 0.9


def test_unreachable_api_falls_back():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pricing = RegionalPricing("us-east-1", electricity_maps_token="t",
                              api_url=f"http://127.0.0.1:{port}/latest")
    assert pricing.get_co2_intensity() == 390.0


def test_failure_is_cached_briefly_then_retried(api):
    api.answer({"error": "down"}, 503)
    pricing = live(api, cache_ttl=3600)
    assert pricing.get_co2_intensity() == 390.0
    pricing._clock.now += rp.FAILURE_TTL_SECONDS - 1
    assert pricing.get_co2_intensity() == 390.0
    assert len(api.requests) == 1  # not hammered
    api.answer({"carbonIntensity": 111.5})
    pricing._clock.now += 2
    assert pricing.get_co2_intensity() == 111.5  # retried long before the full hour
    assert len(api.requests) == 2
    pricing._clock.now += rp.FAILURE_TTL_SECONDS * 10
    assert pricing.get_co2_intensity() == 111.5  # a success keeps the full TTL
    assert len(api.requests) == 2


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_no_request(api, token):
    pricing = RegionalPricing("us-east-1", electricity_maps_token=token, api_url=api.url)
    assert pricing.get_co2_intensity() == 390.0
    assert api.requests == []


def test_region_without_zone_no_request(api):
    assert live(api, region="default").get_co2_intensity() == 400.0
    assert api.requests == []


def test_config_beats_api(api, config_file):
    pricing = live(api, config_file=config_file(F1_CONFIG))
    assert pricing.get_co2_intensity() == 300.0
    assert api.requests == []


def test_price_never_uses_api(api):
    assert live(api).get_electricity_price() == 0.12
    assert api.requests == []


def test_concurrent_callers_share_one_request(api):
    api.delay = 0.3
    pricing = live(api)
    results = []

    def call():
        results.append(pricing.get_co2_intensity())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == [123.0] * 8
    assert len(api.requests) == 1
