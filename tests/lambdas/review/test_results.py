"""review_results: A2I outputs become ground truth, training rows, reports and one event (moto S3/EventBridge/SQS)."""

from __future__ import annotations

import json

import boto3
import pytest

from lambdas.review.results import handler
from lambdas.review.results.results import decide
from tests.lambdas.aws_env import ACCOUNT, REGION, LambdaContext, drain, sqs_event

REVIEW, LABELS = "review-bucket", "labels-bucket"
LOOP = "app-dev-0123456789abcdef"
OUTPUT_KEY = f"a2i-output/flow/2026/11/22/11/00/00/{LOOP}/output.json"


def row(key: str, record: str, prediction: int = 0) -> dict:
    return {"key": key, "recordId": record, "eventId": record, "prediction": prediction, "features": [{"name": "a", "value": "1.5"}, {"name": "b", "value": "2"}]}


def answer(content: dict, when: str = "2026-11-22T11:20:00.000Z") -> dict:
    return {"answerContent": content, "workerId": "w", "submissionTime": when}


def radio(value: str, *others: str) -> dict:
    return {value: True, **{o: False for o in others}}


def output(rows: list[dict], answers: list[dict]) -> dict:
    return {"humanLoopName": LOOP, "inputContent": {"rows": rows, "labels": []}, "humanAnswers": answers}


def status_event(status: str = "Completed", **detail) -> str:
    body = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker A2I HumanLoop Status Change",
        "time": "2026-11-22T11:21:00Z",
        "detail": {"humanLoopName": LOOP, "humanLoopStatus": status, "humanLoopOutput": {"outputS3Uri": f"s3://{REVIEW}/{OUTPUT_KEY}"},
                   "flowDefinitionArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/f", **detail},
    }
    return json.dumps(body)


@pytest.fixture
def world(mocked_aws, monkeypatch):
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (REVIEW, LABELS):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    events = boto3.client("events", region_name=REGION)
    # Capture what is published: a rule on the default bus delivering to a queue.
    sink = sqs.create_queue(QueueName="sink")["QueueUrl"]
    sink_arn = sqs.get_queue_attributes(QueueUrl=sink, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="labels", EventPattern=json.dumps({"source": ["app.review"], "detail-type": ["Labels Available"]}))
    events.put_targets(Rule="labels", Targets=[{"Id": "sink", "Arn": sink_arn}])
    for name, value in {"LABELS_BUCKET": LABELS, "REPORT_BUCKET": REVIEW, "LABEL_NAMES": '["malignant", "benign"]',
                        "EVENT_SOURCE": "app.review", "DEAD_LETTER_QUEUE_URL": dlq}.items():
        monkeypatch.setenv(name, value)
    handler.settings.cache_clear()
    yield s3, dlq, sink
    handler.settings.cache_clear()


def put_output(s3, document: dict) -> None:
    s3.put_object(Bucket=REVIEW, Key=OUTPUT_KEY, Body=json.dumps(document).encode())


def run(*bodies: str) -> dict:
    return handler.handler(sqs_event(*bodies), LambdaContext())


def test_completed_loop_writes_ground_truth_training_rows_report_and_one_event(world) -> None:
    s3, dlq, sink = world
    put_output(s3, output(
        [row("row-0", "inf-1", 0), row("row-1", "e2", 1)],
        [answer({"row-0-verdict": radio("disagree", "agree"), "row-0-label": radio("1", "0"), "row-0-reason": "smooth edges",
                 "row-1-verdict": radio("agree", "disagree"), "row-1-label": radio("1", "0")})],
    ))
    assert run(status_event()) == {"batchItemFailures": []}

    truth = s3.get_object(Bucket=LABELS, Key=f"ground-truth/2026/11/22/11/{LOOP}.jsonl")["Body"].read().decode().splitlines()
    assert [json.loads(line) for line in truth] == [
        {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "inf-1"}, "eventVersion": "0"},
        {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "e2"}, "eventVersion": "0"},
    ]
    training = s3.get_object(Bucket=LABELS, Key=f"training-rows/{LOOP}.csv")["Body"].read().decode()
    assert training == "1,1.5,2\n1,1.5,2\n"  # label first, features, no header
    [message] = drain(sink)
    published = json.loads(message["Body"])
    assert published["detail"]["labelCount"] == 2 and published["detail"]["humanLoopName"] == LOOP
    report = json.loads(s3.get_object(Bucket=REVIEW, Key=f"loop-reports/{LOOP}.json")["Body"].read())
    assert [r["decision"] for r in report["rows"]] == ["single reviewer", "single reviewer"]


def test_each_label_keeps_its_rows_index_and_the_probability_it_was_chosen_with(world) -> None:
    """Rows of one request share a record ID: a row other than the first is told apart by
    eventMetadata.rowIndex; ``sampling`` comes from the loop's input rows (brief's contract)."""
    s3, dlq, _ = world
    rows = [
        {**row("row-0", "inf-1", 0), "rowIndex": 0, "selectedBy": "rule", "inclusionProbability": 0.34},
        {**row("row-1", "inf-1", 1), "rowIndex": 2, "selectedBy": "audit", "inclusionProbability": 0.0068},
        {**row("row-2", "e3", 0), "rowIndex": 1},  # a loop started before rows carried sampling
        {**row("row-3", "e4", 0), "rowIndex": 0, "selectedBy": "audit", "inclusionProbability": None},  # capture sampling unknown
    ]
    agree = {f"row-{i}-verdict": radio("agree", "disagree") for i in range(4)}
    put_output(s3, output(rows, [answer(agree)]))
    assert run(status_event()) == {"batchItemFailures": []}

    truth = s3.get_object(Bucket=LABELS, Key=f"ground-truth/2026/11/22/11/{LOOP}.jsonl")["Body"].read().decode().splitlines()
    assert [json.loads(line) for line in truth] == [
        {"groundTruthData": {"data": "0", "encoding": "CSV"}, "eventMetadata": {"eventId": "inf-1"}, "eventVersion": "0",
         "sampling": {"inclusionProbability": 0.34, "selectedBy": "rule"}},
        {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "inf-1", "rowIndex": 2}, "eventVersion": "0",
         "sampling": {"inclusionProbability": 0.0068, "selectedBy": "audit"}},
        {"groundTruthData": {"data": "0", "encoding": "CSV"}, "eventMetadata": {"eventId": "e3", "rowIndex": 1}, "eventVersion": "0"},
        {"groundTruthData": {"data": "0", "encoding": "CSV"}, "eventMetadata": {"eventId": "e4"}, "eventVersion": "0"},
    ]
    assert drain(dlq) == []


@pytest.mark.parametrize(("fields", "problem"), [
    ({"selectedBy": "chosen", "inclusionProbability": 0.5}, "selectedBy is 'chosen', not one of rule, audit"),
    ({"selectedBy": "audit", "inclusionProbability": 0}, "inclusionProbability is 0, not a number in (0, 1]"),
    ({"selectedBy": "rule", "inclusionProbability": "0.3"}, "inclusionProbability is '0.3', not a number in (0, 1]"),
])
def test_a_malformed_sampling_is_reported_and_the_label_is_written_without_it(world, fields: dict, problem: str) -> None:
    s3, dlq, _ = world
    rows = [{**row("row-0", "e1"), **fields}, {**row("row-1", "e2"), "selectedBy": "rule", "inclusionProbability": 1.0}]
    put_output(s3, output(rows, [answer({"row-0-verdict": radio("agree"), "row-1-verdict": radio("agree")})]))
    assert run(status_event()) == {"batchItemFailures": []}
    truth = [json.loads(line) for line in s3.get_object(Bucket=LABELS, Key=f"ground-truth/2026/11/22/11/{LOOP}.jsonl")["Body"].read().decode().splitlines()]
    assert "sampling" not in truth[0] and truth[1]["sampling"] == {"inclusionProbability": 1.0, "selectedBy": "rule"}
    report = json.loads(s3.get_object(Bucket=REVIEW, Key=f"loop-reports/{LOOP}.json")["Body"].read())
    assert report["rows"][0]["problems"] == [f"sampling not written: {problem}"] and drain(dlq) == []


def test_replayed_event_overwrites_and_never_duplicates(world) -> None:
    s3, _, _ = world
    put_output(s3, output([row("row-0", "e1")], [answer({"row-0-verdict": radio("agree"), "row-0-label": radio("0")})]))
    run(status_event())
    run(status_event())
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=LABELS)["Contents"]]
    assert sorted(keys) == [f"ground-truth/2026/11/22/11/{LOOP}.jsonl", f"training-rows/{LOOP}.csv"]


def test_no_answers_writes_no_labels_and_reports_why(world) -> None:
    s3, _, sink = world
    put_output(s3, output([row("row-0", "e1")], []))
    assert run(status_event()) == {"batchItemFailures": []}
    assert "Contents" not in s3.list_objects_v2(Bucket=LABELS)
    assert drain(sink) == []
    report = json.loads(s3.get_object(Bucket=REVIEW, Key=f"loop-reports/{LOOP}.json")["Body"].read())
    assert report["rows"][0]["decision"] == "no usable answer"


def test_failed_and_stopped_loops_are_reported_not_labelled(world) -> None:
    s3, _, _ = world
    assert run(status_event("Failed", failureReason="workteam deleted"), ) == {"batchItemFailures": []}
    report = json.loads(s3.get_object(Bucket=REVIEW, Key=f"loop-reports/{LOOP}.json")["Body"].read())
    assert report == {"humanLoopName": LOOP, "status": "Failed", "failureReason": "workteam deleted"}
    assert "Contents" not in s3.list_objects_v2(Bucket=LABELS)


def test_unreadable_events_are_parked_with_reason(world) -> None:
    _, dlq, _ = world
    assert run("{}", status_event("InProgress"), status_event()) == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}  # m-2: output missing, retried
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in drain(dlq))
    assert reasons == [
        "InvalidLoopEvent: human loop status 'InProgress' is not Completed, Failed or Stopped",
        "InvalidLoopEvent: not an A2I HumanLoop Status Change event: no detail.humanLoopName",
    ]


def test_majority_wins_ties_and_bad_answers_are_not_used() -> None:
    rows = [row("row-0", "e1", 0), row("row-1", "e2", 0), row("row-2", "e3", 0)]
    answers = [
        answer({"row-0-verdict": radio("disagree"), "row-0-label": radio("1"), "row-1-verdict": radio("agree"), "row-1-label": radio("0"), "row-2-verdict": radio("agree"), "row-2-label": radio("7")}),
        answer({"row-0-verdict": radio("disagree"), "row-0-label": radio("1"), "row-1-verdict": radio("disagree"), "row-1-label": radio("1"), "row-2-verdict": radio("agree")}),
        answer({"row-0-verdict": radio("agree"), "row-0-label": radio("0")}),
    ]
    first, second, third = decide(output(rows, answers), label_count=2)
    assert (first.label, first.note, first.votes) == (1, "majority", {1: 2, 0: 1})
    assert (second.label, second.note) == (None, "tie")  # 1 vs 1; third reviewer gave no answer
    assert third.label == 0 and any("outside the label set" in p for p in third.problems)


def test_contradictory_answers_are_not_used() -> None:
    rows = [row("row-0", "e1", 0)]
    [verdict] = decide(output(rows, [answer({"row-0-verdict": radio("agree"), "row-0-label": radio("1")})]), label_count=2)
    assert verdict.label is None and "agreed with prediction 0 but chose label 1" in verdict.problems[0]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (output([{**row("row-0", "e1"), "prediction": "1"}], [answer({"row-0-verdict": radio("disagree")})]), "inputContent.rows[0].prediction is '1', not a label number"),
        (output([{**row("row-0", "e1"), "prediction": True}], []), "inputContent.rows[0].prediction is True, not a label number"),
        (output([row("row-0", "e1")], [{"answerContent": [{"row-0-verdict": "agree"}]}]), "humanAnswers[0].answerContent is a JSON list, not an object"),
        (output([row("row-0", "e1")], [{"answerContent": "agree"}]), "humanAnswers[0].answerContent is a JSON str, not an object"),
        (output([{**row("row-0", "e1"), "features": "1.5,2"}], []), "inputContent.rows[0].features is not a list of {name, value} objects"),
        (output([{**row("row-0", "e1"), "features": [1.5, 2]}], []), "inputContent.rows[0].features is not a list of {name, value} objects"),
        (output([{**row("row-0", "e1"), "key": 0}], []), "inputContent.rows[0].key is a JSON int, not a string"),
        (output([{**row("row-0", "e1"), "recordId": None}], []), "inputContent.rows[0].recordId is a JSON null, not a string"),
        (output([{**row("row-0", "e1"), "rowIndex": "1"}], []), "inputContent.rows[0].rowIndex is '1', not a whole number"),
        (output([{**row("row-0", "e1"), "rowIndex": -1}], []), "inputContent.rows[0].rowIndex is -1, not a whole number"),
        (output(["row-0"], []), "inputContent.rows[0] is a JSON str, not an object"),
        (output([{"key": "row-0"}], []), "inputContent.rows[0] lacks recordId, features, prediction"),
        ({**output([], []), "inputContent": [1]}, "inputContent is a JSON list, not an object"),
        ({**output([], []), "inputContent": {"rows": {"row-0": {}}}}, "inputContent.rows is a JSON object, not a list"),
        ({**output([row("row-0", "e1")], []), "humanAnswers": {"a": 1}}, "humanAnswers is a JSON object, not a list"),
    ],
)
def test_outputs_of_the_wrong_types_are_parked_with_a_reason_not_retried(world, document: dict, reason: str) -> None:
    s3, dlq, sink = world
    put_output(s3, document)
    assert run(status_event()) == {"batchItemFailures": []}  # parked at once, never retried into the DLQ
    [parked] = drain(dlq)
    assert parked["MessageAttributes"]["reason"]["StringValue"] == f"InvalidLoopEvent: output.json {reason}"
    assert "Contents" not in s3.list_objects_v2(Bucket=LABELS) and drain(sink) == []


def test_a_loop_of_a_replaced_flow_definition_still_becomes_labels(world) -> None:
    """The flow definition is replaced when its request changes; loops opened under the old one finish later."""
    s3, dlq, sink = world
    put_output(s3, output([row("row-0", "e1")], [answer({"row-0-verdict": radio("agree"), "row-0-label": radio("0")})]))
    old = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/app-dev-{'0' * 52}"
    assert run(status_event(flowDefinitionArn=old)) == {"batchItemFailures": []}
    assert drain(dlq) == [] and json.loads(drain(sink)[0]["Body"])["detail"]["labelCount"] == 1


@pytest.mark.parametrize("named", ["app-dev-another-loop", None, ""])
def test_an_event_naming_another_loops_output_is_parked_and_writes_nothing(world, named) -> None:
    """A completion event (A2I's or the reviewers' app's) under a new name pointing at an existing
    output.json would count its labels again: the output must be the event's own loop's."""
    s3, dlq, sink = world
    document = output([row("row-0", "e1")], [answer({"row-0-verdict": radio("agree"), "row-0-label": radio("0")})])
    if named is None:
        del document["humanLoopName"]
    else:
        document["humanLoopName"] = named
    put_output(s3, document)
    assert run(status_event()) == {"batchItemFailures": []}
    [parked] = drain(dlq)
    assert parked["MessageAttributes"]["reason"]["StringValue"] == (
        f"InvalidLoopEvent: s3://{REVIEW}/{OUTPUT_KEY} is the output of loop {named!r}, not of {LOOP!r}")
    assert "Contents" not in s3.list_objects_v2(Bucket=LABELS) and drain(sink) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=REVIEW, Prefix="loop-reports/")


def test_a_batch_rows_origin_rides_from_its_review_group_through_the_task_into_its_label(world) -> None:
    """A batch row's input file and line (``origin``) go from the group the finish step sends, through
    the starter's task input, into the row's ground-truth line and the loop report."""
    from lambdas.capture.records import ParseOptions, parse_joined_line
    from lambdas.review.starter.starter import StarterSettings, task_input
    from lambdas.shared.review_group import ReviewGroup

    s3, dlq, _ = world
    parsed = [parse_joined_line(line, n, ParseOptions(), 2, "batch/input/a.csv", n + 2) for n, line in enumerate(["1.5,2,0.2,inf-1,t", "3,4,0.3"], start=1)]
    rows = [{**r.rows[0].to_json(), "captureLine": i, "selectedBy": "rule", "inclusionProbability": 1.0} for i, r in enumerate(parsed, start=1)]
    group = ReviewGroup.from_body(ReviewGroup("s3://data/batch/runs/r/output/batch/input/a.csv.out", tuple(rows)).to_body())
    settings = StarterSettings(None, "app-dev", ("malignant", "benign"), ("a", "b"), "dlq", "deferred")
    task = task_input(group, settings)
    assert [r["origin"] for r in task["rows"]] == [{"file": "batch/input/a.csv", "line": 3}, {"file": "batch/input/a.csv", "line": 4}]
    put_output(s3, {"humanLoopName": LOOP, "inputContent": task, "humanAnswers": [answer({"row-0-verdict": radio("agree"), "row-1-verdict": radio("disagree"), "row-1-label": radio("1", "0")})]})
    assert run(status_event()) == {"batchItemFailures": []}

    truth = [json.loads(line) for line in s3.get_object(Bucket=LABELS, Key=f"ground-truth/2026/11/22/11/{LOOP}.jsonl")["Body"].read().decode().splitlines()]
    assert [(t["eventMetadata"]["eventId"], t["groundTruthData"]["data"], t["origin"]) for t in truth] == [
        ("inf-1", "0", {"file": "batch/input/a.csv", "line": 3}),
        ("batch/input/a.csv:4", "1", {"file": "batch/input/a.csv", "line": 4}),
    ]
    report = json.loads(s3.get_object(Bucket=REVIEW, Key=f"loop-reports/{LOOP}.json")["Body"].read())
    assert [r["origin"]["line"] for r in report["rows"]] == [3, 4] and drain(dlq) == []


def test_a_malformed_origin_is_reported_and_the_label_is_written_without_it(world) -> None:
    s3, dlq, _ = world
    rows = [{**row("row-0", "e1"), "origin": {"file": "a.csv", "line": 0}}]
    put_output(s3, output(rows, [answer({"row-0-verdict": radio("agree")})]))
    assert run(status_event()) == {"batchItemFailures": []}
    [truth] = [json.loads(line) for line in s3.get_object(Bucket=LABELS, Key=f"ground-truth/2026/11/22/11/{LOOP}.jsonl")["Body"].read().decode().splitlines()]
    assert "origin" not in truth
    report = json.loads(s3.get_object(Bucket=REVIEW, Key=f"loop-reports/{LOOP}.json")["Body"].read())
    assert report["rows"][0]["problems"] == ["origin not written: the row has origin line 0, not a line number"] and drain(dlq) == []
