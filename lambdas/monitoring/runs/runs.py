"""Turn SageMaker's monitoring-run events into the app's own "Monitoring Run Ended" event, and
check that every schedule keeps running.

A monitoring run is a processing job. SageMaker's "Processing Job State Change" event carries the
job's status and, for monitoring runs, ``MonitoringScheduleArn``; a run that found violations ends
``Completed`` with its violations in ``constraint_violations.json`` under the run's output. We read
that file rather than trusting the exit message alone, and publish one event per run with the
outcome and a summary of the violations. Retraining and the alert rule consume it; its shape is in
the README ("Monitoring Run Ended").

Events can arrive more than once; the event we publish carries the job name so consumers can tell.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lambdas.shared import aws

RUN_ENDED = "Monitoring Run Ended"
# Metric names (namespace MlLoop) the dashboard and the overdue alarms read (stacks/monitoring/events.py):
# MonitoringRuns by Monitor and Outcome; MonitoringScheduleOverdue (0 or 1) by Schedule.
RUNS_METRIC = "MonitoringRuns"
OVERDUE_METRIC = "MonitoringScheduleOverdue"
EVENT_VERSION = "1"
VIOLATIONS_FILE = "constraint_violations.json"
MAX_VIOLATIONS = 50  # PutEvents entries are at most 256 KB; the full list stays in the report
MAX_DESCRIPTION = 300
TERMINAL = ("Completed", "Failed", "Stopped")
# Scheduled runs start up to 20 minutes after the hour (Model Monitor docs); allow for it.
START_DELAY = dt.timedelta(minutes=20)
MISSED_CADENCES = 2
# The open back end's EventBridge Scheduler schedules fire at this minute of each cadence's hours
# (Model Monitor's start delay, leaving time for late capture objects): cron(0 * ? * * *) fires as
# cron(20 * ? * * *). The monitoring stack builds the same expression in CloudFormation.
EVALUATION_MINUTE = 20
CADENCE_START = "cron(0 "
# Each open evaluation ends by writing <monitor>/reports/<endpoint>/<schedule>/latest.json (after its
# report): the watchdog's record of the schedule's last run.
LATEST_MARKER = "latest.json"


class InvalidRunEvent(ValueError):
    """An event that is not a finished run of one of our schedules (parked with this reason)."""


@dataclass(frozen=True)
class RunSettings:
    schedules: dict[str, dict[str, str]]  # schedule name -> {"monitor": ..., "endpoint": ...}
    event_source: str
    event_bus: str = "default"
    violations_prefix: str = "CompletedWithViolations"


@dataclass(frozen=True)
class RunEnded:
    detail: dict[str, Any]

    @property
    def outcome(self) -> str:
        return self.detail["outcome"]


def _schedule_name(detail: dict[str, Any], schedules: dict[str, Any]) -> str:
    """The run's schedule: from MonitoringScheduleArn, else from its report folder.

    AWS documents no example of the processing-job event, so whether it carries
    MonitoringScheduleArn (DescribeProcessingJob does) is unverified (stacks/shared/aws_facts.py). Model
    Monitor writes each run's report under <output>/<endpoint>/<schedule>/yyyy/mm/dd/hh, and the
    output is ours, so the folder names the schedule as surely.
    """
    arn = detail.get("MonitoringScheduleArn")
    if isinstance(arn, str) and "/" in arn:
        return arn.rsplit("/", 1)[1]
    report = _output_uri(detail)
    folders = report.removeprefix("s3://").split("/")[1:] if report else []
    named = [folder for folder in folders if folder.lower() in schedules]
    if not named:
        raise InvalidRunEvent("not a monitoring run of this app: no MonitoringScheduleArn, and no report folder names one of its schedules")
    return named[-1]


def _output_uri(detail: dict[str, Any]) -> str | None:
    outputs = (detail.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    for output in outputs:
        uri = (output.get("S3Output") or {}).get("S3Uri")
        if isinstance(uri, str):
            return uri.rstrip("/")
    return None


class ReportDenied(ValueError):
    """S3 refused the violations read: parked with this reason, never taken for a clean run."""


def _listed_or_denied(s3: Any, bucket: str, key: str) -> bool:
    try:
        return aws.key_listed(s3, bucket, key)
    except ClientError as error:
        if error.response["Error"]["Code"] == "AccessDenied":
            return True
        raise


def read_violations(s3: Any, report_uri: str) -> list[dict[str, Any]]:
    """The run's violations; none when the file is absent (a clean data-quality run writes none).

    S3 says a key is absent (404 NoSuchKey) only to a caller who may list the bucket; to anyone
    else it answers 403 AccessDenied, absent or not. So a 403 is settled by listing the key (the
    function's role may list the report prefixes): not listed means a clean run; listed, or the
    listing refused too, means a permission is missing, and the event is parked with that reason.
    """
    bucket, key = aws.split_s3_uri(f"{report_uri}/{VIOLATIONS_FILE}")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "NoSuchKey":
            return []
        if code == "AccessDenied" and not _listed_or_denied(s3, bucket, key):
            return []
        if code == "AccessDenied":
            raise ReportDenied(
                f"S3 denied reading {VIOLATIONS_FILE} under {report_uri} (403 AccessDenied): the outcome is unknown; the function "
                "needs s3:GetObject on the report and s3:ListBucket on its prefix (without it a missing file is a 403 too)"
            ) from None
        raise
    try:
        violations = json.loads(body).get("violations", [])
    except (ValueError, AttributeError) as error:
        raise InvalidRunEvent(f"{VIOLATIONS_FILE} under {report_uri} is not a violations report: {error}") from None
    if not isinstance(violations, list):
        raise InvalidRunEvent(f"{VIOLATIONS_FILE} under {report_uri}: 'violations' is not a list")
    return [v for v in violations if isinstance(v, dict)]


def _summary(violation: dict[str, Any]) -> dict[str, Any]:
    # Data quality names a feature; Clarify's feature-attribution check names a label instead; model
    # quality names the figure (metric_name) that fell below its threshold.
    return {
        "checkType": violation.get("constraint_check_type"),
        "feature": violation.get("feature_name"),
        "metric": violation.get("metric_name"),
        "label": violation.get("label"),
        "description": str(violation.get("description", ""))[:MAX_DESCRIPTION],
    }


def run_ended(s3: Any, event: Any, settings: RunSettings) -> RunEnded | None:
    """The app event's detail for a finished run; None for a run that has not finished."""
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict) or not isinstance(detail.get("ProcessingJobName"), str):
        raise InvalidRunEvent("not a SageMaker Processing Job State Change event: no detail.ProcessingJobName")
    status = detail.get("ProcessingJobStatus")
    if status not in TERMINAL:
        return None
    name = _schedule_name(detail, settings.schedules)
    schedule = settings.schedules.get(name.lower()) or settings.schedules.get(name)
    if schedule is None:
        raise InvalidRunEvent(f"monitoring schedule {name!r} is not one of this app's: {', '.join(sorted(settings.schedules))}")
    report = _output_uri(detail)
    exit_message = detail.get("ExitMessage")
    violations: list[dict[str, Any]] = []
    outcome = status
    if status == "Completed":
        if report is not None:
            violations = read_violations(s3, report)
        flagged = isinstance(exit_message, str) and exit_message.startswith(settings.violations_prefix)
        if violations or flagged:
            outcome = "CompletedWithViolations"
    return ended(
        monitor=schedule["monitor"],
        schedule_name=name,
        endpoint_name=schedule["endpoint"],
        job_name=detail["ProcessingJobName"],
        outcome=outcome,
        exit_message=exit_message,
        failure_reason=detail.get("FailureReason"),
        report_uri=report,
        report_html_uri=None,  # Model Monitor and Clarify write no HTML report
        violations=violations,
        ended_at=detail.get("ProcessingEndTime") or event.get("time"),
    )


def ended(
    *,
    monitor: str,
    schedule_name: str,
    endpoint_name: str,
    job_name: str,
    outcome: str,
    exit_message: str | None,
    failure_reason: str | None,
    report_uri: str | None,
    report_html_uri: str | None,
    violations: list[dict[str, Any]],
    ended_at: Any,
) -> RunEnded:
    """The event of a finished run, whichever back end ran it (both publish this one shape)."""
    summaries = [_summary(v) for v in violations]
    return RunEnded(
        {
            "version": EVENT_VERSION,
            "monitor": monitor,
            "scheduleName": schedule_name,
            "endpointName": endpoint_name,
            "processingJobName": job_name,
            "outcome": outcome,
            "exitMessage": exit_message,
            "failureReason": failure_reason,
            "reportS3Uri": report_uri,
            "reportHtmlS3Uri": report_html_uri,
            "violationCount": len(summaries),
            "checkTypes": sorted({s["checkType"] for s in summaries if s["checkType"]}),
            "features": sorted({s["feature"] for s in summaries if s["feature"]}),
            "violations": summaries[:MAX_VIOLATIONS],
            "endedAt": ended_at,
        }
    )


def publish(events: Any, run: RunEnded, settings: RunSettings) -> None:
    response = events.put_events(
        Entries=[{"Source": settings.event_source, "DetailType": RUN_ENDED, "Detail": json.dumps(run.detail), "EventBusName": settings.event_bus}]
    )
    if response.get("FailedEntryCount"):
        entry = response["Entries"][0]
        raise RuntimeError(f"PutEvents failed: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}")


def _time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class ScheduleHealth:
    schedule: str
    overdue: bool
    reason: str


def schedule_health(sagemaker: Any, schedule: str, cadences: dict[str, int], now: dt.datetime) -> ScheduleHealth:
    """Overdue when the schedule is not running, or its last run was scheduled more than two
    cadences (plus the start delay) ago; a new schedule counts from its creation."""
    described = sagemaker.describe_monitoring_schedule(MonitoringScheduleName=schedule)
    status = described["MonitoringScheduleStatus"]
    if status != "Scheduled":
        return ScheduleHealth(schedule, True, f"schedule is {status}: {described.get('FailureReason') or 'no reason given'}")
    expression = described["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"]
    period = cadences.get(expression)
    if period is None:
        return ScheduleHealth(schedule, True, f"schedule expression {expression!r} is not one of the app's cadences")
    last = (described.get("LastMonitoringExecutionSummary") or {}).get("ScheduledTime") or described["CreationTime"]
    age = now - _time(last)
    limit = dt.timedelta(seconds=MISSED_CADENCES * period) + START_DELAY
    if age > limit:
        return ScheduleHealth(schedule, True, f"no run scheduled for {age} (limit {limit}, {expression})")
    return ScheduleHealth(schedule, False, f"last run scheduled {age} ago")


def evaluation_expression(cadence: str) -> str:
    """The open back end's schedule expression for a Model Monitor cadence (every one starts "cron(0 ")."""
    if not cadence.startswith(CADENCE_START):
        raise ValueError(f"cadence {cadence!r} does not start with {CADENCE_START!r}")
    return f"cron({EVALUATION_MINUTE} {cadence.removeprefix(CADENCE_START)}"


def latest_marker_key(monitor: str, endpoint: str, schedule: str) -> str:
    """Where an open evaluation records its last run (monitor = its S3 prefix: data-quality, explainability)."""
    return f"{monitor}/reports/{endpoint}/{schedule}/{LATEST_MARKER}"


def _last_modified(s3: Any, bucket: str, key: str) -> dt.datetime | None:
    """The marker's LastModified; None when it does not exist (S3 answers a HEAD of a missing key
    with 404 to a caller who may list it, else 403: a 403 is settled by listing, as in read_violations)."""
    try:
        return _time(s3.head_object(Bucket=bucket, Key=key)["LastModified"])
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in ("404", "NoSuchKey") or (code in ("403", "AccessDenied") and not _listed_or_denied(s3, bucket, key)):
            return None
        raise


def open_schedule_health(
    scheduler: Any, s3: Any, *, schedule: str, bucket: str, marker_key: str, cadences: dict[str, int], now: dt.datetime
) -> ScheduleHealth:
    """The open back end's schedule: overdue when it is not ENABLED, or its evaluation's run marker
    (``latest.json``) is older than two cadences plus the start delay; before the first run, the
    schedule counts from its creation."""
    described = scheduler.get_schedule(Name=schedule)
    state = described["State"]
    if state != "ENABLED":
        return ScheduleHealth(schedule, True, f"schedule is {state}")
    expression = described["ScheduleExpression"]
    period = {evaluation_expression(cadence): seconds for cadence, seconds in cadences.items()}.get(expression)
    if period is None:
        return ScheduleHealth(schedule, True, f"schedule expression {expression!r} is not one of the app's cadences")
    try:
        marked = _last_modified(s3, bucket, marker_key)
    except ClientError as error:
        return ScheduleHealth(schedule, True, f"cannot read the run marker s3://{bucket}/{marker_key}: {error.response['Error']['Code']}")
    last = marked or _time(described["CreationDate"])
    age = now - last
    limit = dt.timedelta(seconds=MISSED_CADENCES * period) + START_DELAY
    since = "last evaluation" if marked else "schedule created, no evaluation yet,"
    if age > limit:
        return ScheduleHealth(schedule, True, f"{since} {age} ago (limit {limit}, {expression})")
    return ScheduleHealth(schedule, False, f"{since} {age} ago")
