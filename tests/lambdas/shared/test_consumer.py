"""The one SQS consumer (lambdas/shared/consumer.py) on moto's SQS: what is parked with a reason,
what is retried, a FIFO batch's order, and settings read once with clear errors."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError, InvalidRegionError

from lambdas.shared.consumer import SettingsError, SqsConsumer, Unfixable, from_environment, is_unfixable
from tests.lambdas.aws_env import REGION, LambdaContext, drain, sqs_event


@pytest.fixture
def dlq(mocked_aws, monkeypatch) -> str:
    url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="dlq")["QueueUrl"]
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", url)
    monkeypatch.setenv("GREETING", "hello")
    return url


@from_environment
def greeting(env) -> str:
    return env["GREETING"]


def consumer(record, *, fifo: bool = False, settings=greeting) -> SqsConsumer:
    settings.cache_clear()
    return SqsConsumer(source="test_consumer", settings=settings, record=record, parked_metric="TestRecordsParked", fifo=fifo)


def raising(errors: dict[str, Exception], seen: list[str] | None = None):
    """A record function that raises the error named by the record's body (none: it succeeds)."""

    def record(record, settings, context) -> None:
        if seen is not None:
            seen.append(record.body)
        if record.body in errors:
            raise errors[record.body]

    return record


THROTTLED = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "SendMessage")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (Unfixable("object s3://b/k no longer exists"), "object s3://b/k no longer exists"),
        (ValueError("not an S3 event"), "ValueError: not an S3 event"),
        (json.JSONDecodeError("Expecting value", "nope", 0), "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
        (KeyError("detail"), "KeyError: 'detail'"),
        (TypeError("'int' object is not subscriptable"), "TypeError: 'int' object is not subscriptable"),
    ],
)
def test_an_unfixable_record_is_parked_with_its_reason_and_not_retried(dlq, capsys, error: Exception, reason: str) -> None:
    handler = consumer(raising({"bad": error})).handler
    assert handler(sqs_event("good", "bad"), LambdaContext()) == {"batchItemFailures": []}
    [parked] = drain(dlq)
    assert parked["Body"] == "bad"  # unchanged, so an SQS redrive can take it back
    attributes = {name: value["StringValue"] for name, value in parked["MessageAttributes"].items()}
    assert attributes == {"reason": reason, "source": "test_consumer"}
    [metrics] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert metrics["TestRecordsParked"] == [1.0]


@pytest.mark.parametrize(
    "error",
    [THROTTLED, TimeoutError("read timed out"), ConnectionError("reset"), RuntimeError("review queue refused 1 of 2 groups"),
     InvalidRegionError(region_name="nowhere"), SettingsError("environment variable X is not set")],
)
def test_a_transient_error_fails_only_its_record_and_is_not_parked(dlq, error: Exception) -> None:
    seen: list[str] = []
    handler = consumer(raising({"flaky": error}, seen)).handler
    assert handler(sqs_event("flaky", "good"), LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert seen == ["flaky", "good"]  # a standard queue goes on with the batch
    assert drain(dlq) == []


def test_the_classification_is_made_once_for_every_handler() -> None:
    assert all(is_unfixable(e) for e in (Unfixable("x"), ValueError("x"), KeyError("x"), TypeError("x"), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "x")))
    assert not any(is_unfixable(e) for e in (THROTTLED, OSError("x"), RuntimeError("x"), InvalidRegionError(region_name="x"), SettingsError("x")))


def test_a_fifo_batch_stops_at_its_first_failure_so_nothing_overtakes_it(mocked_aws, monkeypatch) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="dlq.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", url)
    monkeypatch.setenv("GREETING", "hello")
    seen: list[str] = []
    handler = consumer(raising({"bad": ValueError("not a trigger"), "flaky": THROTTLED}, seen), fifo=True).handler
    result = handler(sqs_event("bad", "first", "flaky", "second", "third"), LambdaContext())
    assert result == {"batchItemFailures": [{"itemIdentifier": f"m-{i}"} for i in (2, 3, 4)]}
    assert seen == ["bad", "first", "flaky"]  # a parked record is done with: the batch goes on past it
    [parked] = drain(url)  # a FIFO dead-letter queue takes it (it needs a message group)
    assert parked["Body"] == "bad" and parked["MessageAttributes"]["reason"]["StringValue"] == "ValueError: not a trigger"


def test_settings_are_read_once_and_given_to_every_record_with_the_lambda_context(dlq, monkeypatch) -> None:
    reads, given = [], []

    @from_environment
    def settings(env) -> str:
        reads.append(env["GREETING"])
        return env["GREETING"]

    handler = consumer(lambda record, config, context: given.append((config, context.aws_request_id)), settings=settings).handler
    handler(sqs_event("a", "b"), LambdaContext())
    monkeypatch.setenv("GREETING", "changed")
    handler(sqs_event("c"), LambdaContext())
    assert reads == ["hello"] and given == [("hello", "req-1")] * 3


@pytest.mark.parametrize("missing", ["GREETING", "DEAD_LETTER_QUEUE_URL"])
def test_a_missing_variable_fails_the_invocation_with_its_name_and_parks_nothing(dlq, monkeypatch, missing: str) -> None:
    seen: list[str] = []
    handler = consumer(raising({"bad": ValueError("x")}, seen)).handler
    monkeypatch.delenv(missing)
    with pytest.raises(SettingsError, match=f"environment variable {missing} is not set"):
        handler(sqs_event("bad"), LambdaContext())
    assert seen == []  # no record is blamed for the environment: all of them go back to the queue
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", dlq)
    assert drain(dlq) == []


@pytest.mark.parametrize(
    ("value", "read", "message"),
    [
        ("ten", lambda env: env.integer("SETTING"), "environment variable SETTING is 'ten', not a whole number"),
        ("0,5", lambda env: env.number("SETTING"), "environment variable SETTING is '0,5', not a number"),
        ("[radius", lambda env: env.names("SETTING"), "environment variable SETTING is '[radius', not JSON"),
        ('"radius"', lambda env: env.names("SETTING"), "environment variable SETTING is '\"radius\"', not a JSON list of strings"),
    ],
)
def test_a_value_that_does_not_parse_names_its_variable(monkeypatch, value: str, read, message: str) -> None:
    monkeypatch.setenv("SETTING", value)
    with pytest.raises(SettingsError) as raised:
        from_environment(read)()
    assert str(raised.value) == message


def test_defaults_stand_only_for_a_variable_that_is_not_set(monkeypatch) -> None:
    monkeypatch.delenv("SETTING", raising=False)
    assert from_environment(lambda env: (env.integer("SETTING", 10), env.number("SETTING", 0.5)))() == (10, 0.5)
    monkeypatch.setenv("SETTING", "3")
    assert from_environment(lambda env: (env.integer("SETTING", 10), env.number("SETTING", 0.5)))() == (3, 3.0)


def test_any_other_error_of_a_reader_names_the_reader(monkeypatch) -> None:
    @from_environment
    def cadences(env) -> dict[str, int]:
        return {expression: int(seconds) for expression, seconds in env.json_value("SETTING").items()}

    monkeypatch.setenv("SETTING", '{"cron(0 * ? * * *)": "hourly"}')
    with pytest.raises(SettingsError, match=r"test_consumer\..*cadences: the environment holds a value it cannot use: ValueError: invalid literal for int"):
        cadences()
