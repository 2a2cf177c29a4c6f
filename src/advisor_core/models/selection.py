"""Model selection that generalises: out-of-fold error, a one-standard-error rule, row limits.

Every candidate model kind is scored on rows it did not see: leave-one-out for runs of up to
``LEAVE_ONE_OUT_MAX_ROWS`` rows (every benchmark run we have), otherwise ``cv_folds`` seeded,
shuffled folds (the same folds for every kind, so the comparison is paired). The score is the
pooled out-of-fold error over all rows (RMSE, and R² = 1 - SSE/SST), not a mean of per-fold R²
values, which are meaningless on folds of one or two rows.

The winner is the simplest eligible kind whose out-of-fold mean squared error is within one
standard error of the lowest (the one-standard-error rule): a more complex model must beat a
simpler one clearly, not by noise. A kind is eligible when the rows support it: a polynomial
needs at least ``POLYNOMIAL_ROWS_PER_TERM`` rows per coefficient (intercept included), a line
more rows than coefficients, trees twice as many rows as features plus one; the stream-count
line (``streams``) always is, so there is always a winner.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

__all__ = [
    "LEAVE_ONE_OUT_MAX_ROWS",
    "POLYNOMIAL_ROWS_PER_TERM",
    "KindScore",
    "fold_labels",
    "score_kind",
    "select",
]

#: Runs up to this many rows are scored by leave-one-out, larger ones by shuffled K folds.
LEAVE_ONE_OUT_MAX_ROWS = 30
#: Rows a polynomial kind needs per coefficient to be selectable ("clearly more rows").
POLYNOMIAL_ROWS_PER_TERM = 2


def fold_labels(n: int, folds: int, seed: Optional[int]) -> tuple[array, str]:
    """(fold label of each row as array('q'), a description of the scheme).

    Leave-one-out for n <= LEAVE_ONE_OUT_MAX_ROWS; otherwise ``folds`` folds of a seeded
    shuffle (``random.Random(seed)``), sizes differing by at most one.
    """
    if n <= LEAVE_ONE_OUT_MAX_ROWS or folds >= n:
        return array("q", range(n)), "leave-one-out"
    order = list(range(n))
    random.Random(seed).shuffle(order)
    labels = array("q", [0]) * n
    for position, row in enumerate(order):
        labels[row] = position % folds
    return labels, f"{folds}-fold shuffled (seed {seed})"


@dataclass(frozen=True)
class KindScore:
    """Out-of-fold quality of one model kind (RMSE in the target's unit)."""

    kind: str
    rows: int
    terms: Optional[int]
    rmse: float
    r2: float
    mse: float
    mse_se: float
    eligible: bool
    underdetermined: bool

    def as_dict(self) -> dict:
        """The JSON-able summary ``get_model_info`` reports."""
        return {"r2": self.r2, "rmse": self.rmse, "rows": self.rows, "terms": self.terms,
                "eligible": self.eligible, "underdetermined": self.underdetermined}


def _eligible(kind: str, rows: int, terms: Optional[int], features: int) -> bool:
    if kind == "streams":
        return True
    if terms is None:  # trees
        return rows >= 2 * (features + 1)
    if kind == "linear":
        return rows > terms
    return rows >= POLYNOMIAL_ROWS_PER_TERM * terms


def _square(d: float) -> float:
    # d * d is +inf beyond the float range; d ** 2 raises OverflowError
    return d * d


def _sum(values: Iterable[float]) -> float:
    """Exactly rounded sum of non-negative values, +inf beyond the float range (no raise)."""
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def score_kind(kind: str, y: Sequence[float], oof: Sequence[float], terms: Optional[int],
               features: int) -> KindScore:
    """Pooled out-of-fold RMSE, R², mean squared error and its standard error of one kind.

    A kind with a non-finite out-of-fold prediction (a fold it could not fit) is not eligible.
    """
    n = len(y)
    finite = all(math.isfinite(v) for v in oof)
    squared = [_square(t - p) for t, p in zip(y, oof)] if finite else [math.inf] * n
    mse = _sum(squared) / n
    if n > 1 and finite and math.isfinite(mse):
        spread = _sum(_square(s - mse) for s in squared) / (n - 1)
        se = math.sqrt(spread / n)
    else:
        se = math.inf
    mean_y = math.fsum(t / n for t in y)  # divided first: a sum of huge targets cannot overflow
    sst = _sum(_square(t - mean_y) for t in y)
    sse = mse * n
    if not finite:
        r2 = math.nan
    elif sst > 0:
        r2 = 1.0 - sse / sst
    else:
        r2 = 1.0 if sse == 0 else 0.0
    eligible = finite and math.isfinite(mse) and _eligible(kind, n, terms, features)
    return KindScore(kind, n, terms, math.sqrt(mse), r2, mse, se, eligible,
                     terms is not None and n < terms)


def select(scores: Sequence[KindScore]) -> tuple[str, str]:
    """(winner, why): the simplest eligible kind within one standard error of the best.

    ``scores`` are in simplicity order (simplest first). Without an eligible kind the simplest
    one wins.
    """
    eligible = [s for s in scores if s.eligible]
    if not eligible:
        if not any(math.isfinite(s.mse) for s in scores):
            return scores[0].kind, (f"{scores[0].kind}: no kind has a finite out-of-fold "
                                    "error; simplest")
        return scores[0].kind, f"{scores[0].kind}: no kind is supported by the rows; simplest"
    best = min(eligible, key=lambda s: s.mse)
    limit = best.mse + best.mse_se
    for candidate in eligible:
        if candidate.mse <= limit:
            if candidate is best:
                return best.kind, (f"{best.kind}: lowest out-of-fold RMSE "
                                   f"({best.rmse:.6g}) among the supported kinds")
            return candidate.kind, (
                f"{candidate.kind}: out-of-fold RMSE {candidate.rmse:.6g} within one standard "
                f"error of the lowest ({best.kind}, {best.rmse:.6g}); the simpler kind wins")
    return best.kind, f"{best.kind}: lowest out-of-fold RMSE ({best.rmse:.6g})"
