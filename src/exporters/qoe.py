"""QoE exporter (port 9503): VMAF, PSNR, SSIM, quality per watt, QoE efficiency, drop rate.

Labels ``scenario``, ``bitrate``, ``encoder`` (README difference 15: the union of the Python and Go
reference label sets; ``encoder`` = the record's encoder label, the same in all three exporters
so they join: ``encoder``, else ``encoder_type``, else "h264"). Differences from the reference:

* scores are emitted only inside their valid range (VMAF 0..100, PSNR >= 0, SSIM 0..1; the record
  reader's rule); a genuine 0 is emitted, out-of-range or non-numeric values are counted in
  ``qoe_exporter_skipped_scenarios{reason}``, a scenario with none of the three usable as
  ``reason="no_quality_score"``;
* quality per watt and QoE efficiency come from ``advisor_core.economics.scoring`` with the
record's one
  power and measured energy (docs/results-files.md §2.4: e.g. energy = trapezoid(power_watts,
  step_seconds) joules, where the Go version summed rectangles with a fixed 5 s step); without a
  valid ``step_seconds`` only the mean is known, so only quality per watt is emitted;
* ``qoe_computation_duration_seconds`` (always 0 in the reference) is gone; the real refresh
  duration is ``qoe_exporter_refresh_duration_seconds``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional

from advisor_core.data.record import ScenarioRecord
from advisor_core.economics.columns import read_columns
from advisor_core.economics.scoring import EnergyEfficiencyScorer

from ._promql import PromClient
from .families import Family, FamilySpec, LabelSchema, LabelSet, table_families
from .metric_set import MetricSet, Run
from .runtime import exporter_main

__all__ = ["QoEMetrics", "main"]

LABELS = ["scenario", "bitrate", "encoder"]
# (key, metric name, help) of the per-scenario families, in the reference's order.
_FAMILIES: tuple[FamilySpec, ...] = (
    ("vmaf", "qoe_vmaf_score", "VMAF score (0-100)"),
    ("psnr", "qoe_psnr_score", "PSNR (dB)"),
    ("ssim", "qoe_ssim_score", "SSIM (0-1)"),
    ("per_watt", "qoe_quality_per_watt",
     "VMAF per watt of mean power, CPU package + GPU when measured (1/W)"),
    ("efficiency", "qoe_efficiency_score",
     "Quality-weighted pixels per joule: pixels x VMAF/100 / measured energy (pixels/J)"),
    ("drop_rate", "qoe_drop_rate", "Dropped frames / total frames (ratio 0-1)"),
)
_SCHEMA = LabelSchema(LABELS)


class QoEMetrics(MetricSet):
    """Quality-of-experience families (docs/exporters.md §5; Python and Go versions merged)."""

    name = "qoe"
    default_port = 9503
    rows_per_scenario = len(_FAMILIES)
    label_overhead = 40

    def __init__(self, settings: Optional[argparse.Namespace] = None) -> None:
        self._per_watt = EnergyEfficiencyScorer("quality_per_watt")
        self._efficiency = EnergyEfficiencyScorer("qoe_efficiency_score")
        self._skipped: dict[str, int] = {}

    def compute(self, run: Run, prom: PromClient) -> list[Family]:
        """Return the QoE families for a run (refresh thread only; no database queries)."""
        skipped: dict[str, int] = {}

        def skip(reason: str) -> None:
            skipped[reason] = skipped.get(reason, 0) + 1

        families = table_families(_FAMILIES)
        vmaf_f, psnr_f, ssim_f = families["vmaf"], families["psnr"], families["ssim"]
        per_watt_f, efficiency_f = families["per_watt"], families["efficiency"]
        drop_f = families["drop_rate"]

        # Records with a VMAF score (and their labels): scored after the loop, laid out as
        # columns once (the same numbers as compute_score of each).
        rated: list[ScenarioRecord] = []
        rated_labels: list[LabelSet] = []
        for record in run.scenarios:
            if not self.serves(record.name):
                continue  # no run-level number here: the scores are each scenario's own
            labels = _SCHEMA((record.name, record.bitrate or "", record.encoder))
            if record.vmaf is not None:
                vmaf_f.add(labels, record.vmaf)
                rated.append(record)
                rated_labels.append(labels)
            if record.psnr is not None:
                psnr_f.add(labels, record.psnr)
            if record.ssim is not None:
                ssim_f.add(labels, record.ssim)
            if record.vmaf is None and record.psnr is None and record.ssim is None:
                skip("no_quality_score")  # no QoE series: counted, or the run looks empty
            total, dropped = record.total_frames, record.dropped_frames
            # A non-numeric count is the reader's to count; more dropped than total is ours.
            if total is not None and total > 0 and dropped is not None:
                if dropped <= total:
                    drop_f.add(labels, dropped / total)
                else:
                    skip("dropped_frames_invalid")
        columns = read_columns(rated)  # read once, scored by both
        for scorer, family in ((self._per_watt, per_watt_f), (self._efficiency, efficiency_f)):
            for labels, value in zip(rated_labels, scorer.score_columns(columns)):
                if value == value:  # NaN: no score
                    family.add(labels, value)
        self._skipped = skipped
        return list(families.values())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``advisor-qoe-exporter``: serve QoE metrics until SIGTERM."""
    return exporter_main([QoEMetrics], "advisor-qoe-exporter", argv,
                         "Prometheus exporter of video quality (VMAF/PSNR/SSIM) and efficiency.")


if __name__ == "__main__":
    sys.exit(main())
