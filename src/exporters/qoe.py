"""QoE exporter (port 9503): VMAF, PSNR, SSIM, quality per watt, QoE efficiency, drop rate.

Labels ``scenario``, ``bitrate``, ``encoder`` (README difference 15: the union of the Python and Go
reference label sets; ``encoder`` = ``encoder_type``, "unknown" when absent, as in the cost
exporter so both join on the same labels). Differences from the reference:

* scores are emitted only inside their valid range (VMAF 0..100, PSNR >= 0, SSIM 0..1); a genuine
  0 is emitted, out-of-range or non-numeric values are skipped and counted in
  ``qoe_exporter_skipped_scenarios{reason}``, a scenario with none of the three as
  ``reason="no_quality_score"``;
* quality per watt and QoE efficiency come from ``advisor_core.scoring`` and need power
  information: the scenario's ``power`` object, else its ``power_watts`` samples, from which
  mean watts = arithmetic mean and energy = trapezoid(power_watts, step_seconds) joules (the Go
  version summed rectangles with a fixed 5 s step); without a valid ``step_seconds`` only the
  mean is known, so only quality per watt is emitted;
* ``qoe_computation_duration_seconds`` (always 0 in the reference) is gone; the real refresh
  duration is ``qoe_exporter_refresh_duration_seconds``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Optional

from advisor_core.columns import read_columns
from advisor_core.cost import scenario_power
from advisor_core.scenario import as_number
from advisor_core.scoring import EnergyEfficiencyScorer

from ._promql import PromClient
from .families import Family, LabelSchema, LabelSet, TableFamily, label_text
from .metric_set import MetricSet, Run
from .runtime import exporter_main

__all__ = ["QoEMetrics", "main"]

LABELS = ["scenario", "bitrate", "encoder"]
_SCHEMA = LabelSchema(LABELS)
_SCORES = ("vmaf_score", "psnr_score", "ssim_score")


def _with_power(scenario: dict) -> dict:
    """Return the scenario, or a copy with the ``power`` summary of its samples
    (``advisor_core.cost.scenario_power``, the library's one rule for every schema)."""
    power = scenario_power(scenario)
    if power is None or power is scenario.get("power"):
        return scenario
    copy = dict(scenario)
    copy["power"] = power
    return copy


class QoEMetrics(MetricSet):
    """Quality-of-experience families (docs/exporters.md §5; Python and Go versions merged)."""

    name = "qoe"
    default_port = 9503

    def __init__(self, settings: Optional[argparse.Namespace] = None) -> None:
        self._per_watt = EnergyEfficiencyScorer("quality_per_watt")
        self._efficiency = EnergyEfficiencyScorer("qoe_efficiency_score")
        self._skipped: dict[str, int] = {}

    def skipped(self) -> dict[str, int]:
        """Scenarios with a value left out in the last compute, by reason."""
        return dict(self._skipped)

    def compute(self, run: Run, prom: PromClient) -> list[Family]:
        """Return the QoE families for a run (refresh thread only; no database queries)."""
        skipped: dict[str, int] = {}

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        vmaf_f = TableFamily("qoe_vmaf_score", "VMAF score (0-100)")
        psnr_f = TableFamily("qoe_psnr_score", "PSNR (dB)")
        ssim_f = TableFamily("qoe_ssim_score", "SSIM (0-1)")
        per_watt_f = TableFamily(
            "qoe_quality_per_watt", "VMAF per watt of mean power (1/W)")
        efficiency_f = TableFamily(
            "qoe_efficiency_score",
            "Quality-weighted pixels per joule: pixels x VMAF/100 / energy (pixels/J)")
        drop_f = TableFamily(
            "qoe_drop_rate", "Dropped frames / total frames (ratio 0-1)")

        def score(scenario: dict, key: str, low: float, high: float) -> Optional[float]:
            raw = scenario.get(key)
            if raw is None:
                return None
            value = as_number(raw)
            if value is None:
                skip(f"{key}_invalid")
                return None
            if not low <= value <= high:
                skip(f"{key}_out_of_range")
                return None
            return value

        # Scenarios with a VMAF score (and their labels): scored after the loop, read into
        # columns once (the same numbers as compute_score of each).
        rated: list[dict] = []
        rated_labels: list[LabelSet] = []
        for scenario in run.scenarios:
            labels = _SCHEMA((
                scenario["name"],
                label_text(scenario.get("bitrate")),
                label_text(scenario.get("encoder_type") or "unknown"),
            ))
            vmaf = score(scenario, "vmaf_score", 0.0, 100.0)
            psnr = score(scenario, "psnr_score", 0.0, math.inf)
            ssim = score(scenario, "ssim_score", 0.0, 1.0)
            if all(scenario.get(key) is None for key in _SCORES):
                skip("no_quality_score")  # no QoE series: counted, or the run looks empty
            if vmaf is not None:
                vmaf_f.add(labels, vmaf)
            if psnr is not None:
                psnr_f.add(labels, psnr)
            if ssim is not None:
                ssim_f.add(labels, ssim)
            if vmaf is not None:
                rated.append(_with_power(scenario))
                rated_labels.append(labels)
            total = as_number(scenario.get("total_frames"))
            if total is not None and total > 0:
                dropped = as_number(scenario.get("dropped_frames"))
                if dropped is not None and 0 <= dropped <= total:
                    drop_f.add(labels, dropped / total)
                else:
                    skip("dropped_frames_invalid")
        columns = read_columns(rated)  # read once, scored by both
        for scorer, family in ((self._per_watt, per_watt_f), (self._efficiency, efficiency_f)):
            for labels, value in zip(rated_labels, scorer.score_columns(columns)):
                if value == value:  # NaN: no score
                    family.add(labels, value)
        self._skipped = skipped
        return [vmaf_f, psnr_f, ssim_f, per_watt_f, efficiency_f, drop_f]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``advisor-qoe-exporter``: serve QoE metrics until SIGTERM."""
    return exporter_main([QoEMetrics], "advisor-qoe-exporter", argv,
                         "Prometheus exporter of video quality (VMAF/PSNR/SSIM) and efficiency.")


if __name__ == "__main__":
    sys.exit(main())
