"""Energy-efficiency scores of transcoding scenarios.

Four scores, higher is better: throughput per watt (Mbps/W), pixels per joule (pixels/J),
quality per watt (VMAF points/W) and QoE efficiency (VMAF-weighted pixels/J). ``auto`` picks
one per scenario. Scores are finite floats or None (missing/invalid data); nothing raises on bad
input. One scenario or many (``ScenarioRecord``s, or dicts read into records), the records are
laid out as columns (``advisor_core.economics.columns``) and scored by one compiled kernel, so
``score_many`` equals ``compute_score`` of each. Watts are the record's ``power_w`` (package +
GPU), joules its measured ``energy_j`` (docs/results-files.md §2.4).

Differences from the reference: stream count, bitrate, resolution, pixels and ladders come from
advisor_core.data.scenario (README differences 1-3: "10 Mbps Stream" is one stream, "5Mbps" is 5
Mbps, an unknown count is one stream for throughput, unparsable resolutions give no ladder/pixels);
null nested objects count as missing; negative, NaN, infinite or non-numeric powers, energies and
VMAF values give None; results that overflow give None instead of inf.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn, Optional

from advisor_core.data.record import as_record, as_records
from advisor_core.data.scenario import as_number
from advisor_core.economics import _kernels
from advisor_core.economics.columns import ScenarioColumns, auto_algorithm, read_columns

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ALGORITHMS", "SCORE_UNITS", "EnergyEfficiencyScorer"]

#: Accepted ``algorithm`` values.
ALGORITHMS = (
    "auto",
    "throughput_per_watt",
    "pixels_per_joule",
    "quality_per_watt",
    "qoe_efficiency_score",
)

#: Unit of each concrete algorithm's score.
SCORE_UNITS = {
    "throughput_per_watt": "Mbps/W",
    "pixels_per_joule": "pixels/J",
    "quality_per_watt": "VMAF/W",
    "qoe_efficiency_score": "QoE-pixels/J",
}

_CODES = {
    "throughput_per_watt": _kernels.ALGO_THROUGHPUT_PER_WATT,
    "pixels_per_joule": _kernels.ALGO_PIXELS_PER_JOULE,
    "quality_per_watt": _kernels.ALGO_QUALITY_PER_WATT,
    "qoe_efficiency_score": _kernels.ALGO_QOE_EFFICIENCY,
}

_NAMES = {code: name for name, code in _CODES.items()}


class EnergyEfficiencyScorer:
    """Scores scenarios by energy efficiency with one algorithm, or per scenario with ``auto``."""

    def __init__(self, algorithm: str = "auto") -> None:
        """Choose the algorithm (one of ALGORITHMS); anything else raises ValueError."""
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise ValueError(
                f"Unsupported algorithm: {algorithm!r} (expected one of {', '.join(ALGORITHMS)})"
            )
        self.algorithm = algorithm

    def algorithm_for(self, scenario: Any) -> str:
        """Return the concrete algorithm used for ``scenario`` (resolves ``auto``).

        auto: a non-null ``vmaf_score`` -> qoe_efficiency_score; else an ``outputs`` list with
        more than one entry -> pixels_per_joule; else throughput_per_watt.
        """
        if self.algorithm != "auto":
            return self.algorithm
        return _NAMES[auto_algorithm(as_record(scenario))]

    def unit_for(self, scenario: Any) -> str:
        """Return the unit of ``scenario``'s score ("Mbps/W", "pixels/J", "VMAF/W", ...)."""
        return SCORE_UNITS[self.algorithm_for(scenario)]

    def compute_score(self, scenario: Any) -> Optional[float]:
        """Return the efficiency score of one scenario (unit: see unit_for), or None."""
        value = self.score_columns(read_columns([as_record(scenario)]))[0]
        return None if value != value else value

    def score_array(self, scenarios: Iterable[Any]) -> np.ndarray:
        """Scores of many scenarios as a float64 array (NaN = None), via the batch kernel."""
        import numpy as np  # here only: score_many stays numpy-free for the exporters

        return np.asarray(self.score_buffer(scenarios), dtype=np.float64)

    def score_buffer(self, scenarios: Iterable[Any]) -> Any:
        """Scores as a float64 array.array (NaN = no score) from the compiled batch kernel."""
        return self.score_columns(read_columns(as_records(scenarios)))

    def score_columns(self, columns: ScenarioColumns) -> Any:
        """Scores of read scenarios as a float64 array.array (NaN = no score)."""
        if self.algorithm == "auto":
            algorithms = columns.auto
        else:
            algorithms = array("b", [_CODES[self.algorithm]]) * columns.n
        return _kernels.score_batch(algorithms, columns.table)

    def score_many(self, scenarios: Iterable[Any]) -> list[Optional[float]]:
        """Scores of many scenarios (None = no score), equal to ``compute_score`` of each."""
        scores = self.score_buffer(scenarios)
        return _kernels.optional_list(scores) if len(scores) else []

    def get_output_ladder(self, scenario: Any) -> Optional[str]:
        """Return the ladder id ("1920x1080@30,1280x720@30") of a scenario, or None."""
        record = as_record(scenario)
        return None if record is None else record.output_ladder

    def compute_quality_adjusted_score(
        self, scenario: Any, vmaf_score: Any, psnr_score: Any = None
    ) -> Optional[float]:
        """QoE efficiency (VMAF-weighted pixels/J) with the given VMAF; PSNR is ignored."""
        record = as_record(scenario)
        if record is None:
            return None
        vmaf = as_number(vmaf_score)
        rated = record._replace(quality_rated=vmaf_score is not None,
                        vmaf=vmaf if vmaf is not None and 0 <= vmaf <= 100 else None)
        return EnergyEfficiencyScorer("qoe_efficiency_score").compute_score(rated)

    def compute_cost_adjusted_score(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Always raises NotImplementedError: kept because the reference library's public API
        lists this method as not implemented."""
        raise NotImplementedError("cost-adjusted scoring is not implemented")

    def compute_hardware_normalized_score(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Always raises NotImplementedError: kept because the reference library's public API
        lists this method as not implemented."""
        raise NotImplementedError("hardware-normalised scoring is not implemented")
