"""The grants a SageMaker job role needs, derived from the job's request (stacks/shared/job_roles.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aws_cdk import App, CfnParameter, Stack

from stacks.shared.job_roles import job_data_statements

KEY = "arn:aws:kms:eu-west-1:123456789012:key/out"
VOLUME_KEY = "arn:aws:kms:eu-west-1:123456789012:key/volume"
PROCESSING = {
    "ProcessingInputs": [
        {"InputName": "dataset", "S3Input": {"S3Uri": "s3://datasets/bundled/train.csv", "LocalPath": "/opt/ml/processing/input/data", "S3DataType": "S3Prefix"}},
        {"InputName": "extra", "S3Input": {"S3Uri": "s3://other-bucket/extra/", "LocalPath": "/opt/ml/processing/input/extra", "S3DataType": "S3Prefix"}},
    ],
    "ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {"S3Uri": "s3://monitoring/dq/baselines", "LocalPath": "/opt/ml/processing/output"}}], "KmsKeyId": KEY},
    "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 20, "VolumeKmsKeyId": VOLUME_KEY}},
}
TRAINING = {
    "InputDataConfig": [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://datasets/retraining/", "S3DataType": "S3Prefix"}}},
        {"ChannelName": "validation", "DataSource": {"S3DataSource": {"S3Uri": "s3://validation/sets/v1/", "S3DataType": "S3Prefix"}}},
    ],
    "OutputDataConfig": {"S3OutputPath": "s3://models/retraining/", "KmsKeyId": KEY},
    "CheckpointConfig": {"S3Uri": "s3://models/checkpoints"},
    "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5, "VolumeKmsKeyId": VOLUME_KEY},
}


def _grants(*requests: dict[str, Any], stack: Stack | None = None) -> dict[str, list]:
    """Action -> resources (resolved), with each statement's condition kept under ``<action>?``."""
    stack = stack or Stack(App(), "S")
    grants: dict[str, list] = {}
    for statement in job_data_statements(requests):
        document = stack.resolve(statement.to_statement_json())
        actions = document["Action"] if isinstance(document["Action"], list) else [document["Action"]]
        resources = document["Resource"] if isinstance(document["Resource"], list) else [document["Resource"]]
        for action in actions:
            grants.setdefault(action, []).extend(resources)
            if "Condition" in document:
                grants[f"{action}?"] = document["Condition"]
    return grants


def _arn(resource: Any) -> str:
    """A resolved ARN with the partition pseudo-parameter written as aws."""
    if isinstance(resource, str):
        return resource
    return "".join(p if isinstance(p, str) else "aws" for p in resource["Fn::Join"][1])


def _arns(grants: dict[str, list], action: str) -> list[str]:
    return [_arn(r) for r in grants.get(action, [])]


def test_two_inputs_on_two_buckets_give_both_list_grants_and_their_objects() -> None:
    grants = _grants(PROCESSING)
    assert _arns(grants, "s3:ListBucket") == ["arn:aws:s3:::datasets", "arn:aws:s3:::other-bucket"]
    # S3Prefix: every object whose key starts with the prefix (a file URI matches the file itself).
    assert _arns(grants, "s3:GetObject") == ["arn:aws:s3:::datasets/bundled/train.csv*", "arn:aws:s3:::other-bucket/extra/*"]
    assert _arns(grants, "s3:PutObject") == ["arn:aws:s3:::monitoring/dq/baselines/*"]


def test_an_output_key_gets_encrypt_and_a_volume_key_a_grant_for_aws_resources() -> None:
    grants = _grants(PROCESSING)
    assert grants["kms:Encrypt"] == grants["kms:GenerateDataKey"] == [KEY]
    assert grants["kms:CreateGrant"] == [VOLUME_KEY] and grants["kms:CreateGrant?"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    without_keys = copy.deepcopy(PROCESSING)
    del without_keys["ProcessingOutputConfig"]["KmsKeyId"], without_keys["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
    assert not any(action.startswith("kms:") for action in _grants(without_keys))


def test_adding_an_input_adds_its_grants() -> None:
    more = copy.deepcopy(PROCESSING)
    more["ProcessingInputs"].append({"InputName": "scripts", "S3Input": {"S3Uri": "s3://scripts/pre.py", "LocalPath": "/x", "S3DataType": "S3Prefix"}})
    before, after = _grants(PROCESSING), _grants(more)
    assert set(_arns(after, "s3:ListBucket")) - set(_arns(before, "s3:ListBucket")) == {"arn:aws:s3:::scripts"}
    assert set(_arns(after, "s3:GetObject")) - set(_arns(before, "s3:GetObject")) == {"arn:aws:s3:::scripts/pre.py*"}


def test_a_training_request_reads_its_channels_writes_its_output_and_its_checkpoints() -> None:
    grants = _grants(TRAINING)
    assert _arns(grants, "s3:ListBucket") == ["arn:aws:s3:::datasets", "arn:aws:s3:::validation", "arn:aws:s3:::models"]
    assert _arns(grants, "s3:GetObject") == ["arn:aws:s3:::datasets/retraining/*", "arn:aws:s3:::validation/sets/v1/*", "arn:aws:s3:::models/checkpoints/*"]
    assert _arns(grants, "s3:PutObject") == ["arn:aws:s3:::models/retraining/*", "arn:aws:s3:::models/checkpoints/*"]
    assert grants["kms:Encrypt"] == [KEY] and grants["kms:CreateGrant"] == [VOLUME_KEY]


def test_several_requests_merge_into_one_set_of_grants() -> None:
    variant = copy.deepcopy(PROCESSING)
    variant["ProcessingInputs"][0]["S3Input"]["S3Uri"] = "s3://datasets/retraining/"
    grants = _grants(PROCESSING, variant)
    assert _arns(grants, "s3:ListBucket") == ["arn:aws:s3:::datasets", "arn:aws:s3:::other-bucket"]  # once each
    assert "arn:aws:s3:::datasets/retraining/*" in _arns(grants, "s3:GetObject")


def test_a_document_fed_input_is_read_where_the_baseline_handler_writes_it() -> None:
    """The baseline custom resource writes each document under the job's first output, then points the
    input at it (lambdas/monitoring/baseline_job/handler.py); the template request has no S3Uri for it."""
    request = copy.deepcopy(PROCESSING)
    request["ProcessingInputs"].append({"InputName": "analysis_config", "S3Input": {"LocalPath": "/opt/ml/processing/input/config", "S3DataType": "S3Prefix"}})
    request["Documents"] = {"AnalysisConfig": {"File": "analysis_config.json", "Input": "analysis_config", "Body": {}}}
    grants = _grants(request)
    assert "arn:aws:s3:::monitoring/dq/baselines/*" in _arns(grants, "s3:GetObject") and "arn:aws:s3:::monitoring" in _arns(grants, "s3:ListBucket")
    del request["Documents"]
    with pytest.raises(ValueError, match="'analysis_config' has no S3Uri"):
        _grants(request)


def test_a_uri_that_is_a_token_is_split_by_cloudformation() -> None:
    stack = Stack(App(), "S")
    uri = CfnParameter(stack, "DatasetUri").value_as_string
    request = {"ProcessingInputs": [{"InputName": "d", "S3Input": {"S3Uri": uri, "LocalPath": "/x", "S3DataType": "S3Prefix"}}]}
    grants = _grants(request, stack=stack)
    [bucket] = grants["s3:ListBucket"]
    assert {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "DatasetUri"}]}]} in bucket["Fn::Join"][1]
    [objects] = grants["s3:GetObject"]
    assert {"Fn::Select": [1, {"Fn::Split": ["s3://", {"Ref": "DatasetUri"}]}]} in objects["Fn::Join"][1] and objects["Fn::Join"][1][-1].endswith("*")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["ProcessingInputs"][0]["S3Input"].update(S3DataType="ManifestFile"), "'ManifestFile' is not derivable"),
        (lambda r: r["ProcessingInputs"].append({"InputName": "athena", "DatasetDefinition": {}}), "'athena': only S3Input"),
        (lambda r: r["ProcessingInputs"][0]["S3Input"].update(S3Uri="https://example.com/x"), "not an s3://bucket/key URI"),
    ],
)
def test_inputs_whose_objects_the_request_does_not_name_are_refused(change, message: str) -> None:
    request = copy.deepcopy(PROCESSING)
    change(request)
    with pytest.raises(ValueError, match=message):
        _grants(request)
