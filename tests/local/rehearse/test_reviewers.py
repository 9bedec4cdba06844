"""Simulated reviewers through the reviewers' app API handler (moto): every open task answered with
the truth (or wrong at the error rate), as review_results will read the answers; late labels; rows
without a known truth given back."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from lambdas.review.app import api
from lambdas.review.app.tasks import Task
from lambdas.review.results.results import answer_label
from local import review_local
from local.rehearse.reviewers import API_HANDLER, ReviewApiError, SimulatedReviewers
from stacks.shared import default_model
from tests.lambdas.aws_env import LambdaContext

LABEL_NAMES = list(default_model.LABEL_NAMES)
ENVIRONMENT = {**review_local.ENVIRONMENT, "LABEL_NAMES": json.dumps(LABEL_NAMES)}
with default_model.TEST_CSV.open() as _stream:
    TRUTH = {f"test-{i:03d}": int(float(row[0])) for i, row in enumerate(csv.reader(_stream))}  # review_local's record IDs


class FakeCloud:
    """The part of the rehearsal's Cloud the reviewers use: the API function's template environment
    and ``invoke`` running its handler with it (settings read again per call, as Lambda would)."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.region = review_local.REGION

    def function(self, handler: str) -> SimpleNamespace:
        assert handler == API_HANDLER
        return SimpleNamespace(name="mlloop-dev-review-api", environment=ENVIRONMENT)

    def invoke(self, name: str, event: dict) -> dict:
        assert name == "mlloop-dev-review-api"
        self.events.append(event)
        os.environ.update(ENVIRONMENT)
        for reader in (api.tasks, api.settings, api.completion_settings):
            reader.cache_clear()
        return api.handler(event, LambdaContext())


@pytest.fixture
def tasks(monkeypatch):
    """The bundled test rows the dev review rule selects, as open tasks (the starter's own code),
    ``reviewers_per_task`` 2: (cloud, task IDs)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": review_local.REGION, **ENVIRONMENT}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        review_local.create_resources(ENVIRONMENT)
        made, selected = review_local.bundled_tasks(ENVIRONMENT, review_local.review_settings("dev"), reviewers_per_task=2)
        assert made > 2 and selected > made
        table = boto3.client("dynamodb", region_name=review_local.REGION)
        ids = [item["taskId"]["S"] for item in table.scan(TableName=ENVIRONMENT["TASKS_TABLE"])["Items"] if not item["taskId"]["S"].startswith("#")]
        assert len(ids) == made
        yield FakeCloud(), ids


def stored(task_id: str) -> Task:
    item = boto3.client("dynamodb", region_name=review_local.REGION).get_item(TableName=ENVIRONMENT["TASKS_TABLE"], Key={"taskId": {"S": task_id}})["Item"]
    return Task.from_item(item)


def labels_review_results_reads(task: Task) -> list[tuple[str, int]]:
    """(record ID, label) of every answer of the task, decided by review_results' own rule."""
    decided = []
    for answer in task.answers.values():
        content = json.loads(answer["answerContent"])
        for row in task.input_content["rows"]:
            label, problem = answer_label(content, row, len(LABEL_NAMES))
            assert problem is None, problem
            decided.append((row["recordId"], int(label)))
    return decided


def test_every_open_task_is_answered_with_the_truth_through_the_api(tasks) -> None:
    cloud, ids = tasks
    reviewers = SimulatedReviewers(cloud, TRUTH)
    at = dt.datetime.now(dt.UTC)
    assert reviewers.answer_open_tasks(at) == 2 * len(ids)  # two reviewers per task
    assert len(reviewers.reviewers) >= 2 and reviewers.skipped == []
    for task_id in ids:
        task = stored(task_id)
        assert task.status in ("answered", "done") and len(task.answers) == 2
        decided = labels_review_results_reads(task)
        assert decided and all(TRUTH[record] == label for record, label in decided)
    # Some rows the model got wrong were answered "disagree" with the true label.
    assert any(row["answer"] != row["prediction"] for answer in reviewers.answered for row in answer.rows)
    # Completed: output.json in A2I's output prefix of the review bucket, for each task.
    keys = [o["Key"] for o in boto3.client("s3", region_name=review_local.REGION).list_objects_v2(Bucket=ENVIRONMENT["REVIEW_BUCKET"])["Contents"]]
    assert len([k for k in keys if k.startswith("a2i-output/") and k.endswith("/output.json")]) == len(ids)
    assert reviewers.answer_open_tasks(at) == 0  # nothing left


def test_requests_are_shaped_as_the_http_api_sends_them_with_the_jwt_claims(tasks) -> None:
    cloud, _ = tasks
    SimulatedReviewers(cloud, TRUTH).answer_open_tasks(dt.datetime(2026, 11, 23, 5, tzinfo=dt.UTC))
    routes = {event["routeKey"] for event in cloud.events}
    assert routes == {"POST /api/tasks/next", "POST /api/tasks/{taskId}/answers"}
    event = next(e for e in cloud.events if e["routeKey"].endswith("/answers"))
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert event["version"] == "2.0" and event["pathParameters"]["taskId"] in event["rawPath"]
    assert claims["cognito:groups"] == "[reviewers]" and claims["sub"].startswith("rehearsal-reviewer-")  # array claims flattened, as the HTTP API does
    assert claims["token_use"] == "access" and claims["iat"] == str(int(dt.datetime(2026, 11, 23, 5, tzinfo=dt.UTC).timestamp()))
    assert set(json.loads(event["body"])["answers"]) <= {f"row-{i}-{part}" for i in range(10) for part in ("verdict", "label", "reason")}


def test_an_error_rate_of_one_answers_every_row_wrong_and_a_seed_repeats_the_draws(tasks) -> None:
    cloud, ids = tasks
    reviewers = SimulatedReviewers(cloud, TRUTH, error_rate=1.0)
    reviewers.answer_open_tasks(dt.datetime.now(dt.UTC))
    decided = [pair for task_id in ids for pair in labels_review_results_reads(stored(task_id))]
    assert decided and all(TRUTH[record] != label for record, label in decided)
    rows = [{"key": f"row-{i}", "recordId": record, "prediction": 1} for i, record in enumerate(list(TRUTH)[:40])]
    first, second = (SimulatedReviewers(cloud, TRUTH, error_rate=0.3, seed=7).form(rows)[1] for _ in range(2))
    assert first == second and 0 < sum(r["wrong"] for r in first) < 40


def test_late_labels_tasks_younger_than_the_delay_wait_and_are_answered_later(tasks) -> None:
    cloud, ids = tasks
    created = min(dt.datetime.fromisoformat(stored(i).created_at.replace("Z", "+00:00")) for i in ids)
    reviewers = SimulatedReviewers(cloud, TRUTH)
    assert reviewers.answer_open_tasks(created + dt.timedelta(minutes=30), older_than=dt.timedelta(hours=1)) == 0
    assert cloud.events == [] and reviewers.skipped == []  # nothing due: no reviewer asked, no task touched
    assert all(stored(i).status == "open" and not stored(i).seen for i in ids)
    assert reviewers.answer_open_tasks(created + dt.timedelta(hours=2), older_than=dt.timedelta(hours=1)) == 2 * len(ids)
    assert all(stored(i).status in ("answered", "done") for i in ids)


def test_a_task_whose_rows_have_no_known_truth_is_given_back_not_guessed(tasks) -> None:
    cloud, ids = tasks
    first = stored(ids[0]).input_content["rows"][0]["recordId"]
    truth = {record: label for record, label in TRUTH.items() if record != first}
    reviewers = SimulatedReviewers(cloud, truth)
    answered = reviewers.answer_open_tasks(dt.datetime.now(dt.UTC))
    assert answered == 2 * (len(ids) - 1)
    assert {s["taskId"] for s in reviewers.skipped} == {ids[0]} and f"no known truth for {first}" in reviewers.skipped[0]["why"]
    assert stored(ids[0]).status == "open" and not stored(ids[0]).answers


def test_bad_settings_and_api_refusals_are_named(tasks) -> None:
    cloud, _ = tasks
    with pytest.raises(ValueError, match="error_rate must be between 0 and 1: got 1.5"):
        SimulatedReviewers(cloud, TRUTH, error_rate=1.5)
    reviewers = SimulatedReviewers(cloud, TRUTH)
    reviewers.group = "someone-else"
    with pytest.raises(ReviewApiError, match="403 .*not in the reviewers group"):
        reviewers.answer_open_tasks(dt.datetime.now(dt.UTC))


def test_late_labels_a_young_task_handed_out_among_due_ones_is_given_back_unanswered(tasks) -> None:
    cloud, ids = tasks
    older = sorted(ids)[: len(ids) // 2]
    now = dt.datetime.now(dt.UTC)
    table = boto3.client("dynamodb", region_name=review_local.REGION)
    for task_id in older:  # these were created three hours ago
        created = (now - dt.timedelta(hours=3)).isoformat().replace("+00:00", "Z")
        table.update_item(TableName=ENVIRONMENT["TASKS_TABLE"], Key={"taskId": {"S": task_id}}, UpdateExpression="SET createdAt = :c", ExpressionAttributeValues={":c": {"S": created}})
    reviewers = SimulatedReviewers(cloud, TRUTH)
    random.seed(3)  # the API's claim tries the oldest open tasks in a random order (lambdas/review/app/tasks.py)
    assert reviewers.answer_open_tasks(now, older_than=dt.timedelta(hours=1)) == 2 * len(older)
    assert all(stored(i).status in ("answered", "done") for i in older)
    young = set(ids) - set(older)
    assert all(stored(i).status == "open" and not stored(i).answers for i in young)
    assert reviewers.skipped and {s["taskId"] for s in reviewers.skipped} <= young  # the young tasks the claim handed out went back
    assert all("less than 1:00:00 before" in s["why"] for s in reviewers.skipped)


def test_a_batch_rows_truth_is_found_by_its_origin_when_its_record_id_is_the_transforms() -> None:
    from local.rehearse.reviewers import truth_key

    truth = {"rehearsal-0000001": 1, "batch/input/rehearsal-20261123-06.csv:7": 0}
    assert truth_key({"recordId": "rehearsal-0000001"}, truth) == "rehearsal-0000001"
    generated = {"recordId": "5f0c1d2e-generated", "origin": {"file": "batch/input/rehearsal-20261123-06.csv", "line": 7}}
    assert truth[truth_key(generated, truth)] == 0
    assert truth_key({"recordId": "unknown"}, truth) == "unknown"  # no origin: not found, and the task is handed back
