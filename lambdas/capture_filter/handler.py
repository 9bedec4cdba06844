"""Lambda: capture-object events from the capture queue -> review groups on the review queue.

Thin: reads settings from the environment once, then hands each SQS record to ``filtering``.
A record that can never succeed (not an S3 event, object gone, an object too big to read within
the function's timeout) is parked on the dead-letter queue with its reason; a transient failure
(S3 or SQS errors) is reported as a partial batch failure so SQS retries just that record.
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

from lambdas.capture_filter.events import capture_objects
from lambdas.capture_filter.filtering import FilterSettings, ObjectGone, OutOfTime, filter_capture_object
from lambdas.capture_filter.records import ParseOptions
from lambdas.capture_filter.selection import SelectionRule
from lambdas.shared import aws

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def settings() -> FilterSettings:
    env = os.environ
    return FilterSettings(
        options=ParseOptions(
            score_path=env.get("SCORE_PATH") or None,
            features_path=env.get("FEATURES_PATH") or "features",
            threshold=float(env.get("DECISION_THRESHOLD", "0.5")),
        ),
        rule=SelectionRule(
            rule=env["SELECTION_RULE"],
            lower=float(env["LOWER_THRESHOLD"]),
            upper=float(env["UPPER_THRESHOLD"]),
            outcome=int(env["SELECTED_OUTCOME"]),
        ),
        rows_per_loop=int(env["ROWS_PER_LOOP"]),
        review_queue_url=env["REVIEW_QUEUE_URL"],
        report_bucket=env["REPORT_BUCKET"],
    )


def record_handler(record: SQSRecord, lambda_context: Any = None) -> None:
    time_left = (lambda: lambda_context.get_remaining_time_in_millis() / 1000) if lambda_context is not None else None
    try:
        objects = capture_objects(json.loads(record.body))
    except ValueError as error:  # includes JSONDecodeError
        _park(record, f"not a capture-object event: {error}")
        return
    for obj in objects:
        try:
            report = filter_capture_object(aws.client("s3"), aws.client("sqs"), obj, settings(), time_left)
        except (ObjectGone, OutOfTime) as error:  # reading it again cannot help: parked with the reason
            _park(record, str(error))
            continue
        logger.info(
            "capture object filtered",
            extra={"captureObject": obj.uri, "records": report.records, "rows": report.rows, "selected": report.selected,
                   "groups": report.groups, "rejected": report.rejected, "reasons": dict(report.reasons), "report": report.report_key},
        )
        metrics.add_metric("CaptureRecords", MetricUnit.Count, report.records)
        metrics.add_metric("RowsSelectedForReview", MetricUnit.Count, report.selected)
        metrics.add_metric("CaptureLinesRejected", MetricUnit.Count, report.rejected)


def _park(record: SQSRecord, reason: str) -> None:
    logger.warning("capture event parked", extra={"reason": reason, "messageId": record.message_id})
    metrics.add_metric("CaptureEventsParked", MetricUnit.Count, 1)
    aws.park(aws.client("sqs"), os.environ["DEAD_LETTER_QUEUE_URL"], record.body, reason, "capture_filter")


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
