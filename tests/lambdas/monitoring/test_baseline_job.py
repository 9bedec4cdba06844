"""The baseline-job custom resource: every SageMaker call checked by Stubber against botocore's model."""

from __future__ import annotations

import json

import pytest

import boto3

from lambdas.monitoring.baseline_job.handler import is_complete, on_event, processing_job_request
from lambdas.shared import baseline
from tests.lambdas.aws_env import REGION

REQUEST = {
    "NamePrefix": "mlloop-dev-dq-baseline",
    "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 20}},
    "AppSpecification": {"ImageUri": "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer"},
    "RoleArn": "arn:aws:iam::123456789012:role/monitor",
    "ProcessingInputs": [{"InputName": "baseline_dataset_input", "S3Input": {
        "S3Uri": "s3://datasets/train.csv", "LocalPath": "/opt/ml/processing/input/baseline_dataset_input", "S3DataType": "S3Prefix",
        "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}}],
    "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
        "S3Uri": "s3://monitoring/data-quality/baselines", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
    "Environment": {"output_path": "/opt/ml/processing/output", "publish_cloudwatch_metrics": "Disabled",
                    "dataset_format": '{"csv": {"header": false, "output_columns_position": "START"}}', "dataset_source": "/opt/ml/processing/input/baseline_dataset_input"},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
}
PROPS = {"Request": json.dumps(REQUEST)}


def described(name: str, status: str, props: dict = PROPS, **extra) -> dict:
    request, _ = processing_job_request(props, "req-1")
    return {
        "ProcessingJobName": name, "ProcessingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/{name}",
        "ProcessingResources": request["ProcessingResources"], "AppSpecification": request["AppSpecification"],
        "ProcessingOutputConfig": request["ProcessingOutputConfig"], "ProcessingJobStatus": status, "CreationTime": "2026-11-22T00:00:00Z", **extra,
    }


def test_each_job_writes_under_its_own_name_and_names_are_valid() -> None:
    request, documents = processing_job_request(PROPS, "req-1")
    name = request["ProcessingJobName"]
    assert documents == {}
    assert name.startswith("mlloop-dev-dq-baseline-") and len(name) <= 63
    assert request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == f"s3://monitoring/data-quality/baselines/{name}"
    assert processing_job_request(PROPS, "req-2")[0]["ProcessingJobName"] != name  # a retried create gets a fresh name
    assert "NamePrefix" not in request


def test_create_runs_the_job_and_completion_returns_the_baseline_files(sagemaker) -> None:
    client, stubber = sagemaker
    request, _ = processing_job_request(PROPS, "req-1")
    name = request["ProcessingJobName"]
    stubber.add_response("create_processing_job", {"ProcessingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/{name}"}, request)
    started = on_event({"RequestType": "Create", "RequestId": "req-1", "ResourceProperties": PROPS}, sagemaker=client)
    assert started == {"PhysicalResourceId": name, "Data": {"NewBaseline": "true"}}
    stubber.add_response("describe_processing_job", described(name, "InProgress"), {"ProcessingJobName": name})
    stubber.add_response("describe_processing_job", described(name, "Completed"), {"ProcessingJobName": name})
    event = {"RequestType": "Create", "ResourceProperties": PROPS, **started}  # what the Provider framework passes on
    assert is_complete(event, sagemaker=client) == {"IsComplete": False}
    output = f"s3://monitoring/data-quality/baselines/{name}"
    assert is_complete(event, sagemaker=client)["Data"] == {"NewBaseline": "true", "ProcessingJobName": name, "OutputS3Uri": output}


def test_a_failed_job_fails_the_deployment_with_its_reason(sagemaker) -> None:
    client, stubber = sagemaker
    name = processing_job_request(PROPS, "req-1")[0]["ProcessingJobName"]
    stubber.add_response("describe_processing_job", described(name, "Failed", FailureReason="ClientError: no data in s3://datasets/train.csv"), {"ProcessingJobName": name})
    with pytest.raises(RuntimeError, match="failed: ClientError: no data in s3://datasets/train.csv"):
        is_complete({"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": PROPS}, sagemaker=client)


def test_update_with_the_same_request_keeps_the_baseline_and_a_new_request_runs_a_new_job(sagemaker) -> None:
    client, stubber = sagemaker
    old = processing_job_request(PROPS, "req-1")[0]["ProcessingJobName"]
    kept = on_event({"RequestType": "Update", "RequestId": "req-9", "PhysicalResourceId": old, "ResourceProperties": PROPS}, sagemaker=client)
    assert kept == {"PhysicalResourceId": old, "Data": {"NewBaseline": "false"}}
    changed = json.loads(json.dumps(REQUEST))
    changed["StoppingCondition"]["MaxRuntimeInSeconds"] = 1800
    new_props = {"Request": json.dumps(changed)}
    new_request, _ = processing_job_request(new_props, "req-9")
    stubber.add_response("create_processing_job", {"ProcessingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:processing-job/x"}, new_request)
    result = on_event({"RequestType": "Update", "RequestId": "req-9", "PhysicalResourceId": old, "ResourceProperties": new_props, "OldResourceProperties": PROPS}, sagemaker=client)
    assert result == {"PhysicalResourceId": new_request["ProcessingJobName"], "Data": {"NewBaseline": "true"}} and new_request["ProcessingJobName"] != old


def test_delete_stops_a_running_job_and_ignores_a_missing_one(sagemaker) -> None:
    client, stubber = sagemaker
    name = processing_job_request(PROPS, "req-1")[0]["ProcessingJobName"]
    stubber.add_response("describe_processing_job", described(name, "InProgress"), {"ProcessingJobName": name})
    stubber.add_response("stop_processing_job", {}, {"ProcessingJobName": name})
    assert on_event({"RequestType": "Delete", "PhysicalResourceId": name, "ResourceProperties": PROPS}, sagemaker=client) == {"PhysicalResourceId": name}
    stubber.add_client_error("describe_processing_job", service_error_code="ValidationException", expected_params={"ProcessingJobName": "never-started"})
    assert on_event({"RequestType": "Delete", "PhysicalResourceId": "never-started", "ResourceProperties": PROPS}, sagemaker=client) == {"PhysicalResourceId": "never-started"}
    assert is_complete({"RequestType": "Delete", "PhysicalResourceId": name}, sagemaker=client) == {"IsComplete": True}


CLARIFY_REQUEST = {
    **{k: v for k, v in REQUEST.items() if k not in ("Environment", "ProcessingInputs", "ProcessingOutputConfig")},
    "NamePrefix": "mlloop-dev-shap-baseline",
    "AppSpecification": {"ImageUri": "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-clarify-processing:1.0"},
    "ProcessingInputs": [
        {"InputName": "dataset", "S3Input": {"S3Uri": "s3://datasets/train.csv", "LocalPath": "/opt/ml/processing/input/data", "S3DataType": "S3Prefix",
                                            "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}},
        {"InputName": "analysis_config", "S3Input": {"LocalPath": "/opt/ml/processing/input/config", "S3DataType": "S3Prefix",
                                                    "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"}},
    ],
    "ProcessingOutputConfig": {"Outputs": [{"OutputName": "analysis_result", "S3Output": {
        "S3Uri": "s3://app-monitoring/explainability/baselines", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]},
    "Documents": {
        "AnalysisConfig": {"File": "analysis_config.json", "Input": "analysis_config", "Body": {"dataset_type": "text/csv", "headers": ["label", "a"], "label": "label"}},
        "MonitoringConfig": {"File": "monitoring_analysis_config.json", "Body": {"headers": ["a"], "methods": {"shap": {"num_samples": 100}}}},
    },
}  # fmt: skip
CLARIFY_PROPS = {"Request": json.dumps(CLARIFY_REQUEST)}


def test_documents_are_written_before_the_job_starts_and_feed_its_input(mocked_aws, sagemaker) -> None:
    client, stubber = sagemaker
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="app-monitoring", CreateBucketConfiguration={"LocationConstraint": REGION})
    request, documents = processing_job_request(CLARIFY_PROPS, "req-1")
    name = request["ProcessingJobName"]
    output = f"s3://app-monitoring/explainability/baselines/{name}"
    assert "Documents" not in request
    assert request["ProcessingInputs"][1]["S3Input"]["S3Uri"] == f"{output}/analysis_config.json"
    assert request["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://datasets/train.csv"

    def created(**_: object) -> None:  # the job may only start once its config is in S3
        assert json.loads(s3.get_object(Bucket="app-monitoring", Key=f"explainability/baselines/{name}/analysis_config.json")["Body"].read())["label"] == "label"

    stubber.add_response("create_processing_job", {"ProcessingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/{name}"}, request)
    client.meta.events.register("before-call.sagemaker.CreateProcessingJob", created)
    assert on_event({"RequestType": "Create", "RequestId": "req-1", "ResourceProperties": CLARIFY_PROPS}, sagemaker=client, s3=s3)["PhysicalResourceId"] == name
    monitoring = s3.get_object(Bucket="app-monitoring", Key=f"explainability/baselines/{name}/monitoring_analysis_config.json")
    assert json.loads(monitoring["Body"].read()) == CLARIFY_REQUEST["Documents"]["MonitoringConfig"]["Body"]

    stubber.add_response("describe_processing_job", described(name, "Completed", CLARIFY_PROPS), {"ProcessingJobName": name})
    data = is_complete({"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": CLARIFY_PROPS, "Data": {"NewBaseline": "true"}}, sagemaker=client)["Data"]
    assert data == {
        "NewBaseline": "true",
        "ProcessingJobName": name,
        "OutputS3Uri": output,
        "AnalysisConfigS3Uri": f"{output}/analysis_config.json",
        "MonitoringConfigS3Uri": f"{output}/monitoring_analysis_config.json",
    }


def test_completion_publishes_the_baseline_into_the_monitors_current_files(mocked_aws, sagemaker) -> None:
    client, stubber = sagemaker
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="app-monitoring", CreateBucketConfiguration={"LocationConstraint": REGION})
    current = "s3://app-monitoring/explainability/current"
    properties = {"Request": json.dumps({**CLARIFY_REQUEST, "Publish": {"analysis.json": f"{current}/analysis.json", "monitoring_analysis_config.json": f"{current}/analysis_config.json"}})}
    request, _ = processing_job_request(properties, "req-1")
    assert "Publish" not in request  # not a CreateProcessingJob field
    name = request["ProcessingJobName"]
    s3.put_object(Bucket="app-monitoring", Key=f"explainability/baselines/{name}/analysis.json", Body=b'{"version": "1.0"}')
    s3.put_object(Bucket="app-monitoring", Key=f"explainability/baselines/{name}/monitoring_analysis_config.json", Body=b'{"predictor": {}}')
    stubber.add_response("describe_processing_job", described(name, "Completed", properties), {"ProcessingJobName": name})
    is_complete({"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": properties, "Data": {"NewBaseline": "true"}}, sagemaker=client, s3=s3)
    assert s3.get_object(Bucket="app-monitoring", Key="explainability/current/analysis.json")["Body"].read() == b'{"version": "1.0"}'
    assert s3.get_object(Bucket="app-monitoring", Key="explainability/current/analysis_config.json")["Body"].read() == b'{"predictor": {}}'


# --- promoted baselines: a stack update does not bring the old model's baseline back ----------

CURRENT = "s3://app-monitoring/data-quality/current"
PUBLISH = {"statistics.json": f"{CURRENT}/statistics.json", "constraints.json": f"{CURRENT}/constraints.json"}


def _props(dataset: str, runtime: int = 3600) -> dict:
    request = json.loads(json.dumps(REQUEST))
    request["ProcessingInputs"][0]["S3Input"]["S3Uri"] = dataset
    request["StoppingCondition"]["MaxRuntimeInSeconds"] = runtime
    request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = "s3://app-monitoring/data-quality/baselines"
    return {"Request": json.dumps({**request, "Publish": PUBLISH})}


def _deploy(client, stubber, s3, event: dict, files: dict[str, bytes]) -> dict:
    """One custom-resource event through on_event and is_complete, as the Provider framework runs it;
    a job it starts completes with ``files`` as its output."""
    started = on_event(event, sagemaker=client, s3=s3)
    name = started["PhysicalResourceId"]
    if started["Data"]["NewBaseline"] == "true":
        for file, body in files.items():
            s3.put_object(Bucket="app-monitoring", Key=f"data-quality/baselines/{name}/{file}", Body=body)
    job = described(name, "Completed", event["ResourceProperties"])
    job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = f"s3://app-monitoring/data-quality/baselines/{name}"
    stubber.add_response("describe_processing_job", job, {"ProcessingJobName": name})
    return is_complete({**event, **started}, sagemaker=client, s3=s3)


def _current(s3) -> bytes:
    return s3.get_object(Bucket="app-monitoring", Key="data-quality/current/statistics.json")["Body"].read()


@pytest.fixture
def monitoring_bucket(mocked_aws):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="app-monitoring", CreateBucketConfiguration={"LocationConstraint": REGION})
    return s3


def _promote(s3) -> None:
    """What retraining's Promote step does: its baseline into current/, then the marker."""
    s3.put_object(Bucket="app-monitoring", Key="data-quality/current/statistics.json", Body=b"promoted")
    baseline.write_promoted_marker(s3, PUBLISH, execution="run-7", promoted_at="2026-11-28T00:00:00+00:00")


def test_create_publishes_and_an_update_after_a_promotion_keeps_the_promoted_baseline(monitoring_bucket, sagemaker) -> None:
    client, stubber = sagemaker
    s3 = monitoring_bucket
    first = _props("s3://datasets/baseline.csv")
    create = {"RequestType": "Create", "RequestId": "req-1", "ResourceProperties": first}
    stubber.add_response("create_processing_job", {"ProcessingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:processing-job/x"}, processing_job_request(first, "req-1")[0])
    created = _deploy(client, stubber, s3, create, {"statistics.json": b"deploy-1", "constraints.json": b"{}"})
    assert _current(s3) == b"deploy-1" and created["Data"]["NewBaseline"] == "true"

    _promote(s3)
    # An unrelated change to the request (a new runtime), same dataset: no job, current/ untouched.
    changed = _props("s3://datasets/baseline.csv", runtime=1800)
    update = {"RequestType": "Update", "RequestId": "req-2", "PhysicalResourceId": created["Data"]["ProcessingJobName"],
              "ResourceProperties": changed, "OldResourceProperties": first}  # fmt: skip
    kept = _deploy(client, stubber, s3, update, {})
    assert kept["Data"] == {"NewBaseline": "false", "ProcessingJobName": update["PhysicalResourceId"], "OutputS3Uri": created["Data"]["OutputS3Uri"]}
    assert _current(s3) == b"promoted"
    assert baseline.is_promoted(s3, PUBLISH)


def test_an_update_with_a_new_dataset_replaces_a_promoted_baseline(monitoring_bucket, sagemaker) -> None:
    client, stubber = sagemaker
    s3 = monitoring_bucket
    first, second = _props("s3://datasets/baseline.csv"), _props("s3://datasets/new-baseline.csv")
    _promote(s3)
    update = {"RequestType": "Update", "RequestId": "req-3", "PhysicalResourceId": processing_job_request(first, "req-1")[0]["ProcessingJobName"],
              "ResourceProperties": second, "OldResourceProperties": first}  # fmt: skip
    stubber.add_response("create_processing_job", {"ProcessingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:processing-job/x"}, processing_job_request(second, "req-3")[0])
    replaced = _deploy(client, stubber, s3, update, {"statistics.json": b"deploy-2", "constraints.json": b"{}"})
    assert replaced["Data"]["NewBaseline"] == "true" and _current(s3) == b"deploy-2"
    assert not baseline.is_promoted(s3, PUBLISH)  # current/ holds the deploy-time baseline again


def test_an_update_that_never_started_a_job_does_not_republish(monitoring_bucket, sagemaker) -> None:
    """The same request on update (e.g. a new service token) keeps the old job and must not copy its
    old files over whatever current/ holds now, promoted or not."""
    client, stubber = sagemaker
    s3 = monitoring_bucket
    props = _props("s3://datasets/baseline.csv")
    s3.put_object(Bucket="app-monitoring", Key="data-quality/current/statistics.json", Body=b"promoted")
    name = processing_job_request(props, "req-1")[0]["ProcessingJobName"]
    s3.put_object(Bucket="app-monitoring", Key=f"data-quality/baselines/{name}/statistics.json", Body=b"old")
    update = {"RequestType": "Update", "RequestId": "req-4", "PhysicalResourceId": name, "ResourceProperties": props, "OldResourceProperties": props}
    assert _deploy(client, stubber, s3, update, {})["Data"]["NewBaseline"] == "false"
    assert _current(s3) == b"promoted"


def test_an_update_without_a_promotion_publishes_the_changed_baseline(monitoring_bucket, sagemaker) -> None:
    client, stubber = sagemaker
    s3 = monitoring_bucket
    first, changed = _props("s3://datasets/baseline.csv"), _props("s3://datasets/baseline.csv", runtime=1800)
    update = {"RequestType": "Update", "RequestId": "req-5", "PhysicalResourceId": processing_job_request(first, "req-1")[0]["ProcessingJobName"],
              "ResourceProperties": changed, "OldResourceProperties": first}  # fmt: skip
    stubber.add_response("create_processing_job", {"ProcessingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:processing-job/x"}, processing_job_request(changed, "req-5")[0])
    assert _deploy(client, stubber, s3, update, {"statistics.json": b"deploy-3", "constraints.json": b"{}"})["Data"]["NewBaseline"] == "true"
    assert _current(s3) == b"deploy-3"


def test_the_promotion_marker_lives_beside_the_published_files() -> None:
    assert baseline.promoted_marker_uri(PUBLISH) == f"{CURRENT}/{baseline.PROMOTED_MARKER}"
    with pytest.raises(ValueError, match="one current/ folder"):
        baseline.current_prefix({"a.json": "s3://b/x/current/a.json", "b.json": "s3://b/y/current/b.json"})
