"""Decide when a retraining starts: one at a time, every trigger recorded, nothing run twice.

Every trigger (drift alarm, monitoring run with violations, labels, schedule, manual request) and
every end of a retraining execution reaches this code through one FIFO queue with one message
group, so decisions are made one after another. Each trigger is stored in the state table
(``pk=trigger``, keyed by event time and ID, so a redelivered event is stored once) as ``pending``.

A decision (after each message):
- one retraining at a time: a start first takes the lock item of the state table (``pk=lock``) with a
  conditional write, and the end of that execution releases it. ListExecutions cannot be the guard:
  AWS documents it as eventually consistent, so two triggers in quick succession could both see no
  run. While the lock is held, triggers stay ``pending`` and are considered when the run ends. A lock
  older than ``LOCK_CHECK_AFTER`` whose execution is not running (a start that crashed, an end event
  that was lost) is released; a lock taken for the same pending triggers (a replayed message after
  a crash) resumes that start, which is idempotent. An execution started by hand outside the
  triggers holds no lock; ListExecutions still makes decisions wait for it;
- drift and quality triggers (``drift-alarm``, ``violations``, ``quality``) within ``cooldown`` of
  the last start are marked ``cooled-down``: a drift that outlives a fresh model reports again after
  the cooldown;
- a drift trigger starts a run only with the same evidence in ``drift_consecutive_periods`` (N,
  default 2) consecutive periods of its schedule (below); one without it is marked ``unconfirmed``
  (with N = 1 every drift trigger starts a run, as before);
- a ``quality`` trigger (a model-quality run with violations, its schedule named ``*-model-quality``)
  starts a run when ``quality_violations`` is on, with no consecutive rule: its figures are judged
  against their intervals already;
- ``labels`` triggers start a run once at least ``label_threshold`` labelled rows exist in
  ``training-rows/`` objects that the last completed training did not use (counted by object: one
  per review loop, named after it, listed in that training's dataset manifest). A replayed A2I event
  rewrites its loop's object, which changes its LastModified but not its name, so it is not counted
  again; event counts are never used, as they repeat. Until then the triggers stay ``pending``;
- ``schedule`` and ``manual`` triggers always start a run.
A start marks every pending trigger ``started`` with the execution's ARN; its name is derived from
those triggers, so a replayed message starts nothing new (StartExecution is idempotent on name and
input).

Consecutive periods. Every "Monitoring Run Ended" of a schedule (except model quality's) is one
period of that schedule, whatever its outcome, and is recorded in the state table (pk
``period#<schedule>``, sk the period's ``yyyy/mm/dd/hh``, the folder of its report: Model Monitor's
and the open back end's layout) with what it flagged, ``{check type: [feature, or label]}`` from the
event's violations. A run without violations (or only of check types that start nothing, or one that
failed) is a period that flagged nothing: it is recorded (kind ``period``: no trigger, no run) and
breaks every streak. A period evaluated again (the open back end's late data) replaces its record;
an older copy of the event redelivered later does not (the event time decides). Periods recorded
before the last promotion count as flagging nothing: they were compared with the old model's baseline.
- a ``violations`` trigger (a period whose violations include configured check types) is confirmed
  when one of its (check type, feature) pairs is flagged in N consecutive recorded periods of its
  schedule that include its own period (the periods after it count too, so a period re-evaluated
  with late data can complete a streak), else ``unconfirmed``: its period stays on record as evidence
  for the next one. Different features in consecutive periods are different evidence;
- a ``drift-alarm`` trigger (the alarm names its feature and schedule in its metric and dimensions)
  has no period of its own: the alarm enters ALARM during its period's run, so it waits (stays
  ``pending``) for the next N - 1 periods of the schedule after the hour it entered ALARM, and is
  confirmed when the feature's ``baseline_drift_check`` is flagged in the last of them and the N - 1
  periods before it, ``unconfirmed`` as soon as one of them does not flag it. An alarm that stays
  in ALARM sends no second event, so the period runs are its only evidence.
This relies on every run of the schedules reaching this function (the retraining stack's rule for
"Monitoring Run Ended" forwards every data-quality outcome, not only violations): a run that never
reports (its failure is alarmed by the watchdog) cannot break a streak.

When an execution ends: its lock is released; a success records its dataset manifest (the label
objects it consumed); if it promoted a model, drift and quality triggers that arrived while it ran
are ``superseded`` (the monitors now compare against the new model's baseline), and the promotion's
time is kept (``lastPromotedAt``) so earlier periods no longer count as evidence. A failed, timed-out or
aborted run starts nothing by itself (no retry loop); its pending triggers wait for the next trigger
or a manual request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from lambdas.monitoring.drift.evaluate import BASELINE_DRIFT, DRIFT_METRIC, SIGNIFICANT_DRIFT_METRIC
from lambdas.monitoring.runs.runs import RUN_ENDED
from lambdas.review.results.results import LABELS_AVAILABLE
from lambdas.shared import aws

DRIFT_KINDS = ("drift-alarm", "violations")
QUALITY = "quality"  # a model-quality run with violations
COOLED_KINDS = (*DRIFT_KINDS, QUALITY)  # the cooldown applies; a promotion supersedes them
ALWAYS_KINDS = ("schedule", "manual")
PERIOD = "period"  # a run that flagged nothing that starts a run: recorded as a period only
MODEL_QUALITY_SUFFIX = "-model-quality"  # the model-quality schedule: <prefix>-model-quality
DEFAULT_CONSECUTIVE_PERIODS = 2
HOUR_FORMAT = "%Y/%m/%d/%H"  # a period's key: the hour folder of its report
REPORT_HOUR = re.compile(r"/(\d{4}/\d{2}/\d{2}/\d{2})/?$")
RETENTION_DAYS = 90
RETRAINING_REQUESTED = "Retraining Requested"
# AWS's events (the stacks' rules use these too). CloudWatch alarm transitions reach EventBridge once
# per change of state, not per evaluation period, with detail.alarmName and detail.state.value:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html
CLOUDWATCH_SOURCE, ALARM_STATE_CHANGE = "aws.cloudwatch", "CloudWatch Alarm State Change"
# Step Functions: detail.stateMachineArn, executionArn, name, status, output (on success):
# https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html
STATES_SOURCE, EXECUTION_STATUS_CHANGE = "aws.states", "Step Functions Execution Status Change"
ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
# Scheduled rules: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html
SCHEDULE_SOURCE, SCHEDULED_EVENT = "aws.events", "Scheduled Event"
LOCK_KEY = {"pk": {"S": "lock"}, "sk": {"S": "retraining"}}
# StartExecution follows the lock within seconds and the end event within minutes of the end: a
# lock this old whose execution is not running was left behind.
LOCK_CHECK_AFTER = dt.timedelta(minutes=15)


class InvalidTriggerEvent(ValueError):
    """An event that is neither a trigger nor an execution end of ours (parked with this reason)."""


@dataclass(frozen=True)
class TriggerSettings:
    table: str
    state_machine_arn: str
    labels_bucket: str | None
    label_threshold: int
    check_types: tuple[str, ...]
    cooldown: dt.timedelta
    sources: dict[str, str]  # {"monitoring": "<app>.monitoring", "review": ..., "retraining": ...}
    # DRIFT_CONSECUTIVE_PERIODS, QUALITY_VIOLATIONS (retraining.drift_consecutive_periods, .quality_violations)
    drift_consecutive_periods: int = DEFAULT_CONSECUTIVE_PERIODS
    quality_violations: bool = True

    def __post_init__(self) -> None:
        if self.drift_consecutive_periods < 1:
            raise ValueError(f"drift_consecutive_periods must be at least 1, got {self.drift_consecutive_periods}")


@dataclass(frozen=True)
class Trigger:
    kind: str
    event_id: str
    time: str
    summary: dict[str, Any]

    @property
    def sort_key(self) -> str:
        return f"{self.time}#{self.event_id}"


def classify(event: Any, settings: TriggerSettings) -> Trigger | dict[str, Any]:
    """A Trigger, or the detail of one of our executions that ended."""
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict) or not event.get("id") or not event.get("time"):
        raise InvalidTriggerEvent("not an EventBridge event with id, time and detail")
    source, kind, detail = event.get("source"), event.get("detail-type"), event["detail"]

    def trigger(name: str, **summary: Any) -> Trigger:
        return Trigger(name, str(event["id"]), str(event["time"]), summary)

    if source == STATES_SOURCE and kind == EXECUTION_STATUS_CHANGE:
        if detail.get("stateMachineArn") != settings.state_machine_arn:
            raise InvalidTriggerEvent(f"execution of another state machine: {detail.get('stateMachineArn')}")
        if detail.get("status") not in ENDED:
            raise InvalidTriggerEvent(f"execution status {detail.get('status')!r} is not an end ({', '.join(ENDED)})")
        return detail
    if source == CLOUDWATCH_SOURCE and kind == ALARM_STATE_CHANGE:
        if (detail.get("state") or {}).get("value") != "ALARM":
            raise InvalidTriggerEvent(f"alarm {detail.get('alarmName')!r} did not enter ALARM")
        feature, schedule = alarmed(detail)
        return trigger(
            "drift-alarm", alarmName=detail.get("alarmName"), reason=(detail.get("state") or {}).get("reason"),
            feature=feature, scheduleName=schedule, hour=period_key(None, None, str(event["time"])),
        )  # fmt: skip
    if source == settings.sources.get("monitoring") and kind == RUN_ENDED:
        return _run_ended(detail, settings, trigger, str(event["time"]))
    if source == settings.sources.get("review") and kind == LABELS_AVAILABLE:
        if settings.labels_bucket is None:
            raise InvalidTriggerEvent("labels event but review is off")
        return trigger("labels", humanLoopName=detail.get("humanLoopName"), labelCount=detail.get("labelCount"))
    if source == SCHEDULE_SOURCE and kind == SCHEDULED_EVENT:
        return trigger("schedule", rule=(event.get("resources") or ["?"])[0])
    if source == settings.sources.get("retraining") and kind == RETRAINING_REQUESTED:
        return trigger("manual", reason=str(detail.get("reason") or "manual request")[:500], by=str(detail.get("requestedBy") or "")[:200])
    raise InvalidTriggerEvent(f"not a retraining trigger: source {source!r}, detail-type {kind!r}")


def _run_ended(detail: dict[str, Any], settings: TriggerSettings, trigger: Any, time: str) -> Trigger:
    """A monitoring run: a ``quality`` trigger (model quality), else a period of its schedule, a
    ``violations`` trigger when it flagged configured check types."""
    schedule = str(detail.get("scheduleName") or detail.get("monitor") or "unknown")
    checks = sorted(set(detail.get("checkTypes") or ()) & set(settings.check_types))
    violated = detail.get("outcome") == "CompletedWithViolations"
    if detail.get("monitor") == "model-quality" or schedule.endswith(MODEL_QUALITY_SUFFIX):
        if not settings.quality_violations:
            raise InvalidTriggerEvent("model-quality violations do not start a retraining (retraining.quality_violations is off)")
        if not violated:
            raise InvalidTriggerEvent(f"model-quality run without violations (outcome {detail.get('outcome')!r})")
        return trigger(QUALITY, monitor=detail.get("monitor"), scheduleName=schedule, processingJobName=detail.get("processingJobName"), checkTypes=sorted(detail.get("checkTypes") or ()))
    period = period_key(detail.get("reportS3Uri"), detail.get("processingJobName"), str(detail.get("endedAt") or time))
    summary = {"monitor": detail.get("monitor"), "scheduleName": schedule, "period": period, "processingJobName": detail.get("processingJobName"), "flagged": flagged(detail)}
    if violated and checks:
        return trigger("violations", **summary, checkTypes=checks, features=(detail.get("features") or [])[:20])
    return trigger(PERIOD, **summary, outcome=detail.get("outcome"))


def flagged(detail: dict[str, Any]) -> dict[str, list[str]]:
    """What a run flagged: ``{check type: [feature, or label]}`` from the event's violations (the
    first 50). An event without them (hand-made) names its check types with its ``features``."""
    found: dict[str, set[str]] = {}
    for violation in detail.get("violations") or []:
        if isinstance(violation, dict) and violation.get("checkType"):
            found.setdefault(str(violation["checkType"]), set()).add(str(violation.get("feature") or violation.get("label") or ""))
    if not found and detail.get("outcome") == "CompletedWithViolations":
        for check in detail.get("checkTypes") or ():
            found[str(check)] = {str(f) for f in detail.get("features") or ()} or {""}
    return {check: sorted(names) for check, names in sorted(found.items())}


def pairs(found: dict[str, list[str]], checks: tuple[str, ...] | None = None) -> set[str]:
    """The ``check:name`` pairs of ``found`` (of ``checks`` only, when given): a period's evidence."""
    return {f"{check}:{name}" for check, names in found.items() if checks is None or check in checks for name in names}


def period_key(report_uri: Any, job_name: Any, time: str) -> str:
    """A period's ``yyyy/mm/dd/hh``: its report's hour folder (both back ends write reports under
    ``.../<schedule>/yyyy/mm/dd/hh``), else the open back end's run name ``<schedule>-yyyymmddhh``,
    else the hour of ``time`` (the run's end, or the event's time)."""
    if isinstance(report_uri, str) and (found := REPORT_HOUR.search(report_uri)):
        return found.group(1)
    if isinstance(job_name, str) and (found := re.search(r"-(\d{10})$", job_name)):
        return dt.datetime.strptime(found.group(1), "%Y%m%d%H").strftime(HOUR_FORMAT)
    try:
        return dt.datetime.fromisoformat(time.replace("Z", "+00:00")).astimezone(dt.UTC).strftime(HOUR_FORMAT)
    except ValueError:
        return "0000/00/00/00"


def alarmed(detail: dict[str, Any]) -> tuple[str | None, str | None]:
    """(feature, schedule) of a drift alarm: from its metric, ``feature_baseline_drift_significant_<f>``
    (open back end) or ``feature_baseline_drift_<f>`` (Model Monitor's), and its MonitoringSchedule
    dimension (CloudWatch's event carries both under ``configuration.metrics``:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html)."""
    for metric in (detail.get("configuration") or {}).get("metrics") or []:
        described = ((metric or {}).get("metricStat") or {}).get("metric") or {}
        name = str(described.get("name") or "")
        for pattern in (SIGNIFICANT_DRIFT_METRIC, DRIFT_METRIC):
            prefix = pattern.format(feature="")
            if name.startswith(prefix) and name != prefix:
                schedule = (described.get("dimensions") or {}).get("MonitoringSchedule")
                return name.removeprefix(prefix), str(schedule) if schedule else None
    return None, None


@dataclass(frozen=True)
class Period:
    """One recorded run of a schedule: its key (``yyyy/mm/dd/hh``) and what it flagged."""

    key: str
    flagged: frozenset[str]  # check:name pairs, every check type
    received_at: str

    def flags(self, pair: str, since: str | None) -> bool:
        """Whether this period is evidence of ``pair`` (periods recorded before ``since`` are not)."""
        return pair in self.flagged and (since is None or self.received_at >= since)


class TriggerState:
    """The state table: triggers (pk ``trigger``) and the loop's state (pk ``state``)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def record(self, trigger: Trigger, now: dt.datetime) -> bool:
        """Store a trigger as pending; False when this event was stored before. A monitoring run's
        period is recorded too; a ``period`` (a run that starts nothing) only as that."""
        if trigger.kind in (PERIOD, "violations"):
            written = self.record_period(trigger, now)
            if trigger.kind == PERIOD:
                return written
        item = {
            "pk": {"S": "trigger"},
            "sk": {"S": trigger.sort_key},
            "kind": {"S": trigger.kind},
            "status": {"S": "pending"},
            "summary": {"S": json.dumps(trigger.summary)},
            "receivedAt": {"S": now.isoformat()},
            "expiresAt": {"N": str(int((now + dt.timedelta(days=RETENTION_DAYS)).timestamp()))},
        }
        try:
            self.dynamodb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def record_period(self, trigger: Trigger, now: dt.datetime) -> bool:
        """Record what the run flagged for its period; False when a later evaluation of that period is on record."""
        summary = trigger.summary
        item = {
            "pk": {"S": f"period#{summary['scheduleName']}"},
            "sk": {"S": summary["period"]},
            "flagged": {"S": json.dumps(summary["flagged"])},
            "eventTime": {"S": trigger.time},
            "processingJobName": {"S": str(summary.get("processingJobName"))},
            "receivedAt": {"S": now.isoformat()},
            "expiresAt": {"N": str(int((now + dt.timedelta(days=RETENTION_DAYS)).timestamp()))},
        }
        try:
            self.dynamodb.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk) OR eventTime <= :time",
                ExpressionAttributeValues={":time": {"S": trigger.time}},
            )  # fmt: skip
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def periods(self, schedule: str, *, through: str | None = None, after: str | None = None, limit: int) -> list[Period]:
        """Up to ``limit`` recorded periods of ``schedule``, oldest first: the last ones up to and
        including ``through``, or the first ones after ``after``."""
        condition, values = "pk = :pk", {":pk": {"S": f"period#{schedule}"}}
        if through is not None:
            condition, values[":key"] = condition + " AND sk <= :key", {"S": through}
        if after is not None:
            condition, values[":key"] = condition + " AND sk > :key", {"S": after}
        items = self.dynamodb.query(
            TableName=self.table, KeyConditionExpression=condition, ExpressionAttributeValues=values,
            ScanIndexForward=after is not None, Limit=limit, ConsistentRead=True,
        )["Items"]  # fmt: skip
        found = [Period(i["sk"]["S"], frozenset(pairs(json.loads(i["flagged"]["S"]))), i["receivedAt"]["S"]) for i in items]
        return found if after is not None else found[::-1]

    def pending(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "#status = :pending",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":pk": {"S": "trigger"}, ":pending": {"S": "pending"}},
        }
        for page in self.dynamodb.get_paginator("query").paginate(**request):
            items.extend(page["Items"])
        return [{"sk": i["sk"]["S"], "kind": i["kind"]["S"], "summary": json.loads(i["summary"]["S"]), "receivedAt": i["receivedAt"]["S"]} for i in items]

    def mark(self, sort_key: str, status: str, note: str) -> None:
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": "trigger"}, "sk": {"S": sort_key}},
            UpdateExpression="SET #status = :status, note = :note",
            ConditionExpression="#status = :pending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": {"S": status}, ":note": {"S": note[:1000]}, ":pending": {"S": "pending"}},
        )

    def lock(self) -> dict[str, str] | None:
        """The running retraining's lock: ``executionArn``, ``acquiredAt``; None when free."""
        item = self.dynamodb.get_item(TableName=self.table, Key=LOCK_KEY, ConsistentRead=True).get("Item")
        return {"executionArn": item["executionArn"]["S"], "acquiredAt": item["acquiredAt"]["S"]} if item else None

    def acquire(self, execution_arn: str, now: dt.datetime) -> bool:
        """Take the lock for ``execution_arn``; False when another execution holds it."""
        item = {**LOCK_KEY, "executionArn": {"S": execution_arn}, "acquiredAt": {"S": now.isoformat()}}
        try:
            self.dynamodb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, execution_arn: str) -> bool:
        """Free the lock if ``execution_arn`` holds it; False when it does not."""
        try:
            self.dynamodb.delete_item(
                TableName=self.table,
                Key=LOCK_KEY,
                ConditionExpression="executionArn = :arn",
                ExpressionAttributeValues={":arn": {"S": execution_arn}},
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def loop_state(self) -> dict[str, str]:
        item = self.dynamodb.get_item(TableName=self.table, Key={"pk": {"S": "state"}, "sk": {"S": "state"}}, ConsistentRead=True).get("Item") or {}
        return {name: value["S"] for name, value in item.items() if name not in ("pk", "sk") and "S" in value}

    def update_state(self, **values: str) -> None:
        names = {f"#{i}": name for i, name in enumerate(values)}
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"pk": {"S": "state"}, "sk": {"S": "state"}},
            UpdateExpression="SET " + ", ".join(f"#{i} = :{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":{i}": {"S": value} for i, value in enumerate(values.values())},
        )


def streak(state: TriggerState, schedule: str, period: str, pair: str, count: int, since: str | None) -> bool:
    """Whether ``pair`` is flagged in ``count`` consecutive recorded periods of ``schedule`` that
    include ``period``: among the ``count - 1`` periods on either side of it."""
    around = state.periods(schedule, through=period, limit=count) + state.periods(schedule, after=period, limit=count - 1)
    run = 0
    for recorded in around:
        run = run + 1 if recorded.flags(pair, since) else 0
        if run >= count:
            return True
    return False


def confirm(state: TriggerState, settings: TriggerSettings, trigger: dict[str, Any], since: str | None) -> tuple[str, str]:
    """("confirmed" | "wait" | "unconfirmed", why) for a drift trigger under the consecutive rule."""
    count, summary = settings.drift_consecutive_periods, trigger["summary"]
    schedule = summary.get("scheduleName")
    if trigger["kind"] == "violations":
        candidates = sorted(pairs(summary.get("flagged") or {}, settings.check_types))
        held = [pair for pair in candidates if streak(state, schedule, summary["period"], pair, count, since)]
        if held:
            return "confirmed", f"{', '.join(held)} in {count} consecutive periods of {schedule}"
        return "unconfirmed", f"{', '.join(candidates) or 'nothing'} not in {count} consecutive periods of {schedule} (period {summary['period']} recorded)"
    feature = summary.get("feature")
    if not feature or not schedule:
        return "unconfirmed", "the alarm names no drift metric with a MonitoringSchedule: its schedule's runs decide instead"
    pair = f"{BASELINE_DRIFT}:{feature}"
    later = state.periods(schedule, after=summary["hour"], limit=count - 1)
    missing = next((p.key for p in later if not p.flags(pair, since)), None)
    if missing is not None:
        return "unconfirmed", f"{pair} not flagged in period {missing} of {schedule}, after the alarm"
    if len(later) < count - 1:
        return "wait", f"{len(later)} of the {count - 1} periods of {schedule} after the alarm recorded"
    if streak(state, schedule, later[-1].key, pair, count, since):
        return "confirmed", f"{pair} in {count} consecutive periods of {schedule} up to {later[-1].key}"
    return "unconfirmed", f"{pair} not in {count} consecutive periods of {schedule} up to {later[-1].key}"


def consumed_label_objects(s3: Any, manifest_s3_uri: str | None) -> set[str]:
    """Keys of the label objects a training used, from its dataset manifest (``labelObjects``).

    A manifest that is gone (deleted by hand) consumed nothing: every label counts again, which at
    worst starts a retraining on data already trained on."""
    if not manifest_s3_uri:
        return set()
    bucket, key = aws.split_s3_uri(manifest_s3_uri)
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return set()
    return {item["key"] for item in manifest.get("labelObjects") or []}


def new_label_rows(s3: Any, bucket: str, consumed: set[str], enough: int) -> int:
    """Labelled rows in ``training-rows/`` objects not in ``consumed``; stops counting at ``enough``."""
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="training-rows/"):
        for item in page.get("Contents", []):
            if item["Key"] in consumed:
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            count += sum(1 for line in body.splitlines() if line.strip())
            if count >= enough:
                return count
    return count


def execution_name(pending: list[dict[str, Any]]) -> str:
    """``<yyyymmdd-hhmmss of the newest trigger>-<hash of the triggers>``: 22 characters, so job
    names ``<app>-<env>-<name>`` stay within SageMaker's 63."""
    newest = max(p["sk"].split("#", 1)[0] for p in pending)
    try:
        stamp = dt.datetime.fromisoformat(newest.replace("Z", "+00:00")).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        stamp = "00000000-000000"
    digest = hashlib.sha256("\n".join(sorted(p["sk"] for p in pending)).encode()).hexdigest()[:6]
    return f"{stamp}-{digest}"


def execution_arn(settings: TriggerSettings, name: str) -> str:
    return f"{settings.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"


def _started_by_hand(sfn: Any, settings: TriggerSettings, ended: str | None) -> str | None:
    """A running execution started outside the triggers (it holds no lock). ListExecutions is
    eventually consistent, so the execution whose end was just recorded may still be listed."""
    executions = sfn.list_executions(stateMachineArn=settings.state_machine_arn, statusFilter="RUNNING", maxResults=2).get("executions", [])
    return next((e["executionArn"] for e in executions if e["executionArn"] != ended), None)


def _left_behind(sfn: Any, lock: dict[str, str], now: dt.datetime) -> bool:
    """Whether a lock is old enough and its execution not running (never started, or ended)."""
    if now - dt.datetime.fromisoformat(lock["acquiredAt"]) < LOCK_CHECK_AFTER:
        return False
    try:
        status = sfn.describe_execution(executionArn=lock["executionArn"])["status"]
    except sfn.exceptions.ExecutionDoesNotExist:
        return True
    return status in ENDED


def decide(clients: dict[str, Any], settings: TriggerSettings, now: dt.datetime) -> dict[str, Any]:
    """Start a retraining if none runs and a pending trigger calls for one."""
    state, sfn = TriggerState(clients["dynamodb"], settings.table), clients["stepfunctions"]
    pending = state.pending()
    lock, recovered = state.lock(), None
    if lock is not None and pending and lock["executionArn"] == execution_arn(settings, execution_name(pending)):
        return _start(clients, settings, state, pending, sorted({t["kind"] for t in pending}), now, locked=True)  # a replayed decision
    if lock is not None:
        if not _left_behind(sfn, lock, now):
            return {"decision": "wait", "running": lock["executionArn"], "pending": len(pending)}
        state.release(lock["executionArn"])
        recovered = lock["executionArn"]
    loop = state.loop_state()
    by_hand = _started_by_hand(sfn, settings, loop.get("lastEndedExecutionArn"))
    if by_hand is not None:
        return {"decision": "wait", "running": by_hand, "pending": len(pending)}
    last_start = dt.datetime.fromisoformat(loop["lastStartedAt"]) if "lastStartedAt" in loop else None
    reasons: list[str] = []
    for trigger in list(pending):
        if trigger["kind"] in COOLED_KINDS and last_start is not None and dt.datetime.fromisoformat(trigger["receivedAt"]) < last_start + settings.cooldown:
            state.mark(trigger["sk"], "cooled-down", f"within {settings.cooldown} of the run started {last_start.isoformat()}")
            pending.remove(trigger)
        elif trigger["kind"] in DRIFT_KINDS and settings.drift_consecutive_periods > 1:
            verdict, why = confirm(state, settings, trigger, loop.get("lastPromotedAt"))
            if verdict == "confirmed":
                reasons.append(trigger["kind"])
            elif verdict == "unconfirmed":
                state.mark(trigger["sk"], "unconfirmed", why)
                pending.remove(trigger)
        elif trigger["kind"] in (*COOLED_KINDS, *ALWAYS_KINDS):
            reasons.append(trigger["kind"])
    if any(t["kind"] == "labels" for t in pending) and settings.labels_bucket is not None:
        consumed = consumed_label_objects(clients["s3"], loop.get("labelsManifest"))
        count = new_label_rows(clients["s3"], settings.labels_bucket, consumed, settings.label_threshold)
        if count >= settings.label_threshold:
            reasons.append("labels")
    if not reasons:
        return {"decision": "none", "pending": len(pending), **({"recoveredLock": recovered} if recovered else {})}
    outcome = _start(clients, settings, state, pending, sorted(set(reasons)), now, locked=False)
    return {**outcome, **({"recoveredLock": recovered} if recovered else {})}


def _start(clients: dict[str, Any], settings: TriggerSettings, state: TriggerState, pending: list[dict[str, Any]], reasons: list[str], now: dt.datetime, *, locked: bool) -> dict[str, Any]:
    """Take the lock (unless this decision holds it already), start, and mark the triggers."""
    sfn = clients["stepfunctions"]
    name = execution_name(pending)
    arn = execution_arn(settings, name)
    if not locked and not state.acquire(arn, now):
        holder = state.lock()
        return {"decision": "wait", "running": holder["executionArn"] if holder else None, "pending": len(pending)}
    execution_input = {"triggers": [{"kind": t["kind"], "id": t["sk"], **t["summary"]} for t in pending][:50], "reasons": reasons}
    try:
        sfn.start_execution(stateMachineArn=settings.state_machine_arn, name=name, input=json.dumps(execution_input))
    except sfn.exceptions.ExecutionAlreadyExists:
        pass  # started by an earlier try of this decision
    except Exception:
        if not locked:
            state.release(arn)  # nothing started: the next message decides again
        raise
    state.update_state(lastStartedAt=now.isoformat(), lastExecutionArn=arn)
    for trigger in pending:
        state.mark(trigger["sk"], "started", arn)
    return {"decision": "started", "executionArn": arn, "reasons": reasons, "triggers": len(pending)}


def execution_ended(clients: dict[str, Any], settings: TriggerSettings, detail: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    state = TriggerState(clients["dynamodb"], settings.table)
    status = detail["status"]
    state.release(str(detail.get("executionArn")))
    updates = {"lastEndedAt": now.isoformat(), "lastOutcome": status, "lastEndedExecutionArn": str(detail.get("executionArn"))}
    output = {}
    if status == "SUCCEEDED":
        try:
            output = json.loads(detail.get("output") or "{}")
        except ValueError:
            output = {}
        if isinstance(output, dict) and output.get("labelsManifest"):
            updates["labelsManifest"] = str(output["labelsManifest"])
    promoted = status == "SUCCEEDED" and isinstance(output, dict) and bool(output.get("promoted"))
    if promoted:
        updates["lastPromotedAt"] = now.isoformat()
    state.update_state(**updates)
    if status != "SUCCEEDED":
        return {"decision": "held", "status": status, "pending": len(state.pending())}
    if promoted:
        started = detail.get("startDate")
        for trigger in state.pending():
            if trigger["kind"] in COOLED_KINDS:
                state.mark(trigger["sk"], "superseded", f"arrived while {detail.get('name')} ran, which promoted a new model (started {started})")
    return decide(clients, settings, now)
