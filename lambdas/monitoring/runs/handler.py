"""Lambdas: monitoring runs that ended (through a queue) -> "Monitoring Run Ended" events and
metrics; and an hourly watchdog that reports schedules whose runs stopped happening, for either
back end (``BACKEND``): Model Monitor schedules (sagemaker) or the app's own EventBridge Scheduler
schedules and their evaluations' run markers (open).

An event we cannot act on is parked on the dead-letter queue with its reason; S3 or EventBridge
errors fail just that record, so SQS retries it (``lambdas.shared.consumer``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.monitoring.runs.runs import (
    OVERDUE_METRIC, RUNS_METRIC, RunSettings, ScheduleHealth, latest_marker_key, open_schedule_health, publish, run_ended, schedule_health,
)  # fmt: skip
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, SqsConsumer, from_environment, logger, metrics


@from_environment
def settings(env: Environment) -> RunSettings:
    return RunSettings(schedules=env.json_value("SCHEDULES"), event_source=env["EVENT_SOURCE"], event_bus=env.get("EVENT_BUS_NAME", "default"))


@from_environment
def cadences(env: Environment) -> dict[str, int]:
    """Seconds between runs of each schedule expression (the watchdog's only)."""
    return {expression: int(seconds) for expression, seconds in env.json_value("CADENCES").items()}


@from_environment
def backend(env: Environment) -> tuple[str, str | None]:
    """The watchdog's back end ("open" | "sagemaker") and, for open, the monitoring bucket."""
    name = env["BACKEND"]
    if name not in ("open", "sagemaker"):
        raise ValueError(f"BACKEND {name!r} is not open or sagemaker")
    return name, env["MONITORING_BUCKET"] if name == "open" else None


def _health(schedule: str, where: dict[str, str], now: dt.datetime) -> ScheduleHealth:
    name, bucket = backend()
    if name == "sagemaker":
        return schedule_health(aws.client("sagemaker"), schedule, cadences(), now)
    marker = latest_marker_key(where["monitor"], where["endpoint"], schedule)
    return open_schedule_health(aws.client("scheduler"), aws.client("s3"), schedule=schedule, bucket=bucket, marker_key=marker, cadences=cadences(), now=now)


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
    for schedule, where in settings().schedules.items():
        health = _health(schedule, where, now)
        (logger.warning if health.overdue else logger.info)("schedule health", extra={"schedule": schedule, "reason": health.reason})
        with single_metric(name=OVERDUE_METRIC, unit=MetricUnit.Count, value=int(health.overdue)) as metric:
            metric.add_dimension(name="Schedule", value=schedule)
        report[schedule] = {"overdue": health.overdue, "reason": health.reason}
    return report
