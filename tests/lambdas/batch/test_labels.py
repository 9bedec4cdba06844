"""Labels of batch rows: reviewers' answers on rows the finish step sent keep each row's origin (input
file and line) into the ground truth and into the retraining set's assembly."""

from __future__ import annotations

import json

import boto3

from lambdas.capture.records import ParseOptions, parse_joined_line
from lambdas.retraining import dataset
from lambdas.review.results import results
from lambdas.review.starter.starter import StarterSettings, task_input
from lambdas.shared.review_group import ReviewGroup
from tests.lambdas.aws_env import REGION
from tests.lambdas.retraining.test_dataset import output, s3, settings  # noqa: F401 (s3 is the fixture)

FILE = "batch/input/2026-12-07.csv"


def review(s3, loop: str, lines: list[tuple[int, str]], labels: list[str], when: str) -> None:  # noqa: F811
    """The finish step's group of these joined output lines (origin line, text), answered with ``labels``."""
    rows = []
    for number, (origin, line) in enumerate(lines, start=1):
        [row] = parse_joined_line(line, number, ParseOptions(), 3, FILE, origin).rows
        rows.append({**row.to_json(), "captureLine": number, "selectedBy": "rule", "inclusionProbability": 1.0})
    group = ReviewGroup.from_body(ReviewGroup(f"s3://data/out/{FILE}.out", tuple(rows)).to_body())
    task = task_input(group, StarterSettings(None, "app", ("0", "1"), ("a", "b", "c"), "dlq", "deferred"))
    answers = {f"row-{i}-verdict": {"agree": False, "disagree": True} for i in range(len(rows))}
    answers |= {f"row-{i}-label": {label: True} for i, label in enumerate(labels)}
    s3.put_object(Bucket="reports", Key=f"a2i/{loop}/output.json", Body=json.dumps(
        {"humanLoopName": loop, "inputContent": task, "humanAnswers": [{"answerContent": answers, "submissionTime": when}]}).encode())
    event = results.LoopEvent(loop, "Completed", f"s3://reports/a2i/{loop}/output.json", None, when)
    settings_ = results.ResultsSettings("labels", "reports", ("0", "1"), "default", "mlloop.review")
    assert results.record_loop(s3, boto3.client("events", region_name=REGION), event, settings_).labelled == len(rows)


def test_batch_labels_keep_their_origin_into_the_retraining_set(s3) -> None:  # noqa: F811
    s3.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": REGION})
    review(s3, "loop-a", [(3, "900,1,1,0.2"), (8, "901,1,1,0.3,inf-8,t")], ["1", "1"], "2026-12-07T09:00:00Z")
    # A later night's file holds the same record (900,1,1) and a reviewer labels it 0: a conflict.
    review(s3, "loop-b", [(2, "900,1,1,0.7")], ["0"], "2026-12-08T09:00:00Z")

    manifest = dataset.assemble(s3, settings(holdout=0))
    train, validation, rejected, written = output(s3)
    assert manifest["counts"]["labelRowsWithOrigin"] == 3 and written["counts"] == manifest["counts"]
    assert not rejected and written["unweightedLabelObjects"] == []
    everything = train + validation
    assert ["0", "900", "1", "1"] in everything and ["1", "901", "1", "1"] in everything
    [conflict] = written["conflicts"]
    assert conflict["kept"]["origin"] == {"file": FILE, "line": 2} and conflict["replaced"]["origin"] == {"file": FILE, "line": 3}
