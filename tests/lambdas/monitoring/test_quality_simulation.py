"""A simulation with known truth: does the weighted figure's 95 % interval cover the accuracy (and
the precision and AUC) of all predictions, and is the unweighted figure over reviewed rows biased?

Each seed draws a population of ``POPULATION`` scored predictions: scores from Beta(0.35, 0.35)
(many confident, some uncertain, as a good classifier's), each label Bernoulli(score) (a calibrated
model), the prediction ``score >= 0.5``. Capture keeps each request with probability ``CAPTURE``
(SageMaker's sampling). The review rule selects the captured rows in the band 0.1 < score < 0.9;
the audit selects ``AUDIT`` of the other captured rows at random. Each reviewed row's inclusion
probability is ``CAPTURE`` (rule) or ``CAPTURE * AUDIT`` (audit), as the capture filter writes it;
reviewers answer the truth. The truth is each figure over the whole population (what the monitor
claims to estimate), computed from the drawn labels.

With non-response, reviewers answer 70 % of rule rows and 40 % of audit rows at random (missing at
random within the stratum). The weights are the monitor's when it knows which rows were selected
(``evaluation._weights``): each stratum's answered rows share the captured rows it stands for
(post-stratification, non-response folded in); they are compared with plain Horvitz-Thompson's
``1 / inclusion probability``.
"""

from __future__ import annotations

import numpy as np
import pytest

from lambdas.monitoring.quality import metrics
from lambdas.monitoring.quality.evaluation import Response, _weights

POPULATION, CAPTURE, AUDIT, SEEDS = 20_000, 0.5, 0.02, 100
LOWER, UPPER = 0.1, 0.9


def simulate(seed: int, answered: dict[str, float] | None = None) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    score = rng.beta(0.35, 0.35, POPULATION)
    label = (rng.random(POPULATION) < score).astype(np.float64)
    predicted = (score >= 0.5).astype(np.float64)
    correct = (label == predicted).astype(np.float64)
    captured = rng.random(POPULATION) < CAPTURE
    rule = captured & (LOWER < score) & (score < UPPER)
    audit = captured & ~rule & (rng.random(POPULATION) < AUDIT)
    stratum = np.where(rule, "rule", np.where(audit, "audit", ""))
    reviewed = rule | audit
    if answered is not None:
        answers = np.zeros(POPULATION, dtype=bool)
        for name, rate in answered.items():
            answers |= (stratum == name) & (rng.random(POPULATION) < rate)
        reviewed &= answers
    # What the monitor knows of the captured rows: each stratum's selected and answered rows, and the
    # captured rows it stands for (the rule's own; for the audit, every row the rule left).
    population = {"rule": int(rule.sum()), "audit": int((captured & ~rule).sum())}
    response = {name: Response(int((stratum == name).sum()), int(((stratum == name) & reviewed).sum()), population[name]) for name in population}
    probability = np.where(rule, CAPTURE, CAPTURE * AUDIT)[reviewed]
    weights = _weights(probability, list(stratum[reviewed]), response)
    ones = np.ones(int(reviewed.sum()))
    weighted = metrics.ratio(correct[reviewed], ones, weights)
    plain = _weights(probability, list(stratum[reviewed]), None)  # 1 / probability: Horvitz-Thompson without the counts
    horvitz_thompson = metrics.ratio(correct[reviewed], ones, plain)
    unweighted = metrics.ratio(correct[reviewed], ones, ones)
    precision = metrics.ratio(label[reviewed] * predicted[reviewed], predicted[reviewed], weights)
    auc = metrics.auc(score[reviewed], label[reviewed], weights)
    everyone = np.ones(POPULATION)
    return {
        "truth": float(correct.mean()),
        "weighted": weighted.value, "weighted_low": weighted.low, "weighted_high": weighted.high,
        "horvitz_thompson": horvitz_thompson.value, "horvitz_thompson_low": horvitz_thompson.low, "horvitz_thompson_high": horvitz_thompson.high,
        "unweighted": unweighted.value, "unweighted_low": unweighted.low, "unweighted_high": unweighted.high,
        "precision_truth": float((label * predicted).sum() / predicted.sum()),
        "precision": precision.value, "precision_low": precision.low, "precision_high": precision.high,
        "auc_truth": metrics.auc(score, label, everyone).value, "auc": auc.value, "auc_low": auc.low, "auc_high": auc.high,
        "reviewed": float(reviewed.sum()), "audited": float((audit & reviewed).sum()),
    }  # fmt: skip


def table(answered: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    runs = [simulate(seed, answered) for seed in range(SEEDS)]
    return {key: np.array([run[key] for run in runs]) for key in runs[0]}


def covered(found: dict[str, np.ndarray], kind: str, truth: str = "truth") -> int:
    return int(((found[f"{kind}_low"] <= found[truth]) & (found[truth] <= found[f"{kind}_high"])).sum())


@pytest.fixture(scope="module")
def full_response() -> dict[str, np.ndarray]:
    return table()


def test_the_weighted_interval_covers_the_accuracy_of_all_predictions_at_least_93_times_in_100(full_response):
    assert covered(full_response, "weighted") >= 93
    # Unbiased: the mean error over the seeds is within three standard errors of that mean.
    error = full_response["weighted"] - full_response["truth"]
    assert abs(error.mean()) < 3 * error.std(ddof=1) / np.sqrt(SEEDS)
    assert full_response["audited"].mean() > 50  # the audit rows are few; it works on them


def test_scaling_the_audit_to_the_rows_it_drew_from_is_closer_to_the_truth_than_plain_horvitz_thompson(full_response):
    """Post-stratification (the monitor's weights): the audit's rows stand for the captured rows the
    rule left, which the monitor counts, not for drawn / fraction; over the seeds its error spreads
    less than plain Horvitz-Thompson's, and both stay unbiased and cover the truth."""
    scaled, plain = (full_response[kind] - full_response["truth"] for kind in ("weighted", "horvitz_thompson"))
    print(f"\naccuracy error over {SEEDS} seeds: post-stratified sd {scaled.std(ddof=1):.4f}, plain Horvitz-Thompson sd {plain.std(ddof=1):.4f}; "
          f"coverage {covered(full_response, 'weighted')} and {covered(full_response, 'horvitz_thompson')} in {SEEDS}")
    assert scaled.std(ddof=1) < plain.std(ddof=1)
    assert abs(plain.mean()) < 3 * plain.std(ddof=1) / np.sqrt(SEEDS)


@pytest.mark.parametrize("figure", ["precision", "auc"])
def test_the_weighted_precision_and_auc_intervals_cover_those_of_all_predictions_at_least_93_times_in_100(full_response, figure):
    assert covered(full_response, figure, f"{figure}_truth") >= 93
    error = full_response[figure] - full_response[f"{figure}_truth"]
    assert abs(error.mean()) < 3 * error.std(ddof=1) / np.sqrt(SEEDS)


def test_the_unweighted_figure_over_reviewed_rows_is_biased_far_beyond_its_own_interval(full_response):
    error = full_response["unweighted"] - full_response["truth"]
    half_width = (full_response["unweighted_high"] - full_response["unweighted_low"]) / 2
    # Reviewed rows are mostly the uncertain band's: the figure is far too low, every time.
    assert error.mean() < -0.08
    assert abs(error.mean()) > 5 * half_width.mean()
    assert covered(full_response, "unweighted") == 0


def test_tasks_left_unanswered_at_random_within_their_stratum_keep_the_coverage():
    found = table({"rule": 0.7, "audit": 0.4})
    for kind, truth in (("weighted", "truth"), ("precision", "precision_truth"), ("auc", "auc_truth")):
        assert covered(found, kind, truth) >= 93, kind
        error = found[kind] - found[truth]
        assert abs(error.mean()) < 3 * error.std(ddof=1) / np.sqrt(SEEDS), kind
