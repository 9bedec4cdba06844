"""The reviewers' app over moto: the table and bucket as the local server makes them, and the events it puts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from lambdas.review.app import api
from local import review_local as local
from lambdas.review.app.tasks import Reviewer, Tasks
from lambdas.shared import aws
from tests.lambdas.aws_env import REGION, LambdaContext

LABELS = ("malignant", "benign")
ENV = {**local.ENVIRONMENT, "LABEL_NAMES": json.dumps(LABELS), "LEASE_SECONDS": "300"}
T0 = 1_795_000_000.0  # 2026-11-18, a fixed moment the tests move forward


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class World:
    tasks: Tasks
    clock: Clock
    log: local.EventLog
    s3: Any

    def events(self) -> list[dict[str, Any]]:
        """The events put since the last call."""
        return self.log.take()

    def outputs(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=ENV["REVIEW_BUCKET"]).get("Contents", [])]


def row(i: int, prediction: int = 0, features: list[Any] | None = None) -> dict[str, Any]:
    """A row as the starter writes it (starter.task_input), attributions off."""
    values = features if features is not None else [1.5 + i, 2]
    return {
        "key": f"row-{i}", "recordId": f"rec-{i}", "eventId": f"evt-{i}", "inferenceId": f"rec-{i}", "rowIndex": 0,
        "probability": 0.4, "prediction": prediction, "predictionName": LABELS[prediction],
        "features": [{"name": f"f{j}", "value": v} for j, v in enumerate(values)], "explanation": {"status": "off"},
    }


def task_input(rows: int = 3) -> dict[str, Any]:
    return {"captureObject": "s3://capture/x.jsonl", "labels": [{"value": i, "name": n} for i, n in enumerate(LABELS)], "rows": [row(i) for i in range(rows)]}


def agree_all(rows: int = 3) -> dict[str, str]:
    return {f"row-{i}-{part}": value for i in range(rows) for part, value in (("verdict", "agree"), ("label", "0"))}


ALICE, BOB, CAROL = Reviewer("alice", "https://issuer"), Reviewer("bob", "https://issuer"), Reviewer("carol", "https://issuer")


@pytest.fixture
def world(mocked_aws, monkeypatch) -> World:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    local.create_resources(ENV)
    log = local.EventLog()
    log.attach(aws.client("events"))
    clock = Clock()
    tasks = Tasks(aws.client("dynamodb"), ENV["TASKS_TABLE"], int(ENV["LEASE_SECONDS"]), clock)
    for cached in (api.settings, api.completion_settings, api.tasks):
        cached.cache_clear()
    monkeypatch.setattr(api, "tasks", lambda: tasks)  # the API's table, on the test's clock
    yield World(tasks, clock, log, boto3.client("s3", region_name=REGION))
    for cached in (api.settings, api.completion_settings):
        cached.cache_clear()


def call(route: str, sub: str | None = "alice", groups: Any = "[reviewers]", task_id: str | None = None, body: Any = None, *,
         threads: bool = False, encoded: bool = False, **claims: Any) -> tuple[int, dict]:
    """The API handler with an HTTP API (payload 2.0) event; claims as the JWT authorizer passes them.

    ``threads``: many calls at once in this process, which Lambda never does (one event per
    execution environment), so without Powertools' per-invocation wrapping (its module-level
    metrics and logger state are not made for threads). ``encoded``: ``body`` is base64 text, as
    the HTTP API passes a body of a content type that is not text (``isBase64Encoded``)."""
    event: dict[str, Any] = {"version": "2.0", "routeKey": route, "rawPath": route.split(" ", 1)[1], "requestContext": {"http": {"method": route.split(" ")[0]}}}
    if sub is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": sub, "iss": "https://issuer", **({"cognito:groups": groups} if groups is not None else {}), **claims}}}
    if task_id is not None:
        event["pathParameters"] = {"taskId": task_id}
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        event["isBase64Encoded"] = encoded
    response = api.respond(event) if threads else api.handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])
