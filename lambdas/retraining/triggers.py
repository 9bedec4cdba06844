"""Decide when a retraining starts: one at a time, every trigger recorded, nothing run twice.

Every trigger (drift alarm, monitoring run with violations, labels, schedule, manual request) and
every end of a retraining execution reaches this code through one FIFO queue with one message
group, so decisions are made one after another. Each trigger is stored in the state table
(``pk=trigger``, keyed by event time and ID, so a redelivered event is stored once) as ``pending``.

A decision (after each message):
- if an execution is running (Step Functions ListExecutions, which also sees manual starts), the
  triggers stay ``pending`` and are considered when it ends;
- drift triggers (``drift-alarm``, ``violations``) within ``cooldown`` of the last start are marked
  ``cooled-down``: a drift that outlives a fresh model reports again after the cooldown;
- ``labels`` triggers start a run once at least ``label_threshold`` labelled rows were written
  after the last completed training's newest label (counted from ``training-rows/``, never from
  event counts, which repeat); until then they stay ``pending``;
- ``schedule`` and ``manual`` triggers always start a run.
A start marks every pending trigger ``started`` with the execution's ARN; its name is derived from
those triggers, so a replayed message starts nothing new (StartExecution is idempotent on name and
input).

When an execution ends: a success records its label watermark; if it promoted a model, drift
triggers that arrived while it ran are ``superseded`` (the monitors now compare against the new
model's baseline). A failed, timed-out or aborted run starts nothing by itself (no retry loop);
its pending triggers wait for the next trigger or a manual request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from lambdas.monitoring_runs.runs import RUN_ENDED
from lambdas.review_results.results import LABELS_AVAILABLE

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


def new_label_rows(s3: Any, bucket: str, since: str | None, enough: int) -> int:
    """Labelled rows in ``training-rows/`` objects written after ``since``; stops counting at ``enough``."""
    after = dt.datetime.fromisoformat(since) if since else None
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="training-rows/"):
        for item in page.get("Contents", []):
            if after is not None and item["LastModified"] <= after:
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


def _running(sfn: Any, settings: TriggerSettings) -> str | None:
    executions = sfn.list_executions(stateMachineArn=settings.state_machine_arn, statusFilter="RUNNING", maxResults=1).get("executions", [])
    return executions[0]["executionArn"] if executions else None


def decide(clients: dict[str, Any], settings: TriggerSettings, now: dt.datetime) -> dict[str, Any]:
    """Start a retraining if none runs and a pending trigger calls for one."""
    state = TriggerState(clients["dynamodb"], settings.table)
    running = _running(clients["stepfunctions"], settings)
    pending = state.pending()
    if running is not None:
        return {"decision": "wait", "running": running, "pending": len(pending)}
    loop = state.loop_state()
    last_start = dt.datetime.fromisoformat(loop["lastStartedAt"]) if "lastStartedAt" in loop else None
    reasons: list[str] = []
    for trigger in list(pending):
        if trigger["kind"] in DRIFT_KINDS and last_start is not None and dt.datetime.fromisoformat(trigger["receivedAt"]) < last_start + settings.cooldown:
            state.mark(trigger["sk"], "cooled-down", f"within {settings.cooldown} of the run started {last_start.isoformat()}")
            pending.remove(trigger)
        elif trigger["kind"] in (*DRIFT_KINDS, *ALWAYS_KINDS):
            reasons.append(trigger["kind"])
    if any(t["kind"] == "labels" for t in pending) and settings.labels_bucket is not None:
        count = new_label_rows(clients["s3"], settings.labels_bucket, loop.get("labelsThrough"), settings.label_threshold)
        if count >= settings.label_threshold:
            reasons.append("labels")
    if not reasons:
        return {"decision": "none", "pending": len(pending)}
    name = execution_name(pending)
    execution_input = {"triggers": [{"kind": t["kind"], "id": t["sk"], **t["summary"]} for t in pending][:50], "reasons": sorted(set(reasons))}
    try:
        arn = clients["stepfunctions"].start_execution(stateMachineArn=settings.state_machine_arn, name=name, input=json.dumps(execution_input))["executionArn"]
    except clients["stepfunctions"].exceptions.ExecutionAlreadyExists:
        arn = f"{settings.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
    state.update_state(lastStartedAt=now.isoformat(), lastExecutionArn=arn)
    for trigger in pending:
        state.mark(trigger["sk"], "started", arn)
    return {"decision": "started", "executionArn": arn, "reasons": sorted(set(reasons)), "triggers": len(pending)}


def execution_ended(clients: dict[str, Any], settings: TriggerSettings, detail: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    state = TriggerState(clients["dynamodb"], settings.table)
    status = detail["status"]
    updates = {"lastEndedAt": now.isoformat(), "lastOutcome": status, "lastEndedExecutionArn": str(detail.get("executionArn"))}
    output = {}
    if status == "SUCCEEDED":
        try:
            output = json.loads(detail.get("output") or "{}")
        except ValueError:
            output = {}
        if isinstance(output, dict) and output.get("labelsThrough"):
            updates["labelsThrough"] = str(output["labelsThrough"])
    state.update_state(**updates)
    if status != "SUCCEEDED":
        return {"decision": "held", "status": status, "pending": len(state.pending())}
    if isinstance(output, dict) and output.get("promoted"):
        started = detail.get("startDate")
        for trigger in state.pending():
            if trigger["kind"] in DRIFT_KINDS:
                state.mark(trigger["sk"], "superseded", f"arrived while {detail.get('name')} ran, which promoted a new model (started {started})")
    return decide(clients, settings, now)
