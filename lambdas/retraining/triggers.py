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
- drift triggers (``drift-alarm``, ``violations``) within ``cooldown`` of the last start are marked
  ``cooled-down``: a drift that outlives a fresh model reports again after the cooldown;
- ``labels`` triggers start a run once at least ``label_threshold`` labelled rows exist in
  ``training-rows/`` objects that the last completed training did not use (counted by object: one
  per review loop, named after it, listed in that training's dataset manifest). A replayed A2I event
  rewrites its loop's object, which changes its LastModified but not its name, so it is not counted
  again; event counts are never used, as they repeat. Until then the triggers stay ``pending``;
- ``schedule`` and ``manual`` triggers always start a run.
A start marks every pending trigger ``started`` with the execution's ARN; its name is derived from
those triggers, so a replayed message starts nothing new (StartExecution is idempotent on name and
input).

When an execution ends: its lock is released; a success records its dataset manifest (the label
objects it consumed); if it promoted a model, drift triggers that arrived while it ran are
``superseded`` (the monitors now compare against the new model's baseline). A failed, timed-out or
aborted run starts nothing by itself (no retry loop); its pending triggers wait for the next trigger
or a manual request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from lambdas.monitoring.runs.runs import RUN_ENDED
from lambdas.review.results.results import LABELS_AVAILABLE
from lambdas.shared import aws

DRIFT_KINDS = ("drift-alarm", "violations")
ALWAYS_KINDS = ("schedule", "manual")
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
        return trigger("drift-alarm", alarmName=detail.get("alarmName"), reason=(detail.get("state") or {}).get("reason"))
    if source == settings.sources.get("monitoring") and kind == RUN_ENDED:
        checks = sorted(set(detail.get("checkTypes") or ()) & set(settings.check_types))
        if detail.get("outcome") != "CompletedWithViolations" or not checks:
            raise InvalidTriggerEvent(f"monitoring run without violations of {', '.join(settings.check_types) or 'no check types'}")
        return trigger("violations", monitor=detail.get("monitor"), processingJobName=detail.get("processingJobName"), checkTypes=checks, features=(detail.get("features") or [])[:20])
    if source == settings.sources.get("review") and kind == LABELS_AVAILABLE:
        if settings.labels_bucket is None:
            raise InvalidTriggerEvent("labels event but review is off")
        return trigger("labels", humanLoopName=detail.get("humanLoopName"), labelCount=detail.get("labelCount"))
    if source == SCHEDULE_SOURCE and kind == SCHEDULED_EVENT:
        return trigger("schedule", rule=(event.get("resources") or ["?"])[0])
    if source == settings.sources.get("retraining") and kind == RETRAINING_REQUESTED:
        return trigger("manual", reason=str(detail.get("reason") or "manual request")[:500], by=str(detail.get("requestedBy") or "")[:200])
    raise InvalidTriggerEvent(f"not a retraining trigger: source {source!r}, detail-type {kind!r}")


class TriggerState:
    """The state table: triggers (pk ``trigger``) and the loop's state (pk ``state``)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def record(self, trigger: Trigger, now: dt.datetime) -> bool:
        """Store a trigger as pending; False when this event was stored before."""
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
        if trigger["kind"] in DRIFT_KINDS and last_start is not None and dt.datetime.fromisoformat(trigger["receivedAt"]) < last_start + settings.cooldown:
            state.mark(trigger["sk"], "cooled-down", f"within {settings.cooldown} of the run started {last_start.isoformat()}")
            pending.remove(trigger)
        elif trigger["kind"] in (*DRIFT_KINDS, *ALWAYS_KINDS):
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
    state.update_state(**updates)
    if status != "SUCCEEDED":
        return {"decision": "held", "status": status, "pending": len(state.pending())}
    if isinstance(output, dict) and output.get("promoted"):
        started = detail.get("startDate")
        for trigger in state.pending():
            if trigger["kind"] in DRIFT_KINDS:
                state.mark(trigger["sk"], "superseded", f"arrived while {detail.get('name')} ran, which promoted a new model (started {started})")
    return decide(clients, settings, now)
