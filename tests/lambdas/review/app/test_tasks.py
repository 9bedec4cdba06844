"""Tasks in DynamoDB (moto): claims under a lease, release, renew, answers, and the starter's open sink."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from lambdas.review.app.tasks import ANSWERED, OPEN, Conflict, Reviewer, Tasks, TooSoon
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
    assert world.tasks.waiting() == 0  # open, but nobody could take it now
    world.clock.advance(301)
    assert world.tasks.waiting() == 1  # Alice's lease ran out: it waits again


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
    assert actions(world.tasks.get("t-1")) == [("claim", "alice"), ("claim", "bob"), ("submit", "alice")]  # renewals are not audited


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


def item_bytes(task_id: str) -> int:
    """The item's size as DynamoDB counts it, near enough: attribute names plus their values' bytes."""
    def size(value: dict) -> int:
        [(kind, inner)] = value.items()
        if kind in ("S", "N", "B"):
            return len(str(inner).encode())
        if kind in ("SS", "NS"):
            return sum(len(v.encode()) for v in inner)
        if kind == "M":
            return 3 + sum(len(k.encode()) + size(v) for k, v in inner.items())
        if kind == "L":
            return 3 + sum(1 + size(v) for v in inner)
        return 1
    item = aws.client("dynamodb").get_item(TableName=ENV["TASKS_TABLE"], Key={"taskId": {"S": task_id}})["Item"]
    return sum(len(name.encode()) + size(value) for name, value in item.items())


def test_renewals_leave_the_task_item_as_large_as_after_its_claim(world) -> None:
    """Renewals are not audited: renewing as often as allowed does not grow the item (the API test
    floods 10,000 renewals; DynamoDB's limit is 400 KB, which moto enforces too)."""
    every = 300 // 3  # the conftest's lease, a third of it
    world.tasks.put("t-1", task_input(), 1, 501 * every + 300)
    world.tasks.claim(ALICE)
    claimed = item_bytes("t-1")
    for _ in range(500):
        world.clock.advance(every)
        world.tasks.renew("t-1", ALICE)
    assert item_bytes("t-1") <= claimed + 8  # only the lease's numbers changed (a digit or two longer at most)
    assert claimed < 4_000
    assert actions(world.tasks.get("t-1")) == [("claim", "alice")]
    assert world.tasks.submit("t-1", ALICE, agree_all()).status == ANSWERED


def test_a_renewal_sooner_than_a_third_of_the_lease_is_refused_and_changes_nothing(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    claimed = world.tasks.claim(ALICE)
    world.clock.advance(99)
    with pytest.raises(TooSoon, match="renewed 99 s ago: it can be renewed once every 100 s"):
        world.tasks.renew("t-1", ALICE)
    assert world.tasks.get("t-1").slots == claimed.slots
    world.clock.advance(1)
    assert world.tasks.renew("t-1", ALICE).lease_expires_at(ALICE) == int(world.clock.now) + 300
    with pytest.raises(TooSoon):
        world.tasks.renew("t-1", ALICE)


def test_a_lease_never_outlives_the_tasks_availability(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 200)  # available for less than a lease (300 s)
    task = world.tasks.claim(ALICE)
    assert task.lease_expires_at(ALICE) == task.expires_at == int(world.clock.now) + 200
    world.clock.advance(150)
    assert world.tasks.renew("t-1", ALICE).lease_expires_at(ALICE) == task.expires_at  # renewed, still capped
    world.clock.advance(50)  # availability over
    for act in (lambda: world.tasks.renew("t-1", ALICE), lambda: world.tasks.submit("t-1", ALICE, agree_all()),
                lambda: world.tasks.release("t-1", ALICE), lambda: world.tasks.held("t-1", ALICE)):
        with pytest.raises(Conflict, match="no longer available"):
            act()
    assert world.tasks.get("t-1").answers == {}


def test_a_lease_taken_before_the_cap_still_ends_with_the_tasks_availability(world) -> None:
    """A slot whose lease runs past expiresAt (written before leases were capped) can do nothing after it."""
    world.tasks.put("t-1", task_input(), 1, 200)
    world.tasks.claim(ALICE)
    aws.client("dynamodb").update_item(TableName=ENV["TASKS_TABLE"], Key={"taskId": {"S": "t-1"}}, UpdateExpression="SET slot0.leaseExpiresAt = :late",
                                       ExpressionAttributeValues={":late": {"N": str(int(world.clock.now) + 10_000)}})
    world.clock.advance(200)
    with pytest.raises(Conflict):
        world.tasks.submit("t-1", ALICE, agree_all(), read=world.tasks.get("t-1"))  # the write's own condition refuses it
    assert world.tasks.get("t-1").answers == {}


def test_a_reviewer_holds_one_task_at_a_time(world) -> None:
    for i in range(4):
        world.tasks.put(f"t-{i}", task_input(), 1, 3600)
        world.clock.advance(1)
    first = world.tasks.claim(ALICE).task_id
    assert world.tasks.claim(ALICE).task_id == first  # the same task back, nothing else claimed
    held_by_alice = [t for t in (world.tasks.get(f"t-{i}") for i in range(4)) if "alice" in t.seen]
    assert [t.task_id for t in held_by_alice] == [first]
    assert world.tasks.claim(BOB).task_id != first
    world.tasks.submit(first, ALICE, agree_all())
    second = world.tasks.claim(ALICE).task_id  # answered: the next one
    assert second not in (first,)
    world.tasks.release(second, ALICE)
    third = world.tasks.claim(ALICE).task_id  # skipped: the next one
    assert third not in (first, second)
    world.clock.advance(301)  # the lease ran out: the next claim takes another task
    assert world.tasks.claim(ALICE).task_id not in (first, second, third)


def test_claims_of_one_reviewer_at_once_take_one_task(world) -> None:
    """Many requests of one reviewer at the same moment (a script hoarding tasks) get one task."""
    from concurrent.futures import ThreadPoolExecutor

    from local.review_local import item_atomicity

    for i in range(12):
        world.tasks.put(f"t-{i}", task_input(), 1, 3600)
    with item_atomicity(), ThreadPoolExecutor(8) as pool:
        claimed = list(pool.map(lambda _: world.tasks.claim(ALICE), range(16)))
    assert len({task.task_id for task in claimed}) == 1
    assert sum("alice" in world.tasks.get(f"t-{i}").seen for i in range(12)) == 1
    assert world.tasks.waiting() == 11
