"""Figures of a run (matplotlib, the ``plot`` extra; Agg backend, no display needed).

``power``: measured mean power against the stream count, the fitted stream-count model and its
prediction-interval band, the region outside the trained stream range shaded. ``ranking``: one
bar chart per score unit. ``pareto``: VMAF against power per stream with the Pareto front.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from advisor_core.data.paths import PathLike
from advisor_core.data.record import ScenarioRecord
from advisor_core.economics.decision import Evaluation, pareto_front, ranking_groups
from advisor_core.models.power import PowerPredictor

__all__ = ["KINDS", "PlotError", "plot"]

KINDS = ("power", "ranking", "pareto")
#: Figure size in inches and resolution of raster output (a 1200 x 750 pixel PNG).
FIGSIZE = (8.0, 5.0)
DPI = 150


class PlotError(ValueError):
    """The run has nothing to draw for the asked kind (the message says why)."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    return plt


def _literal(name: str) -> str:
    """A scenario name as text to draw: matplotlib reads "$...$" as math, a name is no formula."""
    return name.replace("$", r"\$")


def _legend_outside(ax: Any) -> None:
    """The legend right of the axes, where it cannot cover a point (tight_layout makes room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=8)


def _power(ax: Any, scenarios: Sequence[ScenarioRecord], confidence_level: float) -> None:
    model = PowerPredictor()
    if not model.fit(list(scenarios)):
        raise PlotError("no scenario has a stream count and a mean power")
    points = model.training_data
    low, high = model.get_model_info()["stream_range"]
    right = max(16, int(high * 1.5) + 1)
    xs = list(range(1, right + 1))
    bands = [model.predict_interval(x, confidence_level) for x in xs]
    ax.scatter([s for s, _ in points], [w for _, w in points], color="black", zorder=3,
               label="measured")
    ax.plot(xs, [b["mean"] for b in bands], color="tab:blue", label="fitted model")
    if all(b["pi_low"] is not None for b in bands):
        ax.fill_between(xs, [b["pi_low"] for b in bands], [b["pi_high"] for b in bands],
                        color="tab:blue", alpha=0.2,
                        label=f"{confidence_level:.0%} prediction interval")
    if low > 1:
        ax.axvspan(1, low, color="tab:orange", alpha=0.12)
    ax.axvspan(high, right, color="tab:orange", alpha=0.12, label="extrapolated")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("mean power (W)")
    ax.set_title("Mean power against concurrent streams")
    _legend_outside(ax)


def _ranking(fig: Any, items: Sequence[Evaluation], top: int) -> None:
    groups = ranking_groups(items)
    if not groups:
        raise PlotError("no configuration has an efficiency score")
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    for ax, group in zip(axes, groups):
        shown = group.items[:top]
        ax.barh([_literal(item.name) for item in shown][::-1],
                [item.score for item in shown][::-1], color="tab:green")
        ax.set_xlabel(f"{group.algorithm} ({group.unit})")
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("Efficiency ranking, higher is better (one chart per unit)")


def _pareto(ax: Any, items: Sequence[Evaluation]) -> None:
    rated = [i for i in items if i.vmaf is not None and i.power_per_stream_watts is not None]
    if not rated:
        raise PlotError("no configuration has both a VMAF score and a mean power")
    front = pareto_front(rated, lambda e: e.power_per_stream_watts)
    ax.scatter([i.power_per_stream_watts for i in rated], [i.vmaf for i in rated],
               color="grey", label="configurations")
    ax.plot([i.power_per_stream_watts for i in front], [i.vmaf for i in front],
            color="tab:red", marker="o", label="Pareto front")
    for item in front:
        ax.annotate(_literal(item.name), (item.power_per_stream_watts, item.vmaf), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("power per stream (W)")
    ax.set_ylabel("VMAF")
    ax.set_title("VMAF against power per stream")
    _legend_outside(ax)


def plot(kind: str, output: PathLike, scenarios: Sequence[ScenarioRecord],
         items: Sequence[Evaluation],
         confidence_level: float = 0.95, top: int = 15) -> None:
    """Draw ``kind`` (one of KINDS) into ``output``; its suffix picks the format (.png, .svg).

    PlotError when the run has nothing to draw for that kind; ValueError for an unknown kind
    or suffix.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; one of {', '.join(KINDS)}")
    suffix = os.path.splitext(os.fspath(output))[1].lower()
    if suffix not in (".png", ".svg"):
        raise ValueError(f"output must end in .png or .svg, got {os.fspath(output)!r}")
    plt = _pyplot()
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    try:
        if kind == "power":
            _power(fig.add_subplot(), scenarios, confidence_level)
        elif kind == "ranking":
            _ranking(fig, items, top)
        else:
            _pareto(fig.add_subplot(), items)
        fig.tight_layout()
        fig.savefig(output, format=suffix[1:], dpi=DPI)
    finally:
        plt.close(fig)
