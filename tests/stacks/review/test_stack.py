"""Human review stack with the A2I back end (``review.backend: a2i``): intent assertions per
resource, rule and permission. The open back end's are in test_reviewers_app.py."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from stacks.shared.compliance import flatten_reference, wildcard_findings
from stacks.review.a2i import template_text
from tests.conftest import CDK_CONTEXT, SynthesisedApp, build_app


def a2i_environment(env: str = "dev") -> dict:
    """``env``'s configuration with the A2I review back end."""
    environment = json.loads(json.dumps(CDK_CONTEXT["environments"][env]))
    environment.setdefault("review", {})["backend"] = "a2i"
    return environment


@pytest.fixture(scope="module")
def a2i_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedApp:
    """dev with ``review.backend: a2i``; synth runs the cdk-nag packs and raises on any unacknowledged finding."""
    built = build_app(tmp_path_factory.mktemp("a2i"), environment=a2i_environment())
    built.app.synth()
    return built


@pytest.fixture(scope="module")
def template(a2i_app) -> Template:
    return a2i_app.template("review")


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


def test_every_queue_is_kms_encrypted_and_every_work_queue_has_an_alarmed_dlq(a2i_app, template: Template) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    assert len(queues) == 8  # three work queues, their three DLQs, the deferred queue, the redrive's DLQ
    assert all("KmsMasterKeyId" in q["Properties"] for q in queues.values())
    redriven = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(redriven) == 3 and all(q["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5 for q in redriven)
    pipeline = a2i_app.review.pipeline
    dead_letter_queues = [w.dead_letter_queue for w in (pipeline.capture_events, pipeline.review_queue, pipeline.results_queue)] + [pipeline.redrive_failures]
    at_one_message = [a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values() if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    assert sorted(a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in at_one_message) == sorted(a2i_app.review.get_logical_id(q.node.default_child) for q in dead_letter_queues)
    for props in at_one_message:
        assert (props["Threshold"], props["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert len(props["AlarmActions"]) == 1


def _alarm_on(template: Template, metric: str) -> dict:
    [alarm] = [a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values() if a["Properties"].get("MetricName") == metric]
    return alarm


def _alert_topic_ref(a2i_app) -> str:
    return a2i_app.serving.get_logical_id(a2i_app.serving.alerts.topic.node.default_child)


def test_deferred_groups_alarm_days_before_sqs_would_delete_them(a2i_app, template: Template) -> None:
    deferred = template.to_json()["Resources"][a2i_app.review.get_logical_id(a2i_app.review.pipeline.deferred.node.default_child)]["Properties"]
    alarm = _alarm_on(template, "ApproximateAgeOfOldestMessage")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [a2i_app.review.get_logical_id(a2i_app.review.pipeline.deferred.node.default_child), "QueueName"]}}]
    assert alarm["Threshold"] == 10 * 86_400 < deferred["MessageRetentionPeriod"] == 14 * 86_400
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Period"]) == ("Maximum", "GreaterThanOrEqualToThreshold", 3600)
    assert _alert_topic_ref(a2i_app) in json.dumps(alarm["AlarmActions"])


def test_nightly_redrive_failures_are_kept_on_a_dead_letter_queue_and_alarmed(a2i_app, template: Template) -> None:
    review = a2i_app.review
    failures = review.get_logical_id(review.pipeline.redrive_failures.node.default_child)
    redrive = review.get_logical_id(review.pipeline.redrive.function.node.default_child)
    template.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": "cron(5 0 * * ? *)",
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [redrive, "Arn"]}, "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [failures, "Arn"]}}})],
    })
    template.has_resource_properties("AWS::Lambda::EventInvokeConfig", {
        "FunctionName": {"Ref": redrive},
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [failures, "Arn"]}}},
    })
    errors = _alarm_on(template, "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": redrive}}]
    assert (errors["Threshold"], errors["Statistic"]) == (1, "Sum") and _alert_topic_ref(a2i_app) in json.dumps(errors["AlarmActions"])


def test_capture_objects_reach_the_capture_queue_through_eventbridge(a2i_app, template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [Match.any_value()]}, "object": {"key": [{"prefix": "capture/mlloop-dev/AllTraffic/"}]}},
        },
        "Targets": [Match.object_like({"DeadLetterConfig": Match.any_value()})],
    })
    capture = a2i_app.template("storage").to_json()["Resources"][a2i_app.storage.get_logical_id(a2i_app.storage.capture.node.default_child)]
    assert capture["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


def _human_loop_rule(template: Template) -> dict:
    [rule] = [r["Properties"] for r in _resources(template, "AWS::Events::Rule").values()
              if r["Properties"].get("EventPattern", {}).get("detail-type") == ["SageMaker A2I HumanLoop Status Change"]]
    return rule


def test_a2i_status_changes_of_every_flow_definition_of_ours_reach_the_results_queue(template: Template) -> None:
    pattern = _human_loop_rule(template)["EventPattern"]
    assert pattern["source"] == ["aws.sagemaker"]
    assert pattern["detail"]["humanLoopStatus"] == ["Completed", "Failed", "Stopped"]
    [match] = pattern["detail"]["flowDefinitionArn"]
    # A prefix, not the current ARN: loops opened under a replaced flow definition still finish here.
    assert flatten_reference(match["prefix"]) == "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:flow-definition/mlloop-dev-"


def test_the_rule_matches_a_loop_of_a_replaced_flow_definition_and_no_other_app(template: Template) -> None:
    """EventBridge's own matcher (moto's implementation of the pattern language) on real-shaped events."""
    from moto.events.models import EventPattern

    region, account = "eu-west-1", "123456789012"
    text = json.dumps(_human_loop_rule(template)["EventPattern"])
    text = text.replace(json.dumps(_human_loop_rule(template)["EventPattern"]["detail"]["flowDefinitionArn"][0]["prefix"]),
                        json.dumps(f"arn:aws:sagemaker:{region}:{account}:flow-definition/mlloop-dev-"))
    pattern = EventPattern.load(text)

    def event(flow: str, status: str = "Completed") -> dict:
        return {"source": "aws.sagemaker", "detail-type": "SageMaker A2I HumanLoop Status Change",
                "detail": {"humanLoopStatus": status, "humanLoopName": "mlloop-dev-0a1b", "flowDefinitionArn": f"arn:aws:sagemaker:{region}:{account}:flow-definition/{flow}"}}

    assert pattern.matches_event(event("mlloop-dev-" + "a" * 52))  # today's definition
    assert pattern.matches_event(event("mlloop-dev-" + "b" * 52))  # the one a changed workteam replaced
    assert not pattern.matches_event(event("mlloop-prod-" + "a" * 51))
    assert not pattern.matches_event(event("other-app-" + "a" * 53))
    assert not pattern.matches_event(event("mlloop-dev-" + "a" * 52, status="InProgress"))


def _mapping_of(a2i_app, template: Template, function) -> dict:
    logical_id = a2i_app.review.get_logical_id(function.function.node.default_child)
    [mapping] = [m["Properties"] for m in _resources(template, "AWS::Lambda::EventSourceMapping").values() if m["Properties"]["FunctionName"] == {"Ref": logical_id}]
    return mapping


def test_functions_use_the_latest_python_with_batch_failures_and_a_capped_starter(a2i_app, template: Template) -> None:
    functions = {k: v for k, v in _resources(template, "AWS::Lambda::Function").items() if v["Properties"].get("Runtime", "").startswith("python")}
    assert len(functions) == 6
    assert {f["Properties"]["Runtime"] for f in functions.values()} == {"python3.14"}
    mappings = _resources(template, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 3 and all(m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings.values())
    # The starter is capped where the queue is polled, not by reserved concurrency (which the poller
    # ignores: throttled batches would count as receives towards the dead-letter queue).
    pipeline = a2i_app.review.pipeline
    assert _mapping_of(a2i_app, template, pipeline.starter)["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert not any("ReservedConcurrentExecutions" in f["Properties"] for f in functions.values())
    assert "ScalingConfig" not in _mapping_of(a2i_app, template, pipeline.results)


def test_capture_filter_reads_one_capture_object_per_invocation(a2i_app, template: Template) -> None:
    """A huge or bad object fails or times out alone: no batch neighbour is re-run or parked with it."""
    assert _mapping_of(a2i_app, template, a2i_app.review.pipeline.capture_filter)["BatchSize"] == 1


def test_capture_filter_may_list_only_the_capture_prefix_so_a_missing_object_is_told_apart(a2i_app, template: Template) -> None:
    role = a2i_app.review.pipeline.capture_filter.role
    policy = a2i_app.review.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    capture = a2i_app.storage.get_logical_id(a2i_app.storage.capture.node.default_child)
    # the bucket itself, by its stack output (the other listing is the monitoring baseline's: stacks/review/capture.py)
    [listing] = [s for s in statements if s["Action"] == "s3:ListBucket" and f"GetAtt{capture}Arn" in json.dumps(s["Resource"])]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["capture/mlloop-dev/AllTraffic/*"]}}


def test_starter_may_start_loops_only_on_our_flow_definition(a2i_app, template: Template) -> None:
    policy = a2i_app.review.get_logical_id(a2i_app.review.pipeline.starter.role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    [start] = [s for s in statements if s["Action"] == "sagemaker:StartHumanLoop"]
    resources = [flatten_reference(r) for r in start["Resource"]]
    assert resources[0].endswith(".FlowDefinitionArn>") and resources[1].endswith(":human-loop/mlloop-dev-*")


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        # Profiling for the open monitors (the default back end): stacks/review/capture.py.
        ("capture_filter", ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*", "/capture/mlloop-dev/AllTraffic/*",
                            "/data-quality/current/*", "/data-quality/sketches/*", "/explainability/samples/*", "/rejected-captures/*"]),
        ("starter", ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*", ":endpoint-config/*", ":model/*", "/retraining/*", ":human-loop/mlloop-dev-*"]),
        ("redrive", ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"]),
        ("results", ["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*", "/a2i-output/*", "/ground-truth/*", "/training-rows/*", "/loop-reports/*"]),
    ],
)
def test_function_wildcards_are_exactly_the_explained_ones(a2i_app, template: Template, function: str, expected: list[str]) -> None:
    role = getattr(a2i_app.review.pipeline, function).role
    policy = a2i_app.review.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    findings = wildcard_findings(template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"])
    assert len(findings) == len(expected)
    for finding, suffix in zip(findings, expected):
        assert finding.endswith(suffix) or finding == suffix


def test_alert_topic_is_encrypted_and_email_is_optional(a2i_app) -> None:
    serving = a2i_app.template("serving")
    serving.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    [subscription] = serving.find_resources("AWS::SNS::Subscription").values()
    assert subscription["Condition"].startswith("AlertsHasEmail")
    assert a2i_app.template("review").find_resources("AWS::SNS::Topic") == {}


def test_turning_review_off_removes_exactly_the_review_stack(tmp_path, a2i_app) -> None:
    environment = json.loads(json.dumps(a2i_app.app.node.try_get_context("environments")["dev"]))
    environment["review"] = {"enabled": False}
    built = build_app(tmp_path, environment=environment)
    built.app.synth()
    assert built.review is None
    assert {s.node.id for s in built.app.node.children if hasattr(s, "template_options")} == {"Storage", "Serving", "Monitoring", "Retraining", "Operations"}
    assert built.template_json("serving")["Resources"].keys() == a2i_app.template_json("serving")["Resources"].keys()


def _starter(built) -> dict:
    review = built.template_json("review")["Resources"]
    return review[built.review.get_logical_id(built.review.pipeline.starter.function.node.default_child)]["Properties"]


def _starter_statements(built) -> list[dict]:
    policy = built.review.pipeline.starter.role.node.find_child("DefaultPolicy").node.default_child
    return built.template_json("review")["Resources"][built.review.get_logical_id(policy)]["Properties"]["PolicyDocument"]["Statement"]


def test_only_the_starter_and_the_profiling_capture_filter_carry_xgboost_and_only_the_starter_reads_the_model(a2i_app, template: Template) -> None:
    starter = _starter(a2i_app)
    layers = _resources(template, "AWS::Lambda::LayerVersion")
    assert len(layers) == 2 and len(starter["Layers"]) == 2 and starter["MemorySize"] == 1769  # one explain layer, shared
    explain = a2i_app.review.get_logical_id(a2i_app.review.node.find_child("ExplainDependencies").node.default_child)
    carrying = {f["Properties"]["Handler"] for f in _resources(template, "AWS::Lambda::Function").values() if {"Ref": explain} in f["Properties"].get("Layers", [])}
    # The capture filter folds the rows it profiles with numpy (the open monitoring back end's sketches).
    assert carrying == {starter["Handler"], "lambdas.capture.handler.handler"}
    variables = starter["Environment"]["Variables"]
    assert (variables["ATTRIBUTIONS"], variables["TOP_K"], variables["MODEL_REFRESH_SECONDS"]) == ("on", "10", "60")
    assert (variables["ENDPOINT_NAME"], variables["VARIANT_NAME"]) == ("mlloop-dev", "AllTraffic")
    by_action = {}
    for statement in _starter_statements(a2i_app):
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            by_action.setdefault(action, []).extend(flatten_reference(r) for r in ([statement["Resource"]] if not isinstance(statement["Resource"], list) else statement["Resource"]))
    assert by_action["sagemaker:DescribeEndpoint"] == ["arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint/mlloop-dev"]
    assert by_action["sagemaker:DescribeEndpointConfig"][0].endswith(":endpoint-config/*")
    assert by_action["sagemaker:DescribeModel"][0].endswith(":model/*")
    artefacts = by_action["s3:GetObject"]
    assert len(artefacts) == 2 and artefacts[0].endswith("/model.tar.gz") and "/bundled/" in artefacts[0] and artefacts[1].endswith("/retraining/*")


def test_seed_002_template_and_attributions_off_are_configuration(tmp_path, a2i_app) -> None:
    environment = json.loads(json.dumps(a2i_app.app.node.try_get_context("environments")["dev"]))
    environment["review"] = {"backend": "a2i", "template": "outcome_review", "rule": "outcome", "attributions": {"top_k": 4}}
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
    # What stays of XGBoost's layer is the one the profiling capture filter folds rows with (numpy).
    assert len(off.template("review").find_resources("AWS::Lambda::LayerVersion")) == 2
    environment["monitoring"] = {"data_quality": {"enabled": False}, "explainability": {"enabled": False}}
    unprofiled = build_app(tmp_path / "unprofiled", environment=environment)
    unprofiled.app.synth()
    assert len(unprofiled.template("review").find_resources("AWS::Lambda::LayerVersion")) == 1


def test_the_a2i_back_end_synthesises_nag_clean_and_lints_clean(a2i_app) -> None:
    """The fixture's synth ran the rule packs (it raises on an unacknowledged finding); cfn-lint on every template."""
    from tests.stacks.test_cfn_lint import lint, templates

    found = templates(a2i_app)
    assert {t.name for t in found} >= {"Review.template.json", "Storage.template.json", "Serving.template.json"}
    for template in found:
        assert lint(template) == [], template.name
    assert a2i_app.review.reviewers_app is None
    assert a2i_app.template("review").find_resources("AWS::Cognito::UserPool") == {}
