"""Batch transform capture read by the capture parser (records.py), and the selection, review groups
and labels' origin on batch rows."""

from __future__ import annotations

import io
import json
import random
from dataclasses import replace

import pytest

from lambdas.capture.filtering import FilterReport, FilterSettings, RejectSpool, route_rows
from lambdas.capture.records import (
    ParseOptions,
    batch_capture_part,
    manifest_document,
    manifest_uris,
    parse_joined_line,
)
from lambdas.capture.selection import AUDIT, RULE, Audit, SelectionRule, selected_by
from lambdas.shared.review_group import InvalidGroup, ReviewGroup

FILE = "batch/input/2026-12-07.csv"


# The layout of a batch transform's data capture (records.py cites it): manifests under
# <DestinationS3Uri>/input|output/yyyy/mm/dd/hh/.
CAPTURE = "batch/runs/r1/capture/"
INPUT_CAPTURE = f"{CAPTURE}input/2026/12/07/02/0b5a3f0e-7c1e-4a9e-9d3c-1f2e3d4c5b6a.json"
OUTPUT_CAPTURE = f"{CAPTURE}output/2026/12/07/02/6f1e2d3c-4b5a-4e9d-8c7b-6a5f4e3d2c1b.json"


def test_capture_files_in_the_documented_layout_are_told_apart_and_read_as_manifests() -> None:
    assert batch_capture_part(INPUT_CAPTURE[len(CAPTURE):]) == "input"
    assert batch_capture_part(OUTPUT_CAPTURE[len(CAPTURE):]) == "output"
    assert batch_capture_part("output/2026/12/07/report.json") is None  # no hour
    assert batch_capture_part("output/2026/12/07/02/x/y.json") is None  # deeper than the layout
    body = b'[{"prefix": "s3://data/batch/runs/r1/output/"}, "batch/input/a.csv.out", "batch/input/b.csv.out"]'
    assert manifest_uris(body) == ["s3://data/batch/runs/r1/output/batch/input/a.csv.out", "s3://data/batch/runs/r1/output/batch/input/b.csv.out"]
    assert manifest_uris(manifest_document("data", ["k1", "k2"])) == ["s3://data/k1", "s3://data/k2"]
    # A JSON Lines file of manifests, one a line, as the page calls them.
    assert manifest_uris(manifest_document("a", ["k1"]) + b"\n" + manifest_document("b", ["k2"]) + b"\n") == ["s3://a/k1", "s3://b/k2"]
    pretty = json.dumps([{"prefix": "s3://a/"}, "k1"], indent=4).encode()  # one manifest over several lines
    assert manifest_uris(pretty) == ["s3://a/k1"]


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "not a manifest: not JSON"),
    (b'{"prefix": "s3://b/"}', "not a JSON list starting with"),
    (b'[{"prefix": "b/"}, "k"]', "prefix is 'b/', not an s3:// URI"),
    (b'[{"prefix": "s3://b/"}, "k", 3]', "1 entries are not object keys (first: 3)"),
])
def test_a_capture_file_that_is_not_a_manifest_says_why(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        manifest_uris(body)


def test_a_joined_output_line_becomes_the_capture_parsers_row_with_its_origin() -> None:
    [row] = parse_joined_line(b"1.5,2,3,0.25,7d9f-1,2026-12-07T02:06:45Z", 4, ParseOptions(), 3, FILE, 9).rows
    assert row.to_json() == {
        "recordId": "7d9f-1", "eventId": f"{FILE}:9", "inferenceId": "7d9f-1", "inferenceTime": "2026-12-07T02:06:45Z",
        "rowIndex": 0, "features": ["1.5", "2", "3"], "probability": 0.25, "prediction": 0, "origin": {"file": FILE, "line": 9},
    }
    [plain] = parse_joined_line("1.5,2,3,0.75\r", 4, ParseOptions(), 3, FILE, 4).rows
    assert plain.record_id == f"{FILE}:4" and plain.inference_id is None and plain.prediction == 1


@pytest.mark.parametrize(("line", "reason"), [
    ("1,2,0.5", "3 fields; a joined output line has 4"),
    ("1,2,3,4,0.5", "5 fields"),
    ("1,2,3,high", "probability is not a number"),
    ("1,2,3,1.5", "probability 1.5 is outside [0, 1]"),
    (b"1,2,3,\xff", "not UTF-8"),
])
def test_a_joined_output_line_that_cannot_be_read_is_rejected_with_its_reason(line, reason: str) -> None:
    result = parse_joined_line(line, 2, ParseOptions(), 3, FILE, 2)
    [rejected] = result.rejected
    assert not result.rows and rejected.line_number == 2 and rejected.reason.startswith(reason)


def test_a_blank_output_line_is_counted_not_rejected() -> None:
    assert parse_joined_line(b"", 1, ParseOptions(), 3, FILE, 1).blank


def _lines(count: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.random():.3f},{rng.random():.3f},{rng.betavariate(0.3, 0.3):.6f},inf-{i},t" for i in range(count)]


@pytest.mark.parametrize("audit", [None, Audit(10.0)])
def test_the_parsers_shortcut_keeps_exactly_the_rows_the_selection_chooses(audit) -> None:
    rule = SelectionRule(rule="outcome", outcome=0)
    lines = _lines(2000)
    every = [row for n, line in enumerate(lines, 1) for row in parse_joined_line(line, n, ParseOptions(), 2, FILE, n).rows]
    expected = [(r.record_id, selected_by(rule, audit, r.probability, r.prediction, r.record_id, 0)) for r in every]
    expected = [e for e in expected if e[1] is not None]
    options = ParseOptions(keep=rule.selects_prediction, audit=audit.selects if audit else None)
    kept = [row for n, line in enumerate(lines, 1) for row in parse_joined_line(line, n, options, 2, FILE, n).rows]
    assert [(r.record_id, selected_by(rule, audit, r.probability, r.prediction, r.record_id, 0)) for r in kept] == expected
    assert {by for _, by in expected} == ({RULE, AUDIT} if audit else {RULE})


class _Queue:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:  # noqa: N803 (boto3's names)
        self.bodies += [entry["MessageBody"] for entry in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_batch_rows_go_to_review_in_groups_of_rows_per_loop_by_the_same_path_as_capture() -> None:
    """seed 002: negative outcomes, three rows a task; every selected row keeps its origin."""
    lines = _lines(60)
    settings = FilterSettings(options=ParseOptions(), rule=SelectionRule(rule="outcome", outcome=0), rows_per_loop=3, review_queue_url="q", report_bucket="r")
    options = replace(settings.options, keep=settings.rule.selects_prediction)
    queue, report, spool = _Queue(), FilterReport(), io.BytesIO()
    parsed = ((n, parse_joined_line(line, n, options, 2, FILE, n)) for n, line in enumerate(lines, start=1))
    route_rows(parsed, queue, "s3://data/out/a.csv.out", settings, report, RejectSpool(spool, "s3://data/out/a.csv.out", "output"), capture_fraction=1.0)

    groups = [ReviewGroup.from_body(body) for body in queue.bodies]
    rows = [row for group in groups for row in group.rows]
    negatives = [n for n, line in enumerate(lines, start=1) if float(line.split(",")[2]) < 0.5]
    assert [row["origin"] for row in rows] == [{"file": FILE, "line": n} for n in negatives]
    assert [len(g.rows) for g in groups] == [3] * (len(negatives) // 3) + ([len(negatives) % 3] if len(negatives) % 3 else [])
    assert report.rows == 60 and report.selected == len(negatives) and report.groups == len(groups)
    assert all(row["inclusionProbability"] == 1.0 and row["prediction"] == 0 for row in rows)
    assert len({g.loop_name("app") for g in groups}) == len(groups)


@pytest.mark.parametrize(("origin", "problem"), [
    ({"file": "a.csv"}, "origin {'file': 'a.csv'}, not {file, line}"),
    ({"file": "", "line": 1}, "origin file '', not an object key"),
    ({"file": "a.csv", "line": True}, "origin line True, not a line number"),
])
def test_a_review_group_with_a_malformed_origin_is_refused_with_the_reason(origin, problem: str) -> None:
    row = {"recordId": "r", "eventId": "e", "rowIndex": 0, "features": [1], "probability": 0.2, "prediction": 0, "origin": origin}
    with pytest.raises(InvalidGroup, match=f"row 0 has {problem}".replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        ReviewGroup.from_body(json.dumps({"version": 1, "captureObject": "s3://b/k", "rows": [row]}))
