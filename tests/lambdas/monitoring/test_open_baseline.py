"""The open back end's deploy-time baseline (custom resource ``on_event``) on moto S3: what it
writes, when it leaves a promoted baseline alone, and how a bad dataset fails the deployment."""

from __future__ import annotations

import json

import boto3
import pytest

from lambdas.monitoring.drift.baseline import baseline_documents, load
from lambdas.monitoring.open import baseline
from lambdas.shared.baseline import write_promoted_marker
from stacks.shared.default_model import BASELINE_CSV, FEATURE_NAMES
from tests.lambdas.aws_env import REGION

BUCKET = "monitoring-bucket"
DATA = "datasets-bucket"
DATASET = f"s3://{DATA}/bundled/abc/baseline.csv"
PROPERTIES = {"ServiceToken": "arn:x", "Monitor": "data-quality", "MonitoringBucket": BUCKET, "DatasetS3Uri": DATASET, "DriftThreshold": "0.1"}


@pytest.fixture
def s3(mocked_aws):
    client = boto3.client("s3", region_name=REGION)
    for bucket in (BUCKET, DATA):
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_object(Bucket=DATA, Key="bundled/abc/baseline.csv", Body=BASELINE_CSV.read_bytes())
    return client


def create(s3, properties=PROPERTIES) -> dict:
    return baseline.on_event({"RequestType": "Create", "RequestId": "r-1", "ResourceProperties": properties}, s3=s3)


def update(s3, old: dict, new: dict, physical: str) -> dict:
    event = {"RequestType": "Update", "RequestId": "r-2", "ResourceProperties": new, "OldResourceProperties": old, "PhysicalResourceId": physical}
    return baseline.on_event(event, s3=s3)


def current(s3, name: str) -> dict:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"data-quality/current/{name}")["Body"].read())


def keys(s3, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def promote(s3) -> None:
    write_promoted_marker(s3, baseline.current_uris(BUCKET, "data-quality"), execution="run-1", promoted_at="2026-11-22T10:00:00Z")


def test_create_writes_the_baseline_by_hash_and_publishes_it_to_current(s3):
    answer = create(s3)
    digest = baseline.properties_hash(PROPERTIES)
    assert answer["PhysicalResourceId"] == f"data-quality-baseline-{digest}"
    assert answer["Data"] == {
        "StatisticsS3Uri": f"s3://{BUCKET}/data-quality/current/statistics.json",
        "ConstraintsS3Uri": f"s3://{BUCKET}/data-quality/current/constraints.json",
        "NewBaseline": "true",
        "BaselineS3Uri": f"s3://{BUCKET}/data-quality/baselines/{digest}/",
    }
    assert keys(s3, "data-quality/") == [
        f"data-quality/baselines/{digest}/constraints.json", f"data-quality/baselines/{digest}/statistics.json",
        "data-quality/current/constraints.json", "data-quality/current/statistics.json",
    ]  # fmt: skip
    expected = baseline_documents(BASELINE_CSV.read_text(), threshold=0.1)
    assert current(s3, "statistics.json") == expected["statistics.json"]
    assert current(s3, "constraints.json") == expected["constraints.json"]
    # What the evaluator and the capture Lambda load from it: the bundled model's 31 columns.
    loaded = load(current(s3, "statistics.json"), current(s3, "constraints.json"))
    assert loaded.layout.columns == ("probability", *FEATURE_NAMES) and loaded.threshold == 0.1


def test_the_drift_threshold_is_the_configured_one(s3):
    create(s3, {**PROPERTIES, "DriftThreshold": "0.25"})
    assert current(s3, "constraints.json")["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.25


def test_an_unchanged_update_computes_nothing(s3):
    physical = create(s3)["PhysicalResourceId"]
    s3.delete_object(Bucket=BUCKET, Key="data-quality/current/statistics.json")
    answer = update(s3, PROPERTIES, PROPERTIES, physical)
    assert answer["PhysicalResourceId"] == physical and answer["Data"]["NewBaseline"] == "false"
    assert "data-quality/current/statistics.json" not in keys(s3, "data-quality/current/")


def test_a_changed_update_keeps_a_promoted_baseline_when_the_dataset_is_the_same(s3):
    physical = create(s3)["PhysicalResourceId"]
    s3.put_object(Bucket=BUCKET, Key="data-quality/current/statistics.json", Body=b'{"retrained": true}')
    promote(s3)
    answer = update(s3, PROPERTIES, {**PROPERTIES, "DriftThreshold": "0.2"}, physical)
    assert answer == {"PhysicalResourceId": physical, "Data": {**answer["Data"], "NewBaseline": "false"}}
    assert current(s3, "statistics.json") == {"retrained": True}
    assert "data-quality/current/promoted.json" in keys(s3, "data-quality/current/")


def test_a_changed_update_without_a_promotion_republishes(s3):
    physical = create(s3)["PhysicalResourceId"]
    answer = update(s3, PROPERTIES, {**PROPERTIES, "DriftThreshold": "0.2"}, physical)
    assert answer["Data"]["NewBaseline"] == "true" and answer["PhysicalResourceId"] != physical
    assert current(s3, "constraints.json")["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.2


def test_a_new_dataset_replaces_a_promoted_baseline_and_clears_the_marker(s3):
    physical = create(s3)["PhysicalResourceId"]
    promote(s3)
    s3.put_object(Bucket=DATA, Key="mine/baseline.csv", Body=b"probability,a,b\n0.1,1,2\n0.9,3,4\n0.5,5,6\n")
    answer = update(s3, PROPERTIES, {**PROPERTIES, "DatasetS3Uri": f"s3://{DATA}/mine/baseline.csv"}, physical)
    assert answer["Data"]["NewBaseline"] == "true"
    assert [f["name"] for f in current(s3, "statistics.json")["features"]] == ["probability", "a", "b"]
    assert "data-quality/current/promoted.json" not in keys(s3, "data-quality/current/")


def test_delete_leaves_the_files_and_never_fails(s3):
    physical = create(s3)["PhysicalResourceId"]
    answer = baseline.on_event({"RequestType": "Delete", "RequestId": "r-3", "ResourceProperties": PROPERTIES, "PhysicalResourceId": physical}, s3=s3)
    assert answer == {"PhysicalResourceId": physical}
    assert len(keys(s3, "data-quality/current/")) == 2
    # The rollback of a create that failed on its properties deletes with those properties.
    bad = {"RequestType": "Delete", "RequestId": "r-4", "ResourceProperties": {"Monitor": "nonsense"}, "PhysicalResourceId": "r-1"}
    assert baseline.on_event(bad, s3=s3) == {"PhysicalResourceId": "r-1"}


def test_a_folder_of_csv_files_is_one_dataset_with_one_header(s3):
    s3.put_object(Bucket=DATA, Key="parts/a.csv", Body=b"probability,x\n0.1,1\n0.2,2\n")
    s3.put_object(Bucket=DATA, Key="parts/b.csv", Body=b"probability,x\n0.3,3\n")
    create(s3, {**PROPERTIES, "DatasetS3Uri": f"s3://{DATA}/parts/"})
    assert current(s3, "statistics.json")["dataset"] == {"item_count": 3}


# --- datasets that fail the deployment, each with a reason naming the place ------------------


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"probability,a\n0.1,1\n0.2,twelve\n", "baseline dataset s3://datasets-bucket/bad.csv: baseline line 3, column 'a': 'twelve' is not a number"),
        (b"probability,a\n0.1,1\n0.2,inf\n", "baseline line 3, column 'a': 'inf' is not finite"),
        (b"probability,a\n0.1,1\n0.2,1e200\n", "baseline line 3, column 'a': '1e200' is beyond the float32 range"),
        (b"probability,a\n0.1,1\n0.2\n", "baseline line 3 has 1 fields, the header 2"),
        (b"probability,a\n", "has a header but no rows"),
        (b"", "the baseline dataset is empty"),
        (b"\xff\xfeprobability", "is not UTF-8 text"),
    ],
)
def test_an_invalid_dataset_fails_with_a_message_naming_the_dataset_and_the_cell(s3, body, reason):
    s3.put_object(Bucket=DATA, Key="bad.csv", Body=body)
    with pytest.raises(baseline.DatasetError) as raised:
        create(s3, {**PROPERTIES, "DatasetS3Uri": f"s3://{DATA}/bad.csv"})
    assert reason in str(raised.value) and f"s3://{DATA}/bad.csv" in str(raised.value)
    assert keys(s3, "data-quality/") == []  # nothing half-written


def test_a_missing_dataset_fails_naming_it(s3):
    with pytest.raises(baseline.DatasetError, match=rf"baseline dataset s3://{DATA}/nothing.csv: no such object \(NoSuchKey\), and no objects under nothing.csv/"):
        create(s3, {**PROPERTIES, "DatasetS3Uri": f"s3://{DATA}/nothing.csv"})


def test_a_header_that_is_not_the_models_features_fails(s3):
    names = json.dumps(list(FEATURE_NAMES[:29]))
    with pytest.raises(baseline.DatasetError, match=r"its header has 31 columns .* the model 30: probability, then model.feature_names"):
        create(s3, {**PROPERTIES, "FeatureNames": names})
    create(s3, {**PROPERTIES, "FeatureNames": json.dumps(list(FEATURE_NAMES))})  # the bundled header is the model's


def test_an_unknown_monitor_or_threshold_fails(s3):
    with pytest.raises(baseline.DatasetError, match="property Monitor must be one of data-quality, explainability, model-quality, got 'model-monitor'"):
        create(s3, {**PROPERTIES, "Monitor": "model-monitor"})
    with pytest.raises(baseline.DatasetError, match="property DriftThreshold must be a number, got 'high'"):
        create(s3, {**PROPERTIES, "DriftThreshold": "high"})


def test_configured_baseline_files_are_checked_and_published_as_they_are(s3):
    create(s3)  # a deployment's own files, to be given back as configured ones
    digest = baseline.properties_hash(PROPERTIES)
    given = {"Monitor": "data-quality", "MonitoringBucket": BUCKET, "DriftThreshold": "0.1",
             "BaselineStatisticsS3Uri": f"s3://{BUCKET}/data-quality/baselines/{digest}/statistics.json",
             "BaselineConstraintsS3Uri": f"s3://{BUCKET}/data-quality/baselines/{digest}/constraints.json"}  # fmt: skip
    statistics = s3.get_object(Bucket=BUCKET, Key=f"data-quality/baselines/{digest}/statistics.json")["Body"].read()
    s3.delete_object(Bucket=BUCKET, Key="data-quality/current/statistics.json")
    answer = create(s3, given)
    assert answer["Data"]["NewBaseline"] == "true"
    assert s3.get_object(Bucket=BUCKET, Key="data-quality/current/statistics.json")["Body"].read() == statistics


def test_model_monitors_own_baseline_files_are_refused_with_the_reason(s3):
    s3.put_object(Bucket=DATA, Key="mm/statistics.json", Body=json.dumps({"version": 0, "features": [{"name": "a", "inferred_type": "Fractional", "numerical_statistics": {}}]}).encode())
    s3.put_object(Bucket=DATA, Key="mm/constraints.json", Body=json.dumps({"version": 0, "features": [{"name": "a"}]}).encode())
    given = {"Monitor": "data-quality", "MonitoringBucket": BUCKET, "BaselineStatisticsS3Uri": f"s3://{DATA}/mm/statistics.json", "BaselineConstraintsS3Uri": f"s3://{DATA}/mm/constraints.json"}
    with pytest.raises(baseline.DatasetError, match=r"not written by the open monitor's baseline step.*the open back end needs files its own baseline wrote"):
        create(s3, given)
    assert keys(s3, "data-quality/") == []


# --- explainability ---------------------------------------------------------------------------


def explainability_properties(**extra) -> dict:
    return {
        "ServiceToken": "arn:x", "Monitor": "explainability", "MonitoringBucket": BUCKET, "DatasetS3Uri": f"s3://{DATA}/bundled/abc/train.csv",
        "ModelDataUrl": f"s3://{DATA}/bundled/abc/model.tar.gz", "FeatureNames": json.dumps(list(FEATURE_NAMES)), "LabelName": "benign", **extra,
    }  # fmt: skip


@pytest.fixture
def bundled_model(s3):
    from stacks.shared.default_model import MODEL_ARTIFACT, TRAIN_CSV

    s3.put_object(Bucket=DATA, Key="bundled/abc/train.csv", Body=TRAIN_CSV.read_bytes())
    s3.put_object(Bucket=DATA, Key="bundled/abc/model.tar.gz", Body=MODEL_ARTIFACT.read_bytes())
    return MODEL_ARTIFACT, TRAIN_CSV


def test_the_attribution_baseline_is_the_mean_absolute_treeshap_of_the_training_rows(s3, bundled_model):
    import tarfile

    import numpy as np
    import xgboost as xgb

    artifact, train = bundled_model
    answer = create(s3, explainability_properties())
    assert answer["Data"]["AnalysisS3Uri"] == f"s3://{BUCKET}/explainability/current/analysis.json"
    analysis = json.loads(s3.get_object(Bucket=BUCKET, Key="explainability/current/analysis.json")["Body"].read())
    values = analysis["explanations"]["tree_shap"]["benign"]["global_shap_values"]
    # Independent reference: XGBoost's own TreeSHAP on the training features, mean |SHAP| per feature.
    with tarfile.open(artifact) as tar:
        booster = xgb.Booster()
        booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    features = np.loadtxt(train, delimiter=",")[:, 1:]
    contributions = booster.predict(xgb.DMatrix(features.astype(np.float32)), pred_contribs=True)
    expected = np.abs(contributions[:, :-1]).mean(axis=0)
    assert list(values) == list(FEATURE_NAMES)
    assert [values[name] for name in FEATURE_NAMES] == pytest.approx(expected.tolist(), rel=1e-5, abs=1e-7)
    assert keys(s3, "explainability/") == [f"explainability/baselines/{baseline.properties_hash(explainability_properties())}/analysis.json", "explainability/current/analysis.json"]


def test_an_attribution_baseline_of_another_models_width_fails_naming_it(s3, bundled_model):
    with pytest.raises(baseline.DatasetError, match=r"training dataset s3://datasets-bucket/bundled/abc/train.csv line 1: 31 fields, expected the label then 29 features"):
        create(s3, explainability_properties(FeatureNames=json.dumps(list(FEATURE_NAMES[:29]))))
    s3.put_object(Bucket=DATA, Key="bundled/abc/model.tar.gz", Body=b"not a tarball")
    with pytest.raises(baseline.DatasetError, match=r"explainability baseline of s3://datasets-bucket/bundled/abc/model.tar.gz .*not a readable .tar.gz"):
        create(s3, explainability_properties())
    assert keys(s3, "explainability/") == []
