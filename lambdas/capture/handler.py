"""Lambda: capture-object events from the capture queue -> review groups on the review queue.

Thin: its settings, read from the environment once, and a record function that hands each capture
object to ``filtering``. A record that can never succeed (not an S3 event, object gone, an object
too big to read within the function's timeout) is parked on the dead-letter queue with its reason;
a transient failure (S3 or SQS errors) fails just that record, so SQS retries it
(``lambdas.shared.consumer``).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.capture.events import capture_objects
from lambdas.capture.filtering import FilterSettings, ObjectGone, OutOfTime, filter_capture_object
from lambdas.capture.records import ParseOptions
from lambdas.capture.selection import SelectionRule
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SqsConsumer, Unfixable, from_environment, logger, metrics


@from_environment
def settings(env: Environment) -> FilterSettings:
    return FilterSettings(
        options=ParseOptions(
            score_path=env.get("SCORE_PATH") or None,
            features_path=env.get("FEATURES_PATH") or "features",
            threshold=env.number("DECISION_THRESHOLD", 0.5),
        ),
        rule=SelectionRule(
            rule=env["SELECTION_RULE"],
            lower=env.number("LOWER_THRESHOLD"),
            upper=env.number("UPPER_THRESHOLD"),
            outcome=env.integer("SELECTED_OUTCOME"),
        ),
        rows_per_loop=env.integer("ROWS_PER_LOOP"),
        review_queue_url=env["REVIEW_QUEUE_URL"],
        report_bucket=env["REPORT_BUCKET"],
    )


def filter_event(record: SQSRecord, config: FilterSettings, context: Any) -> None:
    time_left = (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
    try:
        objects = capture_objects(json.loads(record.body))
    except ValueError as error:  # includes JSONDecodeError
        raise Unfixable(f"not a capture-object event: {error}") from error
    unreadable = []
    for obj in objects:
        try:
            report = filter_capture_object(aws.client("s3"), aws.client("sqs"), obj, config, time_left)
        except (ObjectGone, OutOfTime) as error:  # reading it again cannot help; the event's other objects still can be read
            unreadable.append(str(error))
            continue
        logger.info(
            "capture object filtered",
            extra={"captureObject": obj.uri, "records": report.records, "rows": report.rows, "selected": report.selected,
                   "groups": report.groups, "rejected": report.rejected, "reasons": dict(report.reasons), "report": report.report_key},
        )
        metrics.add_metric("CaptureRecords", MetricUnit.Count, report.records)
        metrics.add_metric("RowsSelectedForReview", MetricUnit.Count, report.selected)
        metrics.add_metric("CaptureLinesRejected", MetricUnit.Count, report.rejected)
    if unreadable:
        raise Unfixable("; ".join(unreadable))


handler = SqsConsumer(source="capture_filter", settings=settings, record=filter_event, parked_metric="CaptureEventsParked").handler
