"""capture_filter's profiling: one read serves review and profiling, each switchable; sketches and
samples named after the capture object; bad rows counted with reasons; a missing baseline."""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction

import boto3
import pytest

from lambdas.capture import handler, profiling
from lambdas.capture.events import CaptureObject, capture_objects
from lambdas.capture.profiling import csv_values, hour_of
from lambdas.monitoring.drift import sample as samples
from lambdas.monitoring.drift import sketch as sketches
from lambdas.monitoring.drift.baseline import baseline_documents, load
from lambdas.shared.review_group import ReviewGroup
from tests.lambdas.aws_env import REGION, LambdaContext, drain, sqs_event
from tests.lambdas.capture.test_handler import (  # noqa: F401 (fixtures: endpoint, pipeline)
    AUDIT_PERCENTAGE, CAPTURE_BUCKET, KEY, LINES, REPORT_BUCKET, audited_lines, endpoint, eventbridge, expected_selection, pipeline,
)
from tests.lambdas.capture.test_records import capture_line

MONITORING_BUCKET = "monitoring-bucket"
HOUR = "2026/11/22/10"
SKETCH_KEY = f"data-quality/sketches/{HOUR}/{KEY}.json"
SAMPLE_KEY = f"explainability/samples/{HOUR}/{KEY}.json"
NAMES = ["a", "b", "c"]


def baseline_csv(rows: int = 200, *, seed: int = 1, width: int = 3) -> str:
    rng = random.Random(seed)
    header = ",".join(["probability", *NAMES[:width], *(f"x{i}" for i in range(width - 3))])
    return "\n".join([header] + [",".join(f"{rng.random():.4f}" for _ in range(width + 1)) for _ in range(rows)]) + "\n"


def put_baseline(s3, text: str) -> sketches.Layout:
    documents = baseline_documents(text)
    for name, document in documents.items():
        s3.put_object(Bucket=MONITORING_BUCKET, Key=f"data-quality/current/{name}", Body=json.dumps(document).encode())
    return load(documents["statistics.json"], documents["constraints.json"]).layout


@pytest.fixture
def monitored(pipeline, monkeypatch):  # noqa: F811
    s3, review, dlq = pipeline
    s3.create_bucket(Bucket=MONITORING_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for name, value in {
        "PROFILING": "data-quality,explainability", "MONITORING_BUCKET": MONITORING_BUCKET, "SAMPLE_ROWS": "3",
        "FEATURE_NAMES": json.dumps(NAMES), "REVIEW_SELECTION": "true",
    }.items():
        monkeypatch.setenv(name, value)
    handler.settings.cache_clear()
    profiling.baselines.clear()
    yield s3, review, dlq
    profiling.baselines.clear()


def run(*bodies: str, receive_count: int = 1) -> dict:
    return handler.handler(sqs_event(*bodies, receive_count=receive_count), LambdaContext())


def read(s3, key: str) -> bytes:
    return s3.get_object(Bucket=MONITORING_BUCKET, Key=key)["Body"].read()


def keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=MONITORING_BUCKET).get("Contents", []))


def rows_of(lines: list[str]) -> list[tuple[float, list[str]]]:
    """(probability, features) of the good rows of ``lines``, read independently of the filter."""
    found = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        inputs = record["captureData"]["endpointInput"]["data"].splitlines()
        outputs = record["captureData"]["endpointOutput"]["data"].splitlines()
        found += [(float(p), f.split(",")) for f, p in zip(inputs, outputs, strict=True)]
    return found


def test_one_read_selects_for_review_and_profiles_every_row(monitored) -> None:
    s3, review, dlq = monitored
    layout = put_baseline(s3, baseline_csv())
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(LINES).encode())
    assert run(eventbridge()) == {"batchItemFailures": []}

    rows = [row for m in drain(review) for row in ReviewGroup.from_body(m["Body"]).rows]
    assert [(r["eventId"], r["rowIndex"]) for r in rows] == [("e1", 0), ("e2", 1), ("e4", 0)]  # as without profiling
    sketch = sketches.loads(read(s3, SKETCH_KEY), layout)
    expected = sketches.profile(layout, rows_of(LINES))
    assert sketch.rows == 5 and sketches.dumps(sketch) == sketches.dumps(expected)  # the confident rows too
    sample = samples.loads(read(s3, SAMPLE_KEY), NAMES)
    assert (sample.seen, len(sample.rows)) == (5, 3)
    # Priorities are drawn in the object's row order from a generator seeded by its URI.
    offered = [(e, i, 0.0, [0, 0, 0]) for e, i in [("e1", 0), ("e2", 0), ("e2", 1), ("e3", 0), ("e4", 0)]]
    everything = samples.sample(3, NAMES, offered, source=f"s3://{CAPTURE_BUCKET}/{KEY}")
    assert [(r.event_id, r.row_index) for r in sample.rows] == [(r.event_id, r.row_index) for r in everything.rows]
    assert all(isinstance(v, float) for r in sample.rows for v in r.features)
    assert drain(dlq) == []


def test_with_profiling_every_row_is_decoded_and_the_audit_still_draws_the_same_rows(monitored, monkeypatch) -> None:
    """Profiling decodes every row (no fast path): the filter asks the rule and the draw itself."""
    s3, review, _ = monitored
    put_baseline(s3, baseline_csv())
    monkeypatch.setenv("AUDIT_PERCENTAGE", str(AUDIT_PERCENTAGE))
    monkeypatch.setenv("ROWS_PER_LOOP", "3")
    handler.settings.cache_clear()
    lines = audited_lines()
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(lines).encode())
    assert run(eventbridge()) == {"batchItemFailures": []}
    rows = [row for m in drain(review) for row in ReviewGroup.from_body(m["Body"]).rows]
    assert [(r["recordId"], r["rowIndex"], r["selectedBy"]) for r in rows] == expected_selection(lines)
    assert read(s3, SKETCH_KEY)  # and every row was profiled


def test_profiling_alone_sends_nothing_to_review(monitored, monkeypatch) -> None:
    s3, review, _ = monitored
    for name in ("REVIEW_QUEUE_URL", "SELECTION_RULE", "LOWER_THRESHOLD", "UPPER_THRESHOLD", "SELECTED_OUTCOME", "ROWS_PER_LOOP"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("REVIEW_SELECTION", "false")
    monkeypatch.setenv("PROFILING", "data-quality")
    handler.settings.cache_clear()
    layout = put_baseline(s3, baseline_csv())
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(LINES).encode())
    assert run(eventbridge()) == {"batchItemFailures": []}
    assert drain(review) == []
    assert keys(s3) == ["data-quality/current/constraints.json", "data-quality/current/statistics.json", SKETCH_KEY]
    assert sketches.loads(read(s3, SKETCH_KEY), layout).rows == 5


def test_review_alone_writes_no_profile(monitored, monkeypatch) -> None:
    s3, review, _ = monitored
    monkeypatch.setenv("PROFILING", "")
    handler.settings.cache_clear()
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(LINES).encode())
    assert run(eventbridge()) == {"batchItemFailures": []}
    assert len(drain(review)) == 2 and keys(s3) == []


def test_neither_part_is_a_settings_error(monitored, monkeypatch) -> None:
    monkeypatch.setenv("PROFILING", "")
    monkeypatch.setenv("REVIEW_SELECTION", "false")
    handler.settings.cache_clear()
    with pytest.raises(Exception, match="REVIEW_SELECTION is false and PROFILING is empty"):
        run(eventbridge())
    monkeypatch.setenv("PROFILING", "data-quality,drift")
    handler.settings.cache_clear()
    with pytest.raises(Exception, match="PROFILING is 'data-quality,drift'; allowed values"):
        run(eventbridge())


def test_a_replay_overwrites_the_same_sketch_and_sample(monitored) -> None:
    s3, review, _ = monitored
    put_baseline(s3, baseline_csv())
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(LINES).encode())
    run(eventbridge())
    first = (read(s3, SKETCH_KEY), read(s3, SAMPLE_KEY))
    run(eventbridge())
    assert (read(s3, SKETCH_KEY), read(s3, SAMPLE_KEY)) == first
    assert len(keys(s3)) == 4  # two baseline files, one sketch, one sample


def test_bad_values_and_half_captures_are_counted_with_reasons_and_nothing_is_lost(monitored, capsys) -> None:
    s3, review, _ = monitored
    layout = put_baseline(s3, baseline_csv())
    only_output = json.loads(capture_line("1,2,3", "0.5", event_id="out"))
    del only_output["captureData"]["endpointInput"]
    lines = [
        capture_line("nan,inf,abc", "0.5", event_id="bad"),  # NaN, infinity, text: profiled, counted apart
        capture_line("0.1,,0.3\n0.4,0.5,0.6", "0.2\n0.3", event_id="gap"),  # an empty field: missing
        capture_line("0.1,0.2", "0.95", event_id="short"),  # two features, the baseline three
        capture_line("0.7,0.8,0.9\n0.1,0.1,0.1", None, event_id="in"),  # input only: two rows
        json.dumps(only_output),  # output only
        capture_line("0.5,0.5,0.5", "high", event_id="text-out"),  # not a probability
    ]
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(lines).encode())
    assert run(eventbridge()) == {"batchItemFailures": []}

    sketch = sketches.loads(read(s3, SKETCH_KEY), layout)
    output, a, b, c = sketch.features
    assert sketch.rows == 3 + 2 + 1 + 1  # complete rows, input-only rows, output-only row, text output
    assert sketch.rejected == {"row has 2 features, the baseline 3": 1}
    assert (a.nan, b.inf, c.text, b.missing) == (1, 1, 1, 1 + 1)  # b: the empty field and the output-only row
    assert (output.missing, output.text) == (2, 1)  # the input-only rows, the text output
    assert a.finite == 2 + 2 + 1  # gap's rows, input-only rows, text-out's row
    metrics = capsys.readouterr().out
    assert '"RowsProfiled":[7.0]' in metrics and '"PartialRowsProfiled":[4.0]' in metrics and '"RowsNotProfiled":[1.0]' in metrics
    report = s3.get_object(Bucket=REPORT_BUCKET, Key=f"rejected-captures/{CAPTURE_BUCKET}/{KEY}.jsonl")["Body"].read().decode()
    reasons = sorted(json.loads(line)["reason"] for line in report.splitlines())
    assert reasons == [
        "no captureData.endpointInput (output-only capture)",
        "no captureData.endpointOutput (input-only capture)",
        "probability is not a number: 'high'",
    ]
    sample = samples.loads(read(s3, SAMPLE_KEY), NAMES)
    assert sample.seen == 3 and sample.rejected == {"row has 2 features, the sample 3": 1}
    kept = {r.event_id: r.features for r in sample.rows}
    assert kept.get("bad", ("NaN", "Infinity", "abc")) == ("NaN", "Infinity", "abc")


def test_without_a_baseline_the_object_is_reviewed_and_sampled_then_retried_then_parked(monitored, capsys, caplog) -> None:
    s3, review, dlq = monitored
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body="\n".join(LINES).encode())
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})  # Powertools raises when a whole batch fails
    assert run(eventbridge(), test_event) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}  # SQS delivers it again
    assert len(drain(review)) == 2 and keys(s3) == [SAMPLE_KEY]
    assert '"CaptureObjectsNotProfiled":[1.0]' in capsys.readouterr().out  # the metric
    [warning] = [r for r in caplog.records if r.getMessage() == "capture object not profiled for data quality"]
    assert "no data-quality baseline yet" in warning.reason

    assert run(eventbridge(), receive_count=handler.PROFILE_ATTEMPTS) == {"batchItemFailures": []}
    [parked] = drain(dlq)
    reason = parked["MessageAttributes"]["reason"]["StringValue"]
    assert "not profiled for data quality after 3 attempts (review selection was done" in reason
    assert f"s3://{MONITORING_BUCKET}/data-quality/current/statistics.json does not exist" in reason

    put_baseline(s3, baseline_csv())  # the redrive, once the baseline exists
    assert run(parked["Body"]) == {"batchItemFailures": []}
    assert SKETCH_KEY in keys(s3)


def test_a_new_baseline_is_used_from_the_next_object_and_an_unchanged_one_is_not_read_again(monitored) -> None:
    s3, _, _ = monitored
    old = put_baseline(s3, baseline_csv(seed=1))
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=KEY, Body=LINES[0].encode())
    run(eventbridge())
    assert sketches.loads(read(s3, SKETCH_KEY)).layout_id == old.id
    cached = profiling.baselines._layouts[(MONITORING_BUCKET, *[profiling.baselines._files[(MONITORING_BUCKET, f"data-quality/current/{n}")][0] for n in ("statistics.json", "constraints.json")])]
    run(eventbridge())
    assert profiling.baselines.layout(s3, MONITORING_BUCKET) is cached  # 304 Not Modified: the same layout

    new = put_baseline(s3, baseline_csv(seed=2))
    assert new.id != old.id
    run(eventbridge())
    assert sketches.loads(read(s3, SKETCH_KEY)).layout_id == new.id


def test_the_hour_comes_from_the_key_else_from_the_event_time() -> None:
    assert hour_of(CaptureObject("b", KEY)) == HOUR
    [obj] = capture_objects({"source": "aws.s3", "detail-type": "Object Created", "time": "2026-11-23T04:59:59Z",
                             "detail": {"bucket": {"name": "b"}, "object": {"key": "capture/odd/file.jsonl"}}})
    assert hour_of(obj) == "2026/11/23/04"
    [notified] = capture_objects({"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "2026-11-23T05:00:00.000Z",
                                               "s3": {"bucket": {"name": "b"}, "object": {"key": "flat.jsonl"}}}]})
    assert hour_of(notified) == "2026/11/23/05"


def test_csv_rows_of_plain_numbers_decode_at_once_and_others_by_splitting() -> None:
    assert csv_values(["1,2.5", " 3 , -4e-1"]) == [[1, 2.5], [3, -0.4]]
    mixed = csv_values(["1,2", "1,,2", "a,1", '"1",[2]'])
    assert mixed == [[1, 2], ["1", "", "2"], ["a", "1"], ['"1"', "[2]"]]
    assert csv_values(["01,1."]) == [["01", "1."]]  # not JSON numbers: text, which the sketch reads as numbers


def _cells(rng: random.Random) -> object:
    return rng.choice([
        lambda: rng.uniform(-1e3, 1e3), lambda: rng.randint(-5, 5), lambda: f"{rng.uniform(0, 10):.3f}", lambda: str(rng.randint(0, 9)),
        lambda: None, lambda: "", lambda: " ", lambda: "abc", lambda: True, lambda: math.nan, lambda: "inf", lambda: -math.inf,
        lambda: 10**400, lambda: -0.0, lambda: 5e-324, lambda: 1e308, lambda: [1],
    ])()


@pytest.mark.parametrize("seed", range(12))
def test_folding_rows_a_column_at_a_time_equals_folding_them_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    layout = sketches.Layout(("probability", "a", "b"), ((0.25, 0.5, 0.75), (-1.0, 0.0, 1.0, 5.0), (0.0, 3.0)))
    clean = seed % 3 == 0  # every third: only finite numbers, the fast path throughout
    rows = []
    for _ in range(rng.randint(1, 3000)):
        width = 2 if clean or rng.random() > 0.02 else rng.choice([1, 3])
        cells = [rng.uniform(-10, 10) if clean else _cells(rng) for _ in range(width)]
        rows.append((rng.random() if clean or rng.random() > 0.1 else _cells(rng), cells))
    one_by_one = sketches.Sketch.empty(layout)
    for output, features in rows:
        one_by_one.add_row(layout, output, features)
    batched = sketches.Sketch.empty(layout)
    for start in range(0, len(rows), 700):
        chunk = rows[start : start + 700]
        batched.add_rows(layout, [o for o, _ in chunk], [f for _, f in chunk])
    assert batched == one_by_one and sketches.dumps(batched) == sketches.dumps(one_by_one)
    if clean:
        assert batched.features[1].total == sum(Fraction(f[0]) for _, f in rows)
