"""Lambdas of the retraining loop.

``triggers``: the FIFO queue of triggers and execution ends -> ``triggers.classify`` / ``decide``.
An event we cannot act on is parked on the dead-letter queue with its reason; an AWS error fails the
record, so SQS retries it (FIFO: the group waits, keeping decisions in order).

``step``: one state of the retraining state machine, named by ``event["step"]``; an exception fails
the state, whose catch notifies and fails the execution.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.retraining import steps, triggers
from lambdas.shared import aws

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def trigger_settings() -> triggers.TriggerSettings:
    env = os.environ
    return triggers.TriggerSettings(
        table=env["STATE_TABLE"],
        state_machine_arn=env["STATE_MACHINE_ARN"],
        labels_bucket=env.get("LABELS_BUCKET") or None,
        label_threshold=int(env["LABEL_THRESHOLD"]),
        check_types=tuple(json.loads(env["CHECK_TYPES"])),
        cooldown=dt.timedelta(hours=int(env["COOLDOWN_HOURS"])),
        sources=json.loads(env["EVENT_SOURCES"]),
    )


def _clients() -> dict[str, Any]:
    return {name: aws.client(name) for name in ("dynamodb", "stepfunctions", "s3")}


def record_handler(record: SQSRecord) -> None:
    now = dt.datetime.now(dt.UTC)
    try:
        event = triggers.classify(json.loads(record.body), trigger_settings())
    except ValueError as error:  # InvalidTriggerEvent, JSONDecodeError: never retried
        aws.park(aws.client("sqs"), os.environ["DEAD_LETTER_QUEUE_URL"], record.body, f"{type(error).__name__}: {error}", "retraining_triggers", group_id="parked")
        metrics.add_metric("TriggersParked", MetricUnit.Count, 1)
        return
    if isinstance(event, triggers.Trigger):
        stored = triggers.TriggerState(aws.client("dynamodb"), trigger_settings().table).record(event, now)
        metrics.add_metric("TriggersReceived", MetricUnit.Count, 1)
        logger.info("trigger", extra={"kind": event.kind, "new": stored, **event.summary})
        outcome = triggers.decide(_clients(), trigger_settings(), now)
    else:
        outcome = triggers.execution_ended(_clients(), trigger_settings(), event, now)
        logger.info("retraining ended", extra={"execution": event.get("executionArn"), "status": event.get("status")})
    if outcome["decision"] == "started":
        metrics.add_metric("RetrainingsStarted", MetricUnit.Count, 1)
    logger.info("decision", extra=outcome)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


@cache
def step_settings() -> steps.StepSettings:
    env = os.environ
    return steps.StepSettings(
        prefix=env["PREFIX"],
        endpoint_name=env["ENDPOINT_NAME"],
        datasets_bucket=env["DATASETS_BUCKET"],
        models_bucket=env["MODELS_BUCKET"],
        training_data_s3_uri=env["TRAINING_DATA_S3_URI"],
        labels_bucket=env.get("LABELS_BUCKET") or None,
        feature_names=tuple(json.loads(env["FEATURE_NAMES"])),
        label_count=int(env["LABEL_COUNT"]),
        validation_percentage=int(env["VALIDATION_PERCENTAGE"]),
        objective_metric=env["OBJECTIVE_METRIC"],
        objective_goal=env["OBJECTIVE_GOAL"],
        tolerance=float(env["TOLERANCE"]),
        deployment=json.loads(env["DEPLOYMENT_CONFIG"]),
        served_model_parameter=env["SERVED_MODEL_PARAMETER"],
    )


@logger.inject_lambda_context
def step(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = event.get("step")
    settings = step_settings()
    if name == "assemble":
        result = steps.assemble(event, settings, aws.client("s3"))
    elif name == "evaluate":
        result = steps.evaluate(event, settings, aws.client("s3"), aws.client("sagemaker"))
    elif name == "baselineDataset":
        result = steps.baseline_dataset(event, settings, aws.client("s3"))
    elif name == "baselines":
        result = steps.baselines(event, aws.client("s3"))
    elif name == "deploy":
        result = steps.deploy(event, settings, aws.client("sagemaker"))
    elif name == "endpoint":
        result = steps.endpoint(event, settings, aws.client("sagemaker"))
    elif name == "promote":
        result = steps.promote(event, settings, aws.client("s3"), aws.client("ssm"))
    else:
        raise steps.StepError(f"unknown step {name!r}")
    logger.info("step done", extra={"step": name, "execution": (event.get("names") or {}).get("execution") or event.get("execution")})
    return result
