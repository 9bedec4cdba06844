"""Custom-resource handlers (CDK Provider framework) for ``AWS::SageMaker`` flow definitions.

There is no update API: the flow definition's name carries a hash of its request, so a changed
request is a new physical resource (CloudFormation then deletes the old one) and an unchanged one
is left alone. Creation and deletion are asynchronous, so ``is_complete`` polls
``DescribeFlowDefinition`` until the definition is Active, or gone.

A definition with human loops still open cannot be deleted (``ResourceInUse``). It is then kept,
with a warning in the log, and the deletion reported done: its loops finish under it, and the
results rule matches every flow definition of the app, so their answers still become labels. Delete
it by hand once ``ListHumanLoops`` shows none open.

The request arrives as one JSON string property, ``Request`` (with ``NamePrefix`` in place of the name), because CloudFormation turns every
custom-resource property value into a string and CreateFlowDefinition wants numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from lambdas.shared import aws

logger = logging.getLogger(__name__)

NAME_MAX = 63  # FlowDefinitionName: [a-z0-9](-*[a-z0-9]){0,62}
# Set by on_event when a definition in use is kept; the Provider framework passes on_event's
# result to is_complete, which then has nothing to wait for.
KEPT = "KeptInUse"


def _sagemaker() -> Any:
    return aws.client("sagemaker")


def flow_definition_request(properties: dict[str, Any]) -> dict[str, Any]:
    """CreateFlowDefinition's request, named ``<NamePrefix>-<hash of the rest>`` (at most 63 chars).

    The name is computed here, at deploy time, because parameters such as the workteam ARN are
    only known then: a new workteam is a new flow definition.
    """
    request = json.loads(properties["Request"])
    prefix = request.pop("NamePrefix")
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    return {"FlowDefinitionName": f"{prefix}-{digest[: NAME_MAX - len(prefix) - 1]}", **request}


def on_event(event: dict[str, Any], context: Any = None, sagemaker: Any = None) -> dict[str, Any]:
    sagemaker = sagemaker or _sagemaker()
    kind = event["RequestType"]
    if kind == "Delete":
        name = event["PhysicalResourceId"]
        try:
            sagemaker.delete_flow_definition(FlowDefinitionName=name)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "ResourceInUse":
                logger.warning("flow definition %s has open human loops; kept, delete it by hand once they finish", name)
                return {"PhysicalResourceId": name, "Data": {KEPT: error.response["Error"].get("Message") or code}}
            if code not in ("ResourceNotFound", "ValidationException"):
                raise
        return {"PhysicalResourceId": name}
    request = flow_definition_request(event["ResourceProperties"])
    name = request["FlowDefinitionName"]
    if kind == "Update" and event.get("PhysicalResourceId") == name:
        return {"PhysicalResourceId": name}  # same name, same content: nothing to change
    try:
        sagemaker.create_flow_definition(**request)
    except ClientError as error:
        # The same name means the same content (the name is a hash of it): adopt what exists,
        # e.g. after a rollback left it behind.
        if error.response["Error"]["Code"] != "ResourceInUse":
            raise
    return {"PhysicalResourceId": name}


def is_complete(event: dict[str, Any], context: Any = None, sagemaker: Any = None) -> dict[str, Any]:
    sagemaker = sagemaker or _sagemaker()
    name = event["PhysicalResourceId"]
    if event["RequestType"] == "Delete" and KEPT in (event.get("Data") or {}):
        return {"IsComplete": True}
    try:
        description = sagemaker.describe_flow_definition(FlowDefinitionName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFound" and event["RequestType"] == "Delete":
            return {"IsComplete": True}
        raise
    status = description["FlowDefinitionStatus"]
    if event["RequestType"] == "Delete":
        return {"IsComplete": False}  # still Deleting
    if status == "Failed":
        raise RuntimeError(f"flow definition {name} failed: {description.get('FailureReason', 'no reason given')}")
    if status != "Active":
        return {"IsComplete": False}
    return {"IsComplete": True, "Data": {"FlowDefinitionArn": description["FlowDefinitionArn"], "FlowDefinitionName": name}}
