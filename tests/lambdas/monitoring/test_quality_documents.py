"""The model-quality documents: the baseline from test-set scores (Model Monitor's constraints
shape), the constraint check and its violations, and what the open baselines resource publishes."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pytest
from sklearn import metrics as sk

from lambdas.monitoring.open import baseline
from lambdas.monitoring.quality import documents, metrics
from lambdas.monitoring.quality.estimate import Calibration, Reference, estimate
from lambdas.monitoring.quality.evaluation import check
from stacks.shared.default_model import TEST_SCORES_CSV
from tests.lambdas.aws_env import REGION


@pytest.fixture(scope="module")
def built() -> dict:
    return documents.baseline_documents(TEST_SCORES_CSV.read_text(), source="test-scores.csv", threshold=0.5, tolerance=0.05)


def test_the_constraints_are_the_test_set_figures_less_the_tolerance(built):
    labels, scores = documents.read_scores(TEST_SCORES_CSV.read_text(), source="x")
    predicted = (scores >= 0.5).astype(int)
    expected = {
        "accuracy": sk.accuracy_score(labels, predicted), "precision": sk.precision_score(labels, predicted),
        "recall": sk.recall_score(labels, predicted), "f1": sk.f1_score(labels, predicted), "auc": sk.roc_auc_score(labels, scores),
    }  # fmt: skip
    constraints = built["constraints.json"]["binary_classification_constraints"]
    assert set(constraints) == set(expected)
    for name, value in expected.items():
        assert constraints[name] == {"threshold": pytest.approx(value - 0.05, abs=1e-6), "comparison_operator": "LessThanThreshold"}
        assert built["statistics.json"]["binary_classification_metrics"][name]["value"] == pytest.approx(value, abs=1e-9)
    assert built["statistics.json"]["dataset"] == {"item_count": 114}
    assert built["calibration.json"]["method"] == "cbpe" and built["calibration.json"]["reference"]["rows"] == 114


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("probability,label\n0.5,1\n", "the header is 'probability,label', expected label,probability"),
        ("label,probability\n1,0.5,3\n", "line 2: 3 fields"),
        ("label,probability\n1,0.9\n2,0.5\n", "line 3: label '2' is not 0 or 1"),
        ("label,probability\n1,high\n", "line 2: could not convert"),
        ("label,probability\n1,1.5\n", "line 2: probability '1.5' is not in [0, 1]"),
        ("label,probability\n", "has no rows"),
        ("label,probability\n1,0.9\n1,0.8\n", "every label is 1"),
    ],
)
def test_test_set_scores_that_cannot_be_used_are_refused_naming_the_line(text, message):
    with pytest.raises(documents.ScoresError, match=message.replace("[", r"\[").replace("]", r"\]")):
        documents.read_scores(text, source="s3://d/scores.csv")


def test_the_check_needs_the_whole_interval_below_and_falls_back_on_the_estimate(built):
    constraints = built["constraints.json"]["binary_classification_constraints"]
    threshold = constraints["accuracy"]["threshold"]
    # 40 rows, 34 right: 0.85 is below the threshold (0.92), but its interval reaches above it: no violation.
    y = np.r_[np.ones(34), np.zeros(6)]
    few = metrics.compute(y, np.full(40, 0.9), np.ones(40))
    assert few.value("accuracy") < threshold < few.figures["accuracy"].high
    violations, checked = check(constraints, few, "unweighted", None)
    assert "accuracy" not in {v.metric for v in violations} and checked["accuracy"] is False
    # 400 rows at the same accuracy: the whole interval is below, a violation.
    many = metrics.compute(np.tile(y, 10), np.full(400, 0.9), np.ones(400))
    violations, checked = check(constraints, many, "unweighted", None)
    [violation] = [v for v in violations if v.metric == "accuracy"]
    assert checked["accuracy"] is True
    document = violation.document()
    assert set(document) == {"constraint_check_type", "description", "metric_name"} and document["constraint_check_type"] == "LessThanThreshold"
    assert document["description"].startswith("Metric accuracy with 0.85 (95 % interval 0.8")
    # No labels: the estimate of uncertain scores stands in, named estimated_<metric>. (A reference of
    # 5,000 calibrated rows pins the calibration down at 0.6; the 114 test rows hold too few there.)
    rng = np.random.default_rng(2)
    scores = rng.random(5_000)
    calibration = Calibration.of(Reference.of((rng.random(5_000) < scores).astype(float), scores))
    uncertain = estimate(calibration, np.full(2_000, 0.6), 0.5)
    assert uncertain.figures["accuracy"].high < threshold
    violations, checked = check(constraints, None, "", uncertain)
    assert {v.metric for v in violations} >= {"estimated_accuracy"} and checked["accuracy"] is True


def test_the_open_baselines_resource_publishes_the_model_quality_baseline(mocked_aws, built):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="monitoring-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="monitoring-bucket", Key="datasets/test-scores.csv", Body=TEST_SCORES_CSV.read_bytes())
    properties = {"Monitor": "model-quality", "MonitoringBucket": "monitoring-bucket", "DatasetS3Uri": "s3://monitoring-bucket/datasets/test-scores.csv", "DecisionThreshold": "0.5", "Tolerance": "0.05"}
    response = baseline.on_event({"RequestType": "Create", "ResourceProperties": properties}, s3=s3)
    assert response["Data"]["CalibrationS3Uri"] == "s3://monitoring-bucket/model-quality/current/calibration.json"
    for name in ("statistics.json", "constraints.json", "calibration.json"):
        published = json.loads(s3.get_object(Bucket="monitoring-bucket", Key=f"model-quality/current/{name}")["Body"].read())
        assert published == json.loads(json.dumps(built[name])) or name == "statistics.json"  # the source URI differs
    with pytest.raises(baseline.DatasetError, match="line 2: label '2' is not 0 or 1"):
        s3.put_object(Bucket="monitoring-bucket", Key="datasets/bad.csv", Body=b"label,probability\n2,0.5\n")
        baseline.on_event({"RequestType": "Create", "ResourceProperties": {**properties, "DatasetS3Uri": "s3://monitoring-bucket/datasets/bad.csv"}}, s3=s3)
    with pytest.raises(baseline.DatasetError, match="property Tolerance must be from 0 to 1, got 2.0"):
        baseline.on_event({"RequestType": "Create", "ResourceProperties": {**properties, "Tolerance": "2"}}, s3=s3)
    empty = baseline.on_event({"RequestType": "Create", "ResourceProperties": {"Monitor": "model-quality", "MonitoringBucket": "monitoring-bucket"}}, s3=s3)
    assert empty["Data"]["NewBaseline"] == "true"
    calibration = json.loads(s3.get_object(Bucket="monitoring-bucket", Key="model-quality/current/calibration.json")["Body"].read())
    assert calibration["method"] == "none"
    constraints, found, note = documents.load_baseline({name: json.loads(s3.get_object(Bucket="monitoring-bucket", Key=f"model-quality/current/{name}")["Body"].read()) for name in documents.BASELINE_FILES})
    assert constraints == {} and found is None and note.startswith("no reference scores")
