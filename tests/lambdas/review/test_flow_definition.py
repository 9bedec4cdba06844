"""The flow-definition custom resource: every SageMaker call checked by Stubber against botocore's model."""

from __future__ import annotations

import json

import pytest

from lambdas.review.flow_definition.handler import flow_definition_request, is_complete, on_event
from stacks.shared.aws_facts import A2I_NAME_MAX, A2I_NAME_PATTERN

ARN = "arn:aws:sagemaker:eu-west-1:123456789012"
REQUEST = {
    "NamePrefix": "mlloop-dev",
    "RoleArn": "arn:aws:iam::123456789012:role/a2i",
    "HumanLoopConfig": {
        "WorkteamArn": f"{ARN}:workteam/private-crowd/reviewers",
        "HumanTaskUiArn": f"{ARN}:human-task-ui/mlloop-dev-low-confidence-abc",
        "TaskTitle": "Review a model prediction",
        "TaskDescription": "Check each prediction",
        "TaskCount": 1,
        "TaskAvailabilityLifetimeInSeconds": 86400,
        "TaskTimeLimitInSeconds": 3600,
        "TaskKeywords": ["review"],
    },
    "OutputConfig": {"S3OutputPath": "s3://review/a2i-output", "KmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/k"},
}


def event(kind: str, request: dict | None = None, physical: str | None = None) -> dict:
    e = {"RequestType": kind, "ResourceProperties": {"Request": json.dumps(request or REQUEST)}}
    if physical:
        e["PhysicalResourceId"] = physical
    return e


def name_of(request: dict) -> str:
    return flow_definition_request({"Request": json.dumps(request)})["FlowDefinitionName"]


def test_name_is_a_valid_hash_of_the_request() -> None:
    name = name_of(REQUEST)
    assert A2I_NAME_PATTERN.fullmatch(name) and len(name) <= A2I_NAME_MAX and name.startswith("mlloop-dev-")
    other = json.loads(json.dumps(REQUEST))
    other["HumanLoopConfig"]["WorkteamArn"] = f"{ARN}:workteam/private-crowd/others"
    assert name_of(other) != name and name_of(json.loads(json.dumps(REQUEST))) == name


def test_create_then_wait_until_active(sagemaker) -> None:
    client, stubber = sagemaker
    name = name_of(REQUEST)
    expected = {k: v for k, v in REQUEST.items() if k != "NamePrefix"} | {"FlowDefinitionName": name}
    stubber.add_response("create_flow_definition", {"FlowDefinitionArn": f"{ARN}:flow-definition/{name}"}, expected)
    assert on_event(event("Create"), sagemaker=client) == {"PhysicalResourceId": name}
    describe = {"FlowDefinitionName": name}
    base = {"FlowDefinitionArn": f"{ARN}:flow-definition/{name}", "FlowDefinitionName": name, "CreationTime": "2026-11-22T00:00:00Z",
            "OutputConfig": {"S3OutputPath": "s3://review/a2i-output"}, "RoleArn": REQUEST["RoleArn"],
            "HumanLoopConfig": {k: v for k, v in REQUEST["HumanLoopConfig"].items()}}
    stubber.add_response("describe_flow_definition", {**base, "FlowDefinitionStatus": "Initializing"}, describe)
    stubber.add_response("describe_flow_definition", {**base, "FlowDefinitionStatus": "Active"}, describe)
    assert is_complete(event("Create", physical=name), sagemaker=client) == {"IsComplete": False}
    done = is_complete(event("Create", physical=name), sagemaker=client)
    assert done == {"IsComplete": True, "Data": {"FlowDefinitionArn": f"{ARN}:flow-definition/{name}", "FlowDefinitionName": name}}


def test_failed_creation_fails_the_deployment_with_the_reason(sagemaker) -> None:
    client, stubber = sagemaker
    name = name_of(REQUEST)
    stubber.add_response("describe_flow_definition", {
        "FlowDefinitionArn": f"{ARN}:flow-definition/{name}", "FlowDefinitionName": name, "FlowDefinitionStatus": "Failed",
        "CreationTime": "2026-11-22T00:00:00Z", "OutputConfig": {"S3OutputPath": "s3://review/a2i-output"}, "RoleArn": REQUEST["RoleArn"],
        "FailureReason": "Workteam not found",
    }, {"FlowDefinitionName": name})
    with pytest.raises(RuntimeError, match="Workteam not found"):
        is_complete(event("Create", physical=name), sagemaker=client)


def test_update_with_unchanged_request_changes_nothing(sagemaker) -> None:
    client, _ = sagemaker
    name = name_of(REQUEST)
    assert on_event(event("Update", physical=name), sagemaker=client) == {"PhysicalResourceId": name}


def test_update_with_changed_request_creates_a_new_definition(sagemaker) -> None:
    client, stubber = sagemaker
    changed = json.loads(json.dumps(REQUEST))
    changed["HumanLoopConfig"]["TaskCount"] = 2
    new = name_of(changed)
    stubber.add_response("create_flow_definition", {"FlowDefinitionArn": f"{ARN}:flow-definition/{new}"}, None)
    assert on_event(event("Update", changed, physical=name_of(REQUEST)), sagemaker=client) == {"PhysicalResourceId": new}


def test_delete_waits_until_the_definition_is_gone(sagemaker) -> None:
    client, stubber = sagemaker
    name = name_of(REQUEST)
    stubber.add_response("delete_flow_definition", {}, {"FlowDefinitionName": name})
    assert on_event(event("Delete", physical=name), sagemaker=client) == {"PhysicalResourceId": name}
    stubber.add_response("describe_flow_definition", {
        "FlowDefinitionArn": f"{ARN}:flow-definition/{name}", "FlowDefinitionName": name, "FlowDefinitionStatus": "Deleting",
        "CreationTime": "2026-11-22T00:00:00Z", "OutputConfig": {"S3OutputPath": "s3://review/a2i-output"}, "RoleArn": REQUEST["RoleArn"],
    }, {"FlowDefinitionName": name})
    stubber.add_client_error("describe_flow_definition", service_error_code="ResourceNotFound", expected_params={"FlowDefinitionName": name})
    assert is_complete(event("Delete", physical=name), sagemaker=client) == {"IsComplete": False}
    assert is_complete(event("Delete", physical=name), sagemaker=client) == {"IsComplete": True}


def test_deleting_what_is_already_gone_succeeds(sagemaker) -> None:
    client, stubber = sagemaker
    stubber.add_client_error("delete_flow_definition", service_error_code="ResourceNotFound", expected_params={"FlowDefinitionName": "x"})
    assert on_event(event("Delete", physical="x"), sagemaker=client) == {"PhysicalResourceId": "x"}


def test_a_definition_with_open_loops_is_kept_and_its_deletion_succeeds(sagemaker) -> None:
    """DeleteFlowDefinition's ResourceInUse (botocore models it) must not leave the stack DELETE_FAILED
    (or an update's cleanup failed); the loops finish under the kept definition."""
    client, stubber = sagemaker
    name = name_of(REQUEST)
    stubber.add_client_error(
        "delete_flow_definition", service_error_code="ResourceInUse", service_message="Flow definition has active human loops",
        http_status_code=400, expected_params={"FlowDefinitionName": name},
    )
    response = on_event(event("Delete", physical=name), sagemaker=client)
    assert response["PhysicalResourceId"] == name
    # The framework hands is_complete the event merged with on_event's result: no DescribeFlowDefinition
    # (the Stubber would fail on an unexpected call), nothing to wait for.
    assert is_complete({**event("Delete", physical=name), **response}, sagemaker=client) == {"IsComplete": True}


def test_other_delete_errors_still_fail(sagemaker) -> None:
    client, stubber = sagemaker
    stubber.add_client_error("delete_flow_definition", service_error_code="ThrottlingException", http_status_code=400, expected_params={"FlowDefinitionName": "x"})
    with pytest.raises(Exception, match="ThrottlingException"):
        on_event(event("Delete", physical="x"), sagemaker=client)
