"""Every EventBridge rule that delivers to one of the app's (SSE-KMS) queues has an alarm on the
events it could deliver neither to the queue nor to the dead-letter queue: such a failure (a key
policy that refuses EventBridge, say) otherwise loses the events without a trace."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.shared import aws_facts
from tests.conftest import SynthesisedApp

STACKS = ("storage", "serving", "monitoring", "review", "retraining", "operations")


def _queue_rules(template: dict[str, Any]) -> list[str]:
    resources = template["Resources"]
    queues = {name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    return [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::Events::Rule"
        and any(t["Arn"].get("Fn::GetAtt", [None])[0] in queues for t in r["Properties"].get("Targets", []) if isinstance(t["Arn"], dict))
    ]


def _watched_rules(template: dict[str, Any]) -> dict[str, set[str]]:
    """{rule logical ID: AWS/Events metric names an alarm with actions watches for it}."""
    watched: dict[str, set[str]] = {}
    for alarm in (r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        if not alarm["Properties"].get("AlarmActions"):
            continue
        for query in alarm["Properties"].get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") != aws_facts.EVENTS_METRICS_NAMESPACE:
                continue
            for dimension in metric.get("Dimensions", []):
                if dimension["Name"] == "RuleName" and "Ref" in dimension["Value"]:
                    watched.setdefault(dimension["Value"]["Ref"], set()).add(metric["MetricName"])
    return watched


@pytest.mark.parametrize("fixture", ["dev_app", "prod_app"])
def test_every_rule_into_a_queue_alarms_on_lost_deliveries(fixture: str, request: pytest.FixtureRequest) -> None:
    built: SynthesisedApp = request.getfixturevalue(fixture)
    checked = 0
    for stack in STACKS:
        if getattr(built, stack if stack != "operations" else "operations") is None:
            continue
        template = built.template_json(stack)
        watched = _watched_rules(template)
        for rule in _queue_rules(template):
            assert watched.get(rule) == set(aws_facts.EVENTS_DELIVERY_FAILURE_METRICS), f"{stack}: rule {rule} has no delivery-failure alarm"
            checked += 1
    # capture objects, monitoring runs (sagemaker back end only), review results, retraining triggers
    assert checked >= 4
