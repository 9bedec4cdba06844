"""The promotion gate's paired comparison: the candidate's and the serving model's figure on the
same evaluation rows, their difference, and a paired bootstrap interval of the difference.

Each row has a label y in {0, 1}, a weight w > 0, the candidate's score c and the serving model's s.

Figures are weighted means, sum(w * loss) / sum(w) (with w = 1 / inclusion probability, the Hajek
form of the Horvitz-Thompson estimator):
- log loss: -(y log p + (1 - y) log(1 - p)), p clipped to [eps, 1 - eps] with eps float64's machine
  epsilon, as scikit-learn's ``log_loss``;
- error rate: 1 when (p > 0.5) differs from y (XGBoost's ``error``, which ``validation:error`` is; the
  endpoint's decision and the model-quality monitor count p >= 0.5 as positive, which differs only for
  a score of exactly 0.5);
- AUC: the weighted share of (positive, negative) pairs in which the positive scores higher, a tie
  counting one half, each pair weighted w_i * w_j (scikit-learn's ``roc_auc_score`` with
  ``sample_weight``).

The difference is candidate - serving. Its interval is a paired bootstrap: each of ``RESAMPLES``
resamples draws n of the n rows with replacement, each row keeping its label, weight and both
scores, so both figures of a resample are on the same rows; the 95 % interval runs from the 2.5th to
the 97.5th percentile of the resamples' differences (percentile method, numpy's linear
interpolation). numpy's PCG64 generator with a fixed seed makes a run reproducible. A resample
holding one class only has no AUC: it is left out and counted. Each model's own figure carries its
percentile interval from the same resamples.

Decision: "worse by" is the difference for a figure to minimise and minus the difference for one to
maximise. The candidate is promoted when the worse end of the 95 % interval of "worse by" (its
97.5th percentile, a one-sided 97.5 % upper bound) is at most the tolerance: the candidate is then
not worse than the serving model by more than the tolerance, with 97.5 % confidence (one-sided: the
upper end of the two-sided 95 % interval). Identical scores
give a difference of exactly 0 in every resample, and promote.

Cost: O(n) per resample (for AUC the scores are grouped once; a resample is then one weighted count
per group), so 2,000 resamples of 100,000 rows take seconds (numpy, from the explain layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lambdas.retraining.objectives import ERROR_THRESHOLD, Objective

RESAMPLES = 2_000
SEED = 21
CONFIDENCE = 0.95
_TAILS = (100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2)
_EPS = float(np.finfo(np.float64).eps)


class ComparisonError(ValueError):
    """Rows the figure is not defined on (no rows, one class for AUC); the message says why."""


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "interval": [self.low, self.high]}


@dataclass(frozen=True)
class Comparison:
    objective: Objective
    rows: int
    weight: float  # sum of the rows' weights
    candidate: Estimate
    serving: Estimate
    difference: Estimate  # candidate - serving
    resamples: int
    skipped: int  # resamples without a figure (AUC: one class only)
    seed: int

    @property
    def worse_by(self) -> Estimate:
        """How much worse the candidate is (positive: worse), whichever way the figure improves."""
        if self.objective.goal == "minimize":
            return self.difference
        d = self.difference
        return Estimate(-d.value, -d.high, -d.low)

    def promotes(self, tolerance: float) -> bool:
        return self.worse_by.high <= tolerance

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "weight": self.weight,
            "candidate": self.candidate.as_dict(),
            "serving": self.serving.as_dict(),
            "difference": self.difference.as_dict(),
            "worseBy": self.worse_by.as_dict(),
            "method": (
                f"paired bootstrap: {self.resamples} resamples of the {self.rows} rows (seed {self.seed}), "
                f"{CONFIDENCE:.0%} percentile intervals; weighted means (weights 1 / inclusion probability)"
            ),
            "resamples": self.resamples,
            "resamplesWithoutFigure": self.skipped,
        }


class _Losses:
    """Log loss or error rate: a loss per row, then its weighted mean."""

    def __init__(self, measure: str, y: np.ndarray, scores: tuple[np.ndarray, np.ndarray]) -> None:
        self.losses = tuple(_loss(measure, y, p) for p in scores)

    def figures(self, weights: np.ndarray) -> tuple[float, float]:
        total = float(weights.sum())
        return tuple(float(weights @ loss) / total for loss in self.losses)  # type: ignore[return-value]


def _loss(measure: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    if measure == "error":
        return ((p > ERROR_THRESHOLD) != (y == 1)).astype(np.float64)
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))


class _Auc:
    """Weighted AUC: scores grouped once (ascending), then per set of weights one count per group."""

    def __init__(self, y: np.ndarray, scores: tuple[np.ndarray, np.ndarray]) -> None:
        self.positive = y.astype(np.float64)
        self.groups = []
        for p in scores:
            _, inverse = np.unique(p, return_inverse=True)
            self.groups.append((inverse, int(inverse.max()) + 1))

    def figures(self, weights: np.ndarray) -> tuple[float, float]:
        positive = weights * self.positive
        negative = weights - positive
        return tuple(_auc(groups, size, positive, negative) for groups, size in self.groups)  # type: ignore[return-value]


def _auc(groups: np.ndarray, size: int, positive: np.ndarray, negative: np.ndarray) -> float:
    pos = np.bincount(groups, weights=positive, minlength=size)
    neg = np.bincount(groups, weights=negative, minlength=size)
    total_pos, total_neg = float(pos.sum()), float(neg.sum())
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg  # negatives scoring lower than each group
    return float(pos @ (below + 0.5 * neg)) / (total_pos * total_neg)


def paired_comparison(
    objective: Objective,
    labels: Any,
    weights: Any,
    candidate: Any,
    serving: Any,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Comparison:
    """Both figures on the same rows, their difference, and the paired bootstrap intervals."""
    y = np.asarray(labels, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    scores = (np.asarray(candidate, dtype=np.float64), np.asarray(serving, dtype=np.float64))
    n = len(y)
    if n == 0:
        raise ComparisonError("there are no evaluation rows scored by both models")
    if any(len(a) != n for a in (w, *scores)):
        raise ValueError("labels, weights and both models' scores must have one value per row")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not (np.isfinite(w).all() and (w > 0).all()):
        raise ValueError("weights must be finite and positive")
    figures = _Auc(y, scores) if objective.measure == "auc" else _Losses(objective.measure, y, scores)
    candidate_value, serving_value = figures.figures(w)
    if np.isnan(candidate_value):
        raise ComparisonError(f"{objective.description} needs both labels among the evaluation rows, and all {n} rows have label {int(y[0])}")
    rng = np.random.default_rng(seed)
    drawn = np.empty((resamples, 2))
    for b in range(resamples):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        drawn[b] = figures.figures(w * counts)
    kept = drawn[~np.isnan(drawn).any(axis=1)]
    if len(kept) == 0:
        raise ComparisonError(f"no bootstrap resample of the {n} rows holds both labels")
    differences = kept[:, 0] - kept[:, 1]

    def estimate(value: float, values: np.ndarray) -> Estimate:
        low, high = np.percentile(values, _TAILS)
        return Estimate(float(value), float(low), float(high))

    return Comparison(
        objective=objective,
        rows=n,
        weight=float(w.sum()),
        candidate=estimate(candidate_value, kept[:, 0]),
        serving=estimate(serving_value, kept[:, 1]),
        difference=estimate(candidate_value - serving_value, differences),
        resamples=resamples,
        skipped=resamples - len(kept),
        seed=seed,
    )
