"""Leave-one-scenario-out evaluation of the power predictors on a run (tests and benchmarks).

For each scenario with a stream count and a measured mean power, both predictors are trained
on the others and predict it: ``PowerPredictor`` (the stream-count least-squares line or
quadratic, the reference's model) and ``MultivariatePredictor`` with model selection. The
textbook baseline is ordinary least squares of power on the stream count (numpy), with its
Student-t prediction interval (scipy).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from advisor_core.models.modeling import (
    MultivariatePredictor,
    PowerPredictor,
    extract_features,
    training_target,
)


@dataclass
class Holdout:
    truth: float
    streams: int
    ols: float
    ols_pi: tuple | None
    power: dict
    multi: dict


@dataclass
class RunEvaluation:
    name: str
    holdouts: list[Holdout] = field(default_factory=list)

    def mape(self, which: str) -> float:
        values = [getattr(h, which) if which == "ols" else h.__dict__[which]["mean"]
                  for h in self.holdouts]
        return 100 * float(np.mean([abs(v - h.truth) / h.truth
                                    for v, h in zip(values, self.holdouts)]))


def usable(scenarios: list[dict]) -> list[dict]:
    """The scenarios that both predictors train on: a stream count and a mean power."""
    return [s for s in scenarios if extract_features(s) is not None
            and training_target(s, "mean_power_watts") is not None]


def ols_interval(streams: list[int], watts: list[float], s0: float, level: float = 0.95):
    """(mean, (low, high) or None) of the OLS line of watts on streams at s0 (numpy + scipy)."""
    x, y = np.asarray(streams, float), np.asarray(watts, float)
    n = len(x)
    if len(set(streams)) < 2:
        return float(y.mean()), None
    slope, intercept = np.polyfit(x, y, 1)
    mean = float(max(0.0, intercept + slope * s0))
    if n <= 2:
        return mean, None
    s2 = float(np.sum((y - (intercept + slope * x)) ** 2) / (n - 2))
    lev = 1 / n + (s0 - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2)
    half = stats.t.ppf(0.5 + level / 2, n - 2) * math.sqrt(s2 * (1 + lev))
    return mean, (intercept + slope * s0 - half, intercept + slope * s0 + half)


def evaluate(name: str, scenarios: list[dict], models=None) -> RunEvaluation:
    """Leave each usable scenario out, train on the rest, predict it."""
    rows = usable(scenarios)
    result = RunEvaluation(name)
    for i, held in enumerate(rows):
        train = [copy.deepcopy(s) for j, s in enumerate(rows) if j != i]
        truth = training_target(held, "mean_power_watts")
        features = extract_features(held)
        streams = features["stream_count"]
        pairs = [(extract_features(s)["stream_count"], training_target(s, "mean_power_watts"))
                 for s in train]
        ols, ols_pi = ols_interval([p[0] for p in pairs], [p[1] for p in pairs], streams)
        power = PowerPredictor()
        power.fit(train)
        multi = MultivariatePredictor(models, random_state=0)
        multi.fit(train)
        result.holdouts.append(Holdout(truth, streams, ols, ols_pi,
                                       power.predict_interval(streams),
                                       multi.predict(features)))
    return result


def coverage(evaluations: list[RunEvaluation], which: str) -> tuple[int, int]:
    """(intervals holding the truth, intervals given) pooled over runs."""
    held = given = 0
    for ev in evaluations:
        for h in ev.holdouts:
            if which == "ols":
                interval = h.ols_pi
            else:
                r = h.__dict__[which]
                interval = None if r["pi_low"] is None else (r["pi_low"], r["pi_high"])
            if interval is None:
                continue
            given += 1
            held += interval[0] <= h.truth <= interval[1]
    return held, given


def median_width(evaluations: list[RunEvaluation], which: str) -> float:
    widths = []
    for ev in evaluations:
        for h in ev.holdouts:
            if which == "ols":
                if h.ols_pi is not None:
                    widths.append(h.ols_pi[1] - h.ols_pi[0])
            else:
                r = h.__dict__[which]
                if r["pi_low"] is not None:
                    widths.append(r["pi_high"] - r["pi_low"])
    return float(np.median(widths)) if widths else math.nan
