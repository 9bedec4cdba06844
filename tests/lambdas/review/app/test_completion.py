"""Completion (moto): A2I's output.json, read by review_results unchanged, and one event, even after a crash."""

from __future__ import annotations

import csv
import io
import json

import boto3
import pytest

from lambdas.review.app import api, completion
from lambdas.review.app.completion import COMPLETED_DETAIL_TYPE, complete, sweep
from lambdas.review.app.tasks import ANSWERED, DONE
from lambdas.review.results.results import LoopEvent, ResultsSettings, record_loop
from lambdas.shared import aws
from tests.lambdas.aws_env import REGION
from tests.lambdas.review.app.conftest import ALICE, BOB, CAROL, ENV, LABELS, agree_all, task_input

LABELS_BUCKET = "labels-bucket"


def answered_by_three(world) -> None:
    """Three reviewers: two disagree on row 0 (label 1), one agrees; all agree on rows 1 and 2."""
    world.tasks.put("t-1", task_input(), 3, 3600)
    disagree = {**agree_all(), "row-0-verdict": "disagree", "row-0-label": "1", "row-0-reason": "irregular edges"}
    for reviewer, form in ((ALICE, disagree), (BOB, agree_all()), (CAROL, disagree)):
        world.tasks.claim(reviewer)
        world.clock.advance(7)
        from lambdas.review.app.answers import checked

        world.tasks.submit("t-1", reviewer, checked(form, world.tasks.get("t-1").input_content, LABELS))


def settings() -> completion.CompletionSettings:
    return api.completion_settings()


def test_output_json_is_a2i_s_format_and_review_results_turns_it_into_labels(world) -> None:
    answered_by_three(world)
    task = world.tasks.get("t-1")
    assert task.status == ANSWERED
    assert complete(world.tasks, aws.client("s3"), aws.client("events"), task, settings()) is True
    [key] = world.outputs()
    created = task.created_at
    assert key == f"a2i-output/reviewers-app/{created[:4]}/{created[5:7]}/{created[8:10]}/{created[11:13]}/{created[14:16]}/{created[17:19]}/t-1/output.json"
    document = json.loads(world.s3.get_object(Bucket=ENV["REVIEW_BUCKET"], Key=key)["Body"].read())
    assert document["humanLoopName"] == "t-1" and document["inputContent"] == task_input()
    first = document["humanAnswers"][0]
    assert [a["workerId"] for a in document["humanAnswers"]] == ["alice", "bob", "carol"]  # in submission order
    assert first["workerMetadata"] == {"identityData": {"identityProviderType": "Cognito", "issuer": "https://issuer", "sub": "alice"}}
    assert first["timeSpentInSeconds"] == 7 and first["answerContent"]["row-0-verdict"] == {"agree": False, "disagree": True}
    [event] = world.events()
    assert event["source"] == ENV["EVENT_SOURCE"] and event["detail-type"] == COMPLETED_DETAIL_TYPE
    assert event["detail"] == {"humanLoopName": "t-1", "humanLoopStatus": "Completed", "humanLoopOutput": {"outputS3Uri": f"s3://{ENV['REVIEW_BUCKET']}/{key}"},
                               "creationTime": task.created_at}
    done = world.tasks.get("t-1")
    assert done.status == DONE and done.output_uri == event["detail"]["humanLoopOutput"]["outputS3Uri"]
    assert [e["action"] for e in done.audit].count("complete") == 1

    # review_results, unchanged, reads the event and the output.json.
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=LABELS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    result = record_loop(aws.client("s3"), aws.client("events"), LoopEvent.from_event(event),
                         ResultsSettings(LABELS_BUCKET, ENV["REVIEW_BUCKET"], LABELS, "default", "app.review"))
    assert (result.labelled, result.unused) == (3, 0)
    training = world.s3.get_object(Bucket=LABELS_BUCKET, Key=result.training_key)["Body"].read().decode()
    assert list(csv.reader(io.StringIO(training))) == [["1", "1.5", "2"], ["0", "2.5", "2"], ["0", "3.5", "2"]]  # row 0: majority "1"
    truth = [json.loads(line) for line in world.s3.get_object(Bucket=LABELS_BUCKET, Key=result.ground_truth_key)["Body"].read().splitlines()]
    assert [(t["eventMetadata"]["eventId"], t["groundTruthData"]["data"]) for t in truth] == [("rec-0", "1"), ("rec-1", "0"), ("rec-2", "0")]


def test_only_answered_tasks_complete(world) -> None:
    world.tasks.put("t-1", task_input(), 2, 3600)
    world.tasks.claim(ALICE)
    world.tasks.submit("t-1", ALICE, {})
    assert complete(world.tasks, aws.client("s3"), aws.client("events"), world.tasks.get("t-1"), settings()) is False
    assert world.outputs() == [] and world.events() == []


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", ["before publishing", "before the event", "before done"])
def test_a_crash_between_output_json_and_done_leaves_exactly_one_result_after_the_retry(world, monkeypatch, crash_at) -> None:
    """The completer dies after writing output.json at each later step; the sweep finishes it."""
    answered_by_three(world)
    events = aws.client("events")
    tasks = world.tasks
    crashing = {"before publishing": (tasks, "start_publishing"), "before the event": (events, "put_events"), "before done": (tasks, "mark_done")}
    target, name = crashing[crash_at]
    original = getattr(target, name)

    def crash(*args, **kwargs):
        raise Crash(name)

    monkeypatch.setattr(target, name, crash)
    with pytest.raises(Crash):
        complete(tasks, aws.client("s3"), events, tasks.get("t-1"), settings())
    assert len(world.outputs()) == 1 and tasks.get("t-1").status == ANSWERED
    monkeypatch.setattr(target, name, original)
    if crash_at == "before done":
        # The event went out; the completer died before marking the task done. Within the publishing
        # hold nobody announces it again; after it the retry does, and review_results overwrites.
        assert len(world.events()) == 1
        assert sweep(tasks, aws.client("s3"), events, settings()) == (0, [])
        assert tasks.get("t-1").status == ANSWERED
        return
    world.clock.advance(completion.PUBLISH_HOLD_SECONDS + 1)  # a hold taken before the crash has passed
    assert sweep(tasks, aws.client("s3"), events, settings()) == (1, [])
    assert len(world.outputs()) == 1 and len(world.events()) == 1
    assert tasks.get("t-1").status == DONE
    assert sweep(tasks, aws.client("s3"), events, settings()) == (0, [])  # nothing left to do
    assert world.events() == []


def test_two_completers_at_once_announce_once(world) -> None:
    answered_by_three(world)
    task = world.tasks.get("t-1")
    s3, events = aws.client("s3"), aws.client("events")
    assert world.tasks.start_publishing("t-1", "s3://x/y", completion.PUBLISH_HOLD_SECONDS)  # the other completer, mid-way
    assert complete(world.tasks, s3, events, task, settings()) is False
    assert world.events() == []


def test_the_sweep_handler_completes_what_the_api_could_not(world, monkeypatch) -> None:
    """The API saves the last answer even when completion fails; the scheduled sweep completes it."""
    from tests.lambdas.aws_env import LambdaContext
    from tests.lambdas.review.app.conftest import call

    world.tasks.put("t-1", task_input(), 1, 3600)
    call("POST /api/tasks/next")
    original = completion.output_document
    monkeypatch.setattr(completion, "output_document", lambda task: (_ for _ in ()).throw(Crash("S3 down")))
    status, body = call("POST /api/tasks/{taskId}/answers", task_id="t-1", body={"answers": agree_all()})
    assert (status, body["completed"]) == (200, False) and world.tasks.get("t-1").status == ANSWERED
    monkeypatch.setattr(completion, "output_document", original)
    assert api.sweep_handler({}, LambdaContext()) == {"announced": 1}
    assert len(world.outputs()) == 1 and len(world.events()) == 1 and world.tasks.get("t-1").status == DONE


def test_a_task_that_cannot_complete_does_not_hold_up_the_others(world, monkeypatch) -> None:
    for task_id in ("t-1", "t-2"):
        world.tasks.put(task_id, task_input(), 1, 3600)
        world.tasks.claim(ALICE)
        world.tasks.submit(task_id, ALICE, {})
    original = completion.output_document
    monkeypatch.setattr(completion, "output_document", lambda task: original(task) if task.task_id == "t-1" else (_ for _ in ()).throw(Crash("bad")))
    announced, failed = sweep(world.tasks, aws.client("s3"), aws.client("events"), settings())
    assert announced == 1 and [(task_id, str(error)) for task_id, error in failed] == [("t-2", "bad")]
    assert world.tasks.get("t-1").status == DONE and world.tasks.get("t-2").status == ANSWERED
    from tests.lambdas.aws_env import LambdaContext

    with pytest.raises(RuntimeError, match="1 answered task"):
        api.sweep_handler({}, LambdaContext())  # Lambda reports the error; the alarm on it fires


def test_a_task_nobody_finished_in_time_ends_as_a_failed_loop_with_its_reason(world, monkeypatch) -> None:
    """As A2I ends a loop nobody answered in time: one "Failed" event, recorded by review_results,
    never a task that just disappears (the table's TTL deletes it only a retention period later)."""
    world.tasks.put("t-1", task_input(), 2, 60)
    assert world.tasks.claim(ALICE).task_id == "t-1"
    world.tasks.submit("t-1", ALICE, agree_all())
    world.tasks.put("t-2", task_input(), 1, 3600)  # still available: left alone
    world.clock.advance(61)
    assert world.tasks.claim(BOB) is not None and world.tasks.claim(CAROL) is None  # BOB gets t-2; t-1 is past claiming
    events = aws.client("events")
    original = world.tasks.mark_expired
    monkeypatch.setattr(world.tasks, "mark_expired", lambda task_id: (_ for _ in ()).throw(Crash("before expired")))
    with pytest.raises(Crash):
        completion.expire(world.tasks, events, world.tasks.get("t-1"), settings())
    monkeypatch.setattr(world.tasks, "mark_expired", original)
    [event] = world.events()
    assert sweep(world.tasks, aws.client("s3"), events, settings()) == (0, [])  # within the hold: not announced again
    world.clock.advance(completion.PUBLISH_HOLD_SECONDS + 1)
    assert sweep(world.tasks, aws.client("s3"), events, settings()) == (1, [])  # the retry after a crash: at least once
    [again] = world.events()
    assert again["detail"] == event["detail"]
    detail = event["detail"]
    assert (detail["humanLoopName"], detail["humanLoopStatus"]) == ("t-1", "Failed") and "humanLoopOutput" not in detail
    assert detail["failureReason"].startswith("the task expired: 1 of 2 reviewer(s) answered within its availability")
    expired = world.tasks.get("t-1")
    assert expired.status == "expired" and [e["action"] for e in expired.audit][-1] == "expire"
    assert world.tasks.get("t-2").status == "open" and world.outputs() == []
    assert sweep(world.tasks, aws.client("s3"), events, settings()) == (0, []) and world.events() == []
    # review_results, unchanged, records the failed loop in its report.
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=LABELS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    result = record_loop(aws.client("s3"), events, LoopEvent.from_event(event), ResultsSettings(LABELS_BUCKET, ENV["REVIEW_BUCKET"], LABELS, "default", "app.review"))
    assert (result.status, result.labelled) == ("Failed", 0)
    report = json.loads(world.s3.get_object(Bucket=ENV["REVIEW_BUCKET"], Key="loop-reports/t-1.json")["Body"].read())
    assert report == {"humanLoopName": "t-1", "status": "Failed", "failureReason": detail["failureReason"]}


def test_an_answer_after_the_tasks_availability_is_refused_and_the_task_ends_once(world) -> None:
    """A reviewer who claimed near the end cannot answer after it: the lease ends with the task's
    availability, the answer is 409, and the sweep announces one Failed event."""
    from tests.lambdas.review.app.conftest import call

    world.tasks.put("t-1", task_input(), 1, 60)
    assert call("POST /api/tasks/next")[1]["task"]["leaseExpiresAt"] == int(world.clock.now) + 60  # not the 300-s lease
    world.clock.advance(60)
    assert call("POST /api/tasks/{taskId}/renew", task_id="t-1")[0] == 409
    status, body = call("POST /api/tasks/{taskId}/answers", task_id="t-1", body={"answers": agree_all()})
    assert (status, body["message"]) == (409, "task t-1 is no longer available (its time for review ended): ask for the next task")
    assert sweep(world.tasks, aws.client("s3"), aws.client("events"), settings()) == (1, [])
    assert [(e["detail"]["humanLoopName"], e["detail"]["humanLoopStatus"]) for e in world.events()] == [("t-1", "Failed")]
    assert world.tasks.get("t-1").status == "expired" and world.tasks.get("t-1").answers == {}


def test_the_sweep_ending_a_task_while_its_last_answer_lands_announces_it_once(world, monkeypatch) -> None:
    """The answer arrives while the sweep is ending the task (between its read and its event):
    the task has stopped taking answers, so the answer is refused and one Failed event goes out,
    and the sweep reports no error (a false SweepErrors alarm)."""
    from tests.lambdas.review.app.conftest import call

    world.tasks.put("t-1", task_input(), 1, 60)
    call("POST /api/tasks/next")
    # A lease taken before leases were capped at the task's availability: still running.
    aws.client("dynamodb").update_item(TableName=ENV["TASKS_TABLE"], Key={"taskId": {"S": "t-1"}}, UpdateExpression="SET slot0.leaseExpiresAt = :late",
                                       ExpressionAttributeValues={":late": {"N": str(int(world.clock.now) + 300)}})
    world.clock.advance(61)
    answered = []
    original = completion._announce

    def answer_lands_first(events, task, detail, config):
        answered.append(call("POST /api/tasks/{taskId}/answers", task_id="t-1", body={"answers": agree_all()}, threads=True))
        return original(events, task, detail, config)

    monkeypatch.setattr(completion, "_announce", answer_lands_first)
    assert sweep(world.tasks, aws.client("s3"), aws.client("events"), settings()) == (1, [])
    monkeypatch.setattr(completion, "_announce", original)
    assert [status for status, _ in answered] == [409]
    world.clock.advance(completion.PUBLISH_HOLD_SECONDS + 1)
    assert sweep(world.tasks, aws.client("s3"), aws.client("events"), settings()) == (0, [])
    assert [(e["detail"]["humanLoopName"], e["detail"]["humanLoopStatus"]) for e in world.events()] == [("t-1", "Failed")]
    assert world.tasks.get("t-1").status == "expired" and world.outputs() == []


def test_an_answer_that_lands_before_the_sweep_ends_the_task_completes_it_instead(world) -> None:
    """The other order: the last answer is saved just before the sweep reads the task as expired
    (its read is older than the answer): the sweep's conditional write finds it answered, and the
    task is announced once, as Completed."""
    world.tasks.put("t-1", task_input(), 1, 60)
    world.tasks.claim(ALICE)
    world.clock.advance(59)
    world.tasks.submit("t-1", ALICE, agree_all())
    world.clock.advance(2)
    stale = world.tasks.get("t-1")
    stale.status = "open"  # as a sweep that read it a moment before the answer saw it
    assert completion.expire(world.tasks, aws.client("events"), stale, settings()) is False
    assert sweep(world.tasks, aws.client("s3"), aws.client("events"), settings()) == (1, [])
    assert [e["detail"]["humanLoopStatus"] for e in world.events()] == ["Completed"]


class OnlyQueryAndUpdate:
    """The sweep function's DynamoDB grants (stacks/review/app.py): Query and UpdateItem, nothing else."""

    def __init__(self, client) -> None:
        self._client = client

    def query(self, **kwargs):
        return self._client.query(**kwargs)

    def update_item(self, **kwargs):
        return self._client.update_item(**kwargs)


def test_the_sweep_finishes_an_interrupted_expiry_with_only_its_granted_calls(world, monkeypatch) -> None:
    from lambdas.review.app.tasks import Tasks

    world.tasks.put("t-1", task_input(), 1, 60)
    world.clock.advance(61)
    swept = Tasks(OnlyQueryAndUpdate(aws.client("dynamodb")), ENV["TASKS_TABLE"], 300, world.clock)
    original = swept.mark_expired
    monkeypatch.setattr(swept, "mark_expired", lambda task_id: (_ for _ in ()).throw(Crash("after the event")))
    assert sweep(swept, aws.client("s3"), aws.client("events"), settings())[1][0][0] == "t-1"
    monkeypatch.setattr(swept, "mark_expired", original)
    world.clock.advance(completion.PUBLISH_HOLD_SECONDS + 1)
    assert sweep(swept, aws.client("s3"), aws.client("events"), settings()) == (1, [])  # the expiring task, announced again
    assert [e["detail"]["humanLoopStatus"] for e in world.events()] == ["Failed", "Failed"] and world.tasks.get("t-1").status == "expired"
