"""The open data-quality monitor end to end, offline (moto S3, EventBridge, SQS):

    baseline custom resource (the bundled baseline dataset) -> data-quality/current/
    capture objects (JSON Lines as SageMaker writes them) -> the capture filter with profiling
        (``filter_capture_object``: one sketch per object) -> the evaluator Lambda's handler
    -> EMF metrics (read from stdout), report and violations in S3, "Monitoring Run Ended"
    -> the retraining stack's Violations rule pattern, matched by moto's EventBridge.

The data: the bundled model's 114 held-out rows (``test.csv``) scored by the bundled model, as the
endpoint would answer, in one hour; the same rows with three features shifted by 1 to 2 baseline
standard deviations in the next hour. The configuration (threshold, check types, event source,
model payload paths) is the dev environment's, read from cdk.json.
"""

from __future__ import annotations

import json
import tarfile

import boto3
import numpy as np
import pytest
import xgboost as xgb

from lambdas.capture.events import CaptureObject
from lambdas.capture.filtering import FilterSettings, filter_capture_object
from lambdas.capture.profiling import ProfilingSettings
from lambdas.capture.records import ParseOptions
from lambdas.capture.selection import SelectionRule
from local.drift_report import environment_config
from lambdas.monitoring.open import attribution, baseline, common, data_quality
from lambdas.shared.explain.tree import TreeExplainer
from stacks.monitoring.events import event_source
from stacks.retraining.stack import model_quality_schedule, monitoring_runs_pattern
from stacks.shared.aws_facts import MONITORING_CADENCES
from stacks.shared.default_model import BASELINE_CSV, FEATURE_NAMES, LABEL_NAMES, MODEL_ARTIFACT, TEST_CSV, TRAIN_CSV, captures
from tests.lambdas.aws_env import REGION, LambdaContext, drain
from tests.lambdas.capture.test_records import capture_line

CAPTURE, MONITORING, DATASETS, REPORTS = "capture-bucket", "monitoring-bucket", "datasets-bucket", "reports-bucket"
SHIFTS = captures.SHIFTS  # baseline standard deviations: the sample shifted.jsonl's


@pytest.fixture(scope="module")
def config():
    return environment_config("dev")


@pytest.fixture(scope="module")
def periods():
    """(held-out, shifted): score first, then the 30 features, as the endpoint sees and answers them."""
    with tarfile.open(MODEL_ARTIFACT) as tar:
        booster = xgb.Booster()
        booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    features = np.loadtxt(TEST_CSV, delimiter=",")[:, 1:]
    held_out = np.column_stack([booster.predict(xgb.DMatrix(features)), features])
    return held_out, captures.shift(held_out)


@pytest.fixture
def loop(mocked_aws, config, monkeypatch):
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (CAPTURE, MONITORING, DATASETS, REPORTS):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="retraining-triggers")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    # The retraining stack's MonitoringRuns rule, as it builds it from this configuration: every run
    # reaches the triggers (a clean period breaks a drift streak: retraining.drift_consecutive_periods).
    pattern = monitoring_runs_pattern(event_source(config), model_quality_schedule(config))
    events.put_rule(Name="monitoring-runs", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="monitoring-runs", Targets=[{"Id": "triggers", "Arn": queue_arn}])
    # Deploy: the baseline custom resource on the bundled baseline dataset.
    s3.put_object(Bucket=DATASETS, Key="bundled/baseline.csv", Body=BASELINE_CSV.read_bytes())
    baseline.on_event(
        {
            "RequestType": "Create",
            "RequestId": "r",
            "ResourceProperties": {
                "Monitor": "data-quality", "MonitoringBucket": MONITORING, "DatasetS3Uri": f"s3://{DATASETS}/bundled/baseline.csv",
                "DriftThreshold": str(config.monitoring.data_quality.drift_threshold), "FeatureNames": json.dumps(list(config.model.feature_names)),
            },  # fmt: skip
        },
        s3=s3,
    )
    # The evaluator's environment, as the monitoring stack sets it.
    for name, value in {
        "MONITORING_BUCKET": MONITORING, "ENDPOINT_NAME": config.prefix, "SCHEDULE_NAME": f"{config.prefix}-data-quality",
        "EVENT_SOURCE": event_source(config), "EVENT_BUS_NAME": "default", "CADENCES": json.dumps(MONITORING_CADENCES),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    common.settings.cache_clear()
    yield s3, sqs, queue
    common.settings.cache_clear()


def filter_settings(config, monitors: frozenset[str] = frozenset({"data-quality"})) -> FilterSettings:
    """The capture filter's settings, review selection off: only profiling is under test."""
    return FilterSettings(
        options=ParseOptions(score_path=config.model.score_path, features_path=config.model.features_path),
        rule=SelectionRule(rule="band", lower=0.1, upper=0.9),
        rows_per_loop=3,
        review_queue_url="",
        report_bucket=REPORTS,
        review=False,
        profiling=ProfilingSettings(bucket=MONITORING, monitors=monitors, sample_rows=500, feature_names=tuple(config.model.feature_names)),
    )


def capture(s3, sqs, config, table: np.ndarray, hour: str, objects: int = 4, monitors: frozenset[str] = frozenset({"data-quality"})) -> list[CaptureObject]:
    """``table`` as SageMaker's capture objects of ``hour`` (requests of 1 to 3 rows), each profiled
    by the capture filter as its Lambda does (review selection off: only profiling is under test)."""
    settings = filter_settings(config, monitors)
    captured = []
    for number, chunk in enumerate(np.array_split(table, objects)):
        lines, start = [], 0
        while start < len(chunk):
            request = chunk[start : start + 1 + start % 3]
            start += len(request)
            features = "\n".join(",".join(repr(float(v)) for v in row[1:]) for row in request)
            scores = "\n".join(repr(float(row[0])) for row in request)
            lines.append(capture_line(features, scores, event_id=f"e-{number}-{start}"))
        key = f"capture/{config.prefix}/AllTraffic/{hour}/object-{number}.jsonl"
        s3.put_object(Bucket=CAPTURE, Key=key, Body="\n".join(lines).encode())
        obj = CaptureObject(CAPTURE, key)
        report = filter_capture_object(s3, sqs, obj, settings)
        assert report.rejected == 0 and report.profile.rows == len(chunk) and report.profiling_error is None
        captured.append(obj)
    return captured


def emf_values(text: str) -> dict[str, tuple[float, dict[str, str]]]:
    found = {}
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            [directive] = document["_aws"]["CloudWatchMetrics"]
            [dimensions] = directive["Dimensions"]
            for metric in directive["Metrics"]:
                [value] = document[metric["Name"]]
                found[metric["Name"]] = (value, {name: document[name] for name in dimensions})
    return found


def test_capture_to_retraining_trigger(loop, config, periods, capsys):
    s3, sqs, queue = loop
    held_out, shifted = periods
    threshold = config.monitoring.data_quality.drift_threshold
    schedule = f"{config.prefix}-data-quality"
    capture(s3, sqs, config, held_out, "2026/11/22/09")
    capture(s3, sqs, config, shifted, "2026/11/22/10")
    sketches = [o["Key"] for o in s3.list_objects_v2(Bucket=MONITORING, Prefix="data-quality/sketches/")["Contents"]]
    assert len(sketches) == 8 and all(k.endswith(".jsonl.json") for k in sketches)

    # The clean hour: evaluated at 10:20; nothing crosses the alarm threshold; its run reaches the
    # triggers as a clean period (which starts nothing).
    capsys.readouterr()
    clean = data_quality.handler({"scheduledTime": "2026-11-22T10:20:00Z", "schedule": config.monitoring.data_quality.schedule}, LambdaContext())
    assert clean["outcome"] == "Completed" and clean["violationCount"] == 0
    values = emf_values(capsys.readouterr().out)
    significant = {name: value for name, (value, _) in values.items() if name.startswith("feature_baseline_drift_significant_")}
    assert len(significant) == 31 and max(significant.values()) <= threshold
    [message] = drain(queue)
    assert json.loads(message["Body"])["detail"]["outcome"] == "Completed"

    # The shifted hour: evaluated at 11:20; the three shifted features cross it, and only they.
    shifted_run = data_quality.handler({"scheduledTime": "2026-11-22T11:20:00Z", "schedule": config.monitoring.data_quality.schedule}, LambdaContext())
    assert shifted_run["outcome"] == "CompletedWithViolations" and shifted_run["features"] == sorted(SHIFTS)
    values = emf_values(capsys.readouterr().out)
    crossing = {name.removeprefix("feature_baseline_drift_significant_") for name, (value, _) in values.items() if "_significant_" in name and value > threshold}
    assert crossing == set(SHIFTS)
    for feature in FEATURE_NAMES:  # what each drift alarm watches: this metric, these dimensions
        value, dimensions = values[f"feature_baseline_drift_significant_{feature}"]
        assert {k: dimensions[k] for k in ("Endpoint", "MonitoringSchedule")} == {"Endpoint": config.prefix, "MonitoringSchedule": schedule}

    folder = f"data-quality/reports/{config.prefix}/{schedule}/2026/11/22/11"
    violations = json.loads(s3.get_object(Bucket=MONITORING, Key=f"{folder}/constraint_violations.json")["Body"].read())["violations"]
    assert sorted(v["feature_name"] for v in violations) == sorted(SHIFTS)
    statistics = json.loads(s3.get_object(Bucket=MONITORING, Key=f"{folder}/statistics.json")["Body"].read())
    assert statistics["dataset"]["item_count"] == len(shifted)
    page = s3.get_object(Bucket=MONITORING, Key=f"{folder}/report.html")["Body"].read().decode()
    assert all(feature in page for feature in SHIFTS) and "DRIFT" in page

    [message] = drain(queue)  # the shifted run's event, with its violations
    event = json.loads(message["Body"])
    assert event["detail-type"] == "Monitoring Run Ended" and event["source"] == event_source(config)
    assert event["detail"]["processingJobName"] == f"{schedule}-2026112211" and event["detail"]["checkTypes"] == ["baseline_drift_check"]
    assert event["detail"]["reportHtmlS3Uri"] == f"s3://{MONITORING}/{folder}/report.html"


# One captured value beyond the float32 range (|x| > 3.4e38); from 1.4e154 on it used to crash the
# data-quality run (OverflowError in the statistics) and from 3.4e38 on the attribution run (XGBoostError).
HUGE = ["1e39", "1e155", "1e200", "-1.7e308", str(10**200)]


@pytest.mark.parametrize("value", HUGE, ids=["1e39", "1e155", "1e200", "-1.7e308", "int 10**200"])
def test_a_value_beyond_the_float32_range_is_counted_apart_and_both_runs_complete(loop, config, periods, value):
    s3, sqs, _ = loop
    held_out, _ = periods
    both = frozenset({"data-quality", "explainability"})
    capture(s3, sqs, config, held_out, "2026/11/22/09", monitors=both)
    row = ",".join([value, *(repr(float(v)) for v in held_out[0, 2:])])  # mean_radius is huge
    key = f"capture/{config.prefix}/AllTraffic/2026/11/22/09/hostile.jsonl"
    s3.put_object(Bucket=CAPTURE, Key=key, Body=capture_line(row, "0.5", event_id="hostile").encode())
    report = filter_capture_object(s3, sqs, CaptureObject(CAPTURE, key), filter_settings(config, both))
    assert report.rejected == 0 and report.profile.rows == 1 and report.profiling_error is None

    # Data quality: the run completes; the value is counted apart (like an infinity), the row kept.
    ended = data_quality.handler({"scheduledTime": "2026-11-22T10:20:00Z", "schedule": config.monitoring.data_quality.schedule}, LambdaContext())
    assert ended["outcome"] == "CompletedWithViolations" and ended["features"] == ["mean_radius"] and ended["violationCount"] == 1
    assert "115 rows from 5 sketch file(s)" in ended["exitMessage"]
    assert "values beyond the float32 range, counted apart: mean_radius: 1" in ended["exitMessage"]
    folder = f"data-quality/reports/{config.prefix}/{config.prefix}-data-quality/2026/11/22/10"
    statistics = json.loads(s3.get_object(Bucket=MONITORING, Key=f"{folder}/statistics.json")["Body"].read())
    [radius] = [f for f in statistics["features"] if f["name"] == "mean_radius"]
    assert statistics["dataset"]["item_count"] == 115
    assert radius["open_monitor"]["num_out_of_range"] == 1 and radius["numerical_statistics"]["common"]["num_present"] == 115
    assert radius["numerical_statistics"]["max"] == held_out[:, 1].max()  # the value is not among the numbers
    [violation] = json.loads(s3.get_object(Bucket=MONITORING, Key=f"{folder}/constraint_violations.json")["Body"].read())["violations"]
    assert violation["constraint_check_type"] == "data_type_check" and "1 out of range (beyond the float32 range)" in violation["description"]
    page = s3.get_object(Bucket=MONITORING, Key=f"{folder}/report.html")["Body"].read().decode()
    assert "1 out of range" in page

    # Attributions: the row is set aside with its reason, the other 114 explained, the run completes.
    with tarfile.open(MODEL_ARTIFACT) as tar:
        booster = xgb.Booster()
        booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    explainer = TreeExplainer(booster, "bundled")
    training = np.loadtxt(TRAIN_CSV, delimiter=",")[:, 1:].tolist()
    analysis = attribution.baseline_analysis(booster, training, FEATURE_NAMES, LABEL_NAMES[-1])
    s3.put_object(Bucket=MONITORING, Key=attribution.BASELINE_KEY, Body=json.dumps(analysis).encode())
    daily = "cron(0 0 ? * * *)"
    settings = attribution.AttributionSettings(
        evaluator=common.EvaluatorSettings(
            bucket=MONITORING, endpoint=config.prefix, schedule=f"{config.prefix}-explainability", event_source=event_source(config),
            event_bus="default", cadences=dict(MONITORING_CADENCES),
        ),
        ndcg_threshold=0.9, sample_rows=500, feature_names=FEATURE_NAMES, label=LABEL_NAMES[-1],
    )  # fmt: skip
    events = boto3.client("events", region_name=REGION)
    run = attribution.run({"scheduledTime": "2026-11-23T00:20:00Z", "schedule": daily}, settings, s3, events, lambda: explainer)
    assert run.outcome == "Completed", run.detail["exitMessage"]
    assert "rows not explained: value beyond the float32 range in mean_radius: 1" in run.detail["exitMessage"]
    folder = f"explainability/reports/{config.prefix}/{config.prefix}-explainability/2026/11/23/00"
    written = json.loads(s3.get_object(Bucket=MONITORING, Key=f"{folder}/analysis.json")["Body"].read())["open_monitor"]
    assert written["rows_explained"] == 114 and written["rows_not_explained"] == {"value beyond the float32 range in mean_radius": 1}
