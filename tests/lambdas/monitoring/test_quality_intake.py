"""The deployed model-quality run's label intake: what it cannot use is listed, never only counted.

Labels for no captured prediction go to ``unknown_labels.jsonl`` beside the report with their file
and line; files under the ground-truth prefix outside its ``yyyy/mm/dd/hh/`` folders (which no run
reads) are counted and named in ``statistics.json``. Same moto world as test_quality_handler.py.
"""

from __future__ import annotations

import json

from lambdas.monitoring.open import model_quality
from tests.lambdas.monitoring.test_quality_handler import (  # noqa: F401 - aws, held_out, truth are fixtures
    LABELS,
    MONITORING,
    REPORT,
    RUN,
    aws,
    event_id,
    get_json,
    held_out,
    label_line,
    put_captures,
    put_labels,
    settings,
    truth,
)

EVERYONE = {"inclusionProbability": 1.0, "selectedBy": "all"}


def test_labels_for_no_captured_prediction_are_listed_beside_the_report_with_their_file_and_line(aws, held_out, truth):
    s3, events, _ = aws
    put_captures(s3, held_out)
    key = put_labels(s3, [label_line(i, int(truth[i]), EVERYONE) for i in range(10)] + [label_line(10_000, 1), label_line(10_001, 0)])
    model_quality.run(RUN, settings(), s3, events)

    intake = get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]["intake"]
    assert intake["unknown_ids"] == 2 and intake["unknown_file"] == "unknown_labels.jsonl" and intake["rejected_file"] is None
    listed = [json.loads(line) for line in s3.get_object(Bucket=MONITORING, Key=f"{REPORT}/unknown_labels.jsonl")["Body"].read().splitlines()]
    assert [(u["source"], u["line"], u["eventId"], u["rowIndex"], u["label"]) for u in listed] == [
        (key, 11, event_id(10_000), 0, 1), (key, 12, event_id(10_001), 0, 0)
    ]  # fmt: skip
    assert all(u["reason"].startswith("no captured prediction has this eventId and rowIndex") for u in listed)
    page = s3.get_object(Bucket=MONITORING, Key=f"{REPORT}/report.html")["Body"].read().decode()
    assert "2 for no captured prediction</strong> (IDs unknown in the periods they could label) (listed in unknown_labels.jsonl)" in page
    assert "rejected_labels.jsonl" not in {o["Key"].rsplit("/", 1)[1] for o in s3.list_objects_v2(Bucket=MONITORING, Prefix=REPORT)["Contents"]}


def test_files_outside_the_hour_folders_are_counted_and_named_since_no_run_reads_them(aws, held_out, truth):
    s3, events, _ = aws
    put_captures(s3, held_out)
    put_labels(s3, [label_line(i, int(truth[i]), EVERYONE) for i in range(10)])
    misplaced = ["ground-truth/labels.jsonl", "ground-truth/uploads/2026-11-22.jsonl", "ground-truth/uploads/more.jsonl", "ground-truth/11/22/15/x.jsonl"]
    for key in misplaced:
        s3.put_object(Bucket=LABELS, Key=key, Body=(label_line(20, int(truth[20]), EVERYONE) + "\n").encode())
    s3.put_object(Bucket=LABELS, Key="ground-truth/", Body=b"")  # the console's "folder" marker is not a file
    model_quality.run(RUN, settings(), s3, events)

    ours = get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]
    assert ours["intake"]["outside_hour_folders"] == {"count": 3, "keys": ["ground-truth/labels.jsonl", "ground-truth/11/", "ground-truth/uploads/"]}
    assert ours["labels"]["joined"] == 10  # the misplaced labels were not read
    page = s3.get_object(Bucket=MONITORING, Key=f"{REPORT}/report.html")["Body"].read().decode()
    assert "3 file(s) or folder(s) outside the ground-truth hour folders</strong>" in page and "<code>ground-truth/uploads/</code>" in page
