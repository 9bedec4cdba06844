"""Lambdas: monitoring runs that ended (through a queue) -> "Monitoring Run Ended" events and
metrics; and an hourly watchdog that reports schedules whose runs stopped happening.

An event we cannot act on is parked on the dead-letter queue with its reason; S3 or EventBridge
errors fail just that record, so SQS retries it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.monitoring_runs.runs import OVERDUE_METRIC, RUNS_METRIC, RunSettings, publish, run_ended, schedule_health
from lambdas.shared import aws

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def settings() -> RunSettings:
    env = os.environ
    return RunSettings(schedules=json.loads(env["SCHEDULES"]), event_source=env["EVENT_SOURCE"], event_bus=env.get("EVENT_BUS_NAME", "default"))


def record_handler(record: SQSRecord) -> None:
    try:
        run = run_ended(aws.client("s3"), json.loads(record.body), settings())
    except ValueError as error:  # InvalidRunEvent, JSONDecodeError: never retried
        aws.park(aws.client("sqs"), os.environ["DEAD_LETTER_QUEUE_URL"], record.body, f"{type(error).__name__}: {error}", "monitoring_runs")
        metrics.add_metric("RunEventsParked", MetricUnit.Count, 1)
        return
    metrics.add_metric("RunEventsReceived", MetricUnit.Count, 1)
    if run is None:
        return
    publish(aws.client("events"), run, settings())
    logger.info("monitoring run ended", extra={k: run.detail[k] for k in ("monitor", "processingJobName", "outcome", "violationCount")})
    with single_metric(name=RUNS_METRIC, unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="Monitor", value=run.detail["monitor"])
        metric.add_dimension(name="Outcome", value=run.outcome)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


@logger.inject_lambda_context
def watchdog(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One data point per schedule: 1 when it is overdue or not running, else 0."""
    cadences = {expression: int(seconds) for expression, seconds in json.loads(os.environ["CADENCES"]).items()}
    now = dt.datetime.now(dt.UTC)
    report = {}
    for schedule in settings().schedules:
        health = schedule_health(aws.client("sagemaker"), schedule, cadences, now)
        (logger.warning if health.overdue else logger.info)("schedule health", extra={"schedule": schedule, "reason": health.reason})
        with single_metric(name=OVERDUE_METRIC, unit=MetricUnit.Count, value=int(health.overdue)) as metric:
            metric.add_dimension(name="Schedule", value=schedule)
        report[schedule] = {"overdue": health.overdue, "reason": health.reason}
    return report
