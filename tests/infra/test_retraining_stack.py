"""The retraining stack: trigger rules match the events the other stacks and AWS emit, the state
machine's tasks all time out, retry and catch, and IAM is scoped to this app's names."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template
from moto.events.models import EventPattern

from stacks.compliance import flatten_reference, wildcard_findings
from tests.conftest import build_app


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("retraining")


def definition(built) -> dict:
    template = built.template_json("retraining")
    [machine] = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1]))


def all_states(states: dict) -> dict:
    found = {}
    for name, state in states.items():
        found[name] = state
        for branch in state.get("Branches", []):
            found.update(all_states(branch["States"]))
    return found


def matches(pattern: dict, event: dict) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def aws_event(source: str, detail_type: str, detail: dict, resources: list | None = None) -> dict:
    return {"version": "0", "id": "1", "source": source, "detail-type": detail_type, "account": "123456789012", "time": "2026-11-22T10:00:00Z", "region": "eu-west-1", "resources": resources or [], "detail": detail}


def test_drift_alarm_rule_matches_our_drift_alarms_entering_alarm_only(dev_app) -> None:
    pattern = dev_app.retraining.patterns["DriftAlarm"]
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html (sample event)
    alarm = aws_event("aws.cloudwatch", "CloudWatch Alarm State Change", {
        "alarmName": "mlloop-dev-drift-mean_radius",
        "state": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": "2026-11-22T10:00:00.000+0000"},
        "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-22T09:00:00.000+0000"},
        "configuration": {"metrics": []},
    }, ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:mlloop-dev-drift-mean_radius"])  # fmt: skip
    assert matches(pattern, alarm)
    assert not matches(pattern, {**alarm, "detail": {**alarm["detail"], "state": {"value": "OK"}}})
    assert not matches(pattern, {**alarm, "detail": {**alarm["detail"], "alarmName": "mlloop-dev-deployment-errors"}})
    # Every drift alarm of the monitoring stack carries the prefix the rule matches.
    names = [a["Properties"]["AlarmName"] for a in dev_app.template("monitoring").find_resources("AWS::CloudWatch::Alarm").values() if a["Properties"]["AlarmDescription"].startswith("Data drift")]
    assert len(names) == 30 and all(n.startswith(dev_app.monitoring.data_quality.drift_alarm_prefix) for n in names)


def test_violations_rule_matches_monitoring_run_ended_with_the_configured_checks(dev_app) -> None:
    pattern = dev_app.retraining.patterns["Violations"]
    detail = {"version": "1", "monitor": "data-quality", "outcome": "CompletedWithViolations", "checkTypes": ["baseline_drift_check", "data_type_check"], "violationCount": 3}
    assert matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", detail))
    assert not matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", {**detail, "checkTypes": ["data_type_check"]}))
    assert not matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", {**detail, "outcome": "Completed", "checkTypes": []}))
    assert pattern["source"] == [dev_app.monitoring.events.event_source]


def test_labels_rule_is_the_review_stacks_own_pattern(dev_app) -> None:
    pattern = dev_app.retraining.patterns["Labels"]
    event = aws_event("mlloop.review", "Labels Available", {"humanLoopName": "mlloop-dev-x", "labelCount": 2, "unusedCount": 0, "trainingRowsS3Uri": "s3://l/training-rows/x.csv"})
    assert matches(pattern, event) and pattern == dev_app.review.pipeline.labels_available_pattern


def test_execution_ended_rule_matches_only_this_state_machine_ending(dev_app, template: Template) -> None:
    [rule] = [r for r in template.find_resources("AWS::Events::Rule").values() if r["Properties"].get("EventPattern", {}).get("source") == ["aws.states"]]
    pattern = rule["Properties"]["EventPattern"]
    arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:mlloop-dev-retraining"
    pattern = json.loads(json.dumps(pattern).replace(json.dumps(pattern["detail"]["stateMachineArn"][0]), json.dumps(arn)))
    # https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html (execution status change sample)
    event = aws_event("aws.states", "Step Functions Execution Status Change", {"executionArn": f"{arn.replace('stateMachine', 'execution')}:x", "stateMachineArn": arn, "name": "x", "status": "SUCCEEDED", "output": "{}"})
    assert matches(pattern, event)
    assert not matches(pattern, {**event, "detail": {**event["detail"], "status": "RUNNING"}})
    assert not matches(pattern, {**event, "detail": {**event["detail"], "stateMachineArn": arn + "-other"}})


def test_every_trigger_goes_to_one_fifo_queue_group(template: Template) -> None:
    rules = template.find_resources("AWS::Events::Rule")
    assert len(rules) == 5  # requested, execution ended, drift alarm, violations, labels (no schedule by default)
    for rule in rules.values():
        [target] = rule["Properties"]["Targets"]
        assert target["SqsParameters"] == {"MessageGroupId": "all"} and "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 185
    template.has_resource_properties("AWS::SQS::Queue", {"FifoQueue": True, "ContentBasedDeduplication": True, "KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"BatchSize": 1, "FunctionResponseTypes": ["ReportBatchItemFailures"]})


def test_every_task_times_out_retries_and_is_caught(dev_app) -> None:
    states = all_states(definition(dev_app)["States"])
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert {"Assemble", "Train", "Evaluate", "CreateModel", "Baselines", "DataQualityBaseline", "ExplainabilityBaseline", "Deploy", "CheckEndpoint", "Promote"} <= set(tasks)
    for name, task in tasks.items():
        assert task.get("TimeoutSeconds"), name
        if name.startswith("Notify"):
            continue  # the notifications are what the catches lead to
        assert task.get("Retry"), name
        if not name.endswith("Baseline"):  # branches: the Parallel state catches
            assert any(c["ErrorEquals"] == ["States.ALL"] and c["Next"] == "NotifyFailure" for c in task["Catch"]), name
    assert states["BaselineJobs"]["Catch"][0]["Next"] == "NotifyFailure"
    assert tasks["Train"]["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
    assert tasks["DataQualityBaseline"]["Resource"].endswith(":states:::sagemaker:createProcessingJob.sync")
    throttling = tasks["Train"]["Retry"][0]["ErrorEquals"]
    assert "SageMaker.ThrottlingException" in throttling
    assert "Lambda.TooManyRequestsException" in tasks["Assemble"]["Retry"][0]["ErrorEquals"]


def test_state_machine_logs_everything_encrypted_with_tracing(template: Template) -> None:
    template.has_resource_properties("AWS::StepFunctions::StateMachine", {
        "StateMachineName": "mlloop-dev-retraining",
        "StateMachineType": "STANDARD",
        "TracingConfiguration": {"Enabled": True},
        "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": True, "Destinations": Match.any_value()},
    })  # fmt: skip
    template.has_resource_properties("AWS::Logs::LogGroup", {"LogGroupName": "/aws/vendedlogs/states/mlloop-dev-retraining", "KmsKeyId": Match.any_value(), "RetentionInDays": 30})


def test_state_machine_may_pass_only_the_sagemaker_roles_and_touch_only_app_names(dev_app, template: Template) -> None:
    role = dev_app.retraining.state_machine.role
    policy = dev_app.retraining.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    [passing] = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert len(passing["Resource"]) == 4  # training role, the model's execution role, the two monitors' roles
    assert "*" not in json.dumps(passing["Resource"])
    sagemaker = [s for s in statements if any(a.startswith("sagemaker:") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
    for statement in sagemaker:
        for resource in statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]:
            assert flatten_reference(resource).endswith("/mlloop-dev-*"), resource
    # The only wildcards: the app-prefixed SageMaker names, the steps function's versions (aws-cdk-lib's
    # LambdaInvoke grant) and what aws-cdk-lib grants for X-Ray and log delivery.
    findings = wildcard_findings(statements)
    assert all(f.endswith("/mlloop-dev-*") or f in ("Resource::*", "Resource::<StepsFunction23E0B919.Arn>:*") for f in findings), findings
    star = sorted(a for s in statements if s["Resource"] == "*" for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    assert all(a.startswith(("xray:", "logs:")) for a in star), star


def test_steps_may_update_only_this_endpoint(dev_app, template: Template) -> None:
    policy = dev_app.retraining.get_logical_id(dev_app.retraining.steps.role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    update = [flatten_reference(r) for s in statements if "sagemaker:UpdateEndpoint" in s["Action"] for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert any(r.endswith(":endpoint/mlloop-dev") for r in update) and all(r.endswith((":endpoint/mlloop-dev", ":endpoint-config/mlloop-dev-*")) for r in update)


def test_deployment_rolls_back_on_the_endpoints_errors(dev_app, template: Template) -> None:
    template.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": "mlloop-dev-deployment-errors", "MetricName": "Invocation5XXErrors", "Namespace": "AWS/SageMaker"})
    environment = dev_app.retraining.steps.function.node.default_child
    config = json.loads(dev_app.template_json("retraining")["Resources"][dev_app.retraining.get_logical_id(environment)]["Properties"]["Environment"]["Variables"]["DEPLOYMENT_CONFIG"])
    assert config["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "mlloop-dev-deployment-errors"}]}
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}


def test_manual_approval_and_schedule_switches(tmp_path, dev_app) -> None:
    environment = json.loads(json.dumps(dev_app.app.node.try_get_context("environments")["dev"]))
    environment["retraining"] = {"manual_approval": True, "approval_timeout_hours": 6, "schedule": "rate(7 days)"}
    built = build_app(tmp_path, environment=environment)
    built.app.synth()
    states = all_states(definition(built)["States"])
    approve = states["Approve"]
    assert approve["Resource"].endswith(":states:::sns:publish.waitForTaskToken") and approve["TimeoutSeconds"] == 6 * 3600
    assert {c["Next"] for c in approve["Catch"]} == {"ApprovalWithheld", "NotifyFailure"}
    assert "Approve" not in all_states(definition(dev_app)["States"])
    scheduled = [r for r in built.template("retraining").find_resources("AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]]
    assert [r["Properties"]["ScheduleExpression"] for r in scheduled] == ["rate(7 days)"]


def test_turning_retraining_off_removes_exactly_its_stack(tmp_path, dev_app) -> None:
    environment = json.loads(json.dumps(dev_app.app.node.try_get_context("environments")["dev"]))
    environment["retraining"] = {"enabled": False}
    built = build_app(tmp_path, environment=environment)
    built.app.synth()
    assert built.retraining is None
    assert {s.node.id for s in built.app.node.children if hasattr(s, "template_options")} == {"Storage", "Serving", "Monitoring", "Review", "Operations"}
    serving = built.template("serving").to_json()
    assert "/retraining/*" not in json.dumps(serving)
