"""capture_filter end to end on moto's S3 and SQS: events in, review groups and reports out."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import boto3
import pytest

from lambdas.capture import handler
from lambdas.shared.review_group import ReviewGroup
from tests.lambdas.aws_env import REGION, LambdaContext, drain, sqs_event
from tests.lambdas.capture.test_records import capture_line

CAPTURE_BUCKET = "capture-bucket"
REPORT_BUCKET = "review-bucket"
KEY = "capture/ep/AllTraffic/2026/11/22/10/00-00-000-abc.jsonl"


@pytest.fixture
def pipeline(mocked_aws, monkeypatch):
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    for bucket in (CAPTURE_BUCKET, REPORT_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    review = sqs.create_queue(QueueName="review")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    env = {
        "SELECTION_RULE": "band", "LOWER_THRESHOLD": "0.1", "UPPER_THRESHOLD": "0.9", "SELECTED_OUTCOME": "0",
        "SCORE_PATH": "", "FEATURES_PATH": "features", "ROWS_PER_LOOP": "2",
        "REVIEW_QUEUE_URL": review, "DEAD_LETTER_QUEUE_URL": dlq, "REPORT_BUCKET": REPORT_BUCKET,
        "POWERTOOLS_METRICS_NAMESPACE": "Test", "POWERTOOLS_SERVICE_NAME": "capture-filter",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handler.settings.cache_clear()
    yield s3, review, dlq
    handler.settings.cache_clear()


def eventbridge(key: str = KEY) -> str:
    return json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": CAPTURE_BUCKET}, "object": {"key": key}}})


def notification(key: str) -> str:
    return json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": CAPTURE_BUCKET}, "object": {"key": quote_plus(key)}}}]})


LINES = [
    capture_line("1,2,3", "0.5", event_id="e1"),  # selected
    capture_line("1,2,3\n4,5,6", "0.95\n0.2", event_id="e2"),  # row 1 selected
    "",  # blank
    '{"captureData": {"endpointInput"',  # truncated
    capture_line("1,2,3", "0.05", event_id="e3"),  # confident: not selected
    capture_line("7,8,9", "0.7", event_id="e4", inference_id="inf-4"),  # selected
]


def run(*bodies: str) -> dict:
    return handler.handler(sqs_event(*bodies), LambdaContext())


def test_selected_rows_reach_the_review_queue_in_groups_and_bad_lines_are_reported(pipeline) -> None:
    s3, review, dlq = pipeline
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(LINES).encode())
    assert run(eventbridge()) == {"batchItemFailures": []}

    groups = [ReviewGroup.from_body(m["Body"]) for m in drain(review)]
    rows = [row for group in groups for row in group.rows]
    assert [(r["eventId"], r["rowIndex"]) for r in rows] == [("e1", 0), ("e2", 1), ("e4", 0)]
    assert [len(g.rows) for g in groups] == [2, 1]  # ROWS_PER_LOOP=2, in file order
    assert rows[2]["recordId"] == "inf-4" and rows[0]["recordId"] == "e1"  # inferenceId, else eventId
    assert {g.capture_object for g in groups} == {f"s3://{CAPTURE_BUCKET}/{KEY}"}

    report = s3.get_object(Bucket=REPORT_BUCKET, Key=f"rejected-captures/{CAPTURE_BUCKET}/{KEY}.jsonl")["Body"].read().decode()
    [entry] = [json.loads(line) for line in report.splitlines()]
    assert entry["line"] == 4 and entry["reason"].startswith("not JSON")
    assert drain(dlq) == []


def test_duplicate_event_gives_the_same_groups_so_the_same_loop_names(pipeline) -> None:
    s3, review, _ = pipeline
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(LINES).encode())
    run(eventbridge())
    first = [ReviewGroup.from_body(m["Body"]).loop_name("app-dev") for m in drain(review)]
    run(eventbridge())
    second = [ReviewGroup.from_body(m["Body"]).loop_name("app-dev") for m in drain(review)]
    assert first == second and len(set(first)) == 2


def test_url_encoded_key_of_an_s3_notification_is_decoded(pipeline) -> None:
    s3, review, _ = pipeline
    key = "capture/ep/AllTraffic/2026/11/22/10/odd name+1.jsonl"
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=key, Body=LINES[0].encode())
    assert run(notification(key)) == {"batchItemFailures": []}
    [message] = drain(review)
    assert ReviewGroup.from_body(message["Body"]).capture_object == f"s3://{CAPTURE_BUCKET}/{key}"


def test_s3_test_event_is_ignored(pipeline) -> None:
    _, review, dlq = pipeline
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": CAPTURE_BUCKET})
    assert run(body) == {"batchItemFailures": []}
    assert drain(review) == [] and drain(dlq) == []


def test_zero_byte_object_is_handled_with_nothing_to_review(pipeline) -> None:
    s3, review, dlq = pipeline
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body=b"")
    assert run(eventbridge()) == {"batchItemFailures": []}
    assert drain(review) == [] and drain(dlq) == []


def test_deleted_object_and_non_s3_messages_are_parked_with_their_reason(pipeline) -> None:
    _, review, dlq = pipeline
    assert run(eventbridge("capture/gone.jsonl"), "not json", json.dumps({"hello": 1})) == {"batchItemFailures": []}
    parked = drain(dlq)
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in parked)
    assert len(reasons) == 3
    assert any("no longer exists" in r for r in reasons)
    assert sum(r.startswith("not a capture-object event") for r in reasons) == 2
    assert drain(review) == []


def test_a_notification_naming_a_deleted_object_still_filters_the_others_and_is_parked_once(pipeline) -> None:
    s3, review, dlq = pipeline
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body=LINES[0].encode())
    both = json.loads(notification("capture/gone.jsonl"))
    both["Records"] += json.loads(notification(KEY))["Records"]
    assert run(json.dumps(both)) == {"batchItemFailures": []}
    assert len(drain(review)) == 1  # the object that exists was filtered
    [parked] = drain(dlq)
    assert parked["MessageAttributes"]["reason"]["StringValue"] == f"s3://{CAPTURE_BUCKET}/capture/gone.jsonl no longer exists"


def test_a_transient_failure_fails_only_its_record_and_the_good_one_beside_it_goes_through(pipeline, monkeypatch) -> None:
    s3, review, dlq = pipeline
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body=LINES[0].encode())
    real = handler.filter_capture_object

    def flaky(s3_client, sqs_client, obj, settings, time_left):
        if obj.key.endswith("boom.jsonl"):
            raise ConnectionError("S3 read timed out")
        return real(s3_client, sqs_client, obj, settings, time_left)

    monkeypatch.setattr(handler, "filter_capture_object", flaky)
    result = run(eventbridge("capture/boom.jsonl"), eventbridge())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}  # SQS retries it, then its DLQ
    assert len(drain(review)) == 1 and drain(dlq) == []
