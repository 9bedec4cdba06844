"""Lambda: review groups from the review queue -> review tasks (and the nightly redrive).

``REVIEW_BACKEND``: ``open`` puts each group as a task of the reviewers' app (``TASKS_TABLE``),
``a2i`` (the default when unset) starts an A2I human loop (``FLOW_DEFINITION_ARN``).

``handler`` takes SQS batches from the review queue and, with ``ATTRIBUTIONS=on``, attaches each
record's SHAP attributions from the model the endpoint serves now; ``redrive_handler`` runs on a
schedule after midnight UTC and moves deferred groups back to the review queue, as many as the new
day's budget allows.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.review.starter.attributions import explain_rows, unavailable
from lambdas.review.starter.starter import (
    DailyBudget,
    OpenTasks,
    Outcome,
    RetryLater,
    StarterSettings,
    backoff_seconds,
    feature_names,
    move_deferred,
    start_review,
)
from lambdas.review.app.tasks import Tasks
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SqsConsumer, from_environment, logger, metrics
from lambdas.shared.explain.deployed_model import DeployedModel
from lambdas.shared.review_group import ReviewGroup


@from_environment
def settings(env: Environment) -> StarterSettings:
    return StarterSettings(
        flow_definition_arn=env["FLOW_DEFINITION_ARN"] if env.get("REVIEW_BACKEND", "a2i") == "a2i" else None,
        loop_prefix=env["LOOP_PREFIX"],
        label_names=env.names("LABEL_NAMES"),
        feature_names=env.names("FEATURE_NAMES"),
        dead_letter_queue_url=env["DEAD_LETTER_QUEUE_URL"],
        deferred_queue_url=env["DEFERRED_QUEUE_URL"],
        top_k=env.integer("TOP_K", 10),
    )


@from_environment
def review_queue_url(env: Environment) -> str:
    return env["REVIEW_QUEUE_URL"]


@from_environment
def open_tasks(env: Environment) -> OpenTasks | None:
    """The reviewers' app's tasks table, when it is the review back end."""
    backend = env.get("REVIEW_BACKEND", "a2i")
    if backend == "a2i":
        return None
    if backend != "open":
        raise ValueError(f"REVIEW_BACKEND is {backend!r}, not open or a2i")
    return OpenTasks(Tasks(aws.client("dynamodb"), env["TASKS_TABLE"]), env.integer("REVIEWERS_PER_TASK"), env.integer("TASK_AVAILABILITY_SECONDS"))


@from_environment
def budget(env: Environment) -> DailyBudget:
    return DailyBudget(aws.client("dynamodb"), env["BUDGET_TABLE"], env.integer("MAX_LOOPS_PER_DAY"))


@from_environment
def deployed_model(env: Environment) -> DeployedModel | None:
    """The served model (the endpoint's, or batch only the served-model parameter's), when attributions are on (XGBoost is imported only then)."""
    if env.get("ATTRIBUTIONS") != "on":
        return None
    from lambdas.shared.explain import tree  # the explain layer: numpy, scipy, xgboost

    # Batch only there is no endpoint: the served-model parameter names the model the nightly run used.
    source = (
        {"served_model_parameter": (aws.client("ssm"), env["SERVED_MODEL_PARAMETER"])}
        if env.get("SERVED_MODEL_PARAMETER")
        else {"endpoint_name": env["ENDPOINT_NAME"], "variant_name": env["VARIANT_NAME"]}
    )
    return DeployedModel(
        aws.client("sagemaker"),
        aws.client("s3"),
        **source,
        refresh_seconds=env.number("MODEL_REFRESH_SECONDS"),
        load=tree.TreeExplainer.from_artifact,
    )


def explanations(group: ReviewGroup) -> list[dict[str, Any]]:
    config = settings()
    try:
        model = deployed_model()
        result = explain_rows(model.explainer if model else None, group.rows, lambda count: feature_names(config, count), config.top_k)
    except Exception:  # a fault in explaining (even a broken layer) must not hold up the review itself
        logger.exception("attributions failed; the task says so and review goes on")
        result = [unavailable("the app failed to compute attributions for this record (see the starter's logs)") for _ in group.rows]
    explained = sum(1 for e in result if e["status"] == "explained")
    for explanation in result:
        if explanation["status"] == "unavailable":
            logger.warning("record not explained", extra={"reason": explanation["reason"]})
    if os.environ.get("ATTRIBUTIONS") == "on":
        metrics.add_metric("RecordsExplained", MetricUnit.Count, explained)
        metrics.add_metric("RecordsNotExplained", MetricUnit.Count, len(result) - explained)
    return result


def start_group(record: SQSRecord, config: StarterSettings, context: Any) -> None:
    group = ReviewGroup.from_body(record.body)  # InvalidGroup: parked with its reason
    sqs = aws.client("sqs")
    try:
        sink = open_tasks()
        a2i = aws.client("sagemaker-a2i-runtime") if sink is None else None
        outcome = start_review(a2i, sqs, budget(), group, config, explanations, sink)
    except RetryLater as error:
        wait = backoff_seconds(int(record.attributes.approximate_receive_count))
        logger.warning("the review back end asked us to wait", extra={"reason": str(error), "retryInSeconds": wait})
        sqs.change_message_visibility(QueueUrl=review_queue_url(), ReceiptHandle=record.receipt_handle, VisibilityTimeout=wait)
        raise
    logger.info("review group handled", extra={"outcome": outcome.value, "rows": len(group.rows), "loop": group.loop_name(config.loop_prefix)})
    metric = {
        Outcome.STARTED: "HumanLoopsStarted",
        Outcome.ALREADY_STARTED: "HumanLoopsAlreadyStarted",
        Outcome.DEFERRED: "RowsOverDailyCap",
        Outcome.PARKED: "ReviewGroupsParked",
    }[outcome]
    metrics.add_metric(metric, MetricUnit.Count, len(group.rows) if outcome is Outcome.DEFERRED else 1)


handler = SqsConsumer(source="human_loop_starter", settings=settings, record=start_group, parked_metric="ReviewGroupsParked").handler


@logger.inject_lambda_context
@metrics.log_metrics
def redrive_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    limit = budget().remaining()
    moved = move_deferred(aws.client("sqs"), settings().deferred_queue_url, review_queue_url(), limit)
    logger.info("deferred review groups moved back", extra={"moved": moved, "budgetLeft": limit})
    metrics.add_metric("DeferredGroupsRedriven", MetricUnit.Count, moved)
    return {"moved": moved}
