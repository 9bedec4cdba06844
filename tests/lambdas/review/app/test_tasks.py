"""Tasks in DynamoDB (moto): claims under a lease, release, renew, answers, and the starter's open sink."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from lambdas.review.app.tasks import ANSWERED, OPEN, Conflict, Reviewer, Tasks
from lambdas.review.starter.starter import DailyBudget, OpenTasks, Outcome, StarterSettings, start_review
from lambdas.shared import aws
from lambdas.shared.review_group import ReviewGroup
from tests.lambdas.aws_env import REGION
from tests.lambdas.review.app.conftest import ALICE, BOB, CAROL, ENV, agree_all, task_input


def actions(task) -> list[tuple[str, str]]:
    return [(entry["action"], entry["who"]) for entry in task.audit]


def test_a_claim_holds_a_slot_under_a_lease_and_is_audited(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    task = world.tasks.claim(ALICE)
    assert task.task_id == "t-1" and task.slot_of(ALICE) == 0
    assert task.lease_expires_at(ALICE) == int(world.clock.now) + 300
    assert actions(task) == [("claim", "alice")]
    assert world.tasks.claim(BOB) is None  # the only slot is held
    assert world.tasks.waiting() == 1  # still open: it is not answered


def test_an_expired_lease_returns_the_task_and_its_holder_can_no_longer_submit(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    world.tasks.claim(ALICE)
    world.clock.advance(301)
    taken = world.tasks.claim(BOB)
    assert taken.task_id == "t-1" and taken.slot_of(BOB) == 0
    with pytest.raises(Conflict):
        world.tasks.submit("t-1", ALICE, agree_all())
    with pytest.raises(Conflict):
        world.tasks.renew("t-1", ALICE)
    assert world.tasks.submit("t-1", BOB, agree_all()).status == ANSWERED


def test_an_expired_lease_nobody_took_still_refuses_its_holder(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    world.tasks.claim(ALICE)
    world.clock.advance(301)
    with pytest.raises(Conflict, match="expired"):
        world.tasks.submit("t-1", ALICE, agree_all())


def test_release_returns_the_task_to_others_but_never_to_the_same_reviewer(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    world.tasks.claim(ALICE)
    world.tasks.release("t-1", ALICE)
    assert world.tasks.claim(ALICE) is None  # skipped: not offered again
    assert world.tasks.claim(BOB).task_id == "t-1"
    assert actions(world.tasks.get("t-1")) == [("claim", "alice"), ("release", "alice"), ("claim", "bob")]
    with pytest.raises(Conflict):
        world.tasks.release("t-1", ALICE)


def test_renew_extends_only_the_holders_lease(world) -> None:
    world.tasks.put("t-1", task_input(), 2, 3600)
    world.tasks.claim(ALICE)
    world.tasks.claim(BOB)
    world.clock.advance(200)
    renewed = world.tasks.renew("t-1", ALICE)
    assert renewed.lease_expires_at(ALICE) == int(world.clock.now) + 300
    assert renewed.lease_expires_at(BOB) == int(world.clock.now) + 100  # untouched
    with pytest.raises(Conflict):
        world.tasks.renew("t-1", CAROL)
    world.clock.advance(150)  # Bob's lease has run out, Alice's not
    with pytest.raises(Conflict):
        world.tasks.renew("t-1", BOB)
    assert world.tasks.submit("t-1", ALICE, agree_all()).status == OPEN
    assert actions(world.tasks.get("t-1"))[-2:] == [("renew", "alice"), ("submit", "alice")]


def test_each_slot_answered_once_and_the_last_answer_closes_the_task(world) -> None:
    world.tasks.put("t-1", task_input(), 3, 3600)
    for reviewer in (ALICE, BOB, CAROL):
        assert world.tasks.claim(reviewer).task_id == "t-1"
    assert world.tasks.claim(Reviewer("dave")) is None  # three slots, three holders
    assert world.tasks.submit("t-1", BOB, agree_all()).status == OPEN
    with pytest.raises(Conflict):
        world.tasks.submit("t-1", BOB, agree_all())  # answered already: the slot is not held any more
    assert world.tasks.claim(BOB) is None  # never a task one has answered
    assert world.tasks.submit("t-1", ALICE, agree_all()).status == OPEN
    done = world.tasks.submit("t-1", CAROL, agree_all())
    assert done.status == ANSWERED and sorted(done.answers) == ["alice", "bob", "carol"]
    assert world.tasks.waiting() == 0 and [t.task_id for t in world.tasks.answered()] == ["t-1"]
    assert json.loads(done.answers["carol"]["answerContent"]) == agree_all()


def test_tasks_are_claimed_oldest_first_and_expired_tasks_not_at_all(world) -> None:
    world.tasks.put("old", task_input(), 1, 100)
    world.clock.advance(1)
    world.tasks.put("new", task_input(), 1, 3600)
    world.clock.advance(100)  # "old" is past its availability (TTL removes it later)
    assert world.tasks.waiting() == 1
    assert world.tasks.claim(ALICE).task_id == "new"
    assert world.tasks.claim(BOB) is None


def test_put_is_idempotent(world) -> None:
    assert world.tasks.put("t-1", task_input(), 1, 3600) is True
    world.tasks.claim(ALICE)
    assert world.tasks.put("t-1", task_input(1), 1, 3600) is False
    task = world.tasks.get("t-1")
    assert task.slot_of(ALICE) == 0 and len(task.input_content["rows"]) == 3  # nothing replaced


def test_the_open_starter_puts_one_task_per_group_within_the_budget(world) -> None:
    """The starter with the open back end: a replayed group is one task and takes one budget place."""
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(TableName="budget", BillingMode="PAY_PER_REQUEST", AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}])
    sqs = boto3.client("sqs", region_name=REGION)
    deferred = sqs.create_queue(QueueName="deferred")["QueueUrl"]
    settings = StarterSettings(None, "app-dev", ("malignant", "benign"), ("radius", "texture"), "dlq", deferred)
    sink = OpenTasks(Tasks(dynamodb, ENV["TASKS_TABLE"]), reviewers_per_task=2, availability_seconds=7200)
    budget = DailyBudget(dynamodb, "budget", 1)
    rows = ({"recordId": "r1", "eventId": "e1", "rowIndex": 0, "features": [1.5, 2], "probability": 0.4, "prediction": 0},)
    group = ReviewGroup("s3://capture/x.jsonl", rows)
    assert start_review(None, sqs, budget, group, settings, None, sink) is Outcome.STARTED
    assert start_review(None, sqs, budget, group, settings, None, sink) is Outcome.ALREADY_STARTED
    assert budget.remaining() == 0  # one place, kept by the task that exists
    other = ReviewGroup("s3://capture/x.jsonl", ({**rows[0], "eventId": "e2"},))
    assert start_review(None, sqs, budget, other, settings, None, sink) is Outcome.DEFERRED
    task = world.tasks.get(group.loop_name("app-dev"))
    assert task.reviewers_per_task == 2 and abs(task.expires_at - (time.time() + 7200)) < 60  # review.task_availability_seconds
    assert task.input_content["rows"][0]["features"] == [{"name": "radius", "value": 1.5}, {"name": "texture", "value": 2}]
    assert world.tasks.waiting() == 1


def test_the_starter_handler_with_review_backend_open_needs_no_flow_definition(world, monkeypatch) -> None:
    """The deployed starter's environment for the open back end: a replayed message is one task."""
    from lambdas.review.starter import handler
    from tests.lambdas.aws_env import LambdaContext, sqs_event

    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(TableName="budget", BillingMode="PAY_PER_REQUEST", AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}])
    sqs = boto3.client("sqs", region_name=REGION)
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("review", "dlq", "deferred")}
    env = {"REVIEW_BACKEND": "open", "TASKS_TABLE": ENV["TASKS_TABLE"], "REVIEWERS_PER_TASK": "2", "TASK_AVAILABILITY_SECONDS": "3600",
           "LOOP_PREFIX": "app-dev", "LABEL_NAMES": '["malignant", "benign"]', "FEATURE_NAMES": '["radius", "texture"]',
           "DEAD_LETTER_QUEUE_URL": urls["dlq"], "DEFERRED_QUEUE_URL": urls["deferred"], "REVIEW_QUEUE_URL": urls["review"],
           "BUDGET_TABLE": "budget", "MAX_LOOPS_PER_DAY": "5"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FLOW_DEFINITION_ARN", raising=False)
    for cached in (handler.settings, handler.budget, handler.open_tasks):
        cached.cache_clear()
    group = ReviewGroup("s3://capture/x.jsonl", ({"recordId": "r1", "eventId": "e1", "rowIndex": 0, "features": [1.5, 2], "probability": 0.4, "prediction": 0},))
    try:
        for _ in range(2):  # a redelivered message
            assert handler.handler(sqs_event(group.to_body()), LambdaContext()) == {"batchItemFailures": []}
    finally:
        for cached in (handler.settings, handler.budget, handler.open_tasks):
            cached.cache_clear()
    task = world.tasks.get(group.loop_name("app-dev"))
    assert task.reviewers_per_task == 2 and task.status == "open"
    assert DailyBudget(dynamodb, "budget", 5).remaining() == 4
    assert sqs.receive_message(QueueUrl=urls["dlq"]).get("Messages") is None
