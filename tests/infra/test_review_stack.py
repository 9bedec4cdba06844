"""Human review stack: intent assertions per resource, rule and permission."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from stacks.compliance import flatten_reference, wildcard_findings
from stacks.human_task import template_text
from tests.conftest import build_app


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("review")


def _resources(template: Template, kind: str) -> dict:
    return template.find_resources(kind)


def test_task_ui_is_the_template_file_under_a_content_hashed_name(template: Template) -> None:
    [ui] = _resources(template, "AWS::SageMaker::HumanTaskUi").values()
    assert ui["Properties"]["UiTemplate"]["Content"] == template_text("low_confidence")
    name = ui["Properties"]["HumanTaskUiName"]
    assert name.startswith("mlloop-dev-low-confidence-") and len(name) <= 63


def test_flow_definition_request_carries_the_task_settings_and_kms_output(template: Template) -> None:
    [flow] = _resources(template, "Custom::A2IFlowDefinition").values()
    joined = flow["Properties"]["Request"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else "<ref>" for part in joined)
    assert '"NamePrefix":"mlloop-dev"' in text
    for fragment in ('"TaskCount":1', '"TaskAvailabilityLifetimeInSeconds":86400', '"TaskTimeLimitInSeconds":3600', '"TaskTitle":"Review a model prediction"'):
        assert fragment in text
    assert '"WorkteamArn":"<ref>"' in text and '"KmsKeyId":"<ref>"' in text and "/a2i-output" in text


def test_workteam_is_a_parameter_with_the_api_pattern_and_no_default(template: Template) -> None:
    parameters = template.to_json()["Parameters"]
    assert "Default" not in parameters["WorkteamArn"]
    assert parameters["WorkteamArn"]["AllowedPattern"].startswith("arn:aws[a-z-]*:sagemaker:")
    assert parameters["ReviewLowerThreshold"]["Default"] == 0.1 and parameters["ReviewUpperThreshold"]["Default"] == 0.9
    groups = template.to_json()["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert {g["Label"]["default"] for g in groups} == {"Human review"}


def test_every_queue_is_kms_encrypted_and_every_work_queue_has_an_alarmed_dlq(template: Template) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    assert len(queues) == 7  # three work queues, their three DLQs, the deferred queue
    assert all("KmsMasterKeyId" in q["Properties"] for q in queues.values())
    redriven = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(redriven) == 3 and all(q["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5 for q in redriven)
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 3
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert (props["MetricName"], props["Threshold"], props["ComparisonOperator"]) == (
            "ApproximateNumberOfMessagesVisible", 1, "GreaterThanOrEqualToThreshold")
        assert len(props["AlarmActions"]) == 1


def test_capture_objects_reach_the_capture_queue_through_eventbridge(dev_app, template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [Match.any_value()]}, "object": {"key": [{"prefix": "capture/mlloop-dev/AllTraffic/"}]}},
        },
        "Targets": [Match.object_like({"DeadLetterConfig": Match.any_value()})],
    })
    capture = dev_app.template("storage").to_json()["Resources"][dev_app.storage.get_logical_id(dev_app.storage.capture.node.default_child)]
    assert capture["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


def test_a2i_status_changes_of_our_flow_reach_the_results_queue(template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker A2I HumanLoop Status Change"],
            "detail": {"flowDefinitionArn": [{"Fn::GetAtt": [Match.string_like_regexp("FlowDefinition"), "FlowDefinitionArn"]}],
                       "humanLoopStatus": ["Completed", "Failed", "Stopped"]},
        },
    })
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "cron(5 0 * * ? *)"})


def test_functions_use_the_latest_python_with_batch_failures_and_a_capped_starter(dev_app, template: Template) -> None:
    functions = {k: v for k, v in _resources(template, "AWS::Lambda::Function").items() if v["Properties"].get("Runtime", "").startswith("python")}
    assert len(functions) == 6
    assert {f["Properties"]["Runtime"] for f in functions.values()} == {"python3.14"}
    starter = dev_app.review.get_logical_id(dev_app.review.pipeline.starter.function.node.default_child)
    assert functions[starter]["Properties"]["ReservedConcurrentExecutions"] == 2
    mappings = _resources(template, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 3 and all(m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings.values())


def test_starter_may_start_loops_only_on_our_flow_definition(dev_app, template: Template) -> None:
    policy = dev_app.review.get_logical_id(dev_app.review.pipeline.starter.role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    [start] = [s for s in statements if s["Action"] == "sagemaker:StartHumanLoop"]
    resources = [flatten_reference(r) for r in start["Resource"]]
    assert resources[0].endswith(".FlowDefinitionArn>") and resources[1].endswith(":human-loop/mlloop-dev-*")


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("capture_filter", ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*", "/capture/mlloop-dev/AllTraffic/*", "/rejected-captures/*"]),
        ("starter", ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*", ":endpoint-config/*", ":model/*", "/retraining/*", ":human-loop/mlloop-dev-*"]),
        ("redrive", ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"]),
        ("results", ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*", "/a2i-output/*", "/ground-truth/*", "/training-rows/*", "/loop-reports/*"]),
    ],
)
def test_function_wildcards_are_exactly_the_explained_ones(dev_app, template: Template, function: str, expected: list[str]) -> None:
    role = getattr(dev_app.review.pipeline, function).role
    policy = dev_app.review.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    findings = wildcard_findings(template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"])
    assert len(findings) == len(expected)
    for finding, suffix in zip(findings, expected):
        assert finding.endswith(suffix) or finding == suffix


def test_alert_topic_is_encrypted_and_email_is_optional(dev_app) -> None:
    serving = dev_app.template("serving")
    serving.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    [subscription] = serving.find_resources("AWS::SNS::Subscription").values()
    assert subscription["Condition"].startswith("AlertsHasEmail")
    assert dev_app.template("review").find_resources("AWS::SNS::Topic") == {}


def test_turning_review_off_removes_exactly_the_review_stack(tmp_path, dev_app) -> None:
    environment = json.loads(json.dumps(dev_app.app.node.try_get_context("environments")["dev"]))
    environment["review"] = {"enabled": False}
    built = build_app(tmp_path, environment=environment)
    built.app.synth()
    assert built.review is None
    assert {s.node.id for s in built.app.node.children if hasattr(s, "template_options")} == {"Storage", "Serving", "Monitoring", "Retraining", "Operations"}
    assert built.template_json("serving")["Resources"].keys() == dev_app.template_json("serving")["Resources"].keys()


def _starter(built) -> dict:
    review = built.template_json("review")["Resources"]
    return review[built.review.get_logical_id(built.review.pipeline.starter.function.node.default_child)]["Properties"]


def _starter_statements(built) -> list[dict]:
    policy = built.review.pipeline.starter.role.node.find_child("DefaultPolicy").node.default_child
    return built.template_json("review")["Resources"][built.review.get_logical_id(policy)]["Properties"]["PolicyDocument"]["Statement"]


def test_only_the_starter_carries_xgboost_and_may_read_the_served_model(dev_app, template: Template) -> None:
    starter = _starter(dev_app)
    layers = _resources(template, "AWS::Lambda::LayerVersion")
    assert len(layers) == 2 and len(starter["Layers"]) == 2 and starter["MemorySize"] == 1769
    explain = dev_app.review.get_logical_id(dev_app.review.pipeline.node.find_child("ExplainDependencies").node.default_child)
    assert {"Ref": explain} in starter["Layers"]
    others = [f["Properties"] for f in _resources(template, "AWS::Lambda::Function").values() if f["Properties"].get("Handler") != starter["Handler"]]
    assert len(others) >= 5 and all({"Ref": explain} not in props.get("Layers", []) for props in others)
    variables = starter["Environment"]["Variables"]
    assert (variables["ATTRIBUTIONS"], variables["TOP_K"], variables["MODEL_REFRESH_SECONDS"]) == ("on", "10", "60")
    assert (variables["ENDPOINT_NAME"], variables["VARIANT_NAME"]) == ("mlloop-dev", "AllTraffic")
    by_action = {}
    for statement in _starter_statements(dev_app):
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            by_action.setdefault(action, []).extend(flatten_reference(r) for r in ([statement["Resource"]] if not isinstance(statement["Resource"], list) else statement["Resource"]))
    assert by_action["sagemaker:DescribeEndpoint"] == ["arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint/mlloop-dev"]
    assert by_action["sagemaker:DescribeEndpointConfig"][0].endswith(":endpoint-config/*")
    assert by_action["sagemaker:DescribeModel"][0].endswith(":model/*")
    artefacts = by_action["s3:GetObject"]
    assert len(artefacts) == 2 and artefacts[0].endswith("/model.tar.gz") and "/bundled/" in artefacts[0] and artefacts[1].endswith("/retraining/*")


def test_seed_002_template_and_attributions_off_are_configuration(tmp_path, dev_app) -> None:
    environment = json.loads(json.dumps(dev_app.app.node.try_get_context("environments")["dev"]))
    environment["review"] = {"template": "outcome_review", "rule": "outcome", "attributions": {"top_k": 4}}
    seed_002 = build_app(tmp_path / "outcome", environment=environment)
    seed_002.app.synth()
    [ui] = seed_002.template("review").find_resources("AWS::SageMaker::HumanTaskUi").values()
    assert ui["Properties"]["UiTemplate"]["Content"] == template_text("outcome_review")
    assert ui["Properties"]["HumanTaskUiName"].startswith("mlloop-dev-outcome-review-")
    assert _starter(seed_002)["Environment"]["Variables"]["TOP_K"] == "4"

    environment["review"]["attributions"] = {"enabled": False}
    off = build_app(tmp_path / "off", environment=environment)
    off.app.synth()
    starter = _starter(off)
    assert len(starter["Layers"]) == 1 and starter["MemorySize"] == 256 and "ATTRIBUTIONS" not in starter["Environment"]["Variables"]
    actions = {a for s in _starter_statements(off) for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(a.startswith("sagemaker:Describe") or a == "s3:GetObject" for a in actions)
    assert len(off.template("review").find_resources("AWS::Lambda::LayerVersion")) == 1
