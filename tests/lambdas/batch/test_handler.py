"""The nightly batch run's steps (plan, finish, fail) in moto, with the transform stood in for by
its documented output layout (``transform_stub``)."""

from __future__ import annotations

import json

import boto3
import pytest

from lambdas.batch import handler, nightly
from lambdas.capture import profiling
from lambdas.shared.consumer import SettingsError
from lambdas.shared.review_group import ReviewGroup
from tests.lambdas.aws_env import REGION, LambdaContext, drain
from tests.lambdas.batch import transform_stub
from tests.lambdas.capture.test_profiling import NAMES, baseline_csv, put_baseline

DATA = "data-bucket"
MONITORING = "monitoring-bucket"
TABLE = "batch-manifest"
RUN = "2026-12-07T02-00-00Z"
TIME = "2026-12-07T02:00:00Z"

# Scores are the first feature / 10 (transform_stub.score): the outcome rule (seed 002) reviews the
# rows predicted 0, i.e. a first feature below 5.
FILE_A = "4,1,1\n7,2,2\n1,3,3\n9,4,4\n"  # lines 1 and 3 predicted 0
FILE_B = "2,5,5\n3,6,6\n8,7,7\n"  # lines 1 and 2 predicted 0


@pytest.fixture
def night(mocked_aws, monkeypatch):
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (DATA, MONITORING):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "file", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "file", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    review = boto3.client("sqs", region_name=REGION).create_queue(QueueName="review")["QueueUrl"]
    env = {
        "DATA_BUCKET": DATA, "MANIFEST_TABLE": TABLE, "FEATURE_COUNT": "3", "CONTENT_TYPE": "text/csv",
        "SELECTION_RULE": "outcome", "LOWER_THRESHOLD": "0.1", "UPPER_THRESHOLD": "0.9", "SELECTED_OUTCOME": "0",
        "ROWS_PER_LOOP": "3", "REVIEW_QUEUE_URL": review, "REPORT_BUCKET": MONITORING, "AUDIT_PERCENTAGE": "0",
        "PROFILING": "data-quality", "MONITORING_BUCKET": MONITORING, "FEATURE_NAMES": json.dumps(NAMES),
        "POWERTOOLS_METRICS_NAMESPACE": "Test", "POWERTOOLS_SERVICE_NAME": "batch",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    put_baseline(s3, baseline_csv())
    handler.settings.cache_clear()
    profiling.baselines.clear()
    yield s3, dynamodb, review
    handler.settings.cache_clear()
    profiling.baselines.clear()


def step(event: dict) -> dict:
    return handler.step(event, LambdaContext())


def plan(run: str = RUN) -> dict:
    return step({"step": "plan", "run": run, "time": TIME})


def transform(s3, planned: dict, **kwargs) -> dict:
    prefix = f"s3://{DATA}/batch/runs/{planned['run']}/"
    return transform_stub.run_transform(s3, planned["manifest_uri"], prefix + "output/", prefix + "capture/", **kwargs)


def finish(s3, planned: dict, **kwargs) -> dict:
    return step({**planned, "step": "finish", "transform": transform(s3, planned, **kwargs)})


def status(dynamodb, key: str) -> str:
    return dynamodb.get_item(TableName=TABLE, Key={"file": {"S": key}})["Item"]["status"]["S"]


def report(s3, run: str = RUN) -> dict:
    return json.loads(s3.get_object(Bucket=DATA, Key=f"batch/runs/{run}/report.json")["Body"].read())


def groups(review: str) -> list[ReviewGroup]:
    """The groups on the review queue in file order (the finish step sends several at once)."""
    sent = [ReviewGroup.from_body(message["Body"]) for message in drain(review)]
    return sorted(sent, key=lambda group: (group.capture_object, group.rows[0]["origin"]["line"]))


def test_a_night_with_two_files_reviews_the_negative_outcomes_three_rows_at_a_time(night) -> None:
    s3, dynamodb, review = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=FILE_A.encode())
    s3.put_object(Bucket=DATA, Key="batch/input/b.csv", Body=FILE_B.encode())

    planned = plan()
    assert planned == {
        "run": RUN, "files": ["batch/input/a.csv", "batch/input/b.csv"], "rows": 7, "rejected": 0,
        "manifest_uri": f"s3://{DATA}/batch/runs/{RUN}/manifest.json", "has_input": True,
    }
    manifest = json.loads(s3.get_object(Bucket=DATA, Key=f"batch/runs/{RUN}/manifest.json")["Body"].read())
    assert manifest == [{"prefix": f"s3://{DATA}/"}, "batch/input/a.csv", "batch/input/b.csv"]
    assert status(dynamodb, "batch/input/a.csv") == "claimed"

    summary = finish(s3, planned, instance_count=2)
    assert {k: summary[k] for k in ("status", "files", "rows", "rejected", "selected", "tasks", "profiled", "instanceSeconds")} == {
        "status": "Completed", "files": 2, "rows": 7, "rejected": 0, "selected": 4, "tasks": 2, "profiled": 7, "instanceSeconds": 800.0,
    }
    sent = groups(review)
    rows = [row for group in sent for row in group.rows]
    # Each output object's selected rows in file order, at most ROWS_PER_LOOP a group.
    assert [row["origin"] for row in rows] == [
        {"file": "batch/input/a.csv", "line": 1}, {"file": "batch/input/a.csv", "line": 3},
        {"file": "batch/input/b.csv", "line": 1}, {"file": "batch/input/b.csv", "line": 2},
    ]
    assert all(row["prediction"] == 0 and row["selectedBy"] == "rule" and row["inclusionProbability"] == 1.0 for row in rows)
    assert rows[0]["eventId"] == "batch/input/a.csv:1" and rows[0]["recordId"] == rows[0]["inferenceId"] != rows[0]["eventId"]
    assert rows[0]["features"] == ["4", "1", "1"]
    assert [g.capture_object for g in sent] == [f"s3://{DATA}/batch/runs/{RUN}/output/batch/input/a.csv.out",
                                                f"s3://{DATA}/batch/runs/{RUN}/output/batch/input/b.csv.out"]
    assert status(dynamodb, "batch/input/a.csv") == status(dynamodb, "batch/input/b.csv") == "done"
    # Every row profiled for data quality at the transform's hour, as the capture filter profiles an object.
    sketches = s3.list_objects_v2(Bucket=MONITORING, Prefix="data-quality/sketches/2026/12/07/02/")["Contents"]
    assert len(sketches) == 2
    written = report(s3)
    assert written["rows"] == 7 and written["tasks"] == 2 and written["instanceSeconds"] == 800.0 and written["filesWithoutOutput"] == []
    page = s3.get_object(Bucket=DATA, Key=f"batch/runs/{RUN}/report.html")["Body"].read().decode()
    assert "Review tasks created</th><td>2<" in page


def test_without_generated_inference_ids_the_record_id_is_the_file_and_line(night) -> None:
    s3, _, review = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=FILE_A.encode())
    finish(s3, plan(), generate_inference_id=False)
    rows = [row for group in groups(review) for row in group.rows]
    assert [row["recordId"] for row in rows] == ["batch/input/a.csv:1", "batch/input/a.csv:3"]
    assert all(row["inferenceId"] is None for row in rows)


def test_a_rerun_of_the_same_night_reviews_nothing_twice(night) -> None:
    s3, dynamodb, review = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=FILE_A.encode())
    planned = plan()
    finish(s3, planned)
    first = [group.loop_name("app") for group in groups(review)]

    again = plan("2026-12-07T02-30-00Z")  # the schedule fired twice, or an operator re-ran the night
    assert again["files"] == [] and again["has_input"] is False and again["rows"] == 0
    assert report(s3, "2026-12-07T02-30-00Z")["status"] == "NoInput"
    assert groups(review) == []

    # A retried finish of the same run (new inference IDs) sends the same groups under the same loop
    # names, which the starter recognises as started; the report is not doubled.
    finish(s3, planned, job="job-1-retry")
    assert sorted(group.loop_name("app") for group in groups(review)) == sorted(first)
    assert report(s3)["rows"] == 4 and status(dynamodb, "batch/input/a.csv") == "done"

    # A file that arrives later is the next run's only file.
    s3.put_object(Bucket=DATA, Key="batch/input/c.csv", Body=FILE_B.encode())
    assert plan("2026-12-08T02-00-00Z")["files"] == ["batch/input/c.csv"]


def test_malformed_lines_are_rejected_with_their_reasons_and_the_rest_goes_on_with_its_own_line_numbers(night) -> None:
    s3, dynamodb, review = night
    lines = ["4,1,1", "1,2", "", "x,1,1", "3,,1", "1,1,1,1", "8,nan,1", "2,2,2"]  # line 5: a missing value, kept
    s3.put_object(Bucket=DATA, Key="batch/input/bad.csv", Body=("\n".join(lines) + "\n").encode())
    s3.put_object(Bucket=DATA, Key="batch/input/all-bad.csv", Body=b"a,b,c\n")
    s3.put_object(Bucket=DATA, Key="batch/input/notes.txt", Body=b"not an input file")

    planned = plan()
    assert planned["rows"] == 3 and planned["rejected"] == 6 and planned["has_input"]
    rejected = [json.loads(line) for line in s3.get_object(Bucket=DATA, Key=f"batch/runs/{RUN}/rejected.jsonl")["Body"].read().splitlines()]
    assert [(r["file"], r["line"], r["reason"]) for r in rejected] == [
        ("batch/input/all-bad.csv", 1, "feature 1 is not a number"),
        ("batch/input/bad.csv", 2, "2 fields; the model takes 3 features"),
        ("batch/input/bad.csv", 3, "blank line"),
        ("batch/input/bad.csv", 4, "feature 1 is not a number"),
        ("batch/input/bad.csv", 6, "4 fields; the model takes 3 features"),
        ("batch/input/bad.csv", 7, "feature 2 is not a number"),
    ]
    # The manifest lists a cleaned copy with the good lines only; a file with none is done at once.
    cleaned = f"batch/runs/{RUN}/input/batch/input/bad.csv"
    assert json.loads(s3.get_object(Bucket=DATA, Key=f"batch/runs/{RUN}/manifest.json")["Body"].read())[1:] == [cleaned]
    assert s3.get_object(Bucket=DATA, Key=cleaned)["Body"].read() == b"4,1,1\n3,,1\n2,2,2\n"
    assert status(dynamodb, "batch/input/all-bad.csv") == "done"

    summary = finish(s3, planned)
    rows = [row for group in groups(review) for row in group.rows]
    assert [row["origin"] for row in rows] == [{"file": "batch/input/bad.csv", "line": n} for n in (1, 5, 8)]
    assert summary["rows"] == 3 and summary["rejected"] == 6
    assert report(s3)["rejectedReasons"] == {"feature 1 is not a number": 2, "2 fields": 1, "blank line": 1, "4 fields": 1, "feature 2 is not a number": 1}


def test_an_output_line_that_cannot_be_read_is_reported_and_the_others_are_reviewed(night, capsys) -> None:
    s3, _, review = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=FILE_A.encode())
    planned = plan()
    answer = transform(s3, planned, generate_inference_id=False)
    out_key = f"batch/runs/{RUN}/output/batch/input/a.csv.out"
    lines = s3.get_object(Bucket=DATA, Key=out_key)["Body"].read().decode().splitlines()
    lines[2] = "1,3,3,not-a-score"
    s3.put_object(Bucket=DATA, Key=out_key, Body=("\n".join(lines) + "\n").encode())

    capsys.readouterr()
    summary = step({**planned, "step": "finish", "transform": answer})
    assert summary["rejected"] == 1 and summary["selected"] == 1
    metrics = capsys.readouterr().out  # the dashboard's batch row: rows rejected here, not the plan's again
    assert '"BatchRowsRejected":[1.0]' in metrics and '"BatchRowsPredicted":[3.0]' in metrics and '"RowsSelectedForAudit":[0.0]' in metrics
    assert '"BatchRunsCompleted":[1.0]' in metrics
    [entry] = [json.loads(line) for line in s3.get_object(Bucket=DATA, Key=f"batch/runs/{RUN}/rejected.jsonl")["Body"].read().splitlines()]
    assert entry["line"] == 3 and entry["eventId"] == "batch/input/a.csv:3" and entry["reason"].startswith("probability is not a number")
    assert [row["origin"]["line"] for group in groups(review) for row in group.rows] == [1]


def test_a_failed_transform_reviews_nothing_and_its_files_are_retried_the_next_night(night) -> None:
    s3, dynamodb, review = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=FILE_A.encode())
    planned = plan()
    summary = step({**planned, "step": "fail", "error": {"Error": "SageMaker.ResourceLimitExceeded", "Cause": "quota"}})
    assert summary["status"] == "Failed" and summary["files"] == 1 and summary["error"] == "SageMaker.ResourceLimitExceeded"
    assert status(dynamodb, "batch/input/a.csv") == "failed"
    assert groups(review) == []
    assert report(s3)["retriedNextNight"] == ["batch/input/a.csv"]

    retried = plan("2026-12-08T02-00-00Z")
    assert retried["files"] == ["batch/input/a.csv"] and retried["rows"] == 4


def test_a_finish_without_capture_fails_with_the_reason(night) -> None:
    s3, dynamodb, _ = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=FILE_A.encode())
    planned = plan()
    answer = {"TransformJobName": "j", "TransformJobStatus": "Completed", "DataCaptureConfig": {"DestinationS3Uri": f"s3://{DATA}/elsewhere/"}}
    with pytest.raises(ValueError, match="names no output objects"):
        step({**planned, "step": "finish", "transform": answer})
    assert status(dynamodb, "batch/input/a.csv") == "claimed"  # the state machine's Catch sends it to fail


@pytest.mark.parametrize(("event", "message"), [
    ({"step": "predict", "run": RUN}, "event key 'step' is 'predict'; allowed values: plan, finish, fail"),
    ({"step": "plan", "run": "a/b", "time": TIME}, "event key 'run' is 'a/b'"),
    ({"step": "plan", "run": RUN}, "event key 'time' is None"),
    ({"step": "plan", "run": RUN, "time": "tonight"}, "event key 'time' is 'tonight': the run's ISO 8601 time is required"),
    ({"step": "finish", "run": RUN}, "event key 'transform' is missing"),
])
def test_a_wrong_event_names_the_key_and_what_it_takes(night, event, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        step(event)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("CONTENT_TYPE", "application/json", "CONTENT_TYPE is 'application/json'; allowed values: text/csv"),
    ("FEATURE_COUNT", "0", "FEATURE_COUNT is 0"),
    ("INPUT_PREFIX", "batch/input", "INPUT_PREFIX is 'batch/input'; it must end with '/'"),
])
def test_a_wrong_setting_is_refused_with_its_name_and_the_allowed_values(night, monkeypatch, name, value, message) -> None:
    monkeypatch.setenv(name, value)
    handler.settings.cache_clear()
    with pytest.raises(SettingsError, match=message):
        plan()


def test_origin_line_maps_a_cleaned_copys_lines_back() -> None:
    planned = nightly.PlannedFile("k", "e", "s", rows=5, rejected_lines=[2, 3, 7])
    assert [planned.origin_line()(n) for n in range(1, 6)] == [1, 4, 5, 6, 8]


def test_a_run_that_died_between_its_steps_gives_its_files_to_a_run_a_day_later(night) -> None:
    s3, dynamodb, _ = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=FILE_A.encode())
    plan()  # its execution stopped here: neither finish nor fail ran
    assert step({"step": "plan", "run": "soon-after", "time": "2026-12-07T06:00:00Z"})["files"] == []
    later = step({"step": "plan", "run": "next-night", "time": "2026-12-08T02:00:00.123Z"})
    assert later["files"] == ["batch/input/a.csv"]
    assert dynamodb.get_item(TableName=TABLE, Key={"file": {"S": "batch/input/a.csv"}})["Item"]["run"]["S"] == "next-night"


class _RefusingQueue:
    def __init__(self) -> None:
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list) -> dict:  # noqa: N803 (boto3's names)
        self.calls += 1
        if self.calls == 2:
            return {"Successful": [], "Failed": [{"Id": e["Id"], "Code": "KMS.ThrottlingException", "Message": "slow down"} for e in Entries]}
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_groups_the_review_queue_refuses_fail_the_step_before_any_file_is_done(night, monkeypatch) -> None:
    s3, dynamodb, _ = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=(FILE_A * 20).encode())  # 40 rows to review: 14 groups, 2 calls
    planned = plan()
    answer = transform(s3, planned)
    real = handler.aws.client
    monkeypatch.setattr(handler.aws, "client", lambda service: _RefusingQueue() if service == "sqs" else real(service))
    with pytest.raises(RuntimeError, match="review queue refused 4 groups: KMS.ThrottlingException: slow down"):
        step({**planned, "step": "finish", "transform": answer})
    assert status(dynamodb, "batch/input/a.csv") == "claimed"


def test_parallel_sends_check_every_answer() -> None:
    queue = _RefusingQueue()
    sends = nightly.ParallelSends(queue, senders=2)
    try:
        for _ in range(3):
            assert sends.send_message_batch(QueueUrl="q", Entries=[{"Id": "0", "MessageBody": "x"}])["Failed"] == []
        with pytest.raises(RuntimeError, match="refused 1 groups"):
            sends.wait()
    finally:
        sends.close()
    assert queue.calls == 3


def test_a_failed_run_gives_back_only_the_files_the_transform_was_to_predict(night) -> None:
    s3, dynamodb, _ = night
    s3.put_object(Bucket=DATA, Key="batch/input/a.csv", Body=FILE_A.encode())
    s3.put_object(Bucket=DATA, Key="batch/input/all-bad.csv", Body=b"a,b,c\n")
    planned = plan()
    step({**planned, "step": "fail", "error": {"Error": "States.Timeout", "Cause": ""}})
    assert status(dynamodb, "batch/input/a.csv") == "failed" and status(dynamodb, "batch/input/all-bad.csv") == "done"


def test_an_output_object_is_matched_to_the_manifest_key_it_was_written_for() -> None:
    sources = {"batch/input/a.csv": 1, "batch/input/day2/b.csv": 2}
    out = "s3://data/batch/runs/r/output/"
    assert nightly._source_of(f"{out}batch/input/a.csv.out", out, sources) == "batch/input/a.csv"
    assert nightly._source_of(f"{out}day2/b.csv.out", out, sources) == "batch/input/day2/b.csv"  # relative to a deeper folder
    assert nightly._source_of(f"{out}input-prefix/b.csv.out", out, sources) == "batch/input/day2/b.csv"  # by its name alone
    assert nightly._source_of(f"{out}c.csv.out", out, sources) is None
    assert nightly._source_of(f"{out}x/a.csv.out", out, {**sources, "batch/input/day3/a.csv": 3}) is None  # two of that name
    assert nightly._source_of(f"{out}batch/input/a.csv", out, sources) is None  # not an output object
