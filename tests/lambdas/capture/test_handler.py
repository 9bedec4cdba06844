"""capture_filter end to end on moto's S3 and SQS: events in, review groups and reports out.

DescribeEndpoint, which gives the capture sampling percentage, is answered by botocore's Stubber:
moto's endpoint has no ``DataCaptureConfig.CurrentSamplingPercentage``.
"""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.stub import Stubber

from lambdas.capture import handler
from lambdas.capture.selection import audit_draw
from lambdas.shared import aws
from lambdas.shared.consumer import SettingsError
from lambdas.shared.review_group import ReviewGroup
from tests.lambdas.aws_env import REGION, LambdaContext, drain, sqs_event
from tests.lambdas.capture.test_records import capture_line

CAPTURE_BUCKET = "capture-bucket"
REPORT_BUCKET = "review-bucket"
KEY = "capture/ep/AllTraffic/2026/11/22/10/00-00-000-abc.jsonl"
ENDPOINT = "app-dev-endpoint"
CAPTURE_SAMPLING_PERCENTAGE = 34


def describe_endpoint(percentage: int | None, *, enabled: bool = True) -> dict:
    """DescribeEndpoint's answer for an endpoint capturing ``percentage`` % of requests (None: no capture)."""
    answer = {
        "EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{ENDPOINT}",
        "EndpointConfigName": "config-2", "EndpointStatus": "InService", "CreationTime": "2026-11-01T00:00:00Z", "LastModifiedTime": "2026-11-20T00:00:00Z",
    }
    if percentage is not None:
        answer["DataCaptureConfig"] = {
            "EnableCapture": enabled, "CaptureStatus": "Started" if enabled else "Stopped", "CurrentSamplingPercentage": percentage,
            "DestinationS3Uri": f"s3://{CAPTURE_BUCKET}/capture", "KmsKeyId": "key",
        }
    return answer


@pytest.fixture
def endpoint(monkeypatch):
    """A Stubber'd SageMaker client in place of ``aws.client("sagemaker")``; every other client is moto's."""
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    real = aws.client
    monkeypatch.setattr(aws, "client", lambda service: client if service == "sagemaker" else real(service))
    handler.capture_sampling.cache_clear()
    with Stubber(client) as stubber:
        yield stubber
    handler.capture_sampling.cache_clear()


@pytest.fixture
def pipeline(mocked_aws, endpoint, monkeypatch, request):
    """Capture and report buckets, review queue and dead-letter queue; an endpoint capturing
    CAPTURE_SAMPLING_PERCENTAGE % (asked once: the answer is kept for minutes), or, parametrised
    indirectly, another DescribeEndpoint answer or error code; no audit sample."""
    answer = getattr(request, "param", describe_endpoint(CAPTURE_SAMPLING_PERCENTAGE))
    if isinstance(answer, str):
        endpoint.add_client_error("describe_endpoint", answer, "refused", 400, expected_params={"EndpointName": ENDPOINT})
    else:
        endpoint.add_response("describe_endpoint", answer, {"EndpointName": ENDPOINT})
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
        "ENDPOINT_NAME": ENDPOINT, "AUDIT_PERCENTAGE": "0",
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

    def flaky(s3_client, sqs_client, obj, settings, time_left, fraction):
        if obj.key.endswith("boom.jsonl"):
            raise ConnectionError("S3 read timed out")
        return real(s3_client, sqs_client, obj, settings, time_left, fraction)

    monkeypatch.setattr(handler, "filter_capture_object", flaky)
    result = run(eventbridge("capture/boom.jsonl"), eventbridge())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}  # SQS retries it, then its DLQ
    assert len(drain(review)) == 1 and drain(dlq) == []


# --- the audit sample -----------------------------------------------------------------------------

AUDIT_PERCENTAGE = 10.0


def audited_lines() -> list[str]:
    """400 requests: every fifth in the band, the others confident; every seventh carries two rows,
    every third an inference ID."""
    lines = []
    for i in range(400):
        score = "0.5" if i % 5 == 0 else "0.97"
        data, output = ("1,2,3\n4,5,6", f"{score}\n0.02") if i % 7 == 0 else ("1,2,3", score)
        lines.append(capture_line(data, output, event_id=f"e{i}", inference_id=f"inf-{i}" if i % 3 == 0 else None))
    return lines


def expected_selection(lines: list[str]) -> list[tuple[str, int, str]]:
    """(record ID, row index, selectedBy) of every row, in file order, as the docstring of
    lambdas/capture/selection.py defines the draw."""
    chosen = []
    for line in lines:
        record = json.loads(line)
        metadata = record["eventMetadata"]
        record_id = metadata.get("inferenceId") or metadata["eventId"]
        for index, score in enumerate(record["captureData"]["endpointOutput"]["data"].split("\n")):
            if 0.1 < float(score) < 0.9:
                chosen.append((record_id, index, "rule"))
            elif audit_draw(record_id, index) < AUDIT_PERCENTAGE / 100:
                chosen.append((record_id, index, "audit"))
    return chosen


@pytest.fixture
def auditing(pipeline, monkeypatch):
    monkeypatch.setenv("AUDIT_PERCENTAGE", str(AUDIT_PERCENTAGE))
    monkeypatch.setenv("ROWS_PER_LOOP", "3")
    handler.settings.cache_clear()
    return pipeline


def test_audit_rows_join_the_rule_rows_groups_with_how_and_how_likely_they_were_chosen(auditing) -> None:
    s3, review, dlq = auditing
    lines = audited_lines()
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(lines).encode())
    assert run(eventbridge()) == {"batchItemFailures": []}

    groups = [ReviewGroup.from_body(m["Body"]) for m in drain(review)]
    rows = [row for group in groups for row in group.rows]
    expected = expected_selection(lines)
    assert [(r["recordId"], r["rowIndex"], r["selectedBy"]) for r in rows] == expected  # file order, rule and audit alike
    kinds = {by for _, _, by in expected}
    assert kinds == {"rule", "audit"} and sum(by == "audit" for *_, by in expected) >= 20
    s = CAPTURE_SAMPLING_PERCENTAGE / 100
    assert {r["inclusionProbability"] for r in rows if r["selectedBy"] == "rule"} == {s}
    assert {r["inclusionProbability"] for r in rows if r["selectedBy"] == "audit"} == {round(s * AUDIT_PERCENTAGE / 100, 12)}
    # Audit rows share groups with rule rows: a task does not show which is which by its company.
    assert any(len({r["selectedBy"] for r in g.rows}) == 2 for g in groups)
    assert all(len(g.rows) <= 3 for g in groups) and drain(dlq) == []


def test_a_replayed_object_sends_the_same_audit_rows_in_the_same_groups(auditing) -> None:
    s3, review, _ = auditing
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(audited_lines()).encode())
    run(eventbridge())
    first = [(ReviewGroup.from_body(m["Body"]).loop_name("app-dev"), m["Body"]) for m in drain(review)]
    run(eventbridge())
    second = [(ReviewGroup.from_body(m["Body"]).loop_name("app-dev"), m["Body"]) for m in drain(review)]
    assert first == second and len(first) > 10


@pytest.mark.parametrize("pipeline", [describe_endpoint(None)], indirect=True)
def test_with_the_sampling_percentage_unknown_rows_are_still_reviewed_without_a_probability(auditing) -> None:
    s3, review, dlq = auditing
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(audited_lines()).encode())
    assert run(eventbridge()) == {"batchItemFailures": []}
    rows = [row for m in drain(review) for row in ReviewGroup.from_body(m["Body"]).rows]
    assert {r["selectedBy"] for r in rows} == {"rule", "audit"}
    assert {r["inclusionProbability"] for r in rows} == {None}
    assert drain(dlq) == []


@pytest.mark.parametrize("pipeline", ["ThrottlingException"], indirect=True)
def test_a_throttled_endpoint_fails_the_record_so_it_is_retried_not_sent_without_probabilities(pipeline) -> None:
    s3, review, dlq = pipeline
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(LINES).encode())
    with pytest.raises(BatchProcessingError, match="ThrottlingException"):  # the batch's only record failed: SQS retries it
        run(eventbridge())
    assert drain(review) == [] and drain(dlq) == []


@pytest.mark.parametrize("value", ["150", "-2", "two"])
def test_an_audit_percentage_out_of_range_is_a_settings_error(pipeline, monkeypatch, value: str) -> None:
    monkeypatch.setenv("AUDIT_PERCENTAGE", value)
    handler.settings.cache_clear()
    with pytest.raises(SettingsError, match="AUDIT_PERCENTAGE|audit percentage"):
        handler.settings()
    handler.settings.cache_clear()
