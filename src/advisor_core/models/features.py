"""Scenario features and training targets of the power models, and their matrix encoding.

``extract_features`` turns a scenario (a ``ScenarioRecord``, or a dict read into one) into the
feature dict both predictors read; ``training_target`` reads the target (the record's one power
in watts, its measured energy in joules, or a declared score);
``encode`` builds the feature matrix (numeric features, then one-hot encoder and CPU-model
columns over the categories kept from training, ``common_categories``; other categories are
all zeros).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from typing import Any, Optional

from advisor_core.data.record import as_record
from advisor_core.data.scenario import as_number
from advisor_core.models import linalg
from advisor_core.models.linalg import Rows

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_HARDWARE",
    "MAX_CATEGORIES",
    "NON_NEGATIVE_TARGETS",
    "NUMERIC_FEATURES",
    "category",
    "column_range",
    "common_categories",
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

# Watts and joules cannot be negative; an efficiency score can be any finite number.
NON_NEGATIVE_TARGETS = frozenset(("mean_power_watts", "total_energy_joules"))
_TARGETS = {
    "mean_power_watts": lambda record: record.power_w,
    "total_energy_joules": lambda record: record.energy_j,
    "efficiency_score": lambda record: record.declared_efficiency,
}


def extract_features(scenario: Any) -> Optional[dict]:
    """Feature dict of a scenario (Mbps, pixels, CPU %), or None when its stream count is unknown.

    Unknown values take the defaults (0.0, encoder "x264", hardware "unknown").
    """
    record = as_record(scenario)
    if record is None or record.streams is None:
        return None
    return {
        "stream_count": record.streams,
        "bitrate_mbps": record.bitrate_mbps or 0.0,
        "total_pixels": record.pixels or 0.0,
        "cpu_usage_pct": record.cpu_pct or 0.0,
        "encoder_type": record.encoder_type or DEFAULT_ENCODER,
        "hardware_cpu_model": record.hardware or DEFAULT_HARDWARE,
        "container_cpu_pct": record.docker_cpu_pct or 0.0,
    }


def training_target(scenario: Any, target: Any = "mean_power_watts") -> Optional[float]:
    """The training target of a scenario (W, J or a score), or None when absent or invalid.

    Power and energy are the record's one definition (docs/results-files.md §2.4), so every
    results schema trains: a ``power`` object, an analysis CSV row or ``power_watts`` samples.
    """
    read = _TARGETS.get(target) if isinstance(target, str) else None
    record = as_record(scenario) if read is not None else None
    if read is None or record is None:
        return None
    return read(record)


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


#: One-hot columns a categorical feature (encoder, CPU model) may have. A results file may name
#: a new encoder in every scenario: without a bound the matrix would be rows x rows doubles
#: (3.2 GB for 20,000 scenarios). The most frequent values in training are kept; a rarer one
#: encodes like a category never seen (docs/predictions.md "Limits").
MAX_CATEGORIES = 32


def common_categories(values: Iterable[str], limit: int = MAX_CATEGORIES) -> tuple[list[str], int]:
    """The ``limit`` most frequent values (ties: the first by name), sorted, and how many
    distinct values were left out."""
    counts = Counter(values)
    kept = sorted(counts, key=lambda value: (-counts[value], value))[:limit]
    return sorted(kept), len(counts) - len(kept)


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
