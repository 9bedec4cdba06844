"""monitoring_runs: SageMaker run events become "Monitoring Run Ended" (moto S3/EventBridge/SQS);
the watchdog's DescribeMonitoringSchedule calls are checked by Stubber; for the open back end, its
GetSchedule and run-marker reads by Stubber (times) and end to end on moto's Scheduler and S3."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.monitoring.runs import handler, runs
from lambdas.monitoring.runs.runs import MAX_VIOLATIONS, RunSettings, run_ended, schedule_health
from stacks.shared import aws_facts
from tests.lambdas.aws_env import ACCOUNT, REGION, LambdaContext, drain, sqs_event

BUCKET = "app-monitoring-bucket"
DQ, EX = "mlloop-dev-data-quality", "mlloop-dev-explainability"
SCHEDULES = {DQ: {"monitor": "data-quality", "endpoint": "mlloop-dev"}, EX: {"monitor": "explainability", "endpoint": "mlloop-dev"}}
REPORT = "data-quality/reports/mlloop-dev/mlloop-dev-data-quality/2026/11/22/10"


def run_event(status: str = "Completed", schedule: str = DQ, report: str = REPORT, **detail) -> str:
    """A "SageMaker Processing Job State Change" event for a monitoring run (detail mirrors DescribeProcessingJob)."""
    body = {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Processing Job State Change",
        "time": "2026-11-22T10:21:00Z",
        "detail": {
            "ProcessingJobName": "model-monitoring-202611221000-0123456789abcdef",
            "ProcessingJobStatus": status,
            "MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{schedule}",
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
                "S3Uri": f"s3://{BUCKET}/{report}", "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "Continuous"}}]},
            "ProcessingEndTime": "2026-11-22T10:20:00Z",
            **detail,
        },
    }  # fmt: skip
    return json.dumps(body)


def drift(feature: str) -> dict:
    return {"feature_name": feature, "constraint_check_type": "baseline_drift_check", "description": f"Baseline drift distance: 0.3 exceeds threshold: 0.1 ({feature})"}


@pytest.fixture
def world(mocked_aws, monkeypatch):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    sink = sqs.create_queue(QueueName="sink")["QueueUrl"]
    sink_arn = sqs.get_queue_attributes(QueueUrl=sink, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="runs", EventPattern=json.dumps({"source": ["mlloop.monitoring"], "detail-type": ["Monitoring Run Ended"]}))
    events.put_targets(Rule="runs", Targets=[{"Id": "sink", "Arn": sink_arn}])
    for name, value in {"SCHEDULES": json.dumps(SCHEDULES), "EVENT_SOURCE": "mlloop.monitoring", "DEAD_LETTER_QUEUE_URL": dlq}.items():
        monkeypatch.setenv(name, value)
    handler.settings.cache_clear()
    yield s3, dlq, sink
    handler.settings.cache_clear()


def published(sink: str) -> list[dict]:
    return [json.loads(m["Body"])["detail"] for m in drain(sink)]


def test_a_clean_data_quality_run_is_published_as_completed(world) -> None:
    s3, dlq, sink = world
    assert handler.handler(sqs_event(run_event()), LambdaContext()) == {"batchItemFailures": []}
    [run] = published(sink)
    assert run["monitor"] == "data-quality" and run["outcome"] == "Completed" and run["violationCount"] == 0
    assert run["scheduleName"] == DQ and run["endpointName"] == "mlloop-dev" and run["reportS3Uri"] == f"s3://{BUCKET}/{REPORT}"
    assert run["processingJobName"].startswith("model-monitoring-") and run["version"] == "1" and drain(dlq) == []


def test_violations_are_read_from_the_report_and_summarised(world) -> None:
    s3, dlq, sink = world
    violations = [drift("mean_radius"), drift("worst_area"), {"feature_name": "mean_radius", "constraint_check_type": "data_type_check", "description": "x" * 1000}]
    s3.put_object(Bucket=BUCKET, Key=f"{REPORT}/constraint_violations.json", Body=json.dumps({"violations": violations}).encode())
    handler.handler(sqs_event(run_event(ExitMessage="CompletedWithViolations: Job completed successfully with 3 violations.")), LambdaContext())
    [run] = published(sink)
    assert run["outcome"] == "CompletedWithViolations" and run["violationCount"] == 3
    assert run["checkTypes"] == ["baseline_drift_check", "data_type_check"] and run["features"] == ["mean_radius", "worst_area"]
    assert run["violations"][0] == {"checkType": "baseline_drift_check", "feature": "mean_radius", "label": None, "metric": None, "description": violations[0]["description"]}
    assert len(run["violations"][2]["description"]) == 300


def test_a_long_violation_list_is_cut_in_the_event_but_counted_in_full(world) -> None:
    s3, _, sink = world
    s3.put_object(Bucket=BUCKET, Key=f"{REPORT}/constraint_violations.json", Body=json.dumps({"violations": [drift(f"f{i}") for i in range(120)]}).encode())
    handler.handler(sqs_event(run_event()), LambdaContext())
    [run] = published(sink)
    assert run["violationCount"] == 120 and len(run["violations"]) == MAX_VIOLATIONS and len(run["features"]) == 120


def test_explainability_violations_name_a_label_not_a_feature(world) -> None:
    s3, _, sink = world
    report = "explainability/reports/mlloop-dev/mlloop-dev-explainability/2026/11/22/00"
    violation = {"label": "benign", "metric_name": "shap", "constraint_check_type": "feature_attribution_drift_check",
                 "description": "Feature attribution drift 0.7639720923277322 exceeds threshold 0.9"}  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key=f"{report}/constraint_violations.json", Body=json.dumps({"version": "1.0", "violations": [violation]}).encode())
    handler.handler(sqs_event(run_event(schedule=EX, report=report)), LambdaContext())
    [run] = published(sink)
    assert run["monitor"] == "explainability" and run["outcome"] == "CompletedWithViolations"
    assert run["checkTypes"] == ["feature_attribution_drift_check"] and run["features"] == [] and run["violations"][0]["label"] == "benign"
    assert run["violations"][0]["metric"] == "shap"  # model quality names its figure the same way


def test_the_exit_message_alone_marks_violations_when_the_report_is_missing(world) -> None:
    _, _, sink = world
    handler.handler(sqs_event(run_event(ExitMessage="CompletedWithViolations: Job completed successfully with 2 violations.")), LambdaContext())
    [run] = published(sink)
    assert run["outcome"] == "CompletedWithViolations" and run["violationCount"] == 0


def test_failed_and_stopped_runs_carry_their_reason_and_unfinished_ones_are_ignored(world) -> None:
    _, dlq, sink = world
    failed = run_event("Failed", FailureReason="AlgorithmError: Error: Encoding mismatch")
    handler.handler(sqs_event(failed, run_event("Stopped"), run_event("InProgress")), LambdaContext())
    runs = published(sink)
    assert [(r["outcome"], r["failureReason"]) for r in runs] == [("Failed", "AlgorithmError: Error: Encoding mismatch"), ("Stopped", None)]
    assert drain(dlq) == []


def test_events_we_cannot_act_on_are_parked_with_their_reason_beside_a_good_one(world) -> None:
    s3, dlq, sink = world
    bad_report = "data-quality/reports/broken"
    s3.put_object(Bucket=BUCKET, Key=f"{bad_report}/constraint_violations.json", Body=b"{not json")
    not_monitoring = json.loads(run_event(report="data-quality/reports/mlloop-dev/someone-elses-schedule/2026/11/22/10"))
    del not_monitoring["detail"]["MonitoringScheduleArn"]
    bodies = ["not json", json.dumps(not_monitoring), run_event(schedule="someone-elses-schedule"), run_event(report=bad_report), run_event()]
    assert handler.handler(sqs_event(*bodies), LambdaContext()) == {"batchItemFailures": []}
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in drain(dlq))
    assert len(reasons) == 4
    assert reasons[0].startswith("InvalidRunEvent: constraint_violations.json under s3://") and "is not a violations report" in reasons[0]
    assert reasons[1].startswith("InvalidRunEvent: monitoring schedule 'someone-elses-schedule' is not one of this app's")
    assert reasons[2] == "InvalidRunEvent: not a monitoring run of this app: no MonitoringScheduleArn, and no report folder names one of its schedules"
    assert reasons[3].startswith("JSONDecodeError")
    assert len(published(sink)) == 1  # the good record beside them


def test_a_run_event_without_monitoring_schedule_arn_is_placed_by_its_report_folder(world) -> None:
    # Whether SageMaker's processing-job event carries MonitoringScheduleArn is not documented;
    # Model Monitor's report folder <output>/<endpoint>/<schedule>/yyyy/mm/dd/hh names the schedule.
    _, dlq, sink = world
    event = json.loads(run_event(schedule=EX, report="explainability/reports/mlloop-dev/mlloop-dev-explainability/2026/11/22/00"))
    del event["detail"]["MonitoringScheduleArn"]
    handler.handler(sqs_event(json.dumps(event)), LambdaContext())
    [run] = published(sink)
    assert run["monitor"] == "explainability" and run["scheduleName"] == EX and drain(dlq) == []


def _stubbed_get(code: str, status: int, listing: dict | str | None = None):
    """An S3 client whose GetObject of the violations file answers ``code`` / HTTP ``status`` as S3
    does, then (for a 403) whose ListObjectsV2 of that key answers ``listing``: a response, or an
    error code."""
    client = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    key = f"{REPORT}/constraint_violations.json"
    stubber.add_client_error(
        "get_object", service_error_code=code, service_message=code, http_status_code=status,
        expected_params={"Bucket": BUCKET, "Key": key},
    )  # fmt: skip
    listed = {"Bucket": BUCKET, "Prefix": key, "MaxKeys": 1}
    if isinstance(listing, str):
        stubber.add_client_error("list_objects_v2", service_error_code=listing, service_message=listing, http_status_code=403, expected_params=listed)
    elif listing is not None:
        stubber.add_response("list_objects_v2", listing, listed)
    stubber.activate()
    return client, stubber


LISTED = {"Contents": [{"Key": f"{REPORT}/constraint_violations.json", "Size": 10}], "KeyCount": 1}
NOT_LISTED = {"KeyCount": 0}


def test_a_403_for_a_violations_file_that_is_not_listed_is_a_clean_run() -> None:
    # AWS does not document which s3:prefix S3 evaluates when it chooses between 404 and 403 for a
    # missing key; a listing of the key is documented to use its Prefix, so it settles the 403.
    client, stubber = _stubbed_get("AccessDenied", 403, listing=NOT_LISTED)
    assert runs.read_violations(client, f"s3://{BUCKET}/{REPORT}") == []
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("listing", [LISTED, "AccessDenied"], ids=["listed", "listing-denied-too"])
def test_a_403_for_a_listed_or_unlistable_violations_file_is_a_denial(listing) -> None:
    client, stubber = _stubbed_get("AccessDenied", 403, listing=listing)
    with pytest.raises(runs.ReportDenied, match="403 AccessDenied"):
        runs.read_violations(client, f"s3://{BUCKET}/{REPORT}")
    stubber.assert_no_pending_responses()


def test_a_missing_violations_file_is_a_clean_run_when_s3_says_no_such_key() -> None:
    # With s3:ListBucket on the prefix S3 answers a missing key with 404 NoSuchKey.
    client, stubber = _stubbed_get("NoSuchKey", 404)
    run = run_ended(client, json.loads(run_event()), RunSettings(schedules=SCHEDULES, event_source="mlloop.monitoring"))
    stubber.assert_no_pending_responses()
    assert run is not None and run.outcome == "Completed" and run.detail["violationCount"] == 0


def test_a_denied_violations_read_is_parked_with_its_reason_never_published_as_clean(world, monkeypatch) -> None:
    # Without s3:ListBucket, S3 answers GetObject of a missing key (or any denied read) with 403
    # AccessDenied: the run's outcome is unknown, so nothing is published and the event waits on
    # the dead-letter queue with the reason.
    _, dlq, sink = world
    client, stubber = _stubbed_get("AccessDenied", 403, listing=LISTED)
    real = handler.aws.client
    monkeypatch.setattr(handler.aws, "client", lambda service: client if service == "s3" else real(service))
    assert handler.handler(sqs_event(run_event()), LambdaContext()) == {"batchItemFailures": []}
    stubber.assert_no_pending_responses()
    [parked] = drain(dlq)
    reason = parked["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("ReportDenied: S3 denied reading constraint_violations.json under s3://") and "s3:ListBucket" in reason
    assert published(sink) == []


# --- watchdog ---------------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
HOURLY, DAILY = "cron(0 * ? * * *)", "cron(0 0 ? * * *)"


def described(status: str = "Scheduled", expression: str = HOURLY, created: dt.datetime = NOW - dt.timedelta(days=30), last: dt.datetime | None = None, **extra) -> dict:
    response = {
        "MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{DQ}",
        "MonitoringScheduleName": DQ,
        "MonitoringScheduleStatus": status,
        "CreationTime": created,
        "LastModifiedTime": created,
        "MonitoringScheduleConfig": {"ScheduleConfig": {"ScheduleExpression": expression}, "MonitoringJobDefinitionName": "d", "MonitoringType": "DataQuality"},
        **extra,
    }
    if last is not None:
        response["LastMonitoringExecutionSummary"] = {
            "MonitoringScheduleName": DQ, "ScheduledTime": last, "CreationTime": last, "LastModifiedTime": last, "MonitoringExecutionStatus": "Completed",
        }  # fmt: skip
    return response


@pytest.mark.parametrize(
    ("response", "overdue", "reason"),
    [
        (described(last=NOW - dt.timedelta(hours=1)), False, "last run scheduled 1:00:00 ago"),
        (described(last=NOW - dt.timedelta(hours=2, minutes=19)), False, "last run scheduled"),  # two cadences plus the 20-minute start delay
        (described(last=NOW - dt.timedelta(hours=2, minutes=21)), True, "no run scheduled for 2:21:00 (limit 2:20:00"),
        (described(expression=DAILY, last=NOW - dt.timedelta(hours=40)), False, "last run scheduled"),
        (described(expression=DAILY, last=NOW - dt.timedelta(days=3)), True, "no run scheduled for 3 days"),
        (described(created=NOW - dt.timedelta(minutes=90)), False, "last run scheduled 1:30:00 ago"),  # new, no run yet
        (described(created=NOW - dt.timedelta(hours=5)), True, "no run scheduled for 5:00:00"),
        (described(status="Stopped", last=NOW), True, "schedule is Stopped: no reason given"),
        (described(status="Failed", FailureReason="Endpoint mlloop-dev not found", last=NOW), True, "schedule is Failed: Endpoint mlloop-dev not found"),
        (described(expression="cron(0 0/5 ? * * *)", last=NOW), True, "schedule expression 'cron(0 0/5 ? * * *)' is not one of the app's cadences"),
    ],
)
def test_watchdog_reports_a_schedule_that_stopped_running(sagemaker, response: dict, overdue: bool, reason: str) -> None:
    client, stubber = sagemaker
    stubber.add_response("describe_monitoring_schedule", response, {"MonitoringScheduleName": DQ})
    health = schedule_health(client, DQ, aws_facts.MONITORING_CADENCES, NOW)
    assert health.overdue is overdue and health.reason.startswith(reason)


def test_watchdog_handler_emits_one_data_point_per_schedule(sagemaker, monkeypatch, capsys) -> None:
    client, stubber = sagemaker
    monkeypatch.setenv("SCHEDULES", json.dumps(SCHEDULES))
    monkeypatch.setenv("EVENT_SOURCE", "mlloop.monitoring")
    monkeypatch.setenv("CADENCES", json.dumps(aws_facts.MONITORING_CADENCES))
    monkeypatch.setenv("BACKEND", "sagemaker")
    monkeypatch.setattr(handler.aws, "client", lambda service: client)
    handler.settings.cache_clear()
    handler.cadences.cache_clear()
    handler.backend.cache_clear()
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    stubber.add_response("describe_monitoring_schedule", described(last=recent), {"MonitoringScheduleName": DQ})
    stubber.add_response("describe_monitoring_schedule", described(status="Stopped", last=recent), {"MonitoringScheduleName": EX})
    report = handler.watchdog({}, LambdaContext())
    handler.settings.cache_clear()
    assert report[DQ]["overdue"] is False and report[EX]["overdue"] is True
    points = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = {p["Schedule"]: p["MonitoringScheduleOverdue"] for p in points}
    assert values == {DQ: [0.0], EX: [1.0]}
    assert all(p["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MlLoopTest" for p in points)


# --- watchdog, open back end (EventBridge Scheduler schedules and the evaluations' run markers) --

MARKER = f"data-quality/reports/mlloop-dev/{DQ}/latest.json"


def scheduler_described(state: str = "ENABLED", expression: str = "cron(20 * ? * * *)", created: dt.datetime = NOW - dt.timedelta(days=30)) -> dict:
    return {
        "Arn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{DQ}", "Name": DQ, "GroupName": "default",
        "State": state, "ScheduleExpression": expression, "CreationDate": created, "LastModificationDate": created,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f", "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/r"},
    }  # fmt: skip


def _open_clients(described_: dict, marker: dt.datetime | str | None):
    """Stubbed Scheduler and S3 clients: GetSchedule, then (if ENABLED with a known expression) the marker's HEAD:
    a time (it exists), "missing" (404), "denied-unlisted" / "denied-listed" (403, then the listing)."""
    scheduler = boto3.client("scheduler", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    scheduler_stub, s3_stub = Stubber(scheduler), Stubber(s3)
    scheduler_stub.add_response("get_schedule", described_, {"Name": DQ})
    head = {"Bucket": BUCKET, "Key": MARKER}
    if isinstance(marker, dt.datetime):
        s3_stub.add_response("head_object", {"LastModified": marker, "ContentLength": 100}, head)
    elif marker == "missing":
        s3_stub.add_client_error("head_object", service_error_code="404", service_message="Not Found", http_status_code=404, expected_params=head)
    elif marker in ("denied-unlisted", "denied-listed"):
        s3_stub.add_client_error("head_object", service_error_code="403", service_message="Forbidden", http_status_code=403, expected_params=head)
        listing = {"Contents": [{"Key": MARKER, "Size": 100}], "KeyCount": 1} if marker == "denied-listed" else {"KeyCount": 0}
        s3_stub.add_response("list_objects_v2", listing, {"Bucket": BUCKET, "Prefix": MARKER, "MaxKeys": 1})
    scheduler_stub.activate()
    s3_stub.activate()
    return scheduler, s3, (scheduler_stub, s3_stub)


@pytest.mark.parametrize(
    ("described_", "marker", "overdue", "reason"),
    [
        (scheduler_described(), NOW - dt.timedelta(minutes=40), False, "last evaluation 0:40:00 ago"),
        (scheduler_described(), NOW - dt.timedelta(hours=2, minutes=19), False, "last evaluation 2:19:00 ago"),  # two cadences plus the delay
        (scheduler_described(), NOW - dt.timedelta(hours=2, minutes=21), True, "last evaluation 2:21:00 ago (limit 2:20:00, cron(20 * ? * * *))"),
        (scheduler_described(expression="cron(20 0 ? * * *)"), NOW - dt.timedelta(hours=40), False, "last evaluation 1 day"),
        (scheduler_described(expression="cron(20 0 ? * * *)"), NOW - dt.timedelta(days=3), True, "last evaluation 3 days"),
        (scheduler_described(created=NOW - dt.timedelta(minutes=90)), "missing", False, "schedule created, no evaluation yet, 1:30:00 ago"),
        (scheduler_described(created=NOW - dt.timedelta(hours=5)), "missing", True, "schedule created, no evaluation yet, 5:00:00 ago"),
        (scheduler_described(created=NOW - dt.timedelta(hours=1)), "denied-unlisted", False, "schedule created, no evaluation yet"),
        (scheduler_described(), "denied-listed", True, f"cannot read the run marker s3://{BUCKET}/{MARKER}: 403"),
        (scheduler_described(state="DISABLED"), None, True, "schedule is DISABLED"),
        # A Model Monitor expression (minute 0) is not what the app's open schedules use.
        (scheduler_described(expression=HOURLY), None, True, "schedule expression 'cron(0 * ? * * *)' is not one of the app's cadences"),
    ],
)
def test_open_watchdog_reports_a_disabled_schedule_or_a_stale_run_marker(described_, marker, overdue: bool, reason: str) -> None:
    scheduler, s3, stubs = _open_clients(described_, marker)
    health = runs.open_schedule_health(scheduler, s3, schedule=DQ, bucket=BUCKET, marker_key=MARKER, cadences=aws_facts.MONITORING_CADENCES, now=NOW)
    for stub in stubs:
        stub.assert_no_pending_responses()
    assert health.overdue is overdue and health.reason.startswith(reason), health.reason


def test_open_schedule_expressions_are_the_cadences_at_minute_20() -> None:
    expressions = {cadence: runs.evaluation_expression(cadence) for cadence in aws_facts.MONITORING_CADENCES}
    assert expressions["cron(0 * ? * * *)"] == "cron(20 * ? * * *)"
    assert expressions["cron(0 0/6 ? * * *)"] == "cron(20 0/6 ? * * *)"
    assert expressions["cron(0 0 ? * * *)"] == "cron(20 0 ? * * *)"
    assert len(set(expressions.values())) == len(expressions)
    with pytest.raises(ValueError, match="does not start with"):
        runs.evaluation_expression("rate(1 hour)")


def test_open_watchdog_handler_on_moto_scheduler_and_s3(mocked_aws, monkeypatch, capsys) -> None:
    """End to end: two schedules as the stack creates them, one ENABLED with a fresh run marker, one DISABLED."""
    scheduler = boto3.client("scheduler", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    target = {"Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f", "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/r"}
    scheduler.create_schedule(Name=DQ, ScheduleExpression="cron(20 * ? * * *)", FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
    scheduler.create_schedule(Name=EX, ScheduleExpression="cron(20 0 ? * * *)", FlexibleTimeWindow={"Mode": "OFF"}, Target=target, State="DISABLED")
    s3.put_object(Bucket=BUCKET, Key=MARKER, Body=b"{}")
    for name, value in {
        "SCHEDULES": json.dumps(SCHEDULES), "EVENT_SOURCE": "mlloop.monitoring", "CADENCES": json.dumps(aws_facts.MONITORING_CADENCES),
        "BACKEND": "open", "MONITORING_BUCKET": BUCKET,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    for cached in (handler.settings, handler.cadences, handler.backend):
        cached.cache_clear()
    try:
        report = handler.watchdog({}, LambdaContext())
    finally:
        for cached in (handler.settings, handler.cadences, handler.backend):
            cached.cache_clear()
    assert report[DQ]["overdue"] is False and report[DQ]["reason"].startswith("last evaluation")
    assert report[EX] == {"overdue": True, "reason": "schedule is DISABLED"}
    points = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert {p["Schedule"]: p["MonitoringScheduleOverdue"] for p in points} == {DQ: [0.0], EX: [1.0]}


def test_the_watchdog_refuses_an_unknown_backend(monkeypatch) -> None:
    monkeypatch.setenv("BACKEND", "clarify")
    handler.backend.cache_clear()
    try:
        with pytest.raises(Exception, match="BACKEND 'clarify' is not open or sagemaker"):
            handler.backend()
    finally:
        handler.backend.cache_clear()
