"""Quality estimated from the scores alone: confidence-based performance estimation (CBPE, as
NannyML), after checking the scores' calibration on the reference (the test set's scores).

Calibration check, on the reference's labels ``y`` and scores ``s``:

- Cox's recalibration test: the logistic regression ``logit P(y = 1) = a + b logit(s)`` (scores
  clipped to [1e-6, 1 - 1e-6]) fitted by Newton's method; the likelihood-ratio statistic of
  ``a = 0, b = 1`` (calibrated scores) against the fit is chi-squared with 2 degrees of freedom, so
  its p-value is ``exp(-statistic / 2)``. Rule: the scores are recalibrated when the p-value is
  below 0.05 (the test rejects calibration at the 5 % level); otherwise they are used as they are.
  (It tests calibration in the large and the spread of the scores together; Spiegelhalter's z, for
  one, misses scores that are too high everywhere, whose errors above and below 0.5 cancel.)
- Expected calibration error over ten equal-count bins, ``sum(n_b / n |mean(y_b) - mean(s_b)|)``,
  reported with the reliability bins (the report's calibration plot); it does not decide.

Recalibration: isotonic regression of ``y`` on ``s`` (pool-adjacent-violators, weighted by
count over the distinct scores; predictions interpolated linearly between them and held constant
beyond them, as scikit-learn's ``IsotonicRegression(out_of_bounds="clip")``).

Estimate, per period, from the calibrated probability ``q_i`` of each captured row and the model's
decision ``yhat_i = [s_i >= threshold]``: the expected confusion matrix ``TP = sum(q yhat)``,
``FP = sum((1 - q) yhat)``, ``FN = sum(q (1 - yhat))``, ``TN = sum((1 - q)(1 - yhat))`` and from it
accuracy, precision, recall and F1; AUC is the area under the ROC curve with each row counted as a
positive of weight ``q`` and a negative of weight ``1 - q``. Each is ``metrics.ratio`` of expected
totals (``metrics.compute`` with ``q`` for the labels).

Interval: two variances added.

1. The period's own randomness: given the scores, the labels are independent Bernoulli(``q_i``)
   (a Poisson-binomial count), so a figure ``R = A / B`` with ``A`` and ``B`` linear in the labels
   (``a_i = alpha_i + beta_i y_i``, ``b_i = gamma_i + delta_i y_i``) has ``v1 = sum((beta_i - R
   delta_i)^2 q_i (1 - q_i)) / B^2`` by linearization; AUC's ``beta_i - R delta_i`` is its derivative
   with respect to ``y_i`` (placement values, as in ``metrics.auc``).
2. The reference's: the calibration is known only as well as the reference pins it down.
   ``BOOTSTRAP`` resamples of the reference, each recalibrated by isotonic regression, each giving the
   period's estimate (on at most ``BOOTSTRAP_ROWS`` of its rows, a fixed random subset); ``v2`` is
   their variance. Isotonic refits are used whether or not the check recalibrated, so ``v2`` is how
   far the period's figure moves over calibrations the reference cannot tell apart.

The 95 % interval is ``metrics.wilson`` at the variance ``v1 + v2``. CBPE assumes the scores stay
calibrated: no concept change (``P(y | x)`` as on the reference); a covariate shift is what it is for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lambdas.monitoring.quality import metrics

CALIBRATION_FILE = "calibration.json"
ESTIMATED = ("accuracy", "precision", "recall", "f1", "auc")
SIGNIFICANCE = 0.05  # Cox's test below it: the scores are recalibrated
CLIP = 1e-6  # scores are clipped to [CLIP, 1 - CLIP] for their logit
NEWTON_STEPS = 50
ECE_BINS = metrics.RELIABILITY_BINS
BOOTSTRAP = 200
BOOTSTRAP_ROWS = 20_000
SIMULATIONS = 400
SEED = 21
MAX_REFERENCE_POINTS = 10_000  # distinct reference scores kept in calibration.json; more are rounded
ROUNDING = 4


class CalibrationError(ValueError):
    """A calibration document that cannot be used (the run says why)."""


def isotonic(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct x ascending, fitted non-decreasing value at each): weighted pool-adjacent-violators."""
    distinct, group = np.unique(x, return_inverse=True)
    total = np.bincount(group, weights=weight, minlength=len(distinct))
    mean = np.bincount(group, weights=weight * y, minlength=len(distinct))
    keep = total > 0
    distinct, total, mean = distinct[keep], total[keep], mean[keep] / total[keep]
    values: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for value, w in zip(mean.tolist(), total.tolist(), strict=True):
        values.append(value)
        weights.append(w)
        sizes.append(1)
        while len(values) > 1 and values[-2] > values[-1]:
            w2, w1 = weights.pop(), weights.pop()
            v2, v1 = values.pop(), values.pop()
            s2, s1 = sizes.pop(), sizes.pop()
            weights.append(w1 + w2)
            values.append((v1 * w1 + v2 * w2) / (w1 + w2))
            sizes.append(s1 + s2)
    fitted = np.repeat(np.array(values), sizes)
    return distinct, np.clip(fitted, 0.0, 1.0)


@dataclass(frozen=True)
class Reference:
    """The reference's distinct scores with their counts of positive and negative labels."""

    scores: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray, scores: np.ndarray) -> Reference:
        scores = np.asarray(scores, dtype=np.float64)
        if len(np.unique(scores)) > MAX_REFERENCE_POINTS:
            scores = np.round(scores, ROUNDING)
        distinct, group = np.unique(scores, return_inverse=True)
        positives = np.bincount(group, weights=np.asarray(labels, dtype=np.float64), minlength=len(distinct))
        counts = np.bincount(group, minlength=len(distinct)).astype(np.float64)
        return cls(distinct, positives, counts - positives)

    @property
    def rows(self) -> int:
        return int(round(float((self.positives + self.negatives).sum())))

    def expanded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, labels, weights) with two entries a distinct score: its positives and its negatives."""
        scores = np.r_[self.scores, self.scores]
        labels = np.r_[np.ones(len(self.scores)), np.zeros(len(self.scores))]
        return scores, labels, np.r_[self.positives, self.negatives]

    def document(self) -> dict[str, Any]:
        return {"scores": self.scores.tolist(), "positives": self.positives.astype(int).tolist(), "negatives": self.negatives.astype(int).tolist()}

    @classmethod
    def from_document(cls, document: Any) -> Reference:
        try:
            scores = np.asarray(document["scores"], dtype=np.float64)
            positives = np.asarray(document["positives"], dtype=np.float64)
            negatives = np.asarray(document["negatives"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"reference: {error!r}") from None
        if not (scores.shape == positives.shape == negatives.shape) or scores.ndim != 1 or not len(scores):
            raise CalibrationError("reference: scores, positives and negatives must be lists of one length")
        if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1 or positives.min() < 0 or negatives.min() < 0:
            raise CalibrationError("reference: scores must be in [0, 1] and counts non-negative")
        return cls(scores, positives, negatives)


@dataclass(frozen=True)
class Calibration:
    """The reference's calibration check and the map the estimate uses (identity when not recalibrated)."""

    reference: Reference
    intercept: float  # Cox's a and b (0 and 1 for calibrated scores)
    slope: float
    statistic: float  # the likelihood-ratio statistic of a = 0, b = 1
    p_value: float
    ece: float
    recalibrated: bool
    map_x: np.ndarray | None  # isotonic map (None: identity)
    map_y: np.ndarray | None
    reliability: list[dict[str, float]]

    def apply(self, scores: np.ndarray) -> np.ndarray:
        if self.map_x is None:
            return np.asarray(scores, dtype=np.float64)
        return np.interp(scores, self.map_x, self.map_y)

    def check(self) -> dict[str, Any]:
        """The calibration check: in calibration.json and in each period's estimate (statistics.json)."""
        return {
            "test": "Cox: logit P(y) = a + b logit(score), likelihood ratio of a = 0, b = 1 (chi-squared, 2 df)",
            "intercept": _finite(self.intercept),
            "slope": _finite(self.slope),
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "expected_calibration_error": self.ece,
            "bins": ECE_BINS,
            "rule": f"recalibrate (isotonic regression) when the p-value is below {SIGNIFICANCE:g}",
            "recalibrated": self.recalibrated,
        }

    def document(self) -> dict[str, Any]:
        return {
            "version": 1,
            "method": "cbpe",
            "check": self.check(),
            "calibration": (
                {"method": "isotonic", "x": self.map_x.tolist(), "y": self.map_y.tolist()} if self.map_x is not None else {"method": "none"}
            ),
            "reliability": self.reliability,
            "reference": {"rows": self.reference.rows, **self.reference.document()},
        }

    @classmethod
    def from_document(cls, document: Any) -> Calibration:
        if not isinstance(document, dict) or document.get("method") != "cbpe":
            raise CalibrationError("not a calibration document of this app (no \"method\": \"cbpe\")")
        reference = Reference.from_document(document.get("reference"))
        return cls.of(reference)  # recomputed from the reference: the file's other figures are for people

    @classmethod
    def of(cls, reference: Reference) -> Calibration:
        scores, labels, weights = reference.expanded()
        n = float(weights.sum())
        intercept, slope, statistic = cox_test(scores, labels, weights)
        p_value = math.exp(-statistic / 2) if math.isfinite(statistic) else math.nan
        reliability = metrics.reliability_bins(scores, labels, weights)
        ece = sum(b["rows"] / n * abs(b["observed"] - b["mean_score"]) for b in reliability) if n else math.nan
        recalibrated = p_value < SIGNIFICANCE  # False for NaN: a test that cannot be fitted decides nothing
        map_x = map_y = None
        if recalibrated:
            map_x, map_y = isotonic(scores, labels, weights)
        return cls(reference, intercept, slope, statistic, p_value, float(ece), recalibrated, map_x, map_y, reliability)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def cox_test(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """(a, b, likelihood-ratio statistic) of Cox's recalibration regression (the module docstring);
    NaNs when Newton's method cannot fit it (one class only)."""
    clipped = np.clip(scores, CLIP, 1 - CLIP)
    design = np.column_stack([np.ones(len(scores)), np.log(clipped / (1 - clipped))])

    def log_likelihood(theta: np.ndarray) -> float:
        z = design @ theta
        return float((weights * (labels * z - np.logaddexp(0.0, z))).sum())

    theta = np.array([0.0, 1.0])
    calibrated = log_likelihood(theta)
    try:
        for _ in range(NEWTON_STEPS):
            p = 1.0 / (1.0 + np.exp(-(design @ theta)))
            gradient = design.T @ (weights * (labels - p))
            hessian = (design * (weights * p * (1 - p))[:, None]).T @ design
            step = np.linalg.solve(hessian, gradient)
            theta = theta + step
            if not np.all(np.isfinite(theta)):
                return math.nan, math.nan, math.nan
            if np.abs(step).max() < 1e-10:
                break
    except np.linalg.LinAlgError:
        return math.nan, math.nan, math.nan
    return float(theta[0]), float(theta[1]), max(0.0, 2 * (log_likelihood(theta) - calibrated))


@dataclass(frozen=True)
class Estimate:
    """The period's estimated figures (``metrics.Figure`` each) and what they rest on."""

    rows: int
    figures: dict[str, metrics.Figure]
    recalibrated: bool
    reference_rows: int
    check: dict[str, Any]  # the reference's calibration check (Calibration.check)

    def document(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "method": "cbpe",
            "recalibrated": self.recalibrated,
            "reference_rows": self.reference_rows,
            "calibration_check": self.check,
            "figures": {name: {**figure.document(), "interval_95": figure.interval()} for name, figure in self.figures.items()},
        }


def expected_figures(q: np.ndarray, scores: np.ndarray, yhat: np.ndarray) -> dict[str, tuple[float, float]]:
    """Each estimated figure and its period variance ``v1`` (the module docstring), given ``q``."""
    n = len(q)
    bern = q * (1 - q)
    found = {}
    one = np.ones(n)

    def ratio(alpha_beta: tuple[np.ndarray, np.ndarray], gamma_delta: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
        (alpha, beta), (gamma, delta) = alpha_beta, gamma_delta
        denominator = float((gamma + delta * q).sum())
        if denominator <= 0:
            return math.nan, math.nan
        value = float((alpha + beta * q).sum()) / denominator
        slope = beta - value * delta
        return value, float((slope * slope * bern).sum()) / denominator**2

    zero = np.zeros(n)
    found["accuracy"] = ratio((1 - yhat, 2 * yhat - 1), (one, zero))
    found["precision"] = ratio((zero, yhat), (yhat, zero))
    found["recall"] = ratio((zero, yhat), (zero, one))
    found["f1"] = ratio((zero, 2 * yhat), (yhat, one))
    found["auc"] = _soft_auc(q, scores)
    return found


def _soft_auc(q: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUC with each row a positive of weight q and a negative of weight 1 - q, and its variance
    over Bernoulli(q) labels by linearization."""
    w1, w0 = float(q.sum()), float((1 - q).sum())
    if w1 <= 0 or w0 <= 0:
        return math.nan, math.nan
    distinct, group = np.unique(scores, return_inverse=True)
    pos_w = np.bincount(group, weights=q, minlength=len(distinct))
    neg_w = np.bincount(group, weights=1 - q, minlength=len(distinct))
    beats = ((np.cumsum(neg_w) - neg_w) + 0.5 * neg_w)[group]  # sum_j (1 - q_j) h(s_i, s_j)
    beaten = ((pos_w.sum() - np.cumsum(pos_w)) + 0.5 * pos_w)[group]  # sum_j q_j h(s_j, s_i)
    total = float((q * beats).sum())
    value = total / (w1 * w0)
    derivative = (beats - beaten - value * (w0 - w1)) / (w1 * w0)
    return value, float((derivative * derivative * q * (1 - q)).sum())


def estimate(calibration: Calibration, scores: np.ndarray, threshold: float) -> Estimate:
    """The period's CBPE figures with their 95 % intervals (the module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    yhat = (scores >= threshold).astype(np.float64)
    if not len(scores):
        return Estimate(0, {name: metrics.UNDEFINED for name in ESTIMATED}, calibration.recalibrated, calibration.reference.rows, calibration.check())
    q = calibration.apply(scores)
    centre = expected_figures(q, scores, yhat)
    spread = _reference_variance(calibration.reference, scores, yhat)
    draws = _realized_draws(q, scores, yhat, spread)
    figures = {}
    for name in ESTIMATED:
        value, variance = centre[name]
        finite = draws[name][np.isfinite(draws[name])]
        if math.isnan(value) or len(finite) < SIMULATIONS // 2:
            figures[name] = metrics.UNDEFINED if math.isnan(value) else metrics.Figure(value, math.nan, math.nan, math.nan)
            continue
        low, high = np.quantile(finite, [0.025, 0.975])
        figures[name] = metrics.Figure(value, math.sqrt(variance + spread[name]), max(0.0, min(float(low), value)), min(1.0, max(float(high), value)))
    return Estimate(len(scores), figures, calibration.recalibrated, calibration.reference.rows, calibration.check())


def _realized_draws(q: np.ndarray, scores: np.ndarray, yhat: np.ndarray, spread: dict[str, float]) -> dict[str, np.ndarray]:
    """``SIMULATIONS`` draws of each figure as the period could realize it: labels drawn
    Bernoulli(``q``) (the Poisson-binomial part, exact however few the rows), plus a normal draw of
    the reference's variance ``v2``."""
    rng = np.random.default_rng(SEED + 1)
    distinct, group = np.unique(scores, return_inverse=True)
    predicted = yhat.astype(bool)
    predicted_positive = float(predicted.sum())
    n = len(q)
    draws = {name: np.empty(SIMULATIONS) for name in ESTIMATED}
    for b in range(SIMULATIONS):
        y = rng.random(n) < q
        positives = float(y.sum())
        tp = float(np.count_nonzero(y & predicted))
        tn = n - positives - predicted_positive + tp
        draws["accuracy"][b] = (tp + tn) / n
        draws["precision"][b] = tp / predicted_positive if predicted_positive else math.nan
        draws["recall"][b] = tp / positives if positives else math.nan
        draws["f1"][b] = 2 * tp / (positives + predicted_positive) if positives + predicted_positive else math.nan
        pos_w = np.bincount(group, weights=y, minlength=len(distinct))
        neg_w = np.bincount(group, minlength=len(distinct)) - pos_w
        negatives = n - positives
        below = np.cumsum(neg_w) - 0.5 * neg_w
        draws["auc"][b] = float((pos_w * below).sum()) / (positives * negatives) if positives and negatives else math.nan
    for name in ESTIMATED:
        draws[name] += rng.normal(0.0, math.sqrt(spread[name]), SIMULATIONS)
    return draws


def _reference_variance(reference: Reference, scores: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    """``v2``: the variance of the estimate over isotonic calibrations of bootstrap resamples."""
    rng = np.random.default_rng(SEED)
    if len(scores) > BOOTSTRAP_ROWS:
        pick = rng.choice(len(scores), BOOTSTRAP_ROWS, replace=False)
        scores, yhat = scores[pick], yhat[pick]
    x, labels, weights = reference.expanded()
    rows = reference.rows
    draws = {name: [] for name in ESTIMATED}
    share = weights / weights.sum()
    for _ in range(BOOTSTRAP):
        resample = rng.multinomial(rows, share).astype(np.float64)
        map_x, map_y = isotonic(x, labels, resample)
        found = expected_figures(np.interp(scores, map_x, map_y), scores, yhat)
        for name in ESTIMATED:
            draws[name].append(found[name][0])
    variances = {}
    for name, values in draws.items():
        finite = np.asarray(values)[np.isfinite(values)]
        variances[name] = float(finite.var(ddof=1)) if len(finite) > 1 else 0.0
    return variances
