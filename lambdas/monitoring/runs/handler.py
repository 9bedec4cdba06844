"""Lambdas: monitoring runs that ended (through a queue) -> "Monitoring Run Ended" events and
metrics; and an hourly watchdog that reports schedules whose runs stopped happening.

An event we cannot act on is parked on the dead-letter queue with its reason; S3 or EventBridge
errors fail just that record, so SQS retries it (``lambdas.shared.consumer``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.monitoring.runs.runs import OVERDUE_METRIC, RUNS_METRIC, RunSettings, publish, run_ended, schedule_health
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SqsConsumer, from_environment, logger, metrics


@from_environment
def settings(env: Environment) -> RunSettings:
    return RunSettings(schedules=env.json_value("SCHEDULES"), event_source=env["EVENT_SOURCE"], event_bus=env.get("EVENT_BUS_NAME", "default"))


@from_environment
def cadences(env: Environment) -> dict[str, int]:
    """Seconds between runs of each schedule expression (the watchdog's only)."""
    return {expression: int(seconds) for expression, seconds in env.json_value("CADENCES").items()}


def record_run(record: SQSRecord, config: RunSettings, context: Any) -> None:
    run = run_ended(aws.client("s3"), json.loads(record.body), config)  # InvalidRunEvent, ReportDenied: parked with the reason
    metrics.add_metric("RunEventsReceived", MetricUnit.Count, 1)
    if run is None:
        return
    publish(aws.client("events"), run, config)
    logger.info("monitoring run ended", extra={k: run.detail[k] for k in ("monitor", "processingJobName", "outcome", "violationCount")})
    with single_metric(name=RUNS_METRIC, unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="Monitor", value=run.detail["monitor"])
        metric.add_dimension(name="Outcome", value=run.outcome)


handler = SqsConsumer(source="monitoring_runs", settings=settings, record=record_run, parked_metric="RunEventsParked").handler


@logger.inject_lambda_context
def watchdog(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One data point per schedule: 1 when it is overdue or not running, else 0."""
    now = dt.datetime.now(dt.UTC)
    report = {}
    for schedule in settings().schedules:
        health = schedule_health(aws.client("sagemaker"), schedule, cadences(), now)
        (logger.warning if health.overdue else logger.info)("schedule health", extra={"schedule": schedule, "reason": health.reason})
        with single_metric(name=OVERDUE_METRIC, unit=MetricUnit.Count, value=int(health.overdue)) as metric:
            metric.add_dimension(name="Schedule", value=schedule)
        report[schedule] = {"overdue": health.overdue, "reason": health.reason}
    return report
