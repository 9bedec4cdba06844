"""capture_filter's reading of a capture object: lines in linear time, huge lines skipped unread
within bounded memory, and a missing object told from a denied read as S3 really answers (403)."""

from __future__ import annotations

import io
import json
import time
import tracemalloc

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from lambdas.capture import handler
from lambdas.capture.events import CaptureObject
from lambdas.capture.filtering import MAX_LINE, FilterSettings, ObjectGone, OutOfTime, filter_capture_object, open_capture_object, read_lines
from lambdas.capture.records import ParseOptions
from lambdas.capture.selection import SelectionRule
from lambdas.shared import aws
from lambdas.shared.review_group import ReviewGroup
from tests.lambdas.aws_env import REGION, LambdaContext, drain, sqs_event
from tests.lambdas.capture.test_handler import CAPTURE_BUCKET, KEY, endpoint, eventbridge, pipeline  # noqa: F401 (fixtures)
from tests.lambdas.capture.test_records import capture_line

MB = 1024 * 1024


def lines_of(data: bytes, chunk_size: int, max_line: int = MAX_LINE) -> list[bytes | None]:
    return list(read_lines(io.BytesIO(data), chunk_size=chunk_size, max_line=max_line))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_lines_are_split_on_newlines_only_whatever_the_chunking(chunk_size: int) -> None:
    data = b"first\nsecond\r\n\nu\xe2\x80\xa8v\rw\nlast"
    # Split as Python's file iteration splits (what the CLI reads), so report line numbers agree.
    assert lines_of(data, chunk_size) == [b"first", b"second\r", b"", b"u\xe2\x80\xa8v\rw", b"last"]
    assert lines_of(data + b"\n", chunk_size) == lines_of(data, chunk_size)
    assert lines_of(b"", chunk_size) == []


@pytest.mark.parametrize("chunk_size", [1, 3, 5, 8, 1024])
def test_a_line_longer_than_the_cap_comes_out_as_none_and_the_others_intact(chunk_size: int) -> None:
    data = b"short\n" + b"x" * 9 + b"\n" + b"y" * 8 + b"\n" + b"z" * 20
    assert lines_of(data, chunk_size, max_line=8) == [b"short", None, b"y" * 8, None]


class _Generated:
    """A streaming body of ``size`` bytes made up as it is read (nothing held), then ``tail``."""

    def __init__(self, size: int, tail: bytes) -> None:
        self._left, self._tail = size, tail
        self.reads = 0

    def read(self, amount: int) -> bytes:
        self.reads += 1
        if self._left > 0:
            n = min(amount, self._left)
            self._left -= n
            return b"x" * n
        tail, self._tail = self._tail[:amount], self._tail[amount:]
        return tail


def test_reading_a_long_line_is_linear_in_its_length() -> None:
    """Against the floor of reading the same body without splitting it. botocore's ``iter_lines``
    joins its pending buffer to every new chunk: with 64-byte chunks over a 4 MiB line that is about
    130 GB copied (minutes), where a linear reader stays within a small multiple of the floor."""
    size, chunk = 4 * MB, 64

    def floor() -> None:
        body = _Generated(size, b"\n")
        while body.read(chunk):
            pass

    def lines() -> list:
        return list(read_lines(_Generated(size, b"\nend"), chunk_size=chunk, max_line=8 * MB))

    def best(run) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    assert [len(line) for line in lines()] == [size, 3]
    assert best(lines) < 20 * best(floor)


def capture_settings(**changes) -> FilterSettings:
    return FilterSettings(
        options=ParseOptions(), rule=SelectionRule(rule="band", lower=0.1, upper=0.9), rows_per_loop=2,
        review_queue_url="review", report_bucket="reports", **changes,
    )


class _FakeS3:
    def __init__(self, body) -> None:
        self._body, self.reports = body, {}

    def get_object(self, Bucket: str, Key: str) -> dict:  # noqa: N803
        return {"Body": self._body}

    def upload_fileobj(self, fileobj, bucket: str, key: str) -> None:
        self.reports[key] = fileobj.read().decode()


class _FakeSqs:
    def __init__(self, fail: bool = False) -> None:
        self.bodies, self._fail = [], fail

    def send_message_batch(self, QueueUrl: str, Entries: list) -> dict:  # noqa: N803
        if self._fail:
            return {"Successful": [], "Failed": [{"Id": e["Id"], "Code": "KMS.ThrottlingException", "Message": "slow down", "SenderFault": False} for e in Entries]}
        self.bodies.extend(e["MessageBody"] for e in Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_a_50_mb_line_is_reported_as_row_too_large_within_little_memory_and_the_other_lines_go_on() -> None:
    before = capture_line("1,2,3", "0.5", event_id="before").encode()
    after = capture_line("4,5,6", "0.6", event_id="after").encode()
    body = _Generated(0, b"")
    body._tail = before + b"\n"
    huge = _Generated(50 * MB, b"\n" + after + b"\n")

    class Joined:  # the good line, the 50 MB line, the good line: streamed, never held whole
        def read(self, amount: int) -> bytes:
            return body.read(amount) or huge.read(amount)

    s3, sqs = _FakeS3(Joined()), _FakeSqs()
    tracemalloc.start()
    try:
        report = filter_capture_object(s3, sqs, CaptureObject("capture", KEY), capture_settings())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * MB  # the function has 1,024 MB; the line alone is 50
    assert (report.records, report.selected, report.rejected) == (3, 2, 1)
    assert [row["eventId"] for b in sqs.bodies for row in ReviewGroup.from_body(b).rows] == ["before", "after"]
    [entry] = [json.loads(line) for line in s3.reports[report.report_key].splitlines()]
    assert entry["line"] == 2 and entry["reason"].startswith("row too large: the line is longer than 25,231,360 bytes")
    assert report.reasons == {"row too large": 1}


def test_a_selected_row_too_large_for_a_message_is_reported_without_splitting_it() -> None:
    wide = capture_line(",".join(["1"] * 200_000), "0.5", event_id="wide").encode()
    fine = capture_line("1,2,3", "0.5", event_id="fine").encode()
    s3, sqs = _FakeS3(io.BytesIO(wide + b"\n" + fine)), _FakeSqs()
    report = filter_capture_object(s3, sqs, CaptureObject("capture", KEY), capture_settings())
    assert report.reasons == {"row too large for a review message": 1} and report.selected == 1
    assert [json.loads(line)["eventId"] for line in s3.reports[report.report_key].splitlines()] == ["wide"]


def test_the_rejected_lines_report_is_written_even_when_a_later_send_fails() -> None:
    data = b"not json\n" + capture_line("1,2,3", "0.5", event_id="e1").encode()
    s3 = _FakeS3(io.BytesIO(data))
    with pytest.raises(RuntimeError, match="review queue refused 1 of 1 groups"):
        filter_capture_object(s3, _FakeSqs(fail=True), CaptureObject("capture", KEY), capture_settings())
    [report] = s3.reports.values()
    assert json.loads(report)["reason"].startswith("not JSON")


# --- a missing object without s3:ListBucket is a 403 ------------------------------------------------

@pytest.fixture
def s3_stub():
    client = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def denied(stubber: Stubber, key: str) -> None:
    """What GetObject answers for a key the caller may read but that does not exist, without ListBucket."""
    stubber.add_client_error(
        "get_object", service_error_code="AccessDenied", service_message="Access Denied", http_status_code=403,
        expected_params={"Bucket": CAPTURE_BUCKET, "Key": key},
    )


def listed(stubber: Stubber, key: str, *keys: str) -> None:
    contents = [{"Key": k, "Size": 1} for k in keys]
    stubber.add_response("list_objects_v2", {"Contents": contents} if contents else {"KeyCount": 0}, {"Bucket": CAPTURE_BUCKET, "Prefix": key, "MaxKeys": 1})


def test_403_for_a_key_that_is_not_listed_means_the_object_is_gone(s3_stub) -> None:
    client, stubber = s3_stub
    denied(stubber, KEY)
    listed(stubber, KEY)
    with pytest.raises(ObjectGone, match="no longer exists"):
        open_capture_object(client, CaptureObject(CAPTURE_BUCKET, KEY))


def test_403_for_a_key_that_is_listed_is_a_real_denial_and_raised(s3_stub) -> None:
    client, stubber = s3_stub
    denied(stubber, KEY)
    listed(stubber, KEY, KEY)
    with pytest.raises(Exception, match="AccessDenied"):
        open_capture_object(client, CaptureObject(CAPTURE_BUCKET, KEY))


def test_403_when_the_listing_is_denied_too_is_raised_not_taken_for_gone(s3_stub) -> None:
    client, stubber = s3_stub
    denied(stubber, KEY)
    stubber.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(Exception, match="AccessDenied"):
        open_capture_object(client, CaptureObject(CAPTURE_BUCKET, KEY))


def test_403_for_the_encoded_key_falls_back_to_the_decoded_one(s3_stub) -> None:
    client, stubber = s3_stub
    encoded, decoded = "capture/a+b.jsonl", "capture/a b.jsonl"
    denied(stubber, encoded)
    listed(stubber, encoded, "capture/a+b.jsonl.other")  # a longer key with that prefix: not this one
    stubber.add_response("get_object", {"Body": StreamingBody(io.BytesIO(b"line\n"), 5)}, {"Bucket": CAPTURE_BUCKET, "Key": decoded})
    body = open_capture_object(client, CaptureObject(CAPTURE_BUCKET, encoded, alternative_key=decoded))
    assert list(read_lines(body)) == [b"line"]


def test_the_handler_parks_a_deleted_object_read_without_list_permission(pipeline, s3_stub, monkeypatch) -> None:
    _, _, dlq = pipeline
    client, stubber = s3_stub
    sqs = boto3.client("sqs", region_name=REGION)
    stubbed = aws.client  # the endpoint's (test_handler.endpoint)
    monkeypatch.setattr(aws, "client", lambda service: {"s3": client, "sqs": sqs}.get(service) or stubbed(service))
    denied(stubber, KEY)
    listed(stubber, KEY)
    denied(stubber, "capture/still-there.jsonl")
    listed(stubber, "capture/still-there.jsonl", "capture/still-there.jsonl")
    result = handler.handler(sqs_event(eventbridge(), eventbridge("capture/still-there.jsonl")), LambdaContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}  # denied: retried, then its DLQ
    [parked] = drain(dlq)
    assert parked["MessageAttributes"]["reason"]["StringValue"] == f"s3://{CAPTURE_BUCKET}/{KEY} no longer exists"


def test_an_object_too_big_for_the_timeout_stops_in_time_with_its_groups_and_report() -> None:
    lines = [b"not json"] + [capture_line("1,2,3", "0.5", event_id=f"e{i}").encode() for i in range(1, 1000)]
    s3, sqs = _FakeS3(io.BytesIO(b"\n".join(lines))), _FakeSqs()
    clock = iter([300.0, 200.0, 19.0])  # seconds left at lines 256, 512 and 768
    with pytest.raises(OutOfTime, match="stopped before line 768; the 383 complete review groups before it were sent"):
        filter_capture_object(s3, sqs, CaptureObject("capture", KEY), capture_settings(), lambda: next(clock))
    rows = [row["eventId"] for b in sqs.bodies for row in ReviewGroup.from_body(b).rows]
    assert rows == [f"e{i}" for i in range(1, 767)]  # lines 2-767: whole groups of two only
    [report] = s3.reports.values()
    assert json.loads(report)["line"] == 1


def test_the_handler_parks_an_object_it_cannot_finish_in_time(pipeline, monkeypatch) -> None:
    s3, review, dlq = pipeline
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(capture_line("1,2,3", "0.5", event_id=f"e{i}") for i in range(600)).encode())

    class Late(LambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 5_000

    assert handler.handler(sqs_event(eventbridge()), Late()) == {"batchItemFailures": []}
    [parked] = drain(dlq)
    assert "was not read to its end within the function's timeout: stopped before line 256" in parked["MessageAttributes"]["reason"]["StringValue"]
    assert len(drain(review)) == 127  # 254 rows before line 256, in whole groups of two
