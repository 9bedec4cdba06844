"""Lambda: A2I human-loop status changes (through a queue) -> labels, reports, "Labels Available".

Each SQS record holds one EventBridge event. An event we cannot act on is parked on the
dead-letter queue with its reason; S3 or EventBridge errors fail just that record, so SQS retries it.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.review_results.results import LoopEvent, ResultsSettings, record_loop
from lambdas.shared import aws

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def settings() -> ResultsSettings:
    env = os.environ
    return ResultsSettings(
        labels_bucket=env["LABELS_BUCKET"],
        report_bucket=env["REPORT_BUCKET"],
        label_names=tuple(json.loads(env["LABEL_NAMES"])),
        event_bus=env.get("EVENT_BUS_NAME", "default"),
        event_source=env["EVENT_SOURCE"],
    )


def record_handler(record: SQSRecord) -> None:
    try:
        event = LoopEvent.from_event(json.loads(record.body))
        result = record_loop(aws.client("s3"), aws.client("events"), event, settings())
    except ValueError as error:  # InvalidLoopEvent, JSONDecodeError, a malformed output.json: never retried
        aws.park(aws.client("sqs"), os.environ["DEAD_LETTER_QUEUE_URL"], record.body, f"{type(error).__name__}: {error}", "review_results")
        metrics.add_metric("LoopEventsParked", MetricUnit.Count, 1)
        return
    logger.info("human loop recorded", extra={"loop": result.loop, "status": result.status, "labelled": result.labelled, "unused": result.unused})
    metrics.add_metric(f"HumanLoops{event.status}", MetricUnit.Count, 1)
    metrics.add_metric("LabelsWritten", MetricUnit.Count, result.labelled)
    metrics.add_metric("ReviewedRowsUnused", MetricUnit.Count, result.unused)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
