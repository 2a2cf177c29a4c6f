"""Scenario features and training targets of the power models, and their matrix encoding.

``extract_features`` turns a scenario into the feature dict both predictors read;
``training_target`` reads the target (watts, joules, a score) in every results schema;
``encode`` builds the feature matrix (numeric features, then one-hot encoder and CPU-model
columns over the categories seen in training; unseen categories are all zeros).
"""

from __future__ import annotations

from array import array
from typing import Any, Optional

from advisor_core import linalg
from advisor_core.cost import scenario_power
from advisor_core.linalg import Rows
from advisor_core.scenario import as_number, bitrate_mbps, stream_count, total_pixels

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_HARDWARE",
    "NON_NEGATIVE_TARGETS",
    "NUMERIC_FEATURES",
    "category",
    "column_range",
    "encode",
    "extract_features",
    "feature_names",
    "training_target",
    "valid_features",
]


#: Numeric features, in vector order; the one-hot encoder and hardware columns follow.
NUMERIC_FEATURES = (
    "stream_count", "bitrate_mbps", "total_pixels", "cpu_usage_pct", "container_cpu_pct",
)
DEFAULT_ENCODER = "x264"
DEFAULT_HARDWARE = "unknown"

_TARGETS = {
    "mean_power_watts": ("power", "mean_watts"),
    "total_energy_joules": ("power", "total_energy_joules"),
    "efficiency_score": (None, "efficiency_score"),
}
# Watts and joules cannot be negative; an efficiency score can be any finite number.
NON_NEGATIVE_TARGETS = frozenset(("mean_power_watts", "total_energy_joules"))


def _nested_number(scenario: dict, outer: str, key: str) -> float:
    """A number inside a nested object; 0.0 when the object or the number is missing/invalid."""
    inner = scenario.get(outer)
    if not isinstance(inner, dict):
        return 0.0
    value = as_number(inner.get(key))
    return 0.0 if value is None else value


def _nested_text(scenario: dict, outer: Optional[str], key: str, default: str) -> str:
    inner = scenario if outer is None else scenario.get(outer)
    if not isinstance(inner, dict):
        return default
    value = inner.get(key)
    return value if isinstance(value, str) and value else default


def extract_features(scenario: Any) -> Optional[dict]:
    """Feature dict of a scenario (Mbps, pixels, CPU %), or None when its stream count is unknown.

    Missing, null or non-numeric fields take the defaults (0.0, "x264", "unknown").
    """
    if not isinstance(scenario, dict):
        return None
    streams = stream_count(scenario.get("name"))
    if streams is None:
        return None
    bitrate = bitrate_mbps(scenario.get("bitrate", "0k"))
    pixels = total_pixels(scenario)
    return {
        "stream_count": streams,
        "bitrate_mbps": 0.0 if bitrate is None else bitrate,
        "total_pixels": 0.0 if pixels is None else pixels,
        "cpu_usage_pct": _nested_number(scenario, "container_usage", "cpu_percent"),
        "encoder_type": _nested_text(scenario, None, "encoder_type", DEFAULT_ENCODER),
        "hardware_cpu_model": _nested_text(scenario, "hardware", "cpu_model", DEFAULT_HARDWARE),
        "container_cpu_pct": _nested_number(scenario, "docker_overhead", "cpu_percent"),
    }


def training_target(scenario: Any, target: Any = "mean_power_watts") -> Optional[float]:
    """The training target of a scenario (W, J or a score), or None when absent or invalid.

    Power and energy are read with ``advisor_core.cost.scenario_power``, so every results
    schema trains: a ``power`` object (analysed or joined from an analysis CSV) or
    ``power_watts`` samples (energy only with a valid ``step_seconds``).
    """
    spec = _TARGETS.get(target) if isinstance(target, str) else None
    if spec is None or not isinstance(scenario, dict):
        return None
    outer, key = spec
    container = scenario if outer is None else scenario_power(scenario)
    if container is None:
        return None
    value = as_number(container.get(key))
    if value is None or (value < 0 and target in NON_NEGATIVE_TARGETS):
        return None
    return value


def valid_features(features: Any) -> bool:
    """False when a numeric feature is present but not a finite number (NaN, inf, text)."""
    for key in NUMERIC_FEATURES:
        value = features.get(key)
        if value is not None and as_number(value) is None:
            return False
    return True


def category(features: dict, key: str, default: str) -> str:
    value = features.get(key)
    return value if isinstance(value, str) else default


def column_range(X: Rows) -> tuple[array, array]:
    """Per-column minima and maxima of a 2-D float memoryview."""
    n, p = X.shape
    return (array("d", [min(X[i, j] for i in range(n)) for j in range(p)]),
            array("d", [max(X[i, j] for i in range(n)) for j in range(p)]))



def feature_names(encoders: list[str], hardware: list[str]) -> list[str]:
    return (list(NUMERIC_FEATURES) + [f"encoder_{c}" for c in encoders]
            + [f"hardware_{c}" for c in hardware])


def encode(features_list: list[dict], encoders: list[str], hardware: list[str]) -> Rows:
    """Feature matrix (rows × (5 + categories)) of feature dicts; unseen categories → zeros.

    A C-contiguous float64 2-D memoryview (numpy is not needed to train or predict natively).
    """
    if not features_list:
        raise ValueError("no feature rows to encode")
    n_numeric = len(NUMERIC_FEATURES)
    encoder_col = {c: n_numeric + i for i, c in enumerate(encoders)}
    hardware_col = {c: n_numeric + len(encoders) + i for i, c in enumerate(hardware)}
    width = n_numeric + len(encoders) + len(hardware)
    flat = array("d")
    for features in features_list:
        row = [0.0] * width
        for i, key in enumerate(NUMERIC_FEATURES):
            value = as_number(features.get(key))
            if value is not None:
                row[i] = value
        encoder = features.get("encoder_type")
        col = encoder_col.get(encoder if isinstance(encoder, str) else DEFAULT_ENCODER)
        if col is not None:
            row[col] = 1.0
        cpu_model = features.get("hardware_cpu_model")
        col = hardware_col.get(cpu_model if isinstance(cpu_model, str) else DEFAULT_HARDWARE)
        if col is not None:
            row[col] = 1.0
        flat.extend(row)
    return linalg.float_rows(flat, width)
