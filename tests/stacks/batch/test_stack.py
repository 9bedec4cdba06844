"""The batch stack (income: batch only; dev with batch on beside its endpoint): the schedule, the
state machine's requests, the alarms, and IAM on exact actions and this app's names."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match
from botocore.validate import validate_parameters

from lambdas.batch import handler
from stacks.batch.stack import RUN_ENDED, job_name_prefix
from tests.conftest import CDK_CONTEXT, build_app
from tests.stacks.test_cfn_lint import lint, templates
from tests.stacks.retraining.test_stack import _input_shape, actions, all_states, render, resources

TOKEN = "arn:aws:iam::123456789012:role/placeholder"


@pytest.fixture(scope="module")
def income(tmp_path_factory):
    return build_app(tmp_path_factory.mktemp("income"), env="income")


@pytest.fixture(scope="module")
def dev_batch(tmp_path_factory):
    """dev with the nightly batch on beside its endpoint, in Paris time on weekdays."""
    environment = json.loads(json.dumps(CDK_CONTEXT["environments"]["dev"]))
    environment["batch"] = {"enabled": True, "timezone": "Europe/Paris", "schedule": "cron(30 1 ? * MON-FRI *)", "instance_count": 2, "max_payload_mb": 20}
    built = build_app(tmp_path_factory.mktemp("dev-batch"), environment=environment)
    built.app.synth()  # runs the cdk-nag packs: raises on any unacknowledged finding
    return built


def resources_of(built, stack: str, kind: str) -> dict[str, dict]:
    return {k: r for k, r in built.template_json(stack)["Resources"].items() if r["Type"] == kind}


def definition(built) -> dict:
    [machine] = resources_of(built, "batch", "AWS::StepFunctions::StateMachine").values()
    return json.loads("".join(p if isinstance(p, str) else TOKEN for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1]))


def statements(built, stack: str, resource_kind: str = "AWS::IAM::Policy", role_hint: str = "") -> list[dict]:
    found = []
    for policy in resources_of(built, stack, resource_kind).values():
        if role_hint in json.dumps(policy["Properties"].get("Roles", [])):
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def granted(built, stack: str) -> set[str]:
    return {action for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") for s in statements(built, stack, kind) for action in actions(s)}


def test_batch_only_deploys_no_endpoint_and_keeps_the_model_role(income) -> None:
    serving = income.template_json("serving")
    kinds = {r["Type"] for r in serving["Resources"].values()}
    assert not kinds & {"AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Model"}
    assert "AWS::IAM::Role" in kinds and "CaptureSamplingPercentage" not in serving.get("Parameters", {})
    assert not {"EndpointName", "CaptureS3Uri", "ModelName"} & set(serving["Outputs"])
    # Nothing in the app asks for or updates an endpoint that is not there.
    for stack in ("batch", "retraining"):
        assert not {"sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:CreateEndpointConfig"} & granted(income, stack), stack
    operations = json.dumps(income.template_json("operations"))
    assert "Endpoint invocations" not in operations and "Nightly batch runs per day" in operations


def test_batch_beside_an_endpoint_with_the_band_rule_and_profiling_is_nag_and_lint_clean(dev_batch) -> None:
    [template] = [t for t in templates(dev_batch) if t.name == "Batch.template.json"]
    assert lint(template) == []
    [function] = [f for f in resources_of(dev_batch, "batch", "AWS::Lambda::Function").values() if f["Properties"]["Handler"] == "lambdas.batch.handler.step"]
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["SELECTION_RULE"] == "band" and variables["PROFILING"] == "data-quality,explainability" and "MONITORING_BUCKET" in variables
    assert "AWS::SageMaker::Endpoint" in {r["Type"] for r in dev_batch.template_json("serving")["Resources"].values()}  # the endpoint stays


def test_the_schedule_starts_the_state_machine_nightly_with_its_scheduled_time(income, dev_batch) -> None:
    [schedule] = resources_of(income, "batch", "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert (props["ScheduleExpression"], props["ScheduleExpressionTimezone"], props["FlexibleTimeWindow"]) == ("cron(0 2 * * ? *)", "UTC", {"Mode": "OFF"})
    assert props["Name"] == "mlloop-income-batch" and props["State"] == "ENABLED"
    target = props["Target"]
    assert json.loads(target["Input"]) == {"time": "<aws.scheduler.scheduled-time>"}
    [machine_id] = resources_of(income, "batch", "AWS::StepFunctions::StateMachine")
    assert target["Arn"] == {"Ref": machine_id} and "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 185
    role = statements(income, "batch", role_hint="ScheduleRole")
    assert sorted(a for s in role for a in actions(s)) == ["kms:Decrypt", "kms:GenerateDataKey", "sqs:SendMessage", "states:StartExecution"]
    [paris] = resources_of(dev_batch, "batch", "AWS::Scheduler::Schedule").values()
    assert (paris["Properties"]["ScheduleExpression"], paris["Properties"]["ScheduleExpressionTimezone"]) == ("cron(30 1 ? * MON-FRI *)", "Europe/Paris")


def test_the_transform_request_is_valid_and_reads_the_manifest_line_by_line_with_batch_capture(income, dev_batch) -> None:
    for built, count, payload in ((income, 1, 6), (dev_batch, 2, 20)):
        states = all_states(definition(built)["States"])
        run = "night-1"
        state = {
            "plan": {"run": run, "manifest_uri": f"s3://datasets/batch/runs/{run}/manifest.json", "has_input": True},
            "names": {"model": f"{job_name_prefix(_config(built))}-0123456789abcdef0123456789abcdef",
                      "output": f"s3://datasets/batch/runs/{run}/output/", "capture": f"s3://datasets/batch/runs/{run}/capture/"},
        }  # fmt: skip
        request = render(states["Transform"]["Parameters"], state)
        validate_parameters(request, _input_shape("CreateTransformJob"))
        assert request["TransformInput"]["DataSource"]["S3DataSource"] == {"S3DataType": "ManifestFile", "S3Uri": state["plan"]["manifest_uri"]}
        assert (request["TransformInput"]["SplitType"], request["TransformInput"]["ContentType"], request["BatchStrategy"]) == ("Line", "text/csv", "MultiRecord")
        assert request["DataProcessing"] == {"JoinSource": "Input"} and request["MaxPayloadInMB"] == payload
        assert request["DataCaptureConfig"] == {"DestinationS3Uri": state["names"]["capture"], "KmsKeyId": TOKEN, "GenerateInferenceId": True}
        assert request["TransformResources"]["InstanceCount"] == count and request["TransformResources"]["VolumeKmsKeyId"] == TOKEN
        assert request["TransformOutput"] == {"S3OutputPath": state["names"]["output"], "Accept": "text/csv", "AssembleWith": "Line", "KmsKeyId": TOKEN}
        assert len(request["TransformJobName"]) <= 63
        # Every task of the run times out; the transform's failure goes to the Fail step, Finish's and Plan's to the notification.
        for name, task in states.items():
            if task["Type"] == "Task":
                assert "TimeoutSeconds" in task, name
        assert states["Transform"]["Catch"][0]["Next"] == "FailInput" and states["Finish"]["Catch"][0]["Next"] == "FailureSummary"
        assert states["Plan"]["Catch"][0]["Next"] == "FailureSummary" and states["Transform"]["ResultPath"] == "$.transform"


def _config(built):
    from stacks.shared.config import parse_environment

    return parse_environment(built.app.node.try_get_context("env"), built.app.node.try_get_context("environments")[built.app.node.try_get_context("env")])


def test_each_run_ends_with_one_batch_run_ended_event_whatever_its_outcome(income) -> None:
    states = definition(income)["States"]
    sends = {name: s for name, s in states.items() if s.get("Resource", "").endswith(":states:::events:putEvents")}
    assert set(sends) == {"SendCompletedEvent", "SendFailedEvent", "SendNoInputEvent"}
    for name, send in sends.items():
        [entry] = send["Parameters"]["Entries"]
        assert entry["DetailType"] == RUN_ENDED and entry["Source"] == "mlloop.batch" and entry["Detail.$"] == "$.summary"
        status = name.removeprefix("Send").removesuffix("Event")
        assert states[f"{status}Outcome"] == {"Type": "Pass", "Result": status, "ResultPath": "$.summary.status", "Next": name}
    assert states["SendFailedEvent"]["Next"] == "BatchRunFailed" and states["BatchRunFailed"]["Type"] == "Fail"
    assert states["NotifyFailure"]["Next"] == "FailedOutcome" and states["NotifyFailure"]["Resource"].endswith(":states:::sns:publish")


def test_the_steps_function_reads_its_settings_from_the_template(income, monkeypatch) -> None:
    [function] = [f for f in resources_of(income, "batch", "AWS::Lambda::Function").values() if f["Properties"]["Handler"] == "lambdas.batch.handler.step"]
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["FEATURE_COUNT"] == "14" and variables["SELECTION_RULE"] == "outcome" and variables["ROWS_PER_LOOP"] == "3"
    assert variables["INPUT_PREFIX"] == "batch/input/" and variables["RUNS_PREFIX"] == "batch/runs/" and "ENDPOINT_NAME" not in variables
    outputs = {"LowerThreshold": "0.1", "UpperThreshold": "0.9"}  # the review stack's band parameters; other references: names
    for name, value in variables.items():
        reference = json.dumps(value)
        monkeypatch.setenv(name, value if isinstance(value, str) else next((v for k, v in outputs.items() if k in reference), "placeholder"))
    handler.settings.cache_clear()
    try:
        settings = handler.settings()
    finally:
        handler.settings.cache_clear()
    assert settings.feature_count == 14 and settings.filter.rows_per_loop == 3 and settings.max_payload_bytes == 6 * 1024 * 1024


def test_iam_is_the_exact_actions_on_this_apps_batch_names(income) -> None:
    machine = statements(income, "batch", role_hint="StateMachineRole")
    by_action = {a: resources(s) for s in machine for a in actions(s)}
    prefix = job_name_prefix(_config(income))
    assert prefix == "mlloop-income-batch"
    for action in ("sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"):
        assert [r.rsplit(":", 1)[1] for r in by_action[action]] == [f"transform-job/{prefix}-*"], action
    for action in ("sagemaker:CreateModel", "sagemaker:DeleteModel"):
        assert all(r.endswith(f":model/{prefix}-*") for r in by_action[action]), action
    assert [r.rsplit(":", 1)[1] for r in by_action["ssm:GetParameter"]] == ["parameter/mlloop/income/serving/model-data-url"]
    assert "iam:PassRole" in by_action and "events:PutEvents" in by_action and "sns:Publish" in by_action
    assert not [a for a in by_action if a.endswith("*") or a == "*"]
    steps = statements(income, "batch", role_hint="StepsRole")
    dynamo = {a for s in steps for a in actions(s) if a.startswith("dynamodb:")}
    assert dynamo == {"dynamodb:PutItem", "dynamodb:UpdateItem"}  # the conditional claim and the status update, nothing else
    puts = [r for s in steps if "s3:PutObject" in actions(s) for r in resources(s)]
    assert sorted(p.split("/", 1)[1] for p in puts) == ["batch/runs/*", "rejected-captures/*"]
    model = statements(income, "batch", "AWS::IAM::ManagedPolicy")
    writes = [r for s in model if "s3:PutObject" in actions(s) for r in resources(s)]
    assert sorted(w.split("/", 1)[1] for w in writes) == ["batch/runs/*/capture/*", "batch/runs/*/output/*"]


def test_a_failed_run_and_an_overdue_night_alarm_on_the_alert_topic(income) -> None:
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in resources_of(income, "batch", "AWS::CloudWatch::Alarm").values() if "AlarmName" in a["Properties"]}
    overdue = alarms["mlloop-income-batch-run-overdue"]
    assert (overdue["MetricName"], overdue["Namespace"], overdue["Period"], overdue["EvaluationPeriods"]) == ("ExecutionsSucceeded", "AWS/States", 26 * 3600, 1)
    assert (overdue["ComparisonOperator"], overdue["Threshold"], overdue["TreatMissingData"]) == ("LessThanThreshold", 1, "breaching")
    failed = alarms["mlloop-income-batch-run-failed"]
    assert {m.get("MetricStat", {}).get("Metric", {}).get("MetricName") for m in failed["Metrics"]} >= {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    assert failed["TreatMissingData"] == "notBreaching" and failed["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    for alarm in (overdue, failed):
        assert "AlertsTopic" in json.dumps(alarm["AlarmActions"])


def test_logs_are_encrypted_and_kept(income) -> None:
    groups = resources_of(income, "batch", "AWS::Logs::LogGroup").values()
    assert {g["Properties"].get("LogGroupName") for g in groups} >= {"/aws/vendedlogs/states/mlloop-income-batch"}
    for group in groups:
        assert group["Properties"]["RetentionInDays"] == 30 and "KmsKeyId" in group["Properties"]  # income: removal_policy destroy
    [machine] = resources_of(income, "batch", "AWS::StepFunctions::StateMachine").values()
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL" and machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    income.template("batch").has_resource_properties(
        "AWS::DynamoDB::Table", {"KeySchema": [{"AttributeName": "file", "KeyType": "HASH"}], "SSESpecification": Match.object_like({"SSEEnabled": True})}
    )


def test_batch_only_retraining_promotes_by_the_served_model_parameter(income) -> None:
    template = income.template_json("retraining")
    [machine] = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    states = json.loads("".join(p if isinstance(p, str) else TOKEN for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1]))["States"]
    assert not {"Deploy", "WaitForEndpoint", "CheckEndpoint", "EndpointState"} & set(states)
    assert states["NoEndpoint"]["Next"] == "Promote" and states["NoEndpoint"]["Result"] == {"endpointConfigName": "", "previousEndpointConfigName": ""}
    assert states["GetServedModel"]["Next"] == "CreateServingModel" and states["CreateServingModel"]["Next"] == "ServingModel"
    assert states["CreateServingModel"]["Parameters"]["PrimaryContainer"]["ModelDataUrl.$"] == "$.served.artifactS3Uri"
    assert states["ServingModel"]["Parameters"] == {"modelName.$": "$.dataset.names.servingTransformJob", "artifactS3Uri.$": "$.served.artifactS3Uri"}
    assert "DeploymentErrors" not in json.dumps(template["Resources"]) and "deployment-errors" not in json.dumps(template)  # no rollback alarm


def test_batch_only_attributions_come_from_the_served_model_parameter(income) -> None:
    """The starter explains a night's rows with the model the run made: the served-model parameter's artefact."""
    [starter] = [f for f in resources_of(income, "review", "AWS::Lambda::Function").values() if f["Properties"]["Handler"] == "lambdas.review.starter.handler.handler"]
    variables = starter["Properties"]["Environment"]["Variables"]
    assert variables["ATTRIBUTIONS"] == "on" and variables["SERVED_MODEL_PARAMETER"] == "/mlloop/income/serving/model-data-url"
    assert "ENDPOINT_NAME" not in variables and "VARIANT_NAME" not in variables
    policies = statements(income, "review", role_hint="HumanLoopStarter")
    by_action = {a: json.dumps(resources(s)) for s in policies for a in actions(s)}
    assert "parameter/mlloop/income/serving/model-data-url" in by_action["ssm:GetParameter"]
    assert not [a for a in by_action if a.startswith("sagemaker:Describe")]
