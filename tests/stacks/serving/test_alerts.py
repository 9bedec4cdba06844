"""Alerts reach the topic only from this app, in a message EventBridge can render, and are kept when
they cannot be delivered; monitoring_runs can tell a clean run from a denied read."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from stacks.shared.compliance import flatten_reference
from stacks.monitoring.events import ALERT_FIELDS
from tests.stacks.monitoring.conftest import sagemaker_app  # noqa: F401 (the fixture: monitoring_runs is the SageMaker back end's)

SCOPING_KEYS = {"aws:SourceAccount", "aws:SourceArn"}


def _statements(node: Any):
    """Every policy statement anywhere in a template (key policies, topic and queue policies, roles)."""
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list):
            yield from node["Statement"]
        for value in node.values():
            yield from _statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from _statements(value)


def _services(statement: dict) -> list[str]:
    services = (statement.get("Principal") or {}).get("Service", []) if isinstance(statement.get("Principal"), dict) else []
    return services if isinstance(services, list) else [services]


def _actions(statement: dict) -> list[str]:
    actions = statement.get("Action", [])
    return actions if isinstance(actions, list) else [actions]


@pytest.mark.parametrize("stack", ["storage", "serving", "monitoring", "review", "retraining"])
def test_no_policy_lets_eventbridge_act_for_another_account(dev_app, stack: str) -> None:
    """EventBridge (events.amazonaws.com) is allowed nothing (publish, key use, send) unless the
    statement names this account or one of its rules: otherwise any account's rule could use it."""
    template = dev_app.template_json(stack)
    unscoped = [
        statement
        for statement in _statements(template["Resources"])
        if statement.get("Effect") == "Allow"
        and "events.amazonaws.com" in _services(statement)
        and _actions(statement) != ["sts:AssumeRole"]  # a role's trust policy: the role is ours
        and not SCOPING_KEYS & {key for condition in (statement.get("Condition") or {}).values() for key in condition}
    ]
    assert unscoped == []


def test_the_alert_topic_and_key_grant_eventbridge_nothing(dev_app) -> None:
    serving, storage = dev_app.template_json("serving"), dev_app.template_json("storage")
    [topic_policy] = [r for r in serving["Resources"].values() if r["Type"] == "AWS::SNS::TopicPolicy"]
    assert [s for s in topic_policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"] == []
    [key] = [r for r in storage["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        if "events.amazonaws.com" in _services(statement):
            assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


@pytest.fixture(scope="module")
def alert_target(dev_app) -> dict:
    resources = dev_app.template_json("monitoring")["Resources"]
    rule_id = dev_app.monitoring.get_logical_id(dev_app.monitoring.events.alert_rule.node.default_child)
    [target] = resources[rule_id]["Properties"]["Targets"]
    return target


def test_alerts_are_published_with_the_rules_own_role(dev_app, alert_target: dict) -> None:
    monitoring = dev_app.monitoring
    resources = dev_app.template_json("monitoring")["Resources"]
    role = monitoring.events.alert_rule.node.find_child("EventsRole")
    assert alert_target["RoleArn"] == {"Fn::GetAtt": [monitoring.get_logical_id(role.node.default_child), "Arn"]}
    policy = resources[monitoring.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(a for s in statements for a in _actions(s)) == ["kms:Decrypt", "kms:GenerateDataKey*", "sns:Publish"]
    assert all("*" not in flatten_reference(s["Resource"]) for s in statements)


def test_undeliverable_alerts_are_kept_on_an_alarmed_queue(dev_app, alert_target: dict) -> None:
    monitoring = dev_app.monitoring
    resources = dev_app.template_json("monitoring")["Resources"]
    queue_id = monitoring.get_logical_id(monitoring.events.undelivered_alerts.node.default_child)
    assert alert_target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert alert_target["RetryPolicy"]["MaximumRetryAttempts"] == 185
    alarms = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Dimensions") == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    ]
    assert len(alarms) == 1 and alarms[0]["Threshold"] == 1 and alarms[0]["AlarmActions"]


def _render(template: str, paths: dict[str, str], event: dict) -> str:
    """What EventBridge does with a JSON input template: each <variable> becomes its value as JSON."""

    def value(match: re.Match) -> str:
        node: Any = event
        for part in paths[match.group(1)].removeprefix("$.").split("."):
            node = node[part]
        return json.dumps(node)

    return re.sub(r"<([A-Za-z0-9_.-]+)>", value, template)


def test_the_alert_message_is_json_with_every_field_a_whole_value(alert_target: dict) -> None:
    transformer = alert_target["InputTransformer"]
    template, paths = transformer["InputTemplate"], transformer["InputPathsMap"]
    # No placeholder inside a quoted string: EventBridge inserts values there unescaped, so an
    # array (checkTypes, features) or a quote in a failure reason would break the message.
    placeholders = re.findall(r"<[^>]+>", template)
    assert len(placeholders) == len(ALERT_FIELDS)
    assert all(re.search(rf':{re.escape(p)}[,}}]', template) for p in placeholders)
    detail = {
        "monitor": "data-quality", "endpointName": "mlloop-dev", "processingJobName": "model-monitoring-202611221000-0123",
        "outcome": "CompletedWithViolations", "violationCount": 2, "checkTypes": ["baseline_drift_check", "data_type_check"],
        "features": ["mean_radius"], "failureReason": 'ClientError: "quoted"', "reportS3Uri": "s3://b/data-quality/reports/x",
        "reportHtmlS3Uri": "s3://b/data-quality/reports/x/report.html",
    }  # fmt: skip
    message = json.loads(_render(template, paths, {"detail": detail}))
    assert {name: message[name] for name in ALERT_FIELDS} == detail
    assert message["alert"].startswith("A monitoring run")


def test_monitoring_runs_can_list_only_the_report_prefixes(sagemaker_app) -> None:
    """Without s3:ListBucket a missing constraint_violations.json is a 403, not a 404."""
    dev_app = sagemaker_app
    monitoring = dev_app.monitoring
    resources = dev_app.template_json("monitoring")["Resources"]
    policy = resources[monitoring.get_logical_id(monitoring.events.runs.role.node.find_child("DefaultPolicy").node.default_child)]
    [listing] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "s3:ListBucket" in _actions(s)]
    assert listing["Resource"] == monitoring.resolve(dev_app.storage.buckets["monitoring"].bucket_arn)
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["data-quality/reports/*", "explainability/reports/*"]}}


def test_run_finished_knows_our_runs_by_schedule_arn_or_by_their_report_folder(sagemaker_app) -> None:
    """Whether the processing-job event carries MonitoringScheduleArn is unverified: a run of ours
    is also matched by its report under our monitors' output prefixes."""
    dev_app = sagemaker_app
    monitoring = dev_app.monitoring
    rule = dev_app.template_json("monitoring")["Resources"][monitoring.get_logical_id(monitoring.events.run_finished.node.default_child)]
    detail = rule["Properties"]["EventPattern"]["detail"]
    by_arn, by_report = detail["$or"]
    assert len(by_arn["MonitoringScheduleArn"]) == 2
    uris = [flatten_reference(p["prefix"]) for p in by_report["ProcessingOutputConfig"]["Outputs"]["S3Output"]["S3Uri"]]
    assert [u.split("/", 3)[3] for u in uris] == ["data-quality/reports/", "explainability/reports/"]
    assert detail["ProcessingJobStatus"] == ["Completed", "Failed", "Stopped"]
