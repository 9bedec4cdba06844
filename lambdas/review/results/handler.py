"""Lambda: A2I human-loop status changes (through a queue) -> labels, reports, "Labels Available".

Each SQS record holds one EventBridge event. An event we cannot act on (``InvalidLoopEvent``, not
JSON, a malformed output.json) is parked on the dead-letter queue with its reason; S3 or
EventBridge errors fail just that record, so SQS retries it (``lambdas.shared.consumer``).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.review.results.results import LoopEvent, ResultsSettings, record_loop
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SqsConsumer, from_environment, logger, metrics


@from_environment
def settings(env: Environment) -> ResultsSettings:
    return ResultsSettings(
        labels_bucket=env["LABELS_BUCKET"],
        report_bucket=env["REPORT_BUCKET"],
        label_names=env.names("LABEL_NAMES"),
        event_bus=env.get("EVENT_BUS_NAME", "default"),
        event_source=env["EVENT_SOURCE"],
    )


def record_result(record: SQSRecord, config: ResultsSettings, context: Any) -> None:
    event = LoopEvent.from_event(json.loads(record.body))
    result = record_loop(aws.client("s3"), aws.client("events"), event, config)
    logger.info("human loop recorded", extra={"loop": result.loop, "status": result.status, "labelled": result.labelled, "unused": result.unused})
    metrics.add_metric(f"HumanLoops{event.status}", MetricUnit.Count, 1)
    metrics.add_metric("LabelsWritten", MetricUnit.Count, result.labelled)
    metrics.add_metric("ReviewedRowsUnused", MetricUnit.Count, result.unused)


handler = SqsConsumer(source="review_results", settings=settings, record=record_result, parked_metric="LoopEventsParked").handler
