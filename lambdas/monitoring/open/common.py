"""What the open back end's scheduled evaluators share: the period a run covers, reading the
period's files from S3, the report folder and its run marker, the run's metrics and its event.

A run is an EventBridge Scheduler invocation with ``{"scheduledTime": ..., "schedule": <cadence>}``.
Its period is the hours ``[end - cadence, end)`` with ``end`` the scheduled time floored to the
hour (the schedule fires at minute 20, leaving late capture objects time to be profiled). The
report goes where Model Monitor puts its own, ``<monitor>/reports/<endpoint>/<schedule>/yyyy/mm/dd/hh``
of the period end, so a retried run overwrites its report; ``latest.json`` beside the hourly
folders records the last run for the watchdog. The run ends with the "Monitoring Run Ended" event
of ``lambdas.monitoring.runs.runs`` (the SageMaker back end's shape) and one ``MonitoringRuns`` data point.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric
from botocore.exceptions import ClientError

from lambdas.monitoring.runs import runs
from lambdas.shared.consumer import Environment, from_environment

HOUR_FORMAT = "%Y/%m/%d/%H"
# CloudWatch takes at most 100 metrics in one EMF document (Powertools' MAX_METRICS):
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
EMF_MAX_METRICS = 100
# Sketch and sample files are small (a few KB): read this many at once, in order, so a period of
# thousands of capture objects is not a sequence of round trips, and never more than the window
# is held in memory.
READ_WORKERS = 16
READ_WINDOW = 2 * READ_WORKERS
MAX_EXIT_MESSAGE = 2_000  # the event's exitMessage; the report lists everything


class RunInputError(ValueError):
    """The scheduler's input is not a run of this app's schedules (a deployment fault)."""


@dataclass(frozen=True)
class EvaluatorSettings:
    bucket: str
    endpoint: str
    schedule: str  # the schedule's name: <prefix>-data-quality | <prefix>-explainability
    event_source: str
    event_bus: str
    cadences: dict[str, int]  # schedule expression -> seconds between runs


def read_settings(env: Environment) -> EvaluatorSettings:
    cadences = env.json_value("CADENCES")
    if not isinstance(cadences, dict):
        raise ValueError("CADENCES must be a JSON object of schedule expression -> seconds")
    return EvaluatorSettings(
        bucket=env["MONITORING_BUCKET"],
        endpoint=env["ENDPOINT_NAME"],
        schedule=env["SCHEDULE_NAME"],
        event_source=env["EVENT_SOURCE"],
        event_bus=env.get("EVENT_BUS_NAME") or "default",
        cadences={expression: int(seconds) for expression, seconds in cadences.items()},
    )


settings = from_environment(read_settings)


@dataclass(frozen=True)
class Period:
    scheduled: dt.datetime
    start: dt.datetime
    end: dt.datetime

    @property
    def hours(self) -> list[str]:
        """``yyyy/mm/dd/hh`` of every hour in ``[start, end)``: the folders the profilers write."""
        count = int((self.end - self.start) / dt.timedelta(hours=1))
        return [(self.start + dt.timedelta(hours=i)).strftime(HOUR_FORMAT) for i in range(count)]

    @property
    def folder(self) -> str:
        """The report's hourly folder: ``yyyy/mm/dd/hh`` of the period end (as Model Monitor's)."""
        return self.end.strftime(HOUR_FORMAT)

    def describe(self) -> str:
        return f"{self.start:%Y-%m-%dT%H:%MZ} to {self.end:%Y-%m-%dT%H:%MZ} (capture hours, end excluded)"


def period(event: Any, cadences: Mapping[str, int]) -> Period:
    """The period of a scheduled run; ``RunInputError`` for an input no schedule of this app sends."""
    if not isinstance(event, dict) or not isinstance(event.get("scheduledTime"), str):
        raise RunInputError(f"not a scheduled run: the input has no scheduledTime string: {str(event)[:200]}")
    try:
        scheduled = dt.datetime.fromisoformat(event["scheduledTime"].replace("Z", "+00:00"))
    except ValueError:
        raise RunInputError(f"scheduledTime {event['scheduledTime']!r} is not an ISO 8601 time") from None
    scheduled = scheduled.replace(tzinfo=dt.UTC) if scheduled.tzinfo is None else scheduled.astimezone(dt.UTC)
    seconds = cadences.get(event.get("schedule"))
    if seconds is None:
        raise RunInputError(f"schedule {event.get('schedule')!r} is not one of the app's cadences: {', '.join(cadences)}")
    if seconds % 3_600 or seconds <= 0:
        raise RunInputError(f"cadence {event['schedule']} is {seconds} s, not a whole number of hours")
    end = scheduled.replace(minute=0, second=0, microsecond=0)
    return Period(scheduled, end - dt.timedelta(seconds=seconds), end)


def job_name(schedule: str, period: Period) -> str:
    """The run's name in the event's ``processingJobName``: ``<schedule>-<yyyymmddhh of the end>``."""
    return f"{schedule}-{period.end:%Y%m%d%H}"


def identity(monitor: str, settings: EvaluatorSettings, period: Period) -> dict[str, str]:
    """Which run a "Monitoring Run Ended" is about (runs.ended's first arguments)."""
    return {"monitor": monitor, "schedule_name": settings.schedule, "endpoint_name": settings.endpoint, "job_name": job_name(settings.schedule, period)}


def report_prefix(monitor_prefix: str, settings: EvaluatorSettings, period: Period) -> str:
    return f"{monitor_prefix}/reports/{settings.endpoint}/{settings.schedule}/{period.folder}"


def latest_key(monitor_prefix: str, settings: EvaluatorSettings) -> str:
    return runs.latest_marker_key(monitor_prefix, settings.endpoint, settings.schedule)


def list_keys(s3: Any, bucket: str, prefixes: Iterable[str], listing: Listing | None = None) -> Iterator[str]:
    """Every key under each prefix, page by page (ListObjectsV2 returns at most 1,000 a page); each
    listed object is also noted in ``listing`` when one is given."""
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents") or []:
                if listing is not None:
                    listing.add(item["Key"], item.get("ETag", ""))
                yield item["Key"]


class Listing:
    """What a listing of a period's files held: how many, and a fingerprint of their keys and ETags
    (SHA-256, in listing order, which S3 keeps: prefix by prefix, keys in UTF-8 order). Listed again
    later, the same files give the same fingerprint; a file added, rewritten with other content, or
    removed gives another one: how a run tells that an earlier period's files changed after its report."""

    def __init__(self) -> None:
        self.files = 0
        self._digest = hashlib.sha256()

    def add(self, key: str, etag: str) -> None:
        self.files += 1
        self._digest.update(f"{key}\n{etag}\n".encode())

    @property
    def fingerprint(self) -> str:
        return "sha256:" + self._digest.hexdigest()

    def document(self) -> dict[str, Any]:
        return {"files": self.files, "fingerprint": self.fingerprint}


def listing_of(s3: Any, bucket: str, prefixes: Iterable[str]) -> Listing:
    """The ``Listing`` of everything under the prefixes, nothing read."""
    listing = Listing()
    for _ in list_keys(s3, bucket, prefixes, listing):
        pass
    return listing


def earlier_periods(period: Period, count: int) -> list[Period]:
    """The ``count`` periods before ``period`` (latest first), each with the scheduled time its own run had."""
    cadence, delay = period.end - period.start, period.scheduled - period.end
    periods = []
    for back in range(1, count + 1):
        end = period.end - back * cadence
        periods.append(Period(end + delay, end - cadence, end))
    return periods


def read_objects(s3: Any, bucket: str, keys: Iterable[str], *, workers: int = READ_WORKERS) -> Iterator[tuple[str, bytes | None]]:
    """``(key, body)`` for each key in order, ``body`` None when the object was deleted after it was
    listed; at most ``2 * workers`` bodies are in memory at once. Any other S3 error is raised (the
    run fails and the scheduler retries it)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        window: deque = deque()
        for key in keys:
            window.append((key, pool.submit(_get, s3, bucket, key)))
            if len(window) >= 2 * workers:
                done_key, future = window.popleft()
                yield done_key, future.result()
        while window:
            done_key, future = window.popleft()
            yield done_key, future.result()


def _get(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] == "NoSuchKey":
            return None
        raise


def read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


CONTENT_TYPES = {".json": "application/json", ".html": "text/html; charset=utf-8"}


def read_baseline(s3: Any, bucket: str, prefix: str, names: Iterable[str], error: type[Exception]) -> dict[str, Any]:
    """The baseline's JSON documents ``names`` under ``prefix`` (a monitor's ``current/``); ``error``,
    the monitor's own, says which is absent or not JSON (the run fails with that reason)."""
    documents = {}
    for name in names:
        uri = f"s3://{bucket}/{prefix}/{name}"
        try:
            documents[name] = read_json(s3, bucket, f"{prefix}/{name}")
        except ClientError as failure:
            code = failure.response["Error"]["Code"]
            if code in ("NoSuchKey", "AccessDenied"):  # AccessDenied: absent, read without ListBucket
                raise error(f"no baseline {name} at {uri} ({code}): the baseline custom resource or retraining writes it") from None
            raise
        except ValueError as failure:
            raise error(f"baseline {uri} is not JSON: {failure}") from None
    return documents


def write_files(s3: Any, bucket: str, prefix: str, files: Mapping[str, bytes | str]) -> dict[str, str]:
    """Each file under ``prefix``; returns their URIs by file name."""
    uris = {}
    for name, body in files.items():
        data = body.encode("utf-8") if isinstance(body, str) else body
        content_type = CONTENT_TYPES.get(name[name.rfind(".") :], "application/octet-stream")
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data, ContentType=content_type)
        uris[name] = f"s3://{bucket}/{prefix}/{name}"
    return uris


def write_latest(s3: Any, bucket: str, key: str, period: Period, run: runs.RunEnded) -> None:
    """The run marker the open back end's watchdog reads (one object per schedule, overwritten)."""
    body = {
        "scheduledTime": period.scheduled.isoformat().replace("+00:00", "Z"),
        "endedAt": run.detail["endedAt"],
        "outcome": run.outcome,
        "reportS3Uri": run.detail["reportS3Uri"],
    }
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json")


def emit_metrics(values: Mapping[str, float], dimensions: Mapping[str, str], timestamp: dt.datetime | None = None) -> None:
    """EMF documents of at most 100 metrics, each with ``dimensions`` (and Powertools' ``service``),
    at ``timestamp`` (default: now; CloudWatch takes up to 14 days back)."""
    names = list(values)
    for start in range(0, len(names), EMF_MAX_METRICS):
        metrics = EphemeralMetrics()
        if timestamp is not None:
            metrics.set_timestamp(timestamp)
        for name, value in dimensions.items():
            metrics.add_dimension(name=name, value=value)
        for name in names[start : start + EMF_MAX_METRICS]:
            metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=values[name])
        if metrics.metric_set:  # Powertools prints a full set of 100 itself, as it reaches it
            metrics.flush_metrics()


def count_run(run: runs.RunEnded) -> None:
    """One ``MonitoringRuns`` data point by Monitor and Outcome, as the SageMaker back end's runs Lambda."""
    with single_metric(name=runs.RUNS_METRIC, unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="Monitor", value=run.detail["monitor"])
        metric.add_dimension(name="Outcome", value=run.outcome)


def publish(events: Any, run: runs.RunEnded, settings: EvaluatorSettings) -> None:
    runs.publish(events, run, runs.RunSettings(schedules={}, event_source=settings.event_source, event_bus=settings.event_bus))


def finish(s3: Any, events: Any, settings: EvaluatorSettings, period: Period, ended: runs.RunEnded, metrics: Mapping[str, float]) -> None:
    """How every run ends: its event, its ``latest.json`` marker, its metrics (none for a period
    without data or a failed run) and one ``MonitoringRuns`` count."""
    publish(events, ended, settings)
    write_latest(s3, settings.bucket, latest_key(ended.detail["monitor"], settings), period, ended)
    if metrics:
        emit_metrics(metrics, {"Endpoint": settings.endpoint, "MonitoringSchedule": settings.schedule})
    count_run(ended)


def finish_again(events: Any, settings: EvaluatorSettings, period: Period, ended: runs.RunEnded, metrics: Mapping[str, float]) -> None:
    """How a re-evaluation of an earlier period ends: its event (the period's run name again) and its
    metrics at that period's own run time, so they plot in their period; no ``latest.json`` (the
    watchdog follows the scheduled runs) and no ``MonitoringRuns`` count (one a scheduled run)."""
    publish(events, ended, settings)
    if metrics:
        emit_metrics(metrics, {"Endpoint": settings.endpoint, "MonitoringSchedule": settings.schedule}, period.scheduled)


def completed(
    identity: Mapping[str, str], settings: EvaluatorSettings, prefix: str, report_html_uri: str, *,
    outcome: str, message: str, late: str | None, violations: list[dict[str, Any]],
) -> runs.RunEnded:
    """A run that wrote its report under ``prefix`` (its page at ``report_html_uri``), its exit
    message led by ``late``, the note of a re-evaluation with late data; ``failed`` is the other end."""
    return runs.ended(
        **identity, outcome=outcome, exit_message=clip(f"{late}; {message}") if late is not None else message, failure_reason=None,
        report_uri=f"s3://{settings.bucket}/{prefix}", report_html_uri=report_html_uri, violations=violations, ended_at=now_text(),
    )  # fmt: skip


def failed(s3: Any, events: Any, settings: EvaluatorSettings, period: Period, identity: Mapping[str, str], reason: str) -> runs.RunEnded:
    """A run that could not evaluate its period (no usable baseline, a model it cannot explain)."""
    ended = runs.ended(
        **identity, outcome="Failed", exit_message=clip(f"Failed: {reason}"), failure_reason=reason,
        report_uri=None, report_html_uri=None, violations=[], ended_at=now_text(),
    )  # fmt: skip
    finish(s3, events, settings, period, ended, {})
    return ended


def set_aside_message(skipped: Iterable[tuple[str, str]], limit: int = 10) -> str:
    """``"N file(s) set aside: name (reason); ..."``, the first ``limit`` named (the report lists all)."""
    items = list(skipped)
    if not items:
        return ""
    shown = "; ".join(f"{name} ({reason})" for name, reason in items[:limit])
    more = f"; and {len(items) - limit} more (see the report)" if len(items) > limit else ""
    return f"{len(items)} file(s) set aside: {shown}{more}"


def clip(message: str) -> str:
    return message if len(message) <= MAX_EXIT_MESSAGE else message[: MAX_EXIT_MESSAGE - 1] + "…"


def now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
