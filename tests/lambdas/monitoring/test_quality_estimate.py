"""The label-free estimate (CBPE): the calibration check and isotonic recalibration, and the
estimate against realized quality on the bundled test set (``test-scores.csv``: the bundled model's
scores on its 114 held-out rows) with no concept change and under covariate shifts.

A covariate shift here is a subset of the test rows drawn with probability proportional to
``exp(1.5 z)`` of one feature's z-score (without replacement, 57 rows): the inputs move, each row
keeps its own label, so ``P(y | x)`` is the reference's. The shifts below move the share of benign
rows from 0.37 to 0.93.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from lambdas.monitoring.quality import documents, estimate, metrics
from stacks.shared.default_model import FEATURE_NAMES, TEST_CSV, TEST_SCORES_CSV


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return documents.read_scores(TEST_SCORES_CSV.read_text(), source="test-scores.csv")


@pytest.fixture(scope="module")
def calibration(test_set) -> estimate.Calibration:
    return estimate.Calibration.of(estimate.Reference.of(*test_set))


def test_isotonic_regression_equals_scikit_learns():
    rng = np.random.default_rng(3)
    x = np.round(rng.random(500), 2)  # ties
    y = (rng.random(500) < x**2).astype(float)
    w = rng.uniform(0.2, 3.0, 500)
    map_x, map_y = estimate.isotonic(x, y, w)
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(x, y, sample_weight=w)
    points = np.r_[rng.random(2_000), -0.5, 1.5, x]
    np.testing.assert_allclose(np.interp(points, map_x, map_y), fitted.predict(points), atol=1e-12)
    assert np.all(np.diff(map_y) >= 0)


def test_the_bundled_models_scores_pass_the_calibration_check_and_are_used_as_they_are(calibration, test_set):
    assert not calibration.recalibrated and calibration.p_value > estimate.SIGNIFICANCE
    assert calibration.statistic == pytest.approx(2.215, abs=1e-3) and calibration.p_value == pytest.approx(0.330, abs=1e-3)
    assert (calibration.intercept, calibration.slope) == pytest.approx((-0.547, 1.453), abs=1e-3)
    assert 0 < calibration.ece < 0.05 and sum(b["rows"] for b in calibration.reliability) == 114
    np.testing.assert_array_equal(calibration.apply(test_set[1]), test_set[1])


def test_an_overconfident_models_scores_are_recalibrated_and_then_estimate_what_is_realized():
    """Labels drawn with probability score^2: the scores overstate the positives everywhere (errors
    that Spiegelhalter's z would cancel out above and below 0.5). Cox's test rejects them; the
    recalibrated estimate covers a fresh period's realized figures, the raw scores' does not."""
    rng = np.random.default_rng(5)
    scores = rng.beta(2, 2, 4_000)
    labels = (rng.random(4_000) < scores**2).astype(float)
    found = estimate.Calibration.of(estimate.Reference.of(labels, scores))
    assert found.recalibrated and found.p_value < 1e-100 and found.intercept < 0
    period = rng.beta(2, 2, 5_000)
    realized = metrics.compute((rng.random(5_000) < period**2).astype(float), period, (period >= 0.5).astype(float))
    estimated = estimate.estimate(found, period, 0.5)
    for name in estimate.ESTIMATED:
        figure = estimated.figures[name]
        assert figure.low <= realized.value(name) <= figure.high, name
    identity = estimate.Calibration(found.reference, found.intercept, found.slope, found.statistic, found.p_value, found.ece, False, None, None, [])
    raw = estimate.estimate(identity, period, 0.5).figures["precision"]
    assert not raw.low <= realized.value("precision") <= raw.high


def test_the_estimate_covers_realized_quality_on_the_test_set(calibration, test_set):
    labels, scores = test_set
    realized = metrics.compute(labels, scores, (scores >= 0.5).astype(float))
    estimated = estimate.estimate(calibration, scores, 0.5)
    assert estimated.rows == 114 and estimated.reference_rows == 114
    for name in estimate.ESTIMATED:
        figure = estimated.figures[name]
        assert figure.low <= realized.value(name) <= figure.high, name
        assert figure.low <= figure.value <= figure.high and figure.standard_error > 0
    # Where it lands: accuracy 0.951 estimated [0.904, 0.994], 0.974 realized.
    assert estimated.figures["accuracy"].value == pytest.approx(0.9508, abs=1e-3)


@pytest.mark.parametrize("feature", ["mean_radius", "worst_area", "worst_concave_points", "mean_texture"])
@pytest.mark.parametrize("direction", [1.5, -1.5])
def test_the_estimate_covers_realized_quality_under_a_covariate_shift(calibration, test_set, feature, direction):
    labels, scores = test_set
    values = np.loadtxt(TEST_CSV, delimiter=",")[:, 1 + FEATURE_NAMES.index(feature)]
    z = (values - values.mean()) / values.std()
    weights = np.exp(direction * z)
    rows = np.random.default_rng(5).choice(len(labels), 57, replace=False, p=weights / weights.sum())
    realized = metrics.compute(labels[rows], scores[rows], (scores[rows] >= 0.5).astype(float))
    estimated = estimate.estimate(calibration, scores[rows], 0.5)
    for name in estimate.ESTIMATED:
        figure = estimated.figures[name]
        assert figure.low <= realized.value(name) <= figure.high, name
    # The shift is real: the share of benign rows moved well away from the test set's 0.62.
    assert abs(labels[rows].mean() - labels.mean()) > 0.1


def test_the_estimate_follows_the_scores_not_the_labels(calibration):
    """More uncertain scores, lower estimated accuracy: the estimate reads the scores alone."""
    confident = estimate.estimate(calibration, np.r_[np.full(50, 0.01), np.full(50, 0.99)], 0.5)
    uncertain = estimate.estimate(calibration, np.r_[np.full(50, 0.3), np.full(50, 0.7)], 0.5)
    assert confident.figures["accuracy"].value == pytest.approx(0.99)
    assert uncertain.figures["accuracy"].value == pytest.approx(0.7)
    assert uncertain.figures["accuracy"].high < confident.figures["accuracy"].low


def test_a_period_without_scores_or_with_one_class_predicted_has_undefined_figures_not_errors(calibration):
    empty = estimate.estimate(calibration, np.array([]), 0.5)
    assert empty.rows == 0 and not any(f.defined for f in empty.figures.values())
    negatives = estimate.estimate(calibration, np.full(20, 0.01), 0.5)
    assert not negatives.figures["precision"].defined and negatives.figures["accuracy"].defined


def test_the_calibration_document_round_trips_and_bad_ones_are_refused(calibration):
    document = calibration.document()
    again = estimate.Calibration.from_document(document)
    assert again.statistic == calibration.statistic and again.reference.rows == 114 and again.recalibrated is False
    assert document["check"]["rule"] == "recalibrate (isotonic regression) when the p-value is below 0.05"
    for bad, message in (
        ({"method": "other"}, "not a calibration document"),
        ({"method": "cbpe", "reference": {"scores": [0.5, 2.0], "positives": [1, 0], "negatives": [0, 1]}}, "scores must be in"),
        ({"method": "cbpe", "reference": {"scores": [0.5], "positives": [1, 0], "negatives": [0]}}, "one length"),
    ):
        with pytest.raises(estimate.CalibrationError, match=message):
            estimate.Calibration.from_document(bad)
