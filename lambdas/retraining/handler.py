"""Lambdas of the retraining loop.

``triggers``: the FIFO queue of triggers and execution ends -> ``triggers.classify`` / ``decide``.
An event we cannot act on is parked on the dead-letter queue with its reason; an AWS error fails the
record, so SQS retries it (FIFO: the group waits, keeping decisions in order; ``lambdas.shared.consumer``).

``step``: one state of the retraining state machine, named by ``event["step"]``; an exception fails
the state, whose catch notifies and fails the execution.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.retraining import steps, triggers
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SqsConsumer, from_environment, logger, metrics


@from_environment
def trigger_settings(env: Environment) -> triggers.TriggerSettings:
    return triggers.TriggerSettings(
        table=env["STATE_TABLE"],
        state_machine_arn=env["STATE_MACHINE_ARN"],
        labels_bucket=env.get("LABELS_BUCKET") or None,
        label_threshold=env.integer("LABEL_THRESHOLD"),
        check_types=env.names("CHECK_TYPES"),
        cooldown=dt.timedelta(hours=env.integer("COOLDOWN_HOURS")),
        sources=env.json_value("EVENT_SOURCES"),
        drift_consecutive_periods=env.integer("DRIFT_CONSECUTIVE_PERIODS", triggers.DEFAULT_CONSECUTIVE_PERIODS),
        quality_violations=env.flag("QUALITY_VIOLATIONS", True),
    )


def _clients() -> dict[str, Any]:
    return {name: aws.client(name) for name in ("dynamodb", "stepfunctions", "s3")}


def record_trigger(record: SQSRecord, config: triggers.TriggerSettings, context: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    event = triggers.classify(json.loads(record.body), config)  # InvalidTriggerEvent, JSONDecodeError: parked with the reason
    if isinstance(event, triggers.Trigger):
        stored = triggers.TriggerState(aws.client("dynamodb"), config.table).record(event, now)
        metrics.add_metric("TriggersReceived", MetricUnit.Count, 1)
        logger.info("trigger", extra={"kind": event.kind, "new": stored, **event.summary})
        outcome = triggers.decide(_clients(), config, now)
    else:
        outcome = triggers.execution_ended(_clients(), config, event, now)
        logger.info("retraining ended", extra={"execution": event.get("executionArn"), "status": event.get("status")})
    if outcome["decision"] == "started":
        metrics.add_metric("RetrainingsStarted", MetricUnit.Count, 1)
    logger.info("decision", extra=outcome)


# A FIFO queue: decisions in the order the triggers and execution ends arrived (batch size 1 today;
# the FIFO processor keeps that order should the stack ever hand over more at once).
handler = SqsConsumer(source="retraining_triggers", settings=trigger_settings, record=record_trigger, parked_metric="TriggersParked", fifo=True).handler


@from_environment
def step_settings(env: Environment) -> steps.StepSettings:
    return steps.StepSettings(
        prefix=env["PREFIX"],
        endpoint_name=env["ENDPOINT_NAME"],
        datasets_bucket=env["DATASETS_BUCKET"],
        models_bucket=env["MODELS_BUCKET"],
        training_data_s3_uri=env["TRAINING_DATA_S3_URI"],
        labels_bucket=env.get("LABELS_BUCKET") or None,
        feature_names=env.names("FEATURE_NAMES"),
        label_count=env.integer("LABEL_COUNT"),
        validation_percentage=env.integer("VALIDATION_PERCENTAGE"),
        holdout_percentage=env.integer("HOLDOUT_PERCENTAGE"),
        test_data_s3_uri=env.get("TEST_DATA_S3_URI") or None,
        variant_name=env["VARIANT_NAME"],
        objective_metric=env["OBJECTIVE_METRIC"],
        objective_goal=env["OBJECTIVE_GOAL"],
        tolerance=env.number("TOLERANCE"),
        deployment=env.json_value("DEPLOYMENT_CONFIG"),
        served_model_parameter=env["SERVED_MODEL_PARAMETER"],
    )


@logger.inject_lambda_context
def step(event: dict[str, Any], context: Any) -> dict[str, Any]:
    name = event.get("step")
    settings = step_settings()
    if name == "assemble":
        result = steps.assemble(event, settings, aws.client("s3"))
    elif name == "servingModel":
        result = steps.serving_model(settings, aws.client("sagemaker"))
    elif name == "evaluate":
        result = steps.evaluate(event, settings, aws.client("s3"), aws.client("sagemaker"))
    elif name == "baselineDataset":
        result = steps.baseline_dataset(event, settings, aws.client("s3"))
    elif name == "baselines":
        result = steps.baselines(event, aws.client("s3"))
    elif name == "openBaselines":
        result = steps.open_baselines(event, settings, aws.client("s3"))
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
