"""Turn a review group into a review task, exactly once, within a daily budget.

The task is an A2I human loop (``review.backend: a2i``) or a task of the app's own reviewers' app
(``open``: a conditional put into its tasks table, ``lambdas/review/app/tasks.py``); both are named
after the group (``ReviewGroup.loop_name``), so a replayed group finds its task and starts nothing.

Outcomes per group: started; already started (A2I's ConflictException for the same loop name, or
the task that exists already);
deferred (the day's budget is spent: the group waits on the deferred queue and is moved back
after midnight UTC, never dropped); parked (A2I's or DynamoDB's ValidationException: retrying cannot help).
Throttling, quota and server errors raise ``RetryLater`` so the message stays on its queue.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from lambdas.review.app.tasks import Tasks
from lambdas.review.starter.attributions import OFF
from lambdas.shared import aws
from lambdas.shared.review_group import CARRIED_FIELDS, ReviewGroup

BUDGET_TTL_DAYS = 7


class Outcome(Enum):
    STARTED = "started"
    ALREADY_STARTED = "already-started"
    DEFERRED = "deferred"
    PARKED = "parked"


class RetryLater(Exception):
    """A2I or DynamoDB refused for now (throttling, quota, server error); SQS redelivers the message."""


@dataclass(frozen=True)
class OpenTasks:
    """The open back end: tasks for the reviewers' app instead of A2I human loops."""

    tasks: Tasks
    reviewers_per_task: int  # review.task_count, as A2I's task count
    availability_seconds: int  # review.task_availability_seconds: the task expires after it


@dataclass(frozen=True)
class StarterSettings:
    flow_definition_arn: str | None
    loop_prefix: str
    label_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    dead_letter_queue_url: str
    deferred_queue_url: str
    top_k: int = 10  # attributions shown per record


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


@dataclass(frozen=True)
class Claim:
    """One loop's place in one UTC day's budget."""

    day: str
    loop: str
    fresh: bool  # taken by this call; False: an earlier attempt at this group took it that day


_CONFLICT_TRIES = 3  # TransactionConflict: another starter's transaction on the day's counter


class DailyBudget:
    """At most ``limit`` loops per UTC day, counted atomically in DynamoDB (items expire by TTL).

    Per day, one counter item (``day`` = ``2026-11-28``) and one marker per loop name that holds a
    place (``2026-11-28#<loop>``), written together in one transaction. A retry of the same group
    (after a crash or a timeout between taking and starting) finds its marker and takes nothing
    more, so nothing leaks; giving back removes the marker and the count of the claim's own day,
    even after midnight.
    """

    def __init__(self, dynamodb: Any, table: str, limit: int, today: Callable[[], dt.date] = utc_today) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._limit = limit
        self._today = today

    def _transact(self, items: list[dict[str, Any]]) -> str | None:
        """Runs the transaction; the first item's cancellation code (None when it went through)."""
        for attempt in range(_CONFLICT_TRIES):
            try:
                self._dynamodb.transact_write_items(TransactItems=items)
                return None
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                codes = [reason.get("Code") for reason in error.response.get("CancellationReasons") or []]
                if "TransactionConflict" in codes and attempt + 1 < _CONFLICT_TRIES:
                    continue
                if "TransactionConflict" in codes:
                    raise RetryLater("the loop budget is busy (DynamoDB TransactionConflict)") from error
                if codes and codes[0] == "ConditionalCheckFailed":
                    return "marker"
                if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                    return "counter"
                raise
        raise AssertionError("unreachable")

    def take(self, loop: str) -> Claim | None:
        """A place for ``loop`` in today's budget; None when the day's budget is spent."""
        day = self._today().isoformat()
        expires = {"N": str(int(time.time()) + BUDGET_TTL_DAYS * 86_400)}
        failed = self._transact([
            {"Put": {
                "TableName": self._table,
                "Item": {"day": {"S": f"{day}#{loop}"}, "expiresAt": expires},
                "ConditionExpression": "attribute_not_exists(#day)",
                "ExpressionAttributeNames": {"#day": "day"},
            }},
            {"Update": {
                "TableName": self._table,
                "Key": {"day": {"S": day}},
                "UpdateExpression": "ADD loops :one SET expiresAt = :expires",
                "ConditionExpression": "attribute_not_exists(loops) OR loops < :limit",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(self._limit)}, ":expires": expires},
            }},
        ])
        if failed == "marker":  # this loop holds a place today already (whatever the counter says)
            return Claim(day, loop, fresh=False)
        if failed == "counter":
            return None
        return Claim(day, loop, fresh=True)

    def give_back(self, claim: Claim) -> None:
        """Frees the claim's place on its own day; a second call for the same claim does nothing."""
        self._transact([
            {"Delete": {
                "TableName": self._table,
                "Key": {"day": {"S": f"{claim.day}#{claim.loop}"}},
                "ConditionExpression": "attribute_exists(#day)",
                "ExpressionAttributeNames": {"#day": "day"},
            }},
            {"Update": {
                "TableName": self._table,
                "Key": {"day": {"S": claim.day}},
                "UpdateExpression": "ADD loops :minus_one",
                "ExpressionAttributeValues": {":minus_one": {"N": "-1"}},
            }},
        ])

    def remaining(self) -> int:
        key = {"day": {"S": self._today().isoformat()}}
        item = self._dynamodb.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item") or {}
        return max(0, self._limit - int(item.get("loops", {}).get("N", "0")))


def feature_names(settings: StarterSettings, count: int) -> tuple[str, ...]:
    """The configured names, or ``feature_<i>`` when a record does not have that many features."""
    return settings.feature_names if len(settings.feature_names) == count else tuple(f"feature_{i}" for i in range(count))


def task_input(group: ReviewGroup, settings: StarterSettings, explanations: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What the worker template reads as ``task.input``: rows with named features, labels and, per
    row, the explanation of its prediction (``attributions.py``).

    A row's ``selectedBy`` and ``inclusionProbability`` ride along for review_results, which writes
    them into the row's label; the worker templates never show them (a reviewer is not told which
    rows are audits). A group sent before they existed has neither, and its rows get none."""
    labels = [{"value": index, "name": name} for index, name in enumerate(settings.label_names)]
    rows = []
    for position, row in enumerate(group.rows):
        features = row["features"]
        prediction = row["prediction"]
        rows.append(
            {
                "key": f"row-{position}",
                "recordId": row["recordId"],
                "eventId": row["eventId"],
                "inferenceId": row.get("inferenceId"),
                "rowIndex": row["rowIndex"],
                "probability": round(float(row["probability"]), 6),
                "prediction": prediction,
                "predictionName": settings.label_names[prediction] if 0 <= prediction < len(settings.label_names) else str(prediction),
                "features": [{"name": name, "value": value} for name, value in zip(feature_names(settings, len(features)), features)],
                "explanation": explanations[position] if explanations is not None else OFF,
                **{name: row[name] for name in CARRIED_FIELDS if name in row},
            }
        )
    return {"captureObject": group.capture_object, "labels": labels, "rows": rows}


_RETRYABLE = {
    "ThrottlingException", "ServiceQuotaExceededException", "InternalServerException",  # A2I
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "InternalServerError",  # DynamoDB
}


def start_review(
    a2i: Any,
    sqs: Any,
    budget: DailyBudget,
    group: ReviewGroup,
    settings: StarterSettings,
    explain: Callable[[ReviewGroup], Sequence[dict[str, Any]]] | None = None,
    open_tasks: OpenTasks | None = None,
) -> Outcome:
    """With ``open_tasks`` the group becomes a task of the reviewers' app (``a2i`` is not used).

    ``explain`` gives each row's explanation, computed now, just before the loop starts (and
    only for groups within the budget: a deferred group is explained when it is started).

    The group's place in the budget is given back when the loop does not start; a crash that
    prevents even that is made good by the retry, which finds the place already taken."""
    name = group.loop_name(settings.loop_prefix)
    claim = budget.take(name)
    if claim is None:
        sqs.send_message(QueueUrl=settings.deferred_queue_url, MessageBody=group.to_body())
        return Outcome.DEFERRED
    try:
        explanations = explain(group) if explain is not None else None
        content = task_input(group, settings, explanations)
        if open_tasks is not None:
            created = open_tasks.tasks.put(name, content, open_tasks.reviewers_per_task, open_tasks.availability_seconds)
        else:
            a2i.start_human_loop(
                HumanLoopName=name,
                FlowDefinitionArn=settings.flow_definition_arn,
                HumanLoopInput={"InputContent": json.dumps(content, separators=(",", ":"))},
            )
            created = True
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code != "ConflictException":
            budget.give_back(claim)
            if code in _RETRYABLE:
                raise RetryLater(f"{code}: {error.response['Error'].get('Message', '')}") from error
            action = "PutItem (review task)" if open_tasks is not None else "StartHumanLoop"
            reason = f"{action} {code}: {error.response['Error'].get('Message', '')}"
            aws.park(sqs, settings.dead_letter_queue_url, group.to_body(), reason, "human_loop_starter")
            return Outcome.PARKED
        created = False
    except Exception:
        budget.give_back(claim)
        raise
    if not created:  # same name: this group's loop (or task) exists already
        if claim.fresh:  # it holds its place on the day it started, not this one
            budget.give_back(claim)
        return Outcome.ALREADY_STARTED
    return Outcome.STARTED


def backoff_seconds(receive_count: int) -> int:
    """Visibility timeout before the next try: 30 s doubling per receive, at most 15 minutes."""
    return min(900, 30 * 2 ** max(0, receive_count - 1))


def move_deferred(sqs: Any, source_url: str, destination_url: str, limit: int) -> int:
    """Move up to ``limit`` deferred groups back to the review queue; returns how many moved."""
    moved = 0
    while moved < limit:
        response = sqs.receive_message(QueueUrl=source_url, MaxNumberOfMessages=min(10, limit - moved), WaitTimeSeconds=1)
        messages = response.get("Messages") or []
        if not messages:
            break
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)]
        sent = sqs.send_message_batch(QueueUrl=destination_url, Entries=entries)
        done = {entry["Id"] for entry in sent.get("Successful") or []}
        receipts = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages) if str(i) in done]
        if receipts:
            sqs.delete_message_batch(QueueUrl=source_url, Entries=receipts)
        moved += len(receipts)
        if len(receipts) < len(messages):  # the rest reappear after their visibility timeout
            break
    return moved
