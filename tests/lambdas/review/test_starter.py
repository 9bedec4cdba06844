"""human_loop_starter: A2I calls checked by botocore's Stubber against the real API model;
SQS and DynamoDB on moto."""

from __future__ import annotations

import csv
import datetime as dt
import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from lambdas.review.starter import handler
from lambdas.review.starter.starter import DailyBudget, Outcome, StarterSettings, backoff_seconds, move_deferred, start_review
from lambdas.shared import aws
from lambdas.shared.explain.deployed_model import DeployedModel
from lambdas.shared.explain.tree import TreeExplainer
from lambdas.shared.review_group import ReviewGroup
from stacks.shared import default_model
from tests.lambdas.aws_env import ACCOUNT, REGION, LambdaContext, drain, sqs_event

FLOW = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/app-dev-abc"
LABELS = ("malignant", "benign")


def group(*event_ids: str) -> ReviewGroup:
    rows = tuple(
        {"recordId": e, "eventId": e, "inferenceId": None, "rowIndex": 0, "features": ["1.0", "2.0"], "probability": 0.4, "prediction": 0}
        for e in event_ids
    )
    return ReviewGroup("s3://capture/capture/ep/v/2026/11/22/10/x.jsonl", rows)


@pytest.fixture
def world(mocked_aws, monkeypatch):
    sqs = boto3.client("sqs", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="budget", KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("review", "dlq", "deferred")}
    env = {
        "FLOW_DEFINITION_ARN": FLOW, "LOOP_PREFIX": "app-dev", "LABEL_NAMES": json.dumps(LABELS), "FEATURE_NAMES": json.dumps(["radius", "texture"]),
        "DEAD_LETTER_QUEUE_URL": urls["dlq"], "DEFERRED_QUEUE_URL": urls["deferred"], "REVIEW_QUEUE_URL": urls["review"],
        "BUDGET_TABLE": "budget", "MAX_LOOPS_PER_DAY": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handler.settings.cache_clear()
    handler.budget.cache_clear()
    a2i = boto3.client("sagemaker-a2i-runtime", region_name=REGION)
    stubber = Stubber(a2i)
    monkeypatch.setattr(aws, "client", lambda service: a2i if service == "sagemaker-a2i-runtime" else {"sqs": sqs, "dynamodb": dynamodb}[service])
    with stubber:
        yield stubber, sqs, dynamodb, urls
    handler.settings.cache_clear()
    handler.budget.cache_clear()


def expect_start(stubber: Stubber, name: str, error: str | None = None) -> None:
    params = {"HumanLoopName": name, "FlowDefinitionArn": FLOW, "HumanLoopInput": {"InputContent": ANY}}
    if error is None:
        stubber.add_response("start_human_loop", {"HumanLoopArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:human-loop/{name}"}, params)
    else:
        stubber.add_client_error("start_human_loop", service_error_code=error, http_status_code=400, expected_params=params)


def run(*bodies: str, receive_count: int = 1) -> dict:
    return handler.handler(sqs_event(*bodies, receive_count=receive_count), LambdaContext())


def test_a_group_starts_one_loop_with_named_features_and_labels(world) -> None:
    stubber, *_ = world
    g = group("e1", "e2")
    name = g.loop_name("app-dev")
    captured = {}
    expect_start(stubber, name)
    a2i = aws.client("sagemaker-a2i-runtime")
    a2i.meta.events.register("provide-client-params.sagemaker-a2i-runtime.StartHumanLoop", lambda params, **_: captured.update(params))
    assert run(g.to_body()) == {"batchItemFailures": []}
    stubber.assert_no_pending_responses()
    task = json.loads(captured["HumanLoopInput"]["InputContent"])
    assert [r["key"] for r in task["rows"]] == ["row-0", "row-1"]
    assert task["rows"][0]["features"] == [{"name": "radius", "value": "1.0"}, {"name": "texture", "value": "2.0"}]
    assert task["labels"] == [{"value": 0, "name": "malignant"}, {"value": 1, "name": "benign"}]
    assert task["rows"][0]["predictionName"] == "malignant"


def test_each_rows_selection_and_inclusion_probability_ride_in_the_loop_input(world) -> None:
    """For review_results, which writes them into the labels; rows of a group sent before they
    existed get none (and their labels no ``sampling``)."""
    stubber, *_ = world
    rows = [
        {**group("e1").rows[0], "selectedBy": "rule", "inclusionProbability": 0.34},
        {**group("e2").rows[0], "rowIndex": 2, "selectedBy": "audit", "inclusionProbability": 0.0068},
        {**group("e3").rows[0], "selectedBy": "audit", "inclusionProbability": None},  # capture sampling unknown
    ]
    task = started_task(stubber, ReviewGroup("s3://capture/x.jsonl", tuple(rows)))
    assert [(r["selectedBy"], r["inclusionProbability"], r["rowIndex"]) for r in task["rows"]] == [("rule", 0.34, 0), ("audit", 0.0068, 2), ("audit", None, 0)]
    older = started_task(stubber, group("e4"))
    assert not {"selectedBy", "inclusionProbability"} & set(older["rows"][0])


def test_conflict_means_the_loop_exists_and_is_success(world) -> None:
    stubber, sqs, dynamodb, urls = world
    g = group("e1")
    expect_start(stubber, g.loop_name("app-dev"), "ConflictException")
    assert run(g.to_body()) == {"batchItemFailures": []}
    assert drain(urls["dlq"]) == []
    assert DailyBudget(dynamodb, "budget", 2).remaining() == 2  # a duplicate does not spend budget


def test_throttling_keeps_the_message_with_backoff_then_success(world, monkeypatch) -> None:
    stubber, sqs, _, urls = world
    g = group("e1")
    visibility = []
    monkeypatch.setattr(sqs, "change_message_visibility", lambda **kwargs: visibility.append(kwargs["VisibilityTimeout"]))
    expect_start(stubber, g.loop_name("app-dev"), "ThrottlingException")
    expect_start(stubber, g.loop_name("app-dev"), "ServiceQuotaExceededException")
    with pytest.raises(Exception, match="All records failed"):
        run(g.to_body(), receive_count=1)
    with pytest.raises(Exception, match="All records failed"):
        run(g.to_body(), receive_count=3)
    assert visibility == [30, 120]
    expect_start(stubber, g.loop_name("app-dev"))
    assert run(g.to_body(), receive_count=4) == {"batchItemFailures": []}
    stubber.assert_no_pending_responses()
    assert drain(urls["dlq"]) == []


def test_validation_error_parks_the_group_with_the_reason(world) -> None:
    stubber, _, _, urls = world
    g = group("e1")
    expect_start(stubber, g.loop_name("app-dev"), "ValidationException")
    assert run(g.to_body()) == {"batchItemFailures": []}
    [parked] = drain(urls["dlq"])
    assert parked["MessageAttributes"]["reason"]["StringValue"].startswith("StartHumanLoop ValidationException")
    assert ReviewGroup.from_body(parked["Body"]) == g


def test_malformed_message_is_parked_without_calling_a2i(world) -> None:
    _, _, _, urls = world
    assert run('{"version": 1, "rows": []}', "nope") == {"batchItemFailures": []}
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in drain(urls["dlq"]))
    assert reasons == ["InvalidGroup: review message has no rows", "InvalidGroup: review message is not JSON: Expecting value: line 1 column 1 (char 0)"]


def test_over_the_daily_cap_groups_wait_on_the_deferred_queue_and_come_back_the_next_day(world) -> None:
    stubber, sqs, dynamodb, urls = world
    groups = [group(f"e{i}") for i in range(3)]
    for g in groups[:2]:
        expect_start(stubber, g.loop_name("app-dev"))
    assert run(*(g.to_body() for g in groups)) == {"batchItemFailures": []}
    [deferred] = drain(urls["deferred"])
    assert ReviewGroup.from_body(deferred["Body"]) == groups[2]

    sqs.send_message(QueueUrl=urls["deferred"], MessageBody=deferred["Body"])
    tomorrow = DailyBudget(dynamodb, "budget", 2, today=lambda: dt.date(2099, 1, 1))
    assert move_deferred(sqs, urls["deferred"], urls["review"], tomorrow.remaining()) == 1
    assert [m["Body"] for m in drain(urls["review"])] == [deferred["Body"]]


def test_redrive_moves_no_more_than_the_budget_allows(world) -> None:
    _, sqs, _, urls = world
    for i in range(5):
        sqs.send_message(QueueUrl=urls["deferred"], MessageBody=group(f"e{i}").to_body())
    assert move_deferred(sqs, urls["deferred"], urls["review"], 3) == 3
    assert len(drain(urls["review"])) == 3 and len(drain(urls["deferred"])) == 2


def test_loop_names_are_valid_a2i_names_and_stable() -> None:
    from stacks.shared.aws_facts import A2I_NAME_MAX, A2I_NAME_PATTERN

    name = group("e1", "e2").loop_name("mlloop-prod")
    assert A2I_NAME_PATTERN.fullmatch(name) and len(name) <= A2I_NAME_MAX
    assert name == group("e1", "e2").loop_name("mlloop-prod") != group("e2", "e1").loop_name("mlloop-prod")


def test_backoff_doubles_up_to_fifteen_minutes() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3, 6, 20)] == [30, 60, 120, 900, 900]


def test_start_review_outcomes_are_reported(world) -> None:
    stubber, sqs, dynamodb, urls = world
    settings = StarterSettings(FLOW, "app-dev", LABELS, ("radius", "texture"), urls["dlq"], urls["deferred"])
    g = group("e9")
    expect_start(stubber, g.loop_name("app-dev"))
    assert start_review(aws.client("sagemaker-a2i-runtime"), sqs, DailyBudget(dynamodb, "budget", 5), g, settings) is Outcome.STARTED


def started_task(stubber, g: ReviewGroup) -> dict:
    """Runs the handler on one group and returns the task input it sent to StartHumanLoop."""
    captured = {}
    expect_start(stubber, g.loop_name("app-dev"))
    aws.client("sagemaker-a2i-runtime").meta.events.register(
        "provide-client-params.sagemaker-a2i-runtime.StartHumanLoop", lambda params, **_: captured.update(params)
    )
    assert run(g.to_body()) == {"batchItemFailures": []}
    stubber.assert_no_pending_responses()
    return json.loads(captured["HumanLoopInput"]["InputContent"])


@pytest.fixture
def explaining(world, monkeypatch):
    """Attributions on, with the bundled model standing in for what the endpoint serves."""
    monkeypatch.setenv("ATTRIBUTIONS", "on")
    monkeypatch.setenv("TOP_K", "3")
    monkeypatch.setenv("FEATURE_NAMES", json.dumps(default_model.FEATURE_NAMES))
    handler.settings.cache_clear()
    bundled = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "mlloop-dev-run-7")
    monkeypatch.setattr(handler, "deployed_model", lambda: type("Served", (), {"explainer": staticmethod(lambda: bundled)})())
    return world, bundled


def bundled_group(explainer: TreeExplainer, count: int = 3) -> ReviewGroup:
    with default_model.TEST_CSV.open() as stream:
        records = [r[1:] for r in list(csv.reader(stream))[:count]]
    return ReviewGroup("s3://capture/x.jsonl", tuple(
        {"recordId": f"r{i}", "eventId": f"e{i}", "inferenceId": None, "rowIndex": 0, "features": features,
         "probability": result.probability, "prediction": int(result.probability >= 0.5)}
        for i, (features, result) in enumerate(zip(records, explainer.explain(records)))
    ))


def test_with_attributions_on_every_row_carries_its_top_k_from_the_served_model(explaining) -> None:
    (stubber, *_), bundled = explaining
    task = started_task(stubber, bundled_group(bundled))
    for row in task["rows"]:
        explanation = row["explanation"]
        assert explanation["status"] == "explained" and explanation["model"] == "mlloop-dev-run-7"
        assert len(explanation["top"]) == 3 and explanation["othersCount"] == 27 and explanation["note"] is None
        names = [f["name"] for f in row["features"]]
        for item in explanation["top"]:
            assert row["features"][names.index(item["feature"])]["value"] == item["value"]


def emitted(capsys) -> dict[str, float]:
    """Metric values of the EMF documents the handler printed."""
    values = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and "_aws" in line:
            document = json.loads(line)
            for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = document[metric["Name"]]
                values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


def test_records_the_model_cannot_take_and_faults_in_explaining_still_reach_review(explaining, monkeypatch, capsys) -> None:
    (stubber, *_), bundled = explaining
    capsys.readouterr()
    task = started_task(stubber, group("e1"))  # two features; the model takes 30
    assert task["rows"][0]["explanation"] == {"status": "unavailable", "reason": "the record has 2 features and model mlloop-dev-run-7 takes 30"}
    metrics = emitted(capsys)
    assert (metrics["RecordsExplained"], metrics["RecordsNotExplained"], metrics["HumanLoopsStarted"]) == (0, 1, 1)

    def broken():
        raise RuntimeError("bug")

    monkeypatch.setattr(handler, "deployed_model", lambda: type("Served", (), {"explainer": staticmethod(broken)})())
    task = started_task(stubber, bundled_group(bundled, 1))
    assert task["rows"][0]["explanation"] == {"status": "unavailable", "reason": "the app failed to compute attributions for this record (see the starter's logs)"}


def test_attributions_are_off_unless_configured_and_then_follow_the_endpoint(world, monkeypatch) -> None:
    stubber, *_ = world
    handler.deployed_model.cache_clear()
    assert handler.deployed_model() is None
    assert started_task(stubber, group("e1"))["rows"][0]["explanation"] == {"status": "off"}
    for name, value in {"ATTRIBUTIONS": "on", "ENDPOINT_NAME": "mlloop-dev", "VARIANT_NAME": "AllTraffic", "MODEL_REFRESH_SECONDS": "60"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(aws, "client", lambda service: object())
    handler.deployed_model.cache_clear()
    assert isinstance(handler.deployed_model(), DeployedModel)
    handler.deployed_model.cache_clear()


# --- the daily budget does not leak (moto DynamoDB) -------------------------------------------------

def loops_counted(dynamodb, day: str) -> int:
    item = dynamodb.get_item(TableName="budget", Key={"day": {"S": day}}, ConsistentRead=True).get("Item") or {}
    return int(item.get("loops", {}).get("N", "0"))


def test_a_crash_between_taking_and_starting_does_not_leak_when_the_group_is_retried(world) -> None:
    stubber, sqs, dynamodb, urls = world
    day = dt.date(2026, 11, 28)
    budget = DailyBudget(dynamodb, "budget", 2, today=lambda: day)
    settings = StarterSettings(FLOW, "app-dev", LABELS, ("radius", "texture"), urls["dlq"], urls["deferred"])
    g = group("e1")
    # As a Lambda timeout would: the place is taken, then the invocation dies before StartHumanLoop.
    assert budget.take(g.loop_name("app-dev")).fresh
    for _ in range(3):  # SQS redelivers the same group, again and again
        expect_start(stubber, g.loop_name("app-dev"), "ThrottlingException")
        with pytest.raises(Exception, match="ThrottlingException"):
            start_review(aws.client("sagemaker-a2i-runtime"), sqs, budget, g, settings)
        assert loops_counted(dynamodb, "2026-11-28") == 0  # a failed start gives its place back
    expect_start(stubber, g.loop_name("app-dev"))
    assert start_review(aws.client("sagemaker-a2i-runtime"), sqs, budget, g, settings) is Outcome.STARTED
    assert loops_counted(dynamodb, "2026-11-28") == 1 and budget.remaining() == 1


def test_a_retry_after_a_crash_takes_no_second_place(world) -> None:
    _, _, dynamodb, _ = world
    budget = DailyBudget(dynamodb, "budget", 2, today=lambda: dt.date(2026, 11, 28))
    first = budget.take("app-dev-aaa")
    again = budget.take("app-dev-aaa")  # the retry of the same group after a crash
    assert (first.fresh, again.fresh) == (True, False) and budget.remaining() == 1
    assert budget.take("app-dev-bbb").fresh and budget.take("app-dev-ccc") is None  # the budget still binds
    assert budget.take("app-dev-aaa") is not None  # a group holding a place is never deferred


def test_giving_back_after_midnight_frees_the_day_it_was_taken_on(world) -> None:
    _, _, dynamodb, _ = world
    today = [dt.date(2026, 11, 28)]
    budget = DailyBudget(dynamodb, "budget", 5, today=lambda: today[0])
    claim = budget.take("app-dev-aaa")
    budget.take("app-dev-bbb")
    today[0] = dt.date(2026, 11, 29)
    budget.take("app-dev-ccc")
    budget.give_back(claim)
    budget.give_back(claim)  # a repeated give-back changes nothing
    assert (loops_counted(dynamodb, "2026-11-28"), loops_counted(dynamodb, "2026-11-29")) == (1, 1)


def test_a_crash_while_explaining_gives_the_place_back(world) -> None:
    _, sqs, dynamodb, urls = world
    budget = DailyBudget(dynamodb, "budget", 2)
    settings = StarterSettings(FLOW, "app-dev", LABELS, ("radius", "texture"), urls["dlq"], urls["deferred"])

    def broken(_group):
        raise MemoryError("explainer ran out of memory")

    with pytest.raises(MemoryError):
        start_review(aws.client("sagemaker-a2i-runtime"), sqs, budget, group("e1"), settings, broken)
    assert budget.remaining() == 2


def test_a_replay_on_a_later_day_of_a_loop_that_exists_spends_nothing_that_day(world) -> None:
    stubber, sqs, dynamodb, urls = world
    budget = DailyBudget(dynamodb, "budget", 2, today=lambda: dt.date(2026, 12, 1))
    settings = StarterSettings(FLOW, "app-dev", LABELS, ("radius", "texture"), urls["dlq"], urls["deferred"])
    g = group("e1")
    expect_start(stubber, g.loop_name("app-dev"), "ConflictException")
    assert start_review(aws.client("sagemaker-a2i-runtime"), sqs, budget, g, settings) is Outcome.ALREADY_STARTED
    assert budget.remaining() == 2


# --- review groups of the wrong types are parked with a reason --------------------------------------

@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"prediction": "1"}, "row 0 has prediction '1', not a label number"),
        ({"prediction": True}, "row 0 has prediction True, not a label number"),
        ({"prediction": -1}, "row 0 has prediction -1, not a label number"),
        ({"features": "123"}, "row 0 has features of type str, not a list of values (strings or numbers)"),
        ({"features": [[1, 2]]}, "row 0 has features of type list, not a list of values (strings or numbers)"),
        ({"probability": "0.4"}, "row 0 has probability '0.4', not a number in [0, 1]"),
        ({"probability": True}, "row 0 has probability True, not a number in [0, 1]"),
        ({"rowIndex": "0"}, "row 0 has rowIndex '0', not a whole number"),
        ({"eventId": 7}, "row 0 has eventId 7, not a string"),
        ({"recordId": None}, "row 0 has recordId None, not a string"),
        ({"inferenceId": ["x"]}, "row 0 has inferenceId ['x'], not a string"),
    ],
)
def test_groups_of_the_wrong_types_are_parked_with_a_reason_without_calling_a2i(world, change: dict, reason: str) -> None:
    _, _, dynamodb, urls = world
    body = json.loads(group("e1").to_body())
    body["rows"][0].update(change)
    assert run(json.dumps(body)) == {"batchItemFailures": []}  # parked at once, not retried five times
    [parked] = drain(urls["dlq"])
    assert parked["MessageAttributes"]["reason"]["StringValue"] == f"InvalidGroup: {reason}"
    assert DailyBudget(dynamodb, "budget", 2).remaining() == 2
