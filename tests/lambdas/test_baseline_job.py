"""The baseline-job custom resource: every SageMaker call checked by Stubber against botocore's model."""

from __future__ import annotations

import json

import pytest

from lambdas.baseline_job.handler import is_complete, on_event, processing_job_request

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


def described(name: str, status: str, **extra) -> dict:
    request = processing_job_request(PROPS, "req-1")
    return {
        "ProcessingJobName": name, "ProcessingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/{name}",
        "ProcessingResources": request["ProcessingResources"], "AppSpecification": request["AppSpecification"],
        "ProcessingOutputConfig": request["ProcessingOutputConfig"], "ProcessingJobStatus": status, "CreationTime": "2026-11-22T00:00:00Z", **extra,
    }


def test_each_job_writes_under_its_own_name_and_names_are_valid() -> None:
    request = processing_job_request(PROPS, "req-1")
    name = request["ProcessingJobName"]
    assert name.startswith("mlloop-dev-dq-baseline-") and len(name) <= 63
    assert request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == f"s3://monitoring/data-quality/baselines/{name}"
    assert processing_job_request(PROPS, "req-2")["ProcessingJobName"] != name  # a retried create gets a fresh name
    assert "NamePrefix" not in request


def test_create_runs_the_job_and_completion_returns_the_baseline_files(sagemaker) -> None:
    client, stubber = sagemaker
    request = processing_job_request(PROPS, "req-1")
    name = request["ProcessingJobName"]
    stubber.add_response("create_processing_job", {"ProcessingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/{name}"}, request)
    assert on_event({"RequestType": "Create", "RequestId": "req-1", "ResourceProperties": PROPS}, sagemaker=client) == {"PhysicalResourceId": name}
    stubber.add_response("describe_processing_job", described(name, "InProgress"), {"ProcessingJobName": name})
    stubber.add_response("describe_processing_job", described(name, "Completed"), {"ProcessingJobName": name})
    event = {"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": PROPS}
    assert is_complete(event, sagemaker=client) == {"IsComplete": False}
    output = f"s3://monitoring/data-quality/baselines/{name}"
    assert is_complete(event, sagemaker=client)["Data"] == {
        "ProcessingJobName": name, "StatisticsS3Uri": f"{output}/statistics.json", "ConstraintsS3Uri": f"{output}/constraints.json"}


def test_a_failed_job_fails_the_deployment_with_its_reason(sagemaker) -> None:
    client, stubber = sagemaker
    name = processing_job_request(PROPS, "req-1")["ProcessingJobName"]
    stubber.add_response("describe_processing_job", described(name, "Failed", FailureReason="ClientError: no data in s3://datasets/train.csv"), {"ProcessingJobName": name})
    with pytest.raises(RuntimeError, match="failed: ClientError: no data in s3://datasets/train.csv"):
        is_complete({"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": PROPS}, sagemaker=client)


def test_update_with_the_same_request_keeps_the_baseline_and_a_new_request_runs_a_new_job(sagemaker) -> None:
    client, stubber = sagemaker
    old = processing_job_request(PROPS, "req-1")["ProcessingJobName"]
    assert on_event({"RequestType": "Update", "RequestId": "req-9", "PhysicalResourceId": old, "ResourceProperties": PROPS}, sagemaker=client) == {"PhysicalResourceId": old}
    changed = json.loads(json.dumps(REQUEST))
    changed["StoppingCondition"]["MaxRuntimeInSeconds"] = 1800
    new_props = {"Request": json.dumps(changed)}
    new_request = processing_job_request(new_props, "req-9")
    stubber.add_response("create_processing_job", {"ProcessingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:processing-job/x"}, new_request)
    result = on_event({"RequestType": "Update", "RequestId": "req-9", "PhysicalResourceId": old, "ResourceProperties": new_props}, sagemaker=client)
    assert result == {"PhysicalResourceId": new_request["ProcessingJobName"]} != {"PhysicalResourceId": old}


def test_delete_stops_a_running_job_and_ignores_a_missing_one(sagemaker) -> None:
    client, stubber = sagemaker
    name = processing_job_request(PROPS, "req-1")["ProcessingJobName"]
    stubber.add_response("describe_processing_job", described(name, "InProgress"), {"ProcessingJobName": name})
    stubber.add_response("stop_processing_job", {}, {"ProcessingJobName": name})
    assert on_event({"RequestType": "Delete", "PhysicalResourceId": name, "ResourceProperties": PROPS}, sagemaker=client) == {"PhysicalResourceId": name}
    stubber.add_client_error("describe_processing_job", service_error_code="ValidationException", expected_params={"ProcessingJobName": "never-started"})
    assert on_event({"RequestType": "Delete", "PhysicalResourceId": "never-started", "ResourceProperties": PROPS}, sagemaker=client) == {"PhysicalResourceId": "never-started"}
    assert is_complete({"RequestType": "Delete", "PhysicalResourceId": name}, sagemaker=client) == {"IsComplete": True}
