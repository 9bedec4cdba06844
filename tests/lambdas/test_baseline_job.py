"""The baseline-job custom resource: every SageMaker call checked by Stubber against botocore's model."""

from __future__ import annotations

import json

import pytest

import boto3

from lambdas.baseline_job.handler import is_complete, on_event, processing_job_request
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
    assert on_event({"RequestType": "Create", "RequestId": "req-1", "ResourceProperties": PROPS}, sagemaker=client) == {"PhysicalResourceId": name}
    stubber.add_response("describe_processing_job", described(name, "InProgress"), {"ProcessingJobName": name})
    stubber.add_response("describe_processing_job", described(name, "Completed"), {"ProcessingJobName": name})
    event = {"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": PROPS}
    assert is_complete(event, sagemaker=client) == {"IsComplete": False}
    output = f"s3://monitoring/data-quality/baselines/{name}"
    assert is_complete(event, sagemaker=client)["Data"] == {"ProcessingJobName": name, "OutputS3Uri": output}


def test_a_failed_job_fails_the_deployment_with_its_reason(sagemaker) -> None:
    client, stubber = sagemaker
    name = processing_job_request(PROPS, "req-1")[0]["ProcessingJobName"]
    stubber.add_response("describe_processing_job", described(name, "Failed", FailureReason="ClientError: no data in s3://datasets/train.csv"), {"ProcessingJobName": name})
    with pytest.raises(RuntimeError, match="failed: ClientError: no data in s3://datasets/train.csv"):
        is_complete({"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": PROPS}, sagemaker=client)


def test_update_with_the_same_request_keeps_the_baseline_and_a_new_request_runs_a_new_job(sagemaker) -> None:
    client, stubber = sagemaker
    old = processing_job_request(PROPS, "req-1")[0]["ProcessingJobName"]
    assert on_event({"RequestType": "Update", "RequestId": "req-9", "PhysicalResourceId": old, "ResourceProperties": PROPS}, sagemaker=client) == {"PhysicalResourceId": old}
    changed = json.loads(json.dumps(REQUEST))
    changed["StoppingCondition"]["MaxRuntimeInSeconds"] = 1800
    new_props = {"Request": json.dumps(changed)}
    new_request, _ = processing_job_request(new_props, "req-9")
    stubber.add_response("create_processing_job", {"ProcessingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:processing-job/x"}, new_request)
    result = on_event({"RequestType": "Update", "RequestId": "req-9", "PhysicalResourceId": old, "ResourceProperties": new_props}, sagemaker=client)
    assert result == {"PhysicalResourceId": new_request["ProcessingJobName"]} != {"PhysicalResourceId": old}


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
    assert on_event({"RequestType": "Create", "RequestId": "req-1", "ResourceProperties": CLARIFY_PROPS}, sagemaker=client, s3=s3) == {"PhysicalResourceId": name}
    monitoring = s3.get_object(Bucket="app-monitoring", Key=f"explainability/baselines/{name}/monitoring_analysis_config.json")
    assert json.loads(monitoring["Body"].read()) == CLARIFY_REQUEST["Documents"]["MonitoringConfig"]["Body"]

    stubber.add_response("describe_processing_job", described(name, "Completed", CLARIFY_PROPS), {"ProcessingJobName": name})
    data = is_complete({"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": CLARIFY_PROPS}, sagemaker=client)["Data"]
    assert data == {
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
    is_complete({"RequestType": "Create", "PhysicalResourceId": name, "ResourceProperties": properties}, sagemaker=client, s3=s3)
    assert s3.get_object(Bucket="app-monitoring", Key="explainability/current/analysis.json")["Body"].read() == b'{"version": "1.0"}'
    assert s3.get_object(Bucket="app-monitoring", Key="explainability/current/analysis_config.json")["Body"].read() == b'{"predictor": {}}'
