"""An audit row on the open back end (moto), from its review group to its label line: the starter puts
its ``selectedBy`` and ``inclusionProbability`` into the task's input, the reviewer's page (and
everything the API sends the browser) shows no trace of them, a group over the day's budget is
deferred with them, and review_results writes them, with the row's index, into the ground truth."""

from __future__ import annotations

import json

import boto3
import pytest

from lambdas.review.app.render import task_html
from lambdas.review.app.tasks import Tasks
from lambdas.review.results.results import LoopEvent, ResultsSettings, record_loop
from lambdas.review.starter.starter import DailyBudget, OpenTasks, Outcome, StarterSettings, start_review
from lambdas.shared import aws
from lambdas.shared.review_group import ReviewGroup
from stacks.shared.config import REVIEW_TEMPLATES
from tests.lambdas.aws_env import REGION, drain
from tests.lambdas.review.app.conftest import ENV, LABELS, call

LABELS_BUCKET = "labels-bucket"
# What must never reach a reviewer: the words, and the inclusion probabilities' values (no feature,
# score or ID below holds these digits).
TRACES = ("audit", "inclusion", "selectedby", "0.34", "0.0068", "unsure")


def audit_group(first_event: str = "e1") -> ReviewGroup:
    """A rule row, then an audit row that is the second row of its request, as capture_filter sends them."""
    rows = (
        {"recordId": "inf-1", "eventId": first_event, "inferenceId": "inf-1", "rowIndex": 0, "features": [1.5, 2], "probability": 0.45,
         "prediction": 0, "selectedBy": "rule", "inclusionProbability": 0.34},
        {"recordId": "evt-2", "eventId": "evt-2", "inferenceId": None, "rowIndex": 1, "features": [7.25, 9], "probability": 0.97,
         "prediction": 1, "selectedBy": "audit", "inclusionProbability": 0.0068},
    )
    return ReviewGroup("s3://capture/x.jsonl", rows)


@pytest.fixture
def starting(world):
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(TableName="budget", BillingMode="PAY_PER_REQUEST", AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}])
    sqs = boto3.client("sqs", region_name=REGION)
    deferred = sqs.create_queue(QueueName="deferred")["QueueUrl"]
    settings = StarterSettings(None, "app-dev", LABELS, ("radius", "texture"), "dlq", deferred)
    sink = OpenTasks(Tasks(dynamodb, ENV["TASKS_TABLE"]), reviewers_per_task=1, availability_seconds=7200)
    budget = DailyBudget(dynamodb, "budget", 1)
    return lambda group: start_review(None, sqs, budget, group, settings, None, sink), deferred


def test_an_audit_row_reaches_its_label_with_its_probability_and_no_reviewer_sees_it(world, starting) -> None:
    start, deferred = starting
    group = audit_group()
    assert start(group) is Outcome.STARTED
    name = group.loop_name("app-dev")
    rows = world.tasks.get(name).input_content["rows"]
    assert [(r["selectedBy"], r["inclusionProbability"], r["rowIndex"]) for r in rows] == [("rule", 0.34, 0), ("audit", 0.0068, 1)]

    # Over the day's budget (one loop) the next group waits on the deferred queue, fields and all:
    # it is started later, never dropped, so its rows keep the probability they were chosen with.
    later = audit_group("e9")
    assert start(later) is Outcome.DEFERRED
    [waiting] = drain(deferred)
    assert ReviewGroup.from_body(waiting["Body"]).rows == later.rows

    status, body = call("POST /api/tasks/next")
    assert status == 200 and body["task"]["taskId"] == name
    sent = json.dumps(body).lower()  # the rendered page and every other field the browser receives
    assert not [trace for trace in TRACES if trace in sent]

    answers = {"row-0-verdict": "agree", "row-1-verdict": "disagree", "row-1-label": "0", "row-1-reason": "benign cells"}
    status, body = call("POST /api/tasks/{taskId}/answers", task_id=name, body={"answers": answers})
    assert status == 200 and body["completed"] is True
    [event] = world.events()
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=LABELS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    result = record_loop(aws.client("s3"), aws.client("events"), LoopEvent.from_event(event),
                         ResultsSettings(LABELS_BUCKET, ENV["REVIEW_BUCKET"], LABELS, "default", "app.review"))
    truth = [json.loads(line) for line in world.s3.get_object(Bucket=LABELS_BUCKET, Key=result.ground_truth_key)["Body"].read().splitlines()]
    assert truth == [
        {"groundTruthData": {"data": "0", "encoding": "CSV"}, "eventMetadata": {"eventId": "inf-1"}, "eventVersion": "0",
         "sampling": {"inclusionProbability": 0.34, "selectedBy": "rule"}},
        {"groundTruthData": {"data": "0", "encoding": "CSV"}, "eventMetadata": {"eventId": "evt-2", "rowIndex": 1}, "eventVersion": "0",
         "sampling": {"inclusionProbability": 0.0068, "selectedBy": "audit"}},
    ]


@pytest.mark.parametrize("template", REVIEW_TEMPLATES)
def test_the_page_of_either_template_shows_no_trace_of_how_a_row_was_chosen(world, starting, template: str) -> None:
    start, _ = starting
    group = audit_group()
    assert start(group) is Outcome.STARTED
    content = world.tasks.get(group.loop_name("app-dev")).input_content
    html = task_html(template, content).lower()
    assert 'id="row-1"' in html and "7.25" in html  # the audit row is on the page, as any other
    assert not [trace for trace in TRACES if trace in html]
