"""Realized quality figures of a binary classifier over labelled rows, each with its standard error
and 95 % interval, weighted (Horvitz-Thompson) or not.

Every figure but AUC is a ratio of two weighted totals, ``R = sum(w * a) / sum(w * b)``:

    accuracy   a = [y == yhat]           b = 1
    precision  a = y * yhat              b = yhat
    recall     a = y * yhat              b = y              (true_positive_rate)
    F-beta     a = (1 + beta^2) y yhat   b = beta^2 y + yhat
    log loss   a = -(y log p + (1 - y) log(1 - p))   b = 1  (p clipped to [eps, 1 - eps], as scikit-learn)
    Brier      a = (p - y)^2             b = 1

``w`` is the row's weight: ``1 / inclusionProbability`` (adjusted for non-response, see
``lambdas.monitoring.quality.labels``) for the weighted figures, 1 for the unweighted ones. A ratio
of Horvitz-Thompson totals is the Hajek (ratio) estimator; with ``w = 1`` it is the plain figure,
and with any weights it is scikit-learn's figure with ``sample_weight=w``.

Standard error, by linearization (Taylor): with ``e_i = a_i - R b_i``,

    v(R) = n / (n - 1) * sum((w_i e_i)^2) / (sum(w_i b_i))^2

the with-replacement variance of a ratio of Horvitz-Thompson totals (n the labelled rows). It counts
the randomness of both the review sample and the period's own predictions, so it estimates the
variance around the model's expected figure on the period's traffic; around the period's realized
figure (a finite population) it is conservative. With ``w = 1`` and ``b = 1`` it is the binomial
``R (1 - R) / (n - 1)``.

AUC is the weighted Mann-Whitney statistic (ties count one half), the area under the weighted ROC
curve that scikit-learn's ``roc_auc_score(sample_weight=w)`` computes. Its standard error is the
same linearization: each row's influence is its placement value (the weighted share of the other
class it outranks) less AUC, over the class's total weight; with ``w = 1`` that is DeLong's variance.

95 % interval: for the figures in [0, 1], the Wilson score interval at the effective sample size
``R (1 - R) / v(R)`` (the design effect folded in; Kish's ``(sum w)^2 / sum w^2`` over the ratio's
rows where ``R`` is 0 or 1 or ``v`` is 0), which stays inside [0, 1] and keeps its coverage near the
ends, where a Wald interval does not; for log loss and Brier score the Wald interval, cut at 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
EPS = float(np.finfo(np.float64).eps)  # scikit-learn's log_loss clips probabilities to [eps, 1 - eps]
RELIABILITY_BINS = 10  # equal-weight bins of the calibration (reliability) plot and the expected calibration error
MAX_CURVE_POINTS = 201  # ROC and precision-recall curves in statistics.json, thinned to this many

# The figures in [0, 1]: (name in statistics.json, how to build a and b from y, yhat).
F_BETAS = {"f0_5": 0.5, "f1": 1.0, "f2": 2.0}


@dataclass(frozen=True)
class Figure:
    """A figure with its standard error and 95 % interval (NaN where undefined: no rows for its
    denominator, or fewer than two rows for its error)."""

    value: float
    standard_error: float
    low: float
    high: float

    def document(self) -> dict[str, Any]:
        """Model Monitor's ``{"value", "standard_deviation"}`` ("NaN" where undefined, as Model Monitor writes it)."""
        return {"value": _json_number(self.value), "standard_deviation": _json_number(self.standard_error)}

    def interval(self) -> list[Any]:
        return [_json_number(self.low), _json_number(self.high)]

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)


UNDEFINED = Figure(math.nan, math.nan, math.nan, math.nan)


def _json_number(value: float) -> Any:
    return "NaN" if value is None or math.isnan(value) else float(value)


def wilson(value: float, variance: float, kish: float) -> tuple[float, float]:
    """The 95 % Wilson score interval of a share ``value`` whose variance is ``variance`` (its
    effective sample size ``value (1 - value) / variance``; ``kish`` where that is 0 or undefined)."""
    if math.isnan(value) or math.isnan(variance):
        return math.nan, math.nan
    spread = value * (1.0 - value)
    n = spread / variance if spread > 0 and variance > 0 else kish
    if not n > 0:
        return math.nan, math.nan
    z2 = Z95 * Z95
    centre = (value + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(spread / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio(a: np.ndarray, b: np.ndarray, w: np.ndarray, *, share: bool = True) -> Figure:
    """``sum(w a) / sum(w b)`` with its linearized standard error and 95 % interval (module docstring)."""
    wb = w * b
    denominator = float(wb.sum())
    if denominator <= 0:
        return UNDEFINED
    value = float((w * a).sum()) / denominator
    n = len(a)
    if n < 2:
        return Figure(value, math.nan, math.nan, math.nan)
    we = w * (a - value * b)
    variance = n / (n - 1) * float((we * we).sum()) / (denominator * denominator)
    return _figure(value, variance, float(denominator**2 / (wb * wb).sum()), share)


def _figure(value: float, variance: float, kish: float, share: bool) -> Figure:
    error = math.sqrt(max(variance, 0.0))
    if share:
        low, high = wilson(value, variance, kish)
    else:
        low, high = max(0.0, value - Z95 * error), value + Z95 * error
    return Figure(value, error, low, high)


def auc(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> Figure:
    """Weighted ROC AUC (ties one half) with its linearized (weighted DeLong) error and interval."""
    positive = y == 1
    w1, w0 = float(w[positive].sum()), float(w[~positive].sum())
    if w1 <= 0 or w0 <= 0:
        return UNDEFINED
    distinct, group = np.unique(scores, return_inverse=True)
    pos_w = np.bincount(group, weights=np.where(positive, w, 0.0), minlength=len(distinct))
    neg_w = np.bincount(group, weights=np.where(positive, 0.0, w), minlength=len(distinct))
    neg_below = np.cumsum(neg_w) - neg_w  # weight of negatives scored strictly lower
    pos_above = pos_w.sum() - np.cumsum(pos_w)  # weight of positives scored strictly higher
    # Placement values: the share of the other class each row outranks, ties one half.
    placement_pos = (neg_below + 0.5 * neg_w) / w0
    placement_neg = (pos_above + 0.5 * pos_w) / w1
    value = float((pos_w * placement_pos).sum()) / w1
    n = len(y)
    if n < 2:
        return Figure(value, math.nan, math.nan, math.nan)
    influence = np.where(positive, (placement_pos[group] - value) / w1, (placement_neg[group] - value) / w0)
    wu = w * influence
    variance = n / (n - 1) * float((wu * wu).sum())
    kish = min(w1**2 / float((w[positive] ** 2).sum()), w0**2 / float((w[~positive] ** 2).sum()))
    return _figure(value, variance, kish, True)


def curves(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """The weighted ROC and precision-recall curves at each distinct score (descending), in Model
    Monitor's shape, thinned to ``MAX_CURVE_POINTS`` points."""
    order = np.argsort(-scores, kind="stable")
    s, yy, ww = scores[order], y[order], w[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.array([], dtype=int)
    tp = np.cumsum(ww * (yy == 1))[ends]
    fp = np.cumsum(ww * (yy == 0))[ends]
    p_total, n_total = (tp[-1], fp[-1]) if len(ends) else (0.0, 0.0)
    tpr = np.r_[0.0, tp / p_total] if p_total > 0 else np.zeros(len(ends) + 1)
    fpr = np.r_[0.0, fp / n_total] if n_total > 0 else np.zeros(len(ends) + 1)
    predicted = tp + fp
    precision = np.divide(tp, predicted, out=np.ones_like(tp), where=predicted > 0)
    recall = tp / p_total if p_total > 0 else np.zeros_like(tp)
    keep = _thin(len(tpr))
    keep_pr = _thin(len(precision))
    return {
        "receiver_operating_characteristic_curve": {
            "false_positive_rates": [round(float(v), 6) for v in fpr[keep]],
            "true_positive_rates": [round(float(v), 6) for v in tpr[keep]],
        },
        "precision_recall_curve": {
            "precisions": [round(float(v), 6) for v in precision[keep_pr]],
            "recalls": [round(float(v), 6) for v in recall[keep_pr]],
        },
    }


def _thin(count: int) -> np.ndarray:
    if count <= MAX_CURVE_POINTS:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, MAX_CURVE_POINTS).round().astype(int))


def confusion_matrix(y: np.ndarray, yhat: np.ndarray, w: np.ndarray) -> dict[str, dict[str, float]]:
    """Model Monitor's ``confusion_matrix``: outer key the true label, inner the predicted one (its
    documented example: recall 1.0 and precision 1/3 from ``{"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}``);
    weighted counts (estimated predictions) when the weights are not all 1."""
    cells = {}
    for truth in (0, 1):
        cells[str(truth)] = {}
        for predicted in (0, 1):
            total = float(w[(y == truth) & (yhat == predicted)].sum())
            cells[str(truth)][str(predicted)] = int(total) if total.is_integer() else round(total, 6)
    return cells


def reliability_bins(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict[str, float]]:
    """Equal-weight bins of the scores: each bin's weight, mean score and observed share of positives."""
    order = np.argsort(scores, kind="stable")
    s, y, w = scores[order], labels[order], weights[order]
    cumulative = np.cumsum(w)
    total = cumulative[-1] if len(cumulative) else 0.0
    if total <= 0:
        return []
    edges = np.searchsorted(cumulative, np.linspace(0, total, bins + 1)[1:-1], side="left")
    found = []
    for part_s, part_y, part_w in zip(np.split(s, edges), np.split(y, edges), np.split(w, edges), strict=True):
        weight = float(part_w.sum())
        if weight <= 0:
            continue
        found.append({
            "rows": round(weight, 6),
            "mean_score": float((part_s * part_w).sum() / weight),
            "observed": float((part_y * part_w).sum() / weight),
        })  # fmt: skip
    return found


@dataclass(frozen=True)
class Figures:
    """Every realized figure over one set of rows and weights."""

    rows: int
    weight: float  # sum of the weights: the estimated number of predictions they stand for
    figures: dict[str, Figure]
    confusion: dict[str, dict[str, float]]
    curves: dict[str, Any] = field(default_factory=dict)
    reliability: list[dict[str, float]] = field(default_factory=list)

    def value(self, name: str) -> float:
        found = self.figures.get(name)
        return found.value if found is not None else math.nan


# The order statistics.json lists them in: Model Monitor's documented binary metrics, then ours.
DOCUMENTED = (
    "recall", "precision", "accuracy", "recall_best_constant_classifier", "precision_best_constant_classifier",
    "accuracy_best_constant_classifier", "true_positive_rate", "true_negative_rate", "false_positive_rate",
    "false_negative_rate", "auc", "f0_5", "f1", "f2", "f0_5_best_constant_classifier", "f1_best_constant_classifier",
    "f2_best_constant_classifier",
)  # fmt: skip
OURS = ("log_loss", "brier_score")
SHARES = frozenset(DOCUMENTED)


def compute(y: np.ndarray, p: np.ndarray, yhat: np.ndarray, w: np.ndarray | None = None, *, with_curves: bool = True) -> Figures:
    """Every figure of labels ``y`` (0/1), scores ``p``, predictions ``yhat`` (0/1), weights ``w``
    (None: unweighted)."""
    y = np.asarray(y, dtype=np.float64)
    yhat = np.asarray(yhat, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    one = np.ones_like(y)
    tp, tn = y * yhat, (1 - y) * (1 - yhat)
    figures = {
        "recall": ratio(tp, y, w),
        "precision": ratio(tp, yhat, w),
        "accuracy": ratio(tp + tn, one, w),
        "recall_best_constant_classifier": ratio(y, y, w),
        "precision_best_constant_classifier": ratio(y, one, w),
        "accuracy_best_constant_classifier": ratio(y, one, w),
        "true_positive_rate": ratio(tp, y, w),
        "true_negative_rate": ratio(tn, 1 - y, w),
        "false_positive_rate": ratio((1 - y) * yhat, 1 - y, w),
        "false_negative_rate": ratio(y * (1 - yhat), y, w),
        "auc": auc(p, y.astype(np.int8), w) if len(y) else UNDEFINED,
    }
    for name, beta in F_BETAS.items():
        b2 = beta * beta
        figures[name] = ratio((1 + b2) * tp, b2 * y + yhat, w)
        figures[f"{name}_best_constant_classifier"] = ratio((1 + b2) * y, b2 * y + one, w)
    clipped = np.clip(p, EPS, 1 - EPS)
    figures["log_loss"] = ratio(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)), one, w, share=False)
    figures["brier_score"] = ratio((p - y) ** 2, one, w, share=False)
    return Figures(
        rows=len(y),
        weight=float(w.sum()),
        figures={name: figures[name] for name in (*DOCUMENTED, *OURS)},
        confusion=confusion_matrix(y, yhat, w),
        curves=curves(p, y, w) if with_curves and len(y) else {},
        reliability=reliability_bins(p, y, w) if with_curves and len(y) else [],
    )
