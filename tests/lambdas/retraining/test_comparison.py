"""The promotion gate's paired comparison: figures equal scikit-learn's on the same rows and weights,
a known difference is recovered with an interval that covers it, weights count, identical models
differ by exactly 0, and the decision rule reads the interval's worse end."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from lambdas.retraining import comparison
from lambdas.retraining.objectives import OBJECTIVES, UnsupportedObjective, objective

LOGLOSS, AUC, ERROR = (OBJECTIVES[f"validation:{name}"] for name in ("logloss", "auc", "error"))


def rows(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, weights (1 or 1/0.02, as rule and audit rows) and two models' probabilities, with ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    weights = np.where(rng.random(n) < 0.1, 50.0, 1.0)
    candidate = np.round(np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.25, n), 0, 1), 2)  # rounded: tied scores
    serving = np.round(np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, n), 0, 1), 2)
    return y, weights, candidate, serving


@pytest.mark.parametrize("metric", [LOGLOSS, AUC, ERROR], ids=lambda o: o.measure)
def test_each_figure_equals_scikit_learns_on_the_same_rows_and_weights(metric) -> None:
    y, weights, candidate, serving = rows(1, 500)
    result = comparison.paired_comparison(metric, y, weights, candidate, serving, resamples=50)
    expected = {
        "logloss": lambda p: log_loss(y, p, sample_weight=weights, labels=[0, 1]),
        "auc": lambda p: roc_auc_score(y, p, sample_weight=weights),
        "error": lambda p: 1 - accuracy_score(y, (p > 0.5).astype(int), sample_weight=weights),
    }[metric.measure]
    assert result.candidate.value == pytest.approx(expected(candidate), abs=1e-9)
    assert result.serving.value == pytest.approx(expected(serving), abs=1e-9)
    assert result.difference.value == pytest.approx(expected(candidate) - expected(serving), abs=1e-9)
    assert result.rows == 500 and result.weight == pytest.approx(weights.sum())


def errors_with(rng: np.random.Generator, n: int, candidate_error: float, serving_error: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows where each model is wrong independently with a known probability: the population's
    error-rate difference is candidate_error - serving_error exactly."""
    y = rng.integers(0, 2, n)

    def scores(error: float) -> np.ndarray:
        right = rng.random(n) >= error
        return np.where(right == (y == 1), 0.8, 0.2)

    return y, scores(candidate_error), scores(serving_error)


def test_a_known_difference_is_recovered_and_its_interval_covers_it() -> None:
    y, candidate, serving = errors_with(np.random.default_rng(7), 5_000, 0.10, 0.15)
    result = comparison.paired_comparison(ERROR, y, np.ones(len(y)), candidate, serving)
    assert result.difference.low < -0.05 < result.difference.high
    assert result.difference.value == pytest.approx(-0.05, abs=0.01)
    assert result.difference.high - result.difference.low < 0.04  # paired: narrower than the two figures' own intervals combined
    assert result.candidate.low < result.candidate.value < result.candidate.high
    assert result.resamples == comparison.RESAMPLES and result.skipped == 0


def test_the_interval_covers_the_true_difference_in_at_least_90_of_100_samples() -> None:
    """Nominal 95 %: at least 90 of 100 independent samples (500 rows, 500 resamples each) cover it."""
    covered = 0
    for seed in range(100):
        y, candidate, serving = errors_with(np.random.default_rng(1_000 + seed), 500, 0.10, 0.15)
        result = comparison.paired_comparison(ERROR, y, np.ones(len(y)), candidate, serving, resamples=500, seed=seed)
        covered += result.difference.low <= -0.05 <= result.difference.high
    assert covered >= 90, covered


def test_weights_count_as_repeated_rows_and_change_the_answer() -> None:
    # The candidate is better on the first two rows, worse on the last two.
    y = np.array([1, 0, 1, 0])
    candidate = np.array([0.9, 0.1, 0.3, 0.7])
    serving = np.array([0.6, 0.4, 0.6, 0.4])
    plain = comparison.paired_comparison(LOGLOSS, y, np.ones(4), candidate, serving, resamples=20)
    weighted = comparison.paired_comparison(LOGLOSS, y, np.array([10.0, 10.0, 1.0, 1.0]), candidate, serving, resamples=20)
    assert plain.difference.value > 0 > weighted.difference.value
    repeated = comparison.paired_comparison(LOGLOSS, np.repeat(y, [10, 10, 1, 1]), np.ones(22), np.repeat(candidate, [10, 10, 1, 1]), np.repeat(serving, [10, 10, 1, 1]), resamples=20)
    assert weighted.candidate.value == pytest.approx(repeated.candidate.value, abs=1e-12)
    assert weighted.difference.value == pytest.approx(repeated.difference.value, abs=1e-12)


@pytest.mark.parametrize("metric", [LOGLOSS, AUC, ERROR], ids=lambda o: o.measure)
def test_identical_models_differ_by_exactly_zero_and_promote(metric) -> None:
    y, weights, scores, _ = rows(3, 300)
    result = comparison.paired_comparison(metric, y, weights, scores, scores.copy())
    assert (result.difference.value, result.difference.low, result.difference.high) == (0.0, 0.0, 0.0)
    assert result.promotes(0.0)


def test_the_decision_reads_the_worse_end_of_the_interval_whichever_way_the_figure_improves() -> None:
    rng = np.random.default_rng(5)
    y, weights = rng.integers(0, 2, 400), np.where(rng.random(400) < 0.1, 50.0, 1.0)
    better, worse = (np.clip(0.5 + (y - 0.5) * spread + rng.normal(0, 0.1, 400), 0.01, 0.99) for spread in (0.8, 0.3))
    assert comparison.paired_comparison(LOGLOSS, y, weights, better, worse).promotes(0.0)
    assert not comparison.paired_comparison(LOGLOSS, y, weights, worse, better).promotes(0.01)
    # AUC is to maximise: the worse-by figure is minus the difference.
    higher = comparison.paired_comparison(AUC, y, weights, better, worse)
    assert higher.difference.value > 0 and higher.worse_by.value == -higher.difference.value
    assert higher.worse_by.high == -higher.difference.low and higher.promotes(0.0)
    lower = comparison.paired_comparison(AUC, y, weights, worse, better)
    assert not lower.promotes(0.0) and lower.promotes(lower.worse_by.high)  # exactly at the tolerance: promoted


def test_a_run_is_reproducible_and_another_seed_differs() -> None:
    y, weights, candidate, serving = rows(9, 200)
    first, again, other = (comparison.paired_comparison(LOGLOSS, y, weights, candidate, serving, resamples=300, seed=s) for s in (21, 21, 22))
    assert first == again and first.difference.low != other.difference.low


def test_auc_without_both_labels_is_refused_and_one_class_resamples_are_counted() -> None:
    with pytest.raises(comparison.ComparisonError, match="needs both labels"):
        comparison.paired_comparison(AUC, [1, 1, 1], [1, 1, 1], [0.2, 0.5, 0.9], [0.3, 0.4, 0.8])
    result = comparison.paired_comparison(AUC, [1, 1, 1, 0], [1, 1, 1, 1], [0.2, 0.5, 0.9, 0.1], [0.3, 0.4, 0.8, 0.2], resamples=400)
    assert 0 < result.skipped < 400  # about (3/4)^4 of resamples draw no negative row
    with pytest.raises(comparison.ComparisonError, match="no evaluation rows"):
        comparison.paired_comparison(LOGLOSS, [], [], [], [])


def test_the_gate_refuses_an_objective_it_cannot_compute_naming_the_key() -> None:
    assert objective("validation:auc", goal="maximize").measure == "auc"
    with pytest.raises(UnsupportedObjective, match=r"^retraining\.objective_metric: 'validation:rmse' is not a figure"):
        objective("validation:rmse")
    with pytest.raises(UnsupportedObjective, match=r"^retraining\.objective_goal: validation:auc \(AUC\) is a figure to maximize, not to minimize"):
        objective("validation:auc", goal="minimize")
    with pytest.raises(UnsupportedObjective, match=r"^retraining\.objective_metric: .* binary classifiers' scores, and model.label_names has 3 labels"):
        objective("validation:logloss", label_count=3)


# The gate's interval, checked against known truth. A population of 20,000 scored rows (a latent
# feature x, labels drawn with probability 1/(1+exp(-2.5x)), each model's score that probability with
# its own noise on the logit); review labels the band (0.1 < serving score < 0.9) and a 2 % audit of
# the rest, and the gate holds out 20 % of labels: inclusion probabilities 0.2 and 0.004, weights 5 and
# 250, about 2,400 evaluation rows of which about 32 audit rows carry a third of the weight. The
# estimand is the population's mean log-loss difference (candidate - serving).
def _population(seed: int, candidate_noise: float, serving_noise: float) -> tuple[float, comparison.Comparison]:
    rng = np.random.default_rng(seed)
    n = 20_000
    x = rng.normal(0, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2.5 * x))).astype(int)

    def scores(noise: float) -> np.ndarray:
        return np.clip(1 / (1 + np.exp(-(2.5 * x + rng.normal(0, noise, n)))), 1e-6, 1 - 1e-6)

    serving, candidate = scores(serving_noise), scores(candidate_noise)

    def loss(p: np.ndarray) -> np.ndarray:
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    truth = float(np.mean(loss(candidate) - loss(serving)))
    probability = np.where((serving > 0.1) & (serving < 0.9), 1.0, 0.02) * 0.2
    chosen = rng.random(n) < probability
    result = comparison.paired_comparison(LOGLOSS, y[chosen], 1 / probability[chosen], candidate[chosen], serving[chosen], resamples=1_000, seed=seed)
    return truth, result


@pytest.mark.parametrize(("candidate_noise", "serving_noise"), [(0.6, 0.8), (0.8, 0.6)], ids=["candidate-better", "candidate-worse"])
def test_the_interval_rarely_understates_how_much_worse_the_candidate_is(candidate_noise: float, serving_noise: float) -> None:
    """What promotes a worse model is the truth above the interval's upper end: nominally 2.5 % of runs.
    Over 200 populations it happens at most 11 times (the 99 % binomial bound of 200 x 0.025); the
    lower side, which only refuses a good candidate, is reported (it misses more often: the audit's
    few heavy rows rarely hold the rare confidently wrong predictions)."""
    above = below = 0
    for seed in range(200):
        truth, result = _population(seed, candidate_noise, serving_noise)
        above += truth > result.difference.high
        below += truth < result.difference.low
    print(f"\n{candidate_noise=} {serving_noise=}: truth above the upper end {above}/200, below the lower end {below}/200, two-sided coverage {200 - above - below}/200")
    assert above <= 11
    assert 200 - above - below >= 160  # two-sided: stated in docs/retraining.md (87-96 % measured)
