"""The open back end's data-quality run on moto (S3, EventBridge to SQS): what it reads, writes,
emits and publishes, and how it treats bad input.

The baseline is the bundled one (``baseline.csv``: the model's score and 30 features of 455
training rows), published to ``data-quality/current/`` as the baseline custom resource does. The
periods are the 114 held-out rows (``test.csv``, scored by the bundled model) and a copy with three
features shifted (``SHIFTS``), each profiled as four capture objects. The EMF documents are read
from what Powertools prints; the event from an SQS queue behind an EventBridge rule on its source.
"""

from __future__ import annotations

import datetime
import json
import tarfile

import boto3
import numpy as np
import pytest
import xgboost as xgb

from lambdas.monitoring.drift.baseline import baseline_documents, load
from lambdas.monitoring.drift.evaluate import ks_critical_value
from lambdas.monitoring.drift.sketch import Layout, dumps, profile
from lambdas.monitoring.open import common, data_quality
from lambdas.monitoring.runs import runs
from stacks.shared.aws_facts import MONITORING_CADENCES
from stacks.shared.default_model import BASELINE_CSV, MODEL_ARTIFACT, TEST_CSV, captures
from tests.lambdas.aws_env import LambdaContext, REGION, drain, event_sink

BUCKET = "monitoring-bucket"
SOURCE = "mlloop.monitoring"
SCHEDULE = "mlloop-dev-data-quality"
ENDPOINT = "mlloop-dev"
HOURLY = "cron(0 * ? * * *)"
RUN = {"scheduledTime": "2026-11-22T10:20:00Z", "schedule": HOURLY}
REPORT = f"data-quality/reports/{ENDPOINT}/{SCHEDULE}/2026/11/22/10"
SHIFTS = captures.SHIFTS  # baseline standard deviations: the sample shifted.jsonl's
SETTINGS = common.EvaluatorSettings(
    bucket=BUCKET, endpoint=ENDPOINT, schedule=SCHEDULE, event_source=SOURCE, event_bus="default", cadences=dict(MONITORING_CADENCES)
)


# --- data ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def documents():
    return baseline_documents(BASELINE_CSV.read_text())


@pytest.fixture(scope="module")
def layout(documents) -> Layout:
    return load(documents["statistics.json"], documents["constraints.json"]).layout


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """Score first, then the features, as captures hold them."""
    with tarfile.open(MODEL_ARTIFACT) as tar:
        raw = tar.extractfile("xgboost-model").read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    features = np.loadtxt(TEST_CSV, delimiter=",")[:, 1:]
    return np.column_stack([booster.predict(xgb.DMatrix(features)), features])


@pytest.fixture(scope="module")
def shifted(held_out) -> np.ndarray:
    return captures.shift(held_out)


def sketch_key(hour: str, name: str) -> str:
    """Where the capture Lambda writes a capture object's sketch (design note's key layout)."""
    return f"data-quality/sketches/{hour}/capture/{ENDPOINT}/AllTraffic/{hour}/{name}.jsonl.json"


def put_table(s3, layout: Layout, table: np.ndarray, hour: str = "2026/11/22/09", parts: int = 4, stem: str = "capture") -> list[str]:
    keys = []
    for i, chunk in enumerate(np.array_split(table, parts)):
        key = sketch_key(hour, f"{stem}-{i}")
        s3.put_object(Bucket=BUCKET, Key=key, Body=dumps(profile(layout, [(r[0], r[1:]) for r in chunk.tolist()])))
        keys.append(key)
    return keys


# --- AWS -------------------------------------------------------------------------------------


@pytest.fixture
def aws(mocked_aws, documents):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for name, document in documents.items():
        s3.put_object(Bucket=BUCKET, Key=f"data-quality/current/{name}", Body=json.dumps(document).encode())
    events, queue = event_sink({"source": [SOURCE], "detail-type": [runs.RUN_ENDED]})
    return s3, events, queue


def published(queue: str) -> list[dict]:
    return [json.loads(m["Body"]) for m in drain(queue)]


def emf(capsys) -> list[dict]:
    """The EMF documents Powertools printed."""
    documents = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric_values(documents: list[dict]) -> dict[str, tuple[float, dict]]:
    """metric name -> (value, dimensions) over every document."""
    found = {}
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        [dimension_set] = directive["Dimensions"]  # one set: the metric exists with all of them together
        dimensions = {name: document[name] for name in dimension_set}
        for metric in directive["Metrics"]:
            assert metric["Name"] not in found, f"{metric['Name']} emitted twice"
            [value] = document[metric["Name"]]
            found[metric["Name"]] = (value, dimensions)
    return found


def get_json(s3, key: str):
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


# --- runs ------------------------------------------------------------------------------------


def test_a_shifted_period_violates_the_three_shifted_features_and_alarms_on_them_only(aws, layout, shifted, capsys):
    s3, events, queue = aws
    put_table(s3, layout, shifted)
    capsys.readouterr()
    ended = data_quality.run(RUN, SETTINGS, s3, events)

    violations = get_json(s3, f"{REPORT}/constraint_violations.json")["violations"]
    assert {(v["feature_name"], v["constraint_check_type"]) for v in violations} == {(f, "baseline_drift_check") for f in SHIFTS}
    assert get_json(s3, f"{REPORT}/statistics.json")["dataset"] == {"item_count": 114}
    page = s3.get_object(Bucket=BUCKET, Key=f"{REPORT}/report.html")
    assert page["ContentType"].startswith("text/html") and b"worst_area" in page["Body"].read()

    [event] = published(queue)
    assert event["source"] == SOURCE and event["detail-type"] == "Monitoring Run Ended"
    detail = event["detail"]
    assert detail == ended.detail
    assert detail["outcome"] == "CompletedWithViolations" and detail["monitor"] == "data-quality"
    assert detail["processingJobName"] == f"{SCHEDULE}-2026112210"
    assert detail["reportS3Uri"] == f"s3://{BUCKET}/{REPORT}" and detail["reportHtmlS3Uri"] == f"s3://{BUCKET}/{REPORT}/report.html"
    assert detail["features"] == sorted(SHIFTS) and detail["checkTypes"] == ["baseline_drift_check"] and detail["violationCount"] == 3
    assert detail["exitMessage"].startswith("CompletedWithViolations: 3 violation(s) in 3 column(s); 114 rows from 4 sketch file(s)")
    # The keys SageMaker's event has, plus reportHtmlS3Uri: one shape for both back ends.
    assert set(detail) == {
        "version", "monitor", "scheduleName", "endpointName", "processingJobName", "outcome", "exitMessage", "failureReason",
        "reportS3Uri", "reportHtmlS3Uri", "violationCount", "checkTypes", "features", "violations", "endedAt",
    }  # fmt: skip

    latest = get_json(s3, f"data-quality/reports/{ENDPOINT}/{SCHEDULE}/latest.json")
    assert latest == {"scheduledTime": "2026-11-22T10:20:00Z", "endedAt": detail["endedAt"], "outcome": "CompletedWithViolations", "reportS3Uri": detail["reportS3Uri"]}

    documents = emf(capsys)
    values = metric_values(documents)
    significant = {n.removeprefix("feature_baseline_drift_significant_"): v for n, (v, _) in values.items() if "_significant_" in n}
    plain = {n.removeprefix("feature_baseline_drift_"): v for n, (v, _) in values.items() if n.startswith("feature_baseline_drift_") and "_significant_" not in n}
    assert set(significant) == set(plain) == set(layout.columns)  # every column, the model's output included
    threshold = 0.1
    assert {f for f, v in significant.items() if v > threshold} == set(SHIFTS)
    assert {f: v for f, v in significant.items() if f not in SHIFTS and v} == {}  # below the critical value: 0
    assert all(significant[f] == plain[f] for f in SHIFTS)
    # Per-feature metrics: Endpoint and MonitoringSchedule (and Powertools' service); at most 100 a document.
    assert all(len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) <= 100 for d in documents)
    for name, (_, dimensions) in values.items():
        if name.startswith("feature_"):
            assert set(dimensions) == {"Endpoint", "MonitoringSchedule", "service"} and dimensions["Endpoint"] == ENDPOINT
            assert dimensions["MonitoringSchedule"] == SCHEDULE
    assert values["MonitoringRuns"] == (1.0, {"Monitor": "data-quality", "Outcome": "CompletedWithViolations", "service": "tests"})


def test_held_out_rows_complete_without_violation_and_never_cross_the_alarm_threshold(aws, layout, held_out, capsys):
    """The decision behind the two metrics: on a clean 114-row period the plain distance exceeds 0.1
    for some features (the dashboard shows it), the significant one stays 0 (no alarm)."""
    s3, events, queue = aws
    put_table(s3, layout, held_out)
    capsys.readouterr()
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert ended.outcome == "Completed" and ended.detail["violationCount"] == 0
    assert ended.detail["exitMessage"] == "Completed: no violations; 114 rows from 4 sketch file(s)"
    values = {name: value for name, (value, _) in metric_values(emf(capsys)).items()}
    plain = [v for n, v in values.items() if n.startswith("feature_baseline_drift_") and "_significant_" not in n]
    significant = [v for n, v in values.items() if "_significant_" in n]
    assert len(plain) == len(significant) == 31
    assert max(plain) > 0.1 and max(significant) == 0.0
    assert max(plain) < ks_critical_value(455, 114)
    assert [e["detail"]["outcome"] for e in published(queue)] == ["Completed"]


def test_a_period_too_small_to_show_drift_says_so_in_the_event_and_the_report(aws, layout, held_out):
    s3, events, _ = aws
    put_table(s3, layout, held_out[:3], parts=1)
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert ended.outcome == "Completed"
    assert ended.detail["exitMessage"] == "Completed: no violations; 3 rows from 1 sketch file(s); drift: too few rows to judge: 3 rows, at least 6 needed"
    page = s3.get_object(Bucket=BUCKET, Key=f"{REPORT}/report.html")["Body"].read().decode()
    assert "too few rows to judge: 3 rows, at least 6 needed" in page and "No violations." not in page


def test_only_the_periods_hours_are_read_and_a_daily_period_reads_24(aws, layout, held_out, shifted):
    s3, events, _ = aws
    put_table(s3, layout, held_out, hour="2026/11/22/09")
    put_table(s3, layout, shifted, hour="2026/11/22/10", stem="next-hour")  # the next period's
    put_table(s3, layout, shifted, hour="2026/11/22/08", stem="previous-hour")  # the previous period's
    assert data_quality.run(RUN, SETTINGS, s3, events).outcome == "Completed"
    daily = data_quality.run({"scheduledTime": "2026-11-23T00:20:00Z", "schedule": "cron(0 0 ? * * *)"}, SETTINGS, s3, events)
    assert "342 rows from 12 sketch file(s)" in daily.detail["exitMessage"]
    assert daily.detail["reportS3Uri"].endswith(f"{SCHEDULE}/2026/11/23/00")


def test_period_is_the_cadence_before_the_scheduled_hour():
    p = common.period({"scheduledTime": "2026-11-22T10:20:00Z", "schedule": "cron(0 0/6 ? * * *)"}, MONITORING_CADENCES)
    assert p.hours == ["2026/11/22/04", "2026/11/22/05", "2026/11/22/06", "2026/11/22/07", "2026/11/22/08", "2026/11/22/09"]
    assert p.folder == "2026/11/22/10" and common.job_name(SCHEDULE, p) == f"{SCHEDULE}-2026112210"
    across = common.period({"scheduledTime": "2026-01-01T00:20:00+00:00", "schedule": HOURLY}, MONITORING_CADENCES)
    assert across.hours == ["2025/12/31/23"]
    with pytest.raises(common.RunInputError, match="not one of the app's cadences"):
        common.period({"scheduledTime": "2026-11-22T10:20:00Z", "schedule": "rate(5 minutes)"}, MONITORING_CADENCES)
    with pytest.raises(common.RunInputError, match="no scheduledTime"):
        common.period({"schedule": HOURLY}, MONITORING_CADENCES)
    with pytest.raises(common.RunInputError, match="not an ISO 8601 time"):
        common.period({"scheduledTime": "yesterday", "schedule": HOURLY}, MONITORING_CADENCES)


def test_more_than_one_page_of_sketches_is_all_read(aws, layout, held_out):
    s3, events, _ = aws
    rows = [(r[0], r[1:]) for r in held_out.tolist()]
    for i in range(1_003):  # ListObjectsV2 pages hold 1,000 keys
        s3.put_object(Bucket=BUCKET, Key=sketch_key("2026/11/22/09", f"c-{i:05d}"), Body=dumps(profile(layout, [rows[i % len(rows)]])))
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert "1003 rows from 1003 sketch file(s)" in ended.detail["exitMessage"]


# --- bad input -------------------------------------------------------------------------------


def test_a_sketch_that_does_not_parse_is_set_aside_with_its_reason_and_the_rest_evaluated(aws, layout, shifted):
    s3, events, queue = aws
    put_table(s3, layout, shifted)
    broken = sketch_key("2026/11/22/09", "broken")
    s3.put_object(Bucket=BUCKET, Key=broken, Body=b'{"format": "drift-sk')
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert ended.outcome == "CompletedWithViolations" and ended.detail["features"] == sorted(SHIFTS)
    name = broken.removeprefix("data-quality/sketches/")
    assert f"1 file(s) set aside: {name} (not a sketch: not JSON" in ended.detail["exitMessage"]
    assert "114 rows from 5 sketch file(s)" in ended.detail["exitMessage"]
    page = s3.get_object(Bucket=BUCKET, Key=f"{REPORT}/report.html")["Body"].read().decode()
    assert "Sketches set aside" in page and name in page and "not a sketch: not JSON" in page


def test_a_period_with_no_data_is_reported_with_no_violation_and_no_drift_metric(aws, capsys):
    s3, events, queue = aws
    capsys.readouterr()
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert ended.outcome == "Completed" and ended.detail["violationCount"] == 0
    assert ended.detail["exitMessage"] == "no data: no sketch files in the period: no captured requests"
    assert get_json(s3, f"{REPORT}/constraint_violations.json") == {"violations": []}
    assert get_json(s3, f"{REPORT}/statistics.json")["dataset"] == {"item_count": 0}
    page = s3.get_object(Bucket=BUCKET, Key=f"{REPORT}/report.html")["Body"].read().decode()
    assert "No comparison: no sketch files in the period" in page
    values = metric_values(emf(capsys))
    assert list(values) == ["MonitoringRuns"]  # no drift metric: the alarms see missing data, not 0
    assert [e["detail"]["exitMessage"] for e in published(queue)] == [ended.detail["exitMessage"]]


def test_sketches_of_a_model_with_another_feature_count_are_set_aside_by_name(aws, layout, held_out):
    """After a model change the capture Lambda profiles against the new baseline; sketches from before
    or after it that do not fit the current baseline are named with the reason, never merged."""
    s3, events, _ = aws
    put_table(s3, layout, held_out, parts=2)
    wider = Layout((*layout.columns, "new_feature"), (*layout.edges, (0.0, 1.0)))
    other = sketch_key("2026/11/22/09", "after-model-change")
    s3.put_object(Bucket=BUCKET, Key=other, Body=dumps(profile(wider, [(0.5, [1.0] * 31)] * 7)))
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert ended.outcome == "Completed" and "114 rows from 3 sketch file(s)" in ended.detail["exitMessage"]
    assert "sketch has 32 columns" in ended.detail["exitMessage"] and "profiled for another model's features" in ended.detail["exitMessage"]
    assert other.removeprefix("data-quality/sketches/") in ended.detail["exitMessage"]


def test_a_period_of_only_another_models_sketches_is_no_data_and_says_why(aws, layout):
    s3, events, _ = aws
    wider = Layout((*layout.columns, "new_feature"), (*layout.edges, (0.0, 1.0)))
    s3.put_object(Bucket=BUCKET, Key=sketch_key("2026/11/22/09", "new-model"), Body=dumps(profile(wider, [(0.5, [1.0] * 31)])))
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    message = ended.detail["exitMessage"]
    assert ended.outcome == "Completed" and message.startswith("no data: 0 sketch file(s) read, no usable rows, 1 sketch file(s) set aside")
    assert "sketch has 32 columns" in message


def test_rows_with_another_feature_count_inside_a_sketch_are_counted_by_reason(aws, layout, held_out):
    s3, events, _ = aws
    rows = [(r[0], r[1:]) for r in held_out.tolist()] + [(0.5, [1.0] * 29)] * 3
    s3.put_object(Bucket=BUCKET, Key=sketch_key("2026/11/22/09", "mixed"), Body=dumps(profile(layout, rows)))
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert "rows not profiled: row has 29 features, the baseline 30: 3" in ended.detail["exitMessage"]


def test_a_missing_baseline_is_a_failed_run_that_says_where_it_looked(aws, capsys):
    s3, events, queue = aws
    s3.delete_object(Bucket=BUCKET, Key="data-quality/current/constraints.json")
    capsys.readouterr()
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert ended.outcome == "Failed"
    assert f"no baseline constraints.json at s3://{BUCKET}/data-quality/current/constraints.json" in ended.detail["failureReason"]
    assert [e["detail"]["outcome"] for e in published(queue)] == ["Failed"]
    assert get_json(s3, f"data-quality/reports/{ENDPOINT}/{SCHEDULE}/latest.json")["outcome"] == "Failed"
    assert list(metric_values(emf(capsys))) == ["MonitoringRuns"]


def test_a_baseline_not_written_by_the_open_monitor_is_a_failed_run(aws):
    s3, events, _ = aws
    s3.put_object(Bucket=BUCKET, Key="data-quality/current/statistics.json", Body=b'{"version": 0, "features": [{"name": "x"}]}')
    ended = data_quality.run(RUN, SETTINGS, s3, events)
    assert ended.outcome == "Failed" and "not written by the open monitor's baseline step" in ended.detail["failureReason"]


def test_the_handler_reads_its_settings_from_the_environment(aws, layout, shifted, monkeypatch):
    s3, _, queue = aws
    put_table(s3, layout, shifted)
    for name, value in {
        "MONITORING_BUCKET": BUCKET, "ENDPOINT_NAME": ENDPOINT, "SCHEDULE_NAME": SCHEDULE, "EVENT_SOURCE": SOURCE,
        "EVENT_BUS_NAME": "default", "CADENCES": json.dumps(MONITORING_CADENCES),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    common.settings.cache_clear()
    try:
        summary = data_quality.handler(RUN, LambdaContext())
    finally:
        common.settings.cache_clear()
    assert summary["outcome"] == "CompletedWithViolations" and summary["features"] == sorted(SHIFTS)
    assert len(published(queue)) == 1


def test_sagemaker_runs_carry_no_html_report(mocked_aws):
    settings = runs.RunSettings(schedules={SCHEDULE: {"monitor": "data-quality", "endpoint": ENDPOINT}}, event_source=SOURCE)
    event = {"time": "t", "detail": {"ProcessingJobName": "j", "ProcessingJobStatus": "Failed", "MonitoringScheduleArn": f"arn:x:schedule/{SCHEDULE}"}}
    ended = runs.run_ended(boto3.client("s3", region_name=REGION), event, settings)
    assert ended.detail["reportHtmlS3Uri"] is None and ended.outcome == "Failed"


def test_more_than_100_metrics_go_out_in_several_emf_documents_each_with_every_dimension(capsys):
    """A model of 150 features emits 302 drift metrics: CloudWatch takes at most 100 per document."""
    values = {f"feature_baseline_drift_f{i}": i / 1000 for i in range(250)}
    capsys.readouterr()
    common.emit_metrics(values, {"Endpoint": ENDPOINT, "MonitoringSchedule": SCHEDULE})
    documents = emf(capsys)
    assert [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in documents] == [100, 100, 50]
    found = metric_values(documents)
    assert {name: value for name, (value, _) in found.items()} == values
    assert all(d == {"Endpoint": ENDPOINT, "MonitoringSchedule": SCHEDULE, "service": "tests"} for _, d in found.values())


# --- late sketches (a capture object profiled after its period's run) --------------------------


# The runs below are of November 2026: their metrics' timestamps are too old for CloudWatch today,
# which Powertools warns about; the test reads the EMF documents, not CloudWatch.
old_timestamps = pytest.mark.filterwarnings("ignore:This metric doesn't meet the requirements")


def run_at(s3, events, time: str):
    return data_quality.run({"scheduledTime": time, "schedule": HOURLY}, SETTINGS, s3, events)


@old_timestamps
def test_a_sketch_written_after_its_periods_run_is_evaluated_by_the_next_run(aws, layout, held_out, shifted, capsys):
    s3, events, queue = aws
    put_table(s3, layout, held_out)
    first = run_at(s3, events, "2026-11-22T10:20:00Z")
    assert first.outcome == "Completed" and "114 rows from 4 sketch file(s)" in first.detail["exitMessage"]
    assert get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]["inputs"]["sketch_files"] == 4
    # A retried capture object of hour 09 (the capture queue's 30-minute visibility timeout) lands after that run.
    put_table(s3, layout, shifted, parts=1, stem="late")
    published(queue)
    capsys.readouterr()

    own = run_at(s3, events, "2026-11-22T11:20:00Z")  # its own period (hour 10) is empty; then it looks back
    assert own.detail["exitMessage"].startswith("no data")
    statistics = get_json(s3, f"{REPORT}/statistics.json")
    assert statistics["dataset"]["item_count"] == 228 and statistics["open_monitor"]["inputs"]["sketch_files"] == 5
    late = statistics["open_monitor"]["re_evaluated"]
    assert late["by"] == f"{SCHEDULE}-2026112211" and (late["sketch_files"], late["sketch_files_before"]) == (5, 4)
    violations = get_json(s3, f"{REPORT}/constraint_violations.json")["violations"]
    assert violations and {v["feature_name"] for v in violations} <= set(SHIFTS)
    page = s3.get_object(Bucket=BUCKET, Key=f"{REPORT}/report.html")["Body"].read().decode()
    assert "Late data" in page and "re-evaluated with late data" in page and "228 profiled" in page
    again, mine = sorted(published(queue), key=lambda e: e["detail"]["processingJobName"])
    assert mine["detail"]["processingJobName"] == f"{SCHEDULE}-2026112211"
    detail = again["detail"]  # the earlier period's run name, its new verdict, what happened
    assert detail["processingJobName"] == f"{SCHEDULE}-2026112210" and detail["outcome"] == "CompletedWithViolations"
    assert detail["exitMessage"].startswith("re-evaluated with late data at ") and ": 5 sketch file(s), 4 when last evaluated; CompletedWithViolations" in detail["exitMessage"]
    documents = emf(capsys)
    stamps = {d["_aws"]["Timestamp"] for d in documents if any(m["Name"].startswith("feature_") for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"])}
    assert stamps == {int(datetime.datetime(2026, 11, 22, 10, 20, tzinfo=datetime.UTC).timestamp() * 1000)}  # plotted in its period
    runs_counted = [d for d in documents if "MonitoringRuns" in d]
    assert len(runs_counted) == 1  # the scheduled run only
    assert get_json(s3, f"data-quality/reports/{ENDPOINT}/{SCHEDULE}/latest.json")["scheduledTime"] == "2026-11-22T11:20:00Z"

    # Evaluated again once: the next run finds the same files and leaves the period alone.
    run_at(s3, events, "2026-11-22T12:20:00Z")
    assert [e["detail"]["processingJobName"] for e in published(queue)] == [f"{SCHEDULE}-2026112212"]


@old_timestamps
def test_a_replayed_sketch_a_period_without_report_or_long_past_is_not_evaluated_again(aws, layout, held_out, shifted):
    s3, events, queue = aws
    keys = put_table(s3, layout, held_out)
    run_at(s3, events, "2026-11-22T10:20:00Z")
    body = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=keys[0], Body=body)  # the same capture object profiled again: the same sketch
    put_table(s3, layout, shifted, hour="2026/11/22/07", parts=1, stem="no-report")  # hour 07 never had a run
    published(queue)
    run_at(s3, events, "2026-11-22T11:20:00Z")
    assert [e["detail"]["processingJobName"] for e in published(queue)] == [f"{SCHEDULE}-2026112211"]
    assert "re_evaluated" not in get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]
    # A late sketch for a period further back than LOOKBACK_PERIODS is left alone.
    put_table(s3, layout, shifted, parts=1, stem="very-late")
    later = datetime.datetime(2026, 11, 22, 10, 20, tzinfo=datetime.UTC) + datetime.timedelta(hours=data_quality.LOOKBACK_PERIODS + 1)
    run_at(s3, events, later.isoformat().replace("+00:00", "Z"))
    assert len(published(queue)) == 1 and "re_evaluated" not in get_json(s3, f"{REPORT}/statistics.json")["open_monitor"]
    # Within it, the same late sketch is evaluated.
    run_at(s3, events, (later - datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z"))
    assert len(published(queue)) == 2 and get_json(s3, f"{REPORT}/statistics.json")["dataset"]["item_count"] == 228


@old_timestamps
def test_a_period_evaluated_against_another_baseline_is_not_evaluated_again(aws, layout, held_out, shifted, documents):
    s3, events, queue = aws
    put_table(s3, layout, held_out)
    run_at(s3, events, "2026-11-22T10:20:00Z")
    put_table(s3, layout, shifted, parts=1, stem="late")
    retrained = baseline_documents("\n".join(BASELINE_CSV.read_text().splitlines()[:300]))  # a new baseline: other bin edges
    for name, document in retrained.items():
        s3.put_object(Bucket=BUCKET, Key=f"data-quality/current/{name}", Body=json.dumps(document).encode())
    published(queue)
    run_at(s3, events, "2026-11-22T11:20:00Z")
    assert [e["detail"]["processingJobName"] for e in published(queue)] == [f"{SCHEDULE}-2026112211"]
    assert get_json(s3, f"{REPORT}/statistics.json")["dataset"]["item_count"] == 114


@old_timestamps
def test_a_failing_look_back_leaves_the_runs_own_period_reported_and_is_tried_again(aws, layout, held_out, shifted, monkeypatch):
    s3, events, queue = aws
    put_table(s3, layout, held_out)
    run_at(s3, events, "2026-11-22T10:20:00Z")
    put_table(s3, layout, shifted, parts=1, stem="late")
    published(queue)
    real = common.listing_of

    def refused(*args, **kwargs):
        raise RuntimeError("S3 said no")

    monkeypatch.setattr(common, "listing_of", refused)
    assert run_at(s3, events, "2026-11-22T11:20:00Z").detail["processingJobName"] == f"{SCHEDULE}-2026112211"
    assert len(published(queue)) == 1 and get_json(s3, f"{REPORT}/statistics.json")["dataset"]["item_count"] == 114
    monkeypatch.setattr(common, "listing_of", real)
    run_at(s3, events, "2026-11-22T12:20:00Z")
    assert len(published(queue)) == 2 and get_json(s3, f"{REPORT}/statistics.json")["dataset"]["item_count"] == 228
