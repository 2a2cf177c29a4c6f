"""Per-region electricity prices (USD/kWh) and grid carbon intensity (gCO2/kWh).

Sources, in order: a custom JSON config file, a per-instance cache, the Electricity Maps
carbon-intensity API (CO2 only, only with a token), the static table. Every value is a float.
Any API failure (network, timeout, HTTP error, bad JSON, missing/non-numeric/absurd value) falls
back to the table, and that fallback is cached only briefly so the API is retried soon.
Instances are thread-safe (exporters call them from a refresh thread).

Differences from the reference: a 0 intensity override is honoured (like a 0 price); a failed API
call is cached for FAILURE_TTL_SECONDS, not the full TTL; every failure (timeouts included)
falls back instead of raising; the timeout is 2 s, not 5 s; API values outside
0..MAX_CO2_INTENSITY and invalid config values are ignored; table intensities are floats; the
API base URL is configurable (``api_url``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Optional

from advisor_core.data.paths import PathLike
from advisor_core.data.scenario import as_number

logger = logging.getLogger(__name__)

__all__ = [
    "CARBON_ZONES",
    "CO2_INTENSITY",
    "DEFAULT_API_URL",
    "ELECTRICITY_PRICES",
    "REGION_LOCATIONS",
    "PricingConfigError",
    "RegionalPricing",
    "check_region",
    "create_regional_pricing_config",
    "get_available_regions",
    "read_pricing_config",
]

#: Electricity price per region, USD/kWh.
ELECTRICITY_PRICES: Mapping[str, float] = MappingProxyType({
    "us-east-1": 0.12,
    "us-east-2": 0.11,
    "us-west-1": 0.19,
    "us-west-2": 0.10,
    "eu-west-1": 0.22,
    "eu-central-1": 0.28,
    "ap-northeast-1": 0.24,
    "ap-southeast-1": 0.18,
    "ap-southeast-2": 0.21,
    "default": 0.12,
})

#: Average grid carbon intensity per region, gCO2/kWh.
CO2_INTENSITY: Mapping[str, float] = MappingProxyType({
    "us-east-1": 390.0,
    "us-east-2": 450.0,
    "us-west-1": 220.0,
    "us-west-2": 180.0,
    "eu-west-1": 250.0,
    "eu-central-1": 380.0,
    "ap-northeast-1": 480.0,
    "ap-southeast-1": 520.0,
    "ap-southeast-2": 650.0,
    "default": 400.0,
})

#: Electricity Maps zone of each region (``default`` has none).
CARBON_ZONES: Mapping[str, str] = MappingProxyType({
    "us-east-1": "US-VA",
    "us-east-2": "US-MIDW",
    "us-west-1": "US-CAL",
    "us-west-2": "US-NW",
    "eu-west-1": "IE",
    "eu-central-1": "DE",
    "ap-northeast-1": "JP",
    "ap-southeast-1": "SG",
    "ap-southeast-2": "AU-NSW",
})

#: Location of each region.
REGION_LOCATIONS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "us-east-1": MappingProxyType({"state": "VA", "country": "US"}),
    "us-east-2": MappingProxyType({"state": "OH", "country": "US"}),
    "us-west-1": MappingProxyType({"state": "CA", "country": "US"}),
    "us-west-2": MappingProxyType({"state": "OR", "country": "US"}),
    "eu-west-1": MappingProxyType({"country": "IE"}),
    "eu-central-1": MappingProxyType({"country": "DE"}),
    "ap-northeast-1": MappingProxyType({"country": "JP"}),
    "ap-southeast-1": MappingProxyType({"country": "SG"}),
    "ap-southeast-2": MappingProxyType({"country": "AU"}),
})

#: Electricity Maps endpoint for the latest carbon intensity of a zone.
DEFAULT_API_URL = "https://api.electricitymap.org/v3/carbon-intensity/latest"

#: Seconds to wait for the carbon API (a refresh must not stall on it).
API_TIMEOUT_SECONDS = 2.0

#: Seconds a table fallback after a failed API call is cached before the API is tried again.
FAILURE_TTL_SECONDS = 60.0

#: Largest plausible grid intensity, gCO2/kWh (pure lignite is about 1 200).
MAX_CO2_INTENSITY = 2000.0

_MAX_RESPONSE_BYTES = 64 * 1024


def get_available_regions() -> list[str]:
    """Return the region codes of the price table, ``default`` last."""
    return list(ELECTRICITY_PRICES)


def create_regional_pricing_config(
    output_file: PathLike,
    electricity_prices: Optional[Mapping[str, float]] = None,
    co2_intensity: Optional[Mapping[str, float]] = None,
) -> None:
    """Write a pricing config JSON (USD/kWh and gCO2/kWh sections, each only when non-empty)."""
    config: dict[str, dict[str, float]] = {}
    if electricity_prices:
        config["electricity_prices"] = dict(electricity_prices)
    if co2_intensity:
        config["co2_intensity"] = dict(co2_intensity)
    with open(output_file, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)


def _valid(value: Any, upper: float = math.inf) -> Optional[float]:
    number = as_number(value)
    return number if number is not None and 0 <= number <= upper else None


class PricingConfigError(ValueError):
    """A pricing config file that cannot be used; the message names the file and the problem."""


#: The sections of a pricing config and the largest valid value of each (USD/kWh, gCO2/kWh).
CONFIG_SECTIONS: Mapping[str, float] = MappingProxyType(
    {"electricity_prices": math.inf, "co2_intensity": MAX_CO2_INTENSITY}
)


def read_pricing_config(path: PathLike, strict: bool = False) -> dict[str, dict[str, float]]:
    """Read a pricing config: ``{section: {region: value}}``, prices in USD/kWh, CO2 in gCO2/kWh.

    Every value must be a number in 0..the section's upper bound (``CONFIG_SECTIONS``). With
    ``strict`` the first problem (unreadable file, bad JSON, wrong shape, bad value) raises
    PricingConfigError; otherwise it is logged and that part is left out (a missing or unusable
    file is an empty config, so the built-in table applies).
    """
    def problem(message: str) -> None:
        if strict:
            raise PricingConfigError(f"pricing config {path}: {message}")
        logger.warning("pricing config %s: %s; ignored", path, message)

    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        problem(f"cannot read it: {exc.strerror or exc}")
        return {}
    except (ValueError, RecursionError) as exc:
        problem(f"not valid JSON: {exc}")
        return {}
    if not isinstance(document, dict):
        problem("the top level must be an object")
        return {}
    config: dict[str, dict[str, float]] = {}
    for section, upper in CONFIG_SECTIONS.items():
        table = document.get(section, {})
        if not isinstance(table, dict):
            problem(f"{section} must be an object")
            continue
        valid: dict[str, float] = {}
        for region, value in table.items():
            number = _valid(value, upper)
            if number is None:
                problem(f"{section}.{region} = {value!r} must be a number in 0..{upper:g}")
                continue
            valid[str(region)] = number
        config[section] = valid
    return config


def check_region(region: str, config_file: Optional[PathLike] = None) -> None:
    """Raise ValueError (one line, listing the known regions) unless the built-in table or the
    pricing config (read strictly) knows ``region``."""
    known = set(get_available_regions())
    if config_file is not None:
        for table in read_pricing_config(config_file, strict=True).values():
            known.update(table)
    if region not in known:
        raise ValueError(f"unknown region {region!r}; known regions: {', '.join(sorted(known))}")


class RegionalPricing:
    """Electricity price and carbon intensity of one region."""

    def __init__(
        self,
        region: str = "default",
        config_file: Optional[PathLike] = None,
        electricity_maps_token: Optional[str] = None,
        cache_ttl: float = 3600,
        api_url: str = DEFAULT_API_URL,
    ) -> None:
        """Configure the region, optional config file, API token/URL and cache lifetime (s)."""
        self.region = str(region)
        self.config_file = config_file
        self.electricity_maps_token = electricity_maps_token or None
        ttl = as_number(cache_ttl)
        if ttl is None or ttl < 0:
            raise ValueError(f"cache_ttl must be a finite number >= 0, got {cache_ttl!r}")
        self.cache_ttl = ttl
        self.api_url = api_url
        self.custom_config = ({} if config_file is None or not os.path.exists(config_file)
                              else read_pricing_config(config_file))
        self._cache: dict[str, tuple[float, float]] = {}  # key -> (value, monotonic expiry)
        self._lock = threading.Lock()
        self._api_lock = threading.Lock()
        self._clock = time.monotonic  # replaceable by tests that need to move time

    # -- cache ------------------------------------------------------------------------------

    def _cached(self, key: str) -> Optional[float]:
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and self._clock() < entry[1]:
            return entry[0]
        return None

    def _store(self, key: str, value: float, ttl: Optional[float] = None) -> float:
        lifetime = self.cache_ttl if ttl is None else min(ttl, self.cache_ttl)
        with self._lock:
            self._cache[key] = (value, self._clock() + lifetime)
        return value

    def _override(self, section: str) -> Optional[float]:
        table = self.custom_config.get(section, {})
        for key in (self.region, "default"):
            if key in table:
                return table[key]
        return None

    # -- public -----------------------------------------------------------------------------

    def get_electricity_price(self) -> float:
        """Return the electricity price in USD/kWh (config, cache, then the static table)."""
        key = f"electricity_price_{self.region}"
        value = self._override("electricity_prices")
        if value is not None:
            return self._store(key, value)
        cached = self._cached(key)
        if cached is not None:
            return cached
        table = ELECTRICITY_PRICES.get(self.region, ELECTRICITY_PRICES["default"])
        return self._store(key, float(table))

    def get_co2_intensity(self) -> float:
        """Return the grid carbon intensity in gCO2/kWh (config, cache, API, static table)."""
        key = f"co2_intensity_{self.region}"
        value = self._override("co2_intensity")
        if value is not None:
            return self._store(key, value)
        cached = self._cached(key)
        if cached is not None:
            return cached
        zone = CARBON_ZONES.get(self.region)
        if self.electricity_maps_token and zone:
            # One API call at a time per instance; whoever waited reuses its result.
            with self._api_lock:
                cached = self._cached(key)
                if cached is not None:
                    return cached
                live = self._fetch_intensity(zone)
                if live is not None:
                    return self._store(key, live)
                table = CO2_INTENSITY.get(self.region, CO2_INTENSITY["default"])
                return self._store(key, float(table), FAILURE_TTL_SECONDS)
        table = CO2_INTENSITY.get(self.region, CO2_INTENSITY["default"])
        return self._store(key, float(table))

    def compute_co2_emissions(self, energy_kwh: float) -> Optional[float]:
        """Return the emissions in kg CO2 of ``energy_kwh`` kWh (None for invalid energy)."""
        energy = _valid(energy_kwh)
        if energy is None:
            return None
        kilograms = self.get_co2_intensity() * energy / 1000
        return kilograms if math.isfinite(kilograms) else None

    def compute_monthly_co2(self, power_watts: float, hours_per_day: float = 24) -> Optional[float]:
        """Return kg CO2 of a 30-day month at ``power_watts`` W for ``hours_per_day`` h a day."""
        watts = _valid(power_watts)
        hours = _valid(hours_per_day, 24.0)
        if watts is None or hours is None:
            return None
        return self.compute_co2_emissions(watts * hours * 30 / 1000)

    def get_pricing_info(self) -> dict:
        """Return {region, electricity_price_usd_per_kwh, co2_intensity_g_per_kwh}."""
        return {
            "region": self.region,
            "electricity_price_usd_per_kwh": self.get_electricity_price(),
            "co2_intensity_g_per_kwh": self.get_co2_intensity(),
        }

    # -- carbon API -------------------------------------------------------------------------

    def _fetch_intensity(self, zone: str) -> Optional[float]:
        """Latest intensity of ``zone`` in gCO2/kWh from the API, or None on any failure."""
        separator = "&" if "?" in self.api_url else "?"
        url = f"{self.api_url}{separator}{urllib.parse.urlencode({'zone': zone})}"
        request = urllib.request.Request(
            url,
            headers={
                "auth-token": str(self.electricity_maps_token),
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=API_TIMEOUT_SECONDS) as response:
                body = response.read(_MAX_RESPONSE_BYTES + 1)
            if len(body) > _MAX_RESPONSE_BYTES:
                raise ValueError("response too large")
            document = json.loads(body)
            raw = document.get("carbonIntensity") if isinstance(document, dict) else None
        except Exception as exc:
            # Whatever goes wrong on the wire (timeouts, HTTP errors, truncated bodies, bad
            # JSON), the table value is a correct answer: never let it reach the caller.
            logger.warning("carbon API for zone %s failed (%s); using the built-in table",
                           zone, exc)
            return None
        value = _valid(raw, MAX_CO2_INTENSITY)
        if value is None:
            logger.warning("carbon API for zone %s returned carbonIntensity=%r; using the "
                           "built-in table", zone, raw)
        return value
