"""The task states the app's state machines (retraining, the nightly batch) build the same way: a
step of the app's steps function, and a SageMaker service integration, each with its retries.

Errors retried are the transient ones Step Functions documents for each integration: Lambda's
service errors (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html)
and SageMaker's throttling and internal errors; anything else is the step's own failure, caught by
the state machine.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

LAMBDA_RETRY_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException"]
SAGEMAKER_RETRY_ERRORS = ["SageMaker.ThrottlingException", "ThrottlingException", "SageMaker.AmazonSageMakerException"]
# A step's longest run: the steps functions' own timeout (Lambda's maximum).
STEP_TIMEOUT = Duration.minutes(15)


def lambda_step(
    scope: Construct, name: str, function: lambda_.IFunction, payload: sfn.TaskInput | None, result_path: str, input_path: str | None = None
) -> tasks.LambdaInvoke:
    """A step of ``function``: its answer (the payload only) at ``result_path``."""
    task = tasks.LambdaInvoke(
        scope,
        name,
        lambda_function=function,
        payload=payload,
        input_path=input_path,
        payload_response_only=True,
        result_path=result_path,
        task_timeout=sfn.Timeout.duration(STEP_TIMEOUT),
        retry_on_service_exceptions=False,
    )
    task.add_retry(errors=LAMBDA_RETRY_ERRORS, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2)
    return task


def sagemaker_task(scope: Construct, name: str, resource: str, parameters: dict[str, Any], timeout: Duration, **state: Any) -> sfn.CustomState:
    """``arn:<partition>:states:::sagemaker:<resource>`` (``createTransformJob.sync``, ``createModel``...)
    with ``parameters`` as written (JSONPath fields end in ``.$``) and ``state``'s other fields."""
    task = sfn.CustomState(
        scope,
        name,
        state_json={
            "Type": "Task",
            "Resource": f"arn:{Stack.of(scope).partition}:states:::sagemaker:{resource}",
            "Parameters": parameters,
            "TimeoutSeconds": int(timeout.to_seconds()),
            **state,
        },
    )
    task.add_retry(errors=SAGEMAKER_RETRY_ERRORS, interval=Duration.seconds(10), max_attempts=4, backoff_rate=2)
    return task
