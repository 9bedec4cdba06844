"""Trigger decisions on moto (DynamoDB, Step Functions, S3): one run at a time (a lock item, not
ListExecutions), nothing lost, labels counted once per review loop, a stuck alarm or repeated
violations do not start a run each time, and drift starts one only with the same evidence in
consecutive periods (``drift_consecutive_periods``; the fixture's 1 is the rule without it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import boto3
import pytest

from lambdas.retraining import handler, triggers
from tests.lambdas.aws_env import ACCOUNT, REGION, drain, sqs_event

NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
SOURCES = {"retraining": "mlloop.retraining", "monitoring": "mlloop.monitoring", "review": "mlloop.review"}


@pytest.fixture
def loop(mocked_aws):
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="state",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name="mlloop-dev-retraining", definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}), roleArn=f"arn:aws:iam::{ACCOUNT}:role/x"
    )["stateMachineArn"]
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in ("labels", "datasets"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    settings = triggers.TriggerSettings(
        table="state", state_machine_arn=arn, labels_bucket="labels", label_threshold=5, check_types=("baseline_drift_check",), cooldown=dt.timedelta(hours=24), sources=SOURCES,
        drift_consecutive_periods=1,
    )
    clients = {"dynamodb": dynamodb, "stepfunctions": sfn, "s3": s3}
    return clients, settings


def event(source: str, detail_type: str, detail: dict, *, id: str = "e-1", time: str = "2026-11-22T10:00:00Z", **extra) -> dict:
    return {"id": id, "time": time, "source": source, "detail-type": detail_type, "detail": detail, "resources": [], **extra}


def alarm(id: str = "a-1", time: str = "2026-11-22T10:00:00Z", feature: str = "mean_radius") -> dict:
    """A drift alarm entering ALARM, as CloudWatch sends it (its metric and dimensions under configuration)."""
    metric = {"name": f"feature_baseline_drift_significant_{feature}", "namespace": "MlLoop", "dimensions": {"Endpoint": "mlloop-dev", "MonitoringSchedule": SCHEDULE}}
    detail = {"alarmName": f"mlloop-dev-drift-{feature}", "configuration": {"metrics": [{"id": "m1", "metricStat": {"metric": metric, "period": 3600, "stat": "Maximum"}, "returnData": True}]}, "state": {"value": "ALARM", "reason": "x"}}
    return event("aws.cloudwatch", "CloudWatch Alarm State Change", detail, id=id, time=time)


SCHEDULE = "mlloop-dev-data-quality"


def run_ended(hour: int, *features: str, check: str = "baseline_drift_check", id: str | None = None, schedule: str = SCHEDULE, day: int = 22) -> dict:
    """The open data-quality run of the period ending at ``hour`` (its report folder names it), with
    a violation of ``check`` per feature (none: a clean run)."""
    folder = f"2026/11/{day:02}/{hour:02}"
    violations = [{"checkType": check, "feature": f, "label": None, "description": "…"} for f in features]
    detail = {
        "version": "1", "monitor": "data-quality", "scheduleName": schedule, "endpointName": "mlloop-dev",
        "processingJobName": f"{schedule}-202611{day:02}{hour:02}", "outcome": "CompletedWithViolations" if features else "Completed",
        "reportS3Uri": f"s3://monitoring/data-quality/reports/mlloop-dev/{schedule}/{folder}", "violationCount": len(violations),
        "checkTypes": [check] if features else [], "features": sorted(features), "violations": violations, "endedAt": f"2026-11-{day:02}T{hour:02}:20:05Z",
    }  # fmt: skip
    return event("mlloop.monitoring", "Monitoring Run Ended", detail, id=id or f"run-{day}-{hour}", time=f"2026-11-{day:02}T{hour:02}:20:06Z")


def quality_run(outcome: str = "CompletedWithViolations") -> dict:
    detail = {
        "version": "1", "monitor": "model-quality", "scheduleName": "mlloop-dev-model-quality", "endpointName": "mlloop-dev",
        "processingJobName": "mlloop-dev-model-quality-2026112200", "outcome": outcome, "checkTypes": ["LessThanThreshold"] if outcome != "Completed" else [],
        "features": [], "violations": [{"checkType": "LessThanThreshold", "feature": None, "label": None, "description": "accuracy 0.81 below 0.90"}],
    }  # fmt: skip
    return event("mlloop.monitoring", "Monitoring Run Ended", detail, id="q-1")


def at(hour: int, day: int = 22) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, 21, tzinfo=dt.UTC)


def labels(id: str) -> dict:
    return event("mlloop.review", "Labels Available", {"humanLoopName": f"loop-{id}", "labelCount": 2}, id=id)


def ended(settings, execution_arn: str, status: str, output: dict | None = None) -> dict:
    detail = {"executionArn": execution_arn, "stateMachineArn": settings.state_machine_arn, "name": execution_arn.rsplit(":", 1)[1], "status": status}
    if output is not None:
        detail["output"] = json.dumps(output)
    return event("aws.states", "Step Functions Execution Status Change", detail, id=f"end-{status}")


def receive(clients, settings, raw: dict, now: dt.datetime = NOW) -> dict:
    """What the handler does with one message (without the SQS wrapper)."""
    item = triggers.classify(raw, settings)
    if isinstance(item, triggers.Trigger):
        triggers.TriggerState(clients["dynamodb"], settings.table).record(item, now)
        return triggers.decide(clients, settings, now)
    return triggers.execution_ended(clients, settings, item, now)


def statuses(clients) -> dict[str, str]:
    items = clients["dynamodb"].query(TableName="state", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "trigger"}})["Items"]
    return {i["sk"]["S"].split("#", 1)[1]: i["status"]["S"] for i in items}


def running(clients, settings) -> list[str]:
    return [e["executionArn"] for e in clients["stepfunctions"].list_executions(stateMachineArn=settings.state_machine_arn, statusFilter="RUNNING")["executions"]]


class Lagging:
    """Step Functions whose ListExecutions answers as AWS documents it may ("eventually consistent"):
    not yet listing the run started a moment ago. Every other call is moto's."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def list_executions(self, **kwargs) -> dict:
        return {"executions": []}


def trained_on(clients, name: str, *keys: str) -> str:
    """A finished training's dataset manifest naming the label objects it used; returns its URI."""
    manifest = {"labelObjects": [{"key": key, "etag": "x", "lastModified": "2026-11-22T09:00:00+00:00"} for key in keys]}
    clients["s3"].put_object(Bucket="datasets", Key=f"retraining/{name}/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://datasets/retraining/{name}/manifest.json"


def lock(clients) -> dict | None:
    return triggers.TriggerState(clients["dynamodb"], "state").lock()


def test_a_drift_alarm_starts_one_run_with_the_trigger_as_input(loop) -> None:
    clients, settings = loop
    outcome = receive(clients, settings, alarm())
    assert outcome["decision"] == "started" and outcome["reasons"] == ["drift-alarm"]
    [arn] = running(clients, settings)
    execution = clients["stepfunctions"].describe_execution(executionArn=arn)
    body = json.loads(execution["input"])
    assert body["triggers"][0]["kind"] == "drift-alarm" and body["triggers"][0]["alarmName"] == "mlloop-dev-drift-mean_radius"
    assert len(execution["name"]) == 22 and execution["name"].startswith("20261122-100000-")
    assert statuses(clients) == {"a-1": "started"}


def test_triggers_during_a_run_wait_and_are_considered_when_it_ends(loop) -> None:
    clients, settings = loop
    first = receive(clients, settings, event("mlloop.retraining", "Retraining Requested", {"reason": "test"}, id="m-1"))
    later = receive(clients, settings, event("mlloop.retraining", "Retraining Requested", {"reason": "again"}, id="m-2", time="2026-11-22T10:05:00Z"))
    assert later == {"decision": "wait", "running": first["executionArn"], "pending": 1}
    assert len(running(clients, settings)) == 1  # never two at once
    clients["stepfunctions"].stop_execution(executionArn=first["executionArn"])
    # The first run succeeded without promoting: the waiting manual request starts the next run.
    after = receive(clients, settings, ended(settings, first["executionArn"], "SUCCEEDED", {"promoted": False, "labelsThrough": None}))
    assert after["decision"] == "started" and after["executionArn"] != first["executionArn"]
    assert statuses(clients) == {"m-1": "started", "m-2": "started"}


def test_drift_that_arrived_during_a_promoting_run_is_superseded(loop) -> None:
    clients, settings = loop
    first = receive(clients, settings, alarm())
    receive(clients, settings, event("mlloop.monitoring", "Monitoring Run Ended", {"outcome": "CompletedWithViolations", "checkTypes": ["baseline_drift_check"], "monitor": "data-quality"}, id="v-1"))
    clients["stepfunctions"].stop_execution(executionArn=first["executionArn"])
    manifest = trained_on(clients, "run-1")
    outcome = receive(clients, settings, ended(settings, first["executionArn"], "SUCCEEDED", {"promoted": True, "labelsManifest": manifest}))
    assert outcome["decision"] == "none" and statuses(clients)["v-1"] == "superseded"
    assert triggers.TriggerState(clients["dynamodb"], "state").loop_state()["labelsManifest"] == manifest


def test_repeated_drift_within_the_cooldown_starts_nothing_and_is_recorded(loop) -> None:
    clients, settings = loop
    first = receive(clients, settings, alarm())
    clients["stepfunctions"].stop_execution(executionArn=first["executionArn"])
    receive(clients, settings, ended(settings, first["executionArn"], "SUCCEEDED", {"promoted": False}), NOW + dt.timedelta(hours=2))
    again = receive(clients, settings, alarm(id="a-2", time="2026-11-22T13:00:00Z"), NOW + dt.timedelta(hours=3))
    assert again["decision"] == "none" and statuses(clients)["a-2"] == "cooled-down"
    later = receive(clients, settings, alarm(id="a-3", time="2026-11-23T11:00:00Z"), NOW + dt.timedelta(hours=25))
    assert later["decision"] == "started"


def test_a_failed_run_does_not_restart_itself_and_its_waiting_triggers_stay_pending(loop) -> None:
    clients, settings = loop
    first = receive(clients, settings, alarm())
    receive(clients, settings, event("mlloop.retraining", "Retraining Requested", {}, id="m-1"))
    clients["stepfunctions"].stop_execution(executionArn=first["executionArn"])
    outcome = receive(clients, settings, ended(settings, first["executionArn"], "FAILED"))
    assert outcome == {"decision": "held", "status": "FAILED", "pending": 1}
    assert running(clients, settings) == [] and statuses(clients)["m-1"] == "pending"


def test_labels_start_a_run_once_enough_new_rows_exist_since_the_last_training(loop) -> None:
    clients, settings = loop
    s3 = clients["s3"]
    s3.put_object(Bucket="labels", Key="training-rows/loop-1.csv", Body=b"1,1\n0,2\n")
    assert receive(clients, settings, labels("l-1"))["decision"] == "none"
    s3.put_object(Bucket="labels", Key="training-rows/loop-2.csv", Body=b"1,3\n0,4\n1,5\n")
    outcome = receive(clients, settings, labels("l-2"))
    assert outcome["decision"] == "started" and outcome["reasons"] == ["labels"] and outcome["triggers"] == 2
    # The run trained on them: after it, the same objects do not count again.
    clients["stepfunctions"].stop_execution(executionArn=outcome["executionArn"])
    manifest = trained_on(clients, "run-1", "training-rows/loop-1.csv", "training-rows/loop-2.csv")
    receive(clients, settings, ended(settings, outcome["executionArn"], "SUCCEEDED", {"promoted": True, "labelsManifest": manifest}))
    assert receive(clients, settings, labels("l-3"))["decision"] == "none"


def test_a_replayed_review_loop_does_not_count_its_labels_again(loop) -> None:
    clients, settings = loop
    s3 = clients["s3"]
    s3.put_object(Bucket="labels", Key="training-rows/loop-1.csv", Body=b"1,1\n0,2\n1,3\n0,4\n1,5\n")
    first = receive(clients, settings, labels("l-1"))
    assert first["decision"] == "started"
    clients["stepfunctions"].stop_execution(executionArn=first["executionArn"])
    manifest = trained_on(clients, "run-1", "training-rows/loop-1.csv")
    receive(clients, settings, ended(settings, first["executionArn"], "SUCCEEDED", {"promoted": True, "labelsManifest": manifest}))
    # A replayed A2I event rewrites the loop's rows: same key, LastModified after the training.
    s3.put_object(Bucket="labels", Key="training-rows/loop-1.csv", Body=b"1,1\n0,2\n1,3\n0,4\n1,5\n")
    assert triggers.new_label_rows(s3, "labels", triggers.consumed_label_objects(s3, manifest), 5) == 0
    assert receive(clients, settings, labels("l-2"))["decision"] == "none"
    # A new loop's rows count.
    s3.put_object(Bucket="labels", Key="training-rows/loop-2.csv", Body=b"1,6\n0,7\n1,8\n0,9\n1,10\n")
    assert receive(clients, settings, labels("l-3"))["decision"] == "started"


def test_two_labels_triggers_back_to_back_start_exactly_one_run(loop) -> None:
    clients, settings = loop
    clients = {**clients, "stepfunctions": Lagging(clients["stepfunctions"])}
    clients["s3"].put_object(Bucket="labels", Key="training-rows/loop-1.csv", Body=b"1,1\n0,2\n1,3\n0,4\n1,5\n")
    first = receive(clients, settings, labels("l-1"))
    clients["s3"].put_object(Bucket="labels", Key="training-rows/loop-2.csv", Body=b"1,6\n0,7\n1,8\n0,9\n1,10\n")
    second = receive(clients, settings, labels("l-2"))
    assert first["decision"] == "started" and second == {"decision": "wait", "running": first["executionArn"], "pending": 1}
    assert running(loop[0], settings) == [first["executionArn"]]  # moto's own answer: one run
    assert lock(clients)["executionArn"] == first["executionArn"]


def test_the_end_of_the_run_releases_the_lock_and_the_waiting_trigger_starts_the_next(loop) -> None:
    clients, settings = loop
    clients = {**clients, "stepfunctions": Lagging(clients["stepfunctions"])}
    first = receive(clients, settings, event("mlloop.retraining", "Retraining Requested", {}, id="m-1"))
    assert receive(clients, settings, event("mlloop.retraining", "Retraining Requested", {}, id="m-2", time="2026-11-22T10:05:00Z"))["decision"] == "wait"
    clients["stepfunctions"].stop_execution(executionArn=first["executionArn"])
    after = receive(clients, settings, ended(settings, first["executionArn"], "ABORTED"))
    assert after["decision"] == "held" and lock(clients) is None  # released, and a stopped run restarts nothing by itself
    again = receive(clients, settings, event("mlloop.retraining", "Retraining Requested", {}, id="m-3", time="2026-11-22T10:10:00Z"))
    assert again["decision"] == "started" and lock(clients)["executionArn"] == again["executionArn"]
    # An end event of another execution (started by hand) leaves the lock alone.
    receive(clients, settings, ended(settings, first["executionArn"].replace(first["executionArn"].rsplit(":", 1)[1], "by-hand"), "SUCCEEDED", {}))
    assert lock(clients)["executionArn"] == again["executionArn"]


@pytest.mark.parametrize(
    ("age_minutes", "execution", "decision"),
    [
        (5, "never-started", "wait"),  # StartExecution may still be on its way
        (30, "never-started", "started"),  # the start crashed after taking the lock
        (30, "running", "wait"),  # a long run
        (30, "stopped", "started"),  # its end event was lost
    ],
)
def test_a_lock_left_behind_is_recovered_once_its_run_is_not_running(loop, age_minutes, execution, decision) -> None:
    clients, settings = loop
    sfn = clients["stepfunctions"]
    arn = triggers.execution_arn(settings, "20261122-093000-old000")
    if execution != "never-started":
        arn = sfn.start_execution(stateMachineArn=settings.state_machine_arn, name="20261122-093000-old000", input="{}")["executionArn"]
    if execution == "stopped":
        sfn.stop_execution(executionArn=arn)
    state = triggers.TriggerState(clients["dynamodb"], "state")
    assert state.acquire(arn, NOW - dt.timedelta(minutes=age_minutes))
    lagging = {**clients, "stepfunctions": Lagging(sfn)}  # the guard is the lock, not ListExecutions
    outcome = receive(lagging, settings, event("mlloop.retraining", "Retraining Requested", {}, id="m-1"))
    assert outcome["decision"] == decision
    if decision == "started":
        assert outcome["recoveredLock"] == arn and lock(clients)["executionArn"] == outcome["executionArn"] != arn
    else:
        assert outcome["running"] == arn and lock(clients)["executionArn"] == arn and statuses(clients) == {"m-1": "pending"}


def test_a_decision_replayed_after_taking_the_lock_starts_its_run(loop) -> None:
    clients, settings = loop
    state = triggers.TriggerState(clients["dynamodb"], "state")
    trigger = triggers.classify(event("mlloop.retraining", "Retraining Requested", {}, id="m-1"), settings)
    state.record(trigger, NOW)
    # The first try took the lock for exactly these triggers, then crashed before StartExecution.
    arn = triggers.execution_arn(settings, triggers.execution_name(state.pending()))
    assert state.acquire(arn, NOW)
    outcome = triggers.decide(clients, settings, NOW)
    assert outcome["decision"] == "started" and outcome["executionArn"] == arn and running(clients, settings) == [arn]
    assert statuses(clients) == {"m-1": "started"}


def test_a_redelivered_event_is_stored_once_and_starts_nothing_new(loop) -> None:
    clients, settings = loop
    first = receive(clients, settings, alarm())
    again = receive(clients, settings, alarm())
    assert again["decision"] == "wait" and len(running(clients, settings)) == 1 and statuses(clients) == {"a-1": "started"}
    assert first["decision"] == "started"


# Consecutive periods (drift_consecutive_periods = 2, the default).


@pytest.fixture
def consecutive(loop):
    clients, settings = loop
    return clients, dataclasses.replace(settings, drift_consecutive_periods=2)


def recorded_periods(clients, schedule: str = SCHEDULE) -> dict[str, dict]:
    items = clients["dynamodb"].query(TableName="state", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": f"period#{schedule}"}})["Items"]
    return {i["sk"]["S"]: json.loads(i["flagged"]["S"]) for i in items}


def notes(clients) -> dict[str, str]:
    items = clients["dynamodb"].query(TableName="state", KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": "trigger"}})["Items"]
    return {i["sk"]["S"].split("#", 1)[1]: i.get("note", {}).get("S", "") for i in items}


def test_one_flagged_period_is_recorded_and_starts_nothing(consecutive) -> None:
    clients, settings = consecutive
    outcome = receive(clients, settings, run_ended(10, "mean_radius"), at(10))
    assert outcome["decision"] == "none" and running(clients, settings) == []
    assert statuses(clients) == {"run-22-10": "unconfirmed"}
    assert "baseline_drift_check:mean_radius not in 2 consecutive periods of mlloop-dev-data-quality" in notes(clients)["run-22-10"]
    assert recorded_periods(clients) == {"2026/11/22/10": {"baseline_drift_check": ["mean_radius"]}}


def test_the_same_feature_in_two_consecutive_periods_starts_a_run(consecutive) -> None:
    clients, settings = consecutive
    receive(clients, settings, run_ended(10, "mean_radius", "worst_area"), at(10))
    outcome = receive(clients, settings, run_ended(11, "mean_radius"), at(11))
    assert outcome["decision"] == "started" and outcome["reasons"] == ["violations"]
    assert statuses(clients) == {"run-22-10": "unconfirmed", "run-22-11": "started"}
    [arn] = running(clients, settings)
    [trigger] = json.loads(clients["stepfunctions"].describe_execution(executionArn=arn)["input"])["triggers"]
    assert trigger["period"] == "2026/11/22/11" and trigger["flagged"] == {"baseline_drift_check": ["mean_radius"]}


def test_a_period_without_that_drift_in_between_resets_the_count(consecutive) -> None:
    clients, settings = consecutive
    receive(clients, settings, run_ended(10, "mean_radius"), at(10))
    clean = receive(clients, settings, run_ended(11), at(11))  # a clean run: a period, no trigger
    assert clean["decision"] == "none" and statuses(clients) == {"run-22-10": "unconfirmed"}
    # a run that flagged only a check type that starts nothing is a period without drift evidence too
    assert receive(clients, settings, run_ended(12, "mean_radius", check="data_type_check"), at(12))["decision"] == "none"
    assert receive(clients, settings, run_ended(13, "mean_radius"), at(13))["decision"] == "none"
    assert recorded_periods(clients) == {
        "2026/11/22/10": {"baseline_drift_check": ["mean_radius"]}, "2026/11/22/11": {},
        "2026/11/22/12": {"data_type_check": ["mean_radius"]}, "2026/11/22/13": {"baseline_drift_check": ["mean_radius"]},
    }  # fmt: skip
    assert receive(clients, settings, run_ended(14, "mean_radius"), at(14))["decision"] == "started"


def test_different_features_in_consecutive_periods_are_not_the_same_evidence(consecutive) -> None:
    clients, settings = consecutive
    receive(clients, settings, run_ended(10, "mean_radius"), at(10))
    assert receive(clients, settings, run_ended(11, "worst_area"), at(11))["decision"] == "none"
    # nor another schedule's period (another endpoint's monitor)
    assert receive(clients, settings, run_ended(11, "mean_radius", schedule="other-data-quality", id="other-11"), at(11))["decision"] == "none"
    assert running(clients, settings) == [] and set(statuses(clients).values()) == {"unconfirmed"}


def test_with_one_period_a_flagged_period_starts_a_run_at_once(loop) -> None:
    clients, settings = loop  # drift_consecutive_periods = 1
    outcome = receive(clients, settings, run_ended(10, "mean_radius"), at(10))
    assert outcome["decision"] == "started" and outcome["reasons"] == ["violations"]


def test_a_model_quality_violation_starts_a_run_without_waiting_for_another_period(consecutive) -> None:
    clients, settings = consecutive
    outcome = receive(clients, settings, quality_run(), at(1))
    assert outcome["decision"] == "started" and outcome["reasons"] == ["quality"] and statuses(clients) == {"q-1": "started"}
    assert recorded_periods(clients, "mlloop-dev-model-quality") == {}  # no streak for model quality
    with pytest.raises(triggers.InvalidTriggerEvent, match="quality_violations is off"):
        triggers.classify(quality_run(), dataclasses.replace(settings, quality_violations=False))


def test_a_drift_alarm_waits_for_the_next_period_to_confirm_it(consecutive) -> None:
    clients, settings = consecutive
    receive(clients, settings, run_ended(10, "mean_radius"), at(10))
    waiting = receive(clients, settings, alarm(id="a-1", time="2026-11-22T10:22:00Z"), at(10))  # the alarm of period 10
    assert waiting["decision"] == "none" and statuses(clients)["a-1"] == "pending"
    assert triggers.classify(alarm(), settings).summary == {
        "alarmName": "mlloop-dev-drift-mean_radius", "reason": "x", "feature": "mean_radius", "scheduleName": SCHEDULE, "hour": "2026/11/22/10",
    }  # fmt: skip
    outcome = receive(clients, settings, run_ended(11, "mean_radius"), at(11))
    assert outcome["decision"] == "started" and outcome["reasons"] == ["drift-alarm", "violations"]
    assert statuses(clients) == {"run-22-10": "unconfirmed", "a-1": "started", "run-22-11": "started"}


def test_a_drift_alarm_whose_drift_does_not_persist_is_unconfirmed(consecutive) -> None:
    clients, settings = consecutive
    receive(clients, settings, alarm(id="a-1", time="2026-11-22T10:22:00Z"), at(10))  # before its run's event, even
    receive(clients, settings, run_ended(10, "mean_radius"), at(10))
    assert statuses(clients) == {"a-1": "pending", "run-22-10": "unconfirmed"}
    assert receive(clients, settings, run_ended(11, "worst_area"), at(11))["decision"] == "none"
    assert statuses(clients) == {"a-1": "unconfirmed", "run-22-10": "unconfirmed", "run-22-11": "unconfirmed"}
    assert notes(clients)["a-1"] == f"baseline_drift_check:mean_radius not flagged in period 2026/11/22/11 of {SCHEDULE}, after the alarm"


def test_a_period_evaluated_again_with_late_data_can_complete_a_streak(consecutive) -> None:
    clients, settings = consecutive
    receive(clients, settings, run_ended(10), at(10))
    assert receive(clients, settings, run_ended(11, "mean_radius"), at(11))["decision"] == "none"
    # the late sketches of period 10 show the drift: its event again, later, under another ID
    again = run_ended(10, "mean_radius", id="run-22-10-late") | {"time": "2026-11-22T11:20:09Z"}
    assert receive(clients, settings, again, at(11))["decision"] == "started"
    # the first evaluation, redelivered after it, does not overwrite the later one
    receive(clients, settings, run_ended(10, id="run-22-10-redelivered"), at(12))
    assert recorded_periods(clients)["2026/11/22/10"] == {"baseline_drift_check": ["mean_radius"]}


def test_periods_before_a_promotion_are_not_evidence(consecutive) -> None:
    clients, settings = consecutive
    settings = dataclasses.replace(settings, cooldown=dt.timedelta(0))
    receive(clients, settings, run_ended(10, "mean_radius"), at(10))
    started = receive(clients, settings, event("mlloop.retraining", "Retraining Requested", {}, id="m-1", time="2026-11-22T10:30:00Z"), at(10))
    clients["stepfunctions"].stop_execution(executionArn=started["executionArn"])
    receive(clients, settings, ended(settings, started["executionArn"], "SUCCEEDED", {"promoted": True}), at(10) + dt.timedelta(minutes=30))
    # period 10 was compared with the old model's baseline: 10 and 11 are not two periods of evidence
    assert receive(clients, settings, run_ended(11, "mean_radius"), at(11))["decision"] == "none"
    assert receive(clients, settings, run_ended(12, "mean_radius"), at(12))["decision"] == "started"


def test_the_settings_refuse_fewer_than_one_period(loop) -> None:
    _, settings = loop
    with pytest.raises(ValueError, match="at least 1"):
        dataclasses.replace(settings, drift_consecutive_periods=0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"detail": {}}, "not an EventBridge event"),
        (event("aws.cloudwatch", "CloudWatch Alarm State Change", {"alarmName": "x", "state": {"value": "OK"}}), "did not enter ALARM"),
        (quality_run("Completed"), "model-quality run without violations"),
        (event("aws.states", "Step Functions Execution Status Change", {"stateMachineArn": "arn:other", "status": "FAILED"}), "another state machine"),
        (event("someone.else", "Thing", {}), "not a retraining trigger"),
    ],
)
def test_events_we_cannot_act_on_are_invalid(loop, raw, reason) -> None:
    _, settings = loop
    with pytest.raises(triggers.InvalidTriggerEvent, match=reason):
        triggers.classify(raw, settings)


def test_handler_parks_bad_messages_beside_a_good_one(loop, monkeypatch) -> None:
    clients, settings = loop
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dlq.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for name, value in {
        "STATE_TABLE": "state", "STATE_MACHINE_ARN": settings.state_machine_arn, "LABELS_BUCKET": "labels", "LABEL_THRESHOLD": "5",
        "CHECK_TYPES": '["baseline_drift_check"]', "COOLDOWN_HOURS": "24", "EVENT_SOURCES": json.dumps(SOURCES), "DEAD_LETTER_QUEUE_URL": dlq,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    handler.trigger_settings.cache_clear()
    good = event("mlloop.retraining", "Retraining Requested", {"reason": "test"}, id="m-1")
    result = handler.handler(sqs_event("not json", json.dumps(good)), LambdaContext())
    assert result == {"batchItemFailures": []}
    [parked] = drain(dlq)
    assert parked["Body"] == "not json" and "JSONDecodeError" in parked["MessageAttributes"]["reason"]["StringValue"]
    assert len(running(clients, settings)) == 1


class LambdaContext:
    function_name = "retraining-triggers"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:retraining-triggers"
    aws_request_id = "req-1"
