"""Simulated reviewers: they answer the open review tasks through the reviewers' app API, as people would.

Each reviewer is a Cognito user of the reviewers' group (``REVIEWERS_GROUP`` of the API function's
template environment). A call goes to the API function's handler (``lambdas.review.app.api.handler``,
run by the rehearsal's Cloud with its template environment) as the HTTP API calls it: payload format
2.0, the route key, and the JWT authorizer's verified claims in
``requestContext.authorizer.jwt.claims`` with array claims flattened to ``"[a b]"``
(``local.review_local.authorizer_claims``, as ``make review-local`` builds the same events;
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html).
A reviewer claims the next task (``POST /api/tasks/next``), reads its rows, and submits
(``POST /api/tasks/{taskId}/answers``) the page's form: per row ``agree`` when the answer is the
model's prediction, else ``disagree`` with the label. The answer is the row's true label (``truth``,
by record ID: the request's inference ID), wrong with probability ``error_rate`` (a seeded draw; the
wrong label is the other one, or one of the others at random).

What a reviewer reads: the page renders the task's rows (record ID, features, the model's label);
the simulated reviewer reads the same rows from the task's item (``inputContent``: the rows the
page is rendered from), not by parsing the HTML.

A call answers the tasks open at ``at`` (with ``older_than``, only those created at least that long
before ``at``: labels that arrive late), read from the tasks table's status index: it stops once
their answers are in, or when a reviewer who has seen no task finds none. A task a reviewer cannot
answer (a row whose record has no known truth) or one too young, which the API's claim may hand out
among the oldest open ones, is given back (``POST /api/tasks/{taskId}/release``, as the page's Skip
does; at most twice the due tasks and ten more a call); a reviewer never gets a task they skipped
again, so the next attempt is another reviewer's. Each reviewer holds one task at a time and a task
takes ``reviewersPerTask`` different reviewers, so the pool grows as needed.

Development only: never deployed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdas.review.app.tasks import Task
from local.review_local import authorizer_claims

API_HANDLER = "lambdas.review.app.api.handler"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_rehearsal"  # the rehearsal's stand-in user pool
CLIENT_ID = "rehearsal-reviewers-app"
TOKEN_SECONDS = 3600


class ReviewApiError(Exception):
    """The API answered a simulated reviewer with an error status."""


@dataclass
class Answered:
    task_id: str
    reviewer: str
    at: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # {recordId, truth, answer, prediction, wrong}


def truth_key(row: Mapping[str, Any], truth: Mapping[str, Any]) -> str:
    """Where a task row's true label is: its record ID, or for a nightly batch row (whose record ID is
    the transform's generated inference ID) its origin, ``<input file key>:<line>``."""
    origin = row.get("origin")
    if row["recordId"] in truth or not isinstance(origin, Mapping):
        return row["recordId"]
    return f"{origin.get('file')}:{origin.get('line')}"


class SimulatedReviewers:
    """``answer_open_tasks(at)`` answers every task open at ``at`` (module docstring); ``answered``
    records each answer, ``skipped`` each task given back and why."""

    def __init__(self, cloud: Any, truth: Mapping[str, Any], error_rate: float = 0.0, *, seed: int = 0, function: str = API_HANDLER) -> None:
        if not 0 <= error_rate <= 1:
            raise ValueError(f"error_rate must be between 0 and 1: got {error_rate}")
        self.cloud, self.truth, self.error_rate = cloud, truth, error_rate
        self._random = random.Random(seed)
        found = cloud.function(function)
        self.function = getattr(found, "name", found)
        environment = getattr(found, "environment", None)
        if environment is None:
            raise LookupError(f"the rehearsal's Cloud has no environment for {function}: it needs the function's template environment")
        self.group = environment["REVIEWERS_GROUP"]
        self.table = environment["TASKS_TABLE"]
        self.label_count = len(json.loads(environment["LABEL_NAMES"]))
        self.reviewers: list[str] = []
        self._unused: set[str] = set()
        self.answered: list[Answered] = []
        self.skipped: list[dict[str, str]] = []

    # -- what the HTTP API sends -----------------------------------------------------------------

    def _claims(self, sub: str, at: dt.datetime) -> dict[str, Any]:
        now = int(at.timestamp())
        return {"sub": sub, "iss": ISSUER, "token_use": "access", "client_id": CLIENT_ID, "scope": "openid",
                "iat": now, "auth_time": now, "exp": now + TOKEN_SECONDS, "cognito:groups": [self.group]}  # fmt: skip

    def call(self, sub: str, at: dt.datetime, method: str, route: str, task_id: str | None = None, body: Any = None) -> dict[str, Any]:
        """One API request as the HTTP API passes it to the function; the decoded body of a 200."""
        path = route.replace("{taskId}", task_id or "")
        event = {
            "version": "2.0",
            "routeKey": f"{method} {route}",
            "rawPath": path,
            "headers": {"content-type": "application/json"} if body is not None else {},
            "pathParameters": {"taskId": task_id} if task_id else None,
            "requestContext": {"http": {"method": method, "path": path}, "authorizer": {"jwt": {"claims": authorizer_claims(self._claims(sub, at)), "scopes": None}}},
            "body": json.dumps(body) if body is not None else None,
            "isBase64Encoded": False,
        }
        response = self.cloud.invoke(self.function, event)
        if response.get("statusCode") != 200:
            raise ReviewApiError(f"{method} {path} as {sub}: {response.get('statusCode')} {response.get('body')}")
        return json.loads(response["body"])

    # -- reviewing -----------------------------------------------------------------------------------

    def _dynamodb(self) -> Any:
        import boto3

        return boto3.client("dynamodb", region_name=getattr(self.cloud, "region", "eu-west-1"))

    def _rows(self, task_id: str) -> tuple[list[dict[str, Any]], str]:
        """(rows, createdAt) of a task: what its page is rendered from."""
        item = self._dynamodb().get_item(
            TableName=self.table, Key={"taskId": {"S": task_id}}, ConsistentRead=True
        )["Item"]  # fmt: skip
        task = Task.from_item(item)
        return task.input_content["rows"], task.created_at

    def _answer_label(self, truth: int) -> int:
        if self._random.random() >= self.error_rate:
            return truth
        others = [label for label in range(self.label_count) if label != truth]
        return self._random.choice(others)

    def form(self, rows: list[dict[str, Any]]) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """The answer form for the rows (the page's field names) and what was answered for each."""
        form: dict[str, str] = {}
        answered = []
        for row in rows:
            truth = int(self.truth[truth_key(row, self.truth)])
            label = self._answer_label(truth)
            if label == int(row["prediction"]):
                form[f"{row['key']}-verdict"] = "agree"
            else:
                form[f"{row['key']}-verdict"] = "disagree"
                form[f"{row['key']}-label"] = str(label)
            answered.append({"recordId": row["recordId"], "truth": truth, "answer": label, "prediction": int(row["prediction"]), "wrong": label != truth})
        return form, answered

    def _new_reviewer(self) -> str:
        self.reviewers.append(f"rehearsal-reviewer-{len(self.reviewers) + 1}")
        self._unused.add(self.reviewers[-1])
        return self.reviewers[-1]

    def _open_tasks(self, cutoff: dt.datetime | None) -> list[Task]:
        """The open tasks (created at ``cutoff`` or before, when given): the tasks index, oldest first."""
        from lambdas.review.app.tasks import OPEN, STATUS_INDEX

        condition, values = "#status = :open", {":open": {"S": OPEN}}
        if cutoff is not None:
            condition += " AND createdAt <= :cutoff"
            values[":cutoff"] = {"S": cutoff.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")}
        found: list[Task] = []
        for page in self._dynamodb().get_paginator("query").paginate(
            TableName=self.table, IndexName=STATUS_INDEX, KeyConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"}, ExpressionAttributeValues=values,
        ):  # fmt: skip
            found.extend(Task.from_item(item) for item in page["Items"])
        return found

    def answer_open_tasks(self, at: dt.datetime, older_than: dt.timedelta | None = None) -> int:
        """Answer every open task (those created at least ``older_than`` before ``at``, when given);
        returns how many answers were submitted."""
        cutoff = None if older_than is None else at - older_than
        due = self._open_tasks(cutoff)
        needed = sum(task.reviewers_per_task - len(task.answers) for task in due)
        count = skips = 0
        available = list(self.reviewers)  # each reviewer asks until nothing is left for them
        while count < needed and skips <= 2 * len(due) + 10:
            sub = available.pop(0) if available else self._new_reviewer()
            unused = sub in self._unused  # has never claimed a task: nothing is hidden from them
            task = self.call(sub, at, "POST", "/api/tasks/next").get("task")
            if task is None:
                if unused:
                    break  # nothing open that anyone could take
                continue
            self._unused.discard(sub)
            task_id = task["taskId"]
            rows, created = self._rows(task_id)
            reason = None
            if cutoff is not None and dt.datetime.fromisoformat(created.replace("Z", "+00:00")) > cutoff:
                reason = f"created {created}, less than {older_than} before {at.isoformat()}"
            elif missing := [row["recordId"] for row in rows if truth_key(row, self.truth) not in self.truth]:
                reason = f"no known truth for {', '.join(missing)}"
            if reason is not None:
                self.call(sub, at, "POST", "/api/tasks/{taskId}/release", task_id)
                self.skipped.append({"taskId": task_id, "reviewer": sub, "why": reason})
                skips += 1
                continue
            form, answered = self.form(rows)
            self.call(sub, at, "POST", "/api/tasks/{taskId}/answers", task_id, {"answers": form})
            self.answered.append(Answered(task_id, sub, at.isoformat(), answered))
            count += 1
            available.insert(0, sub)  # the same reviewer asks for the next task
        return count
