"""The retraining stack: trigger rules match the events the other stacks and AWS emit, the state
machine's tasks all time out, retry and catch, and IAM is scoped to this app's names."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_cdk.assertions import Match, Template
from botocore.validate import validate_parameters
from moto.events.models import EventPattern

from lambdas.retraining import steps
from stacks.shared.compliance import flatten_reference, wildcard_findings
from tests.conftest import build_app
from tests.stacks.monitoring.test_stack import _baseline_request

PLACEHOLDER_ARN = "arn:aws:iam::123456789012:role/placeholder"  # every token of the definition (roles, keys, images)


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("retraining")


def definition(built, token: str = "TOKEN") -> dict:
    template = built.template_json("retraining")
    [machine] = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    return json.loads("".join(p if isinstance(p, str) else token for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1]))


def render(parameters: dict, state: dict) -> dict:
    """A task's Parameters as Step Functions sends them: each ``"x.$": "$.a.b"`` replaced by its value."""

    def at(path: str):
        value = state
        for part in path.removeprefix("$.").split("."):
            value = value[part]
        return value

    def value(item):
        return render(item, state) if isinstance(item, dict) else [value(i) for i in item] if isinstance(item, list) else item

    return {key.removesuffix(".$"): at(item) if key.endswith(".$") else value(item) for key, item in parameters.items()}


def statements_of(built, role) -> list[dict]:
    policy = built.retraining.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    return built.template_json("retraining")["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]


def actions(statement: dict) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def resources(statement: dict) -> list[str]:
    return [flatten_reference(r) for r in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])]


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


def test_monitoring_runs_rule_forwards_every_run_but_model_qualitys(dev_app) -> None:
    """Each run is a period of its schedule for the consecutive-periods rule, clean ones included."""
    pattern = dev_app.retraining.patterns["MonitoringRuns"]
    detail = {"version": "1", "monitor": "data-quality", "scheduleName": "mlloop-dev-data-quality", "outcome": "CompletedWithViolations", "checkTypes": ["baseline_drift_check"], "violationCount": 3}
    assert matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", detail))
    assert matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", {**detail, "outcome": "Completed", "checkTypes": [], "violationCount": 0}))
    assert matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", {**detail, "monitor": "explainability", "scheduleName": "mlloop-dev-explainability"}))
    assert not matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", {**detail, "monitor": "model-quality", "scheduleName": "mlloop-dev-model-quality"}))
    assert not matches(pattern, aws_event("mlloop.review", "Monitoring Run Ended", detail))
    assert pattern["source"] == [dev_app.monitoring.events.event_source]


def test_quality_violations_rule_matches_the_model_quality_monitors_runs_with_violations(dev_app) -> None:
    pattern = dev_app.retraining.patterns["QualityViolations"]
    # What lambdas/monitoring/runs/runs.py's ended() publishes for the model-quality monitor (either back end).
    detail = {"version": "1", "monitor": "model-quality", "scheduleName": "mlloop-dev-model-quality", "outcome": "CompletedWithViolations", "checkTypes": ["LessThanThreshold"], "violationCount": 1}
    assert matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", detail))
    assert not matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", {**detail, "outcome": "Completed", "checkTypes": []}))
    assert not matches(pattern, aws_event("mlloop.monitoring", "Monitoring Run Ended", {**detail, "scheduleName": "mlloop-dev-data-quality"}))
    assert not matches(dev_app.retraining.patterns["MonitoringRuns"], aws_event("mlloop.monitoring", "Monitoring Run Ended", detail))  # one rule per run


def test_the_trigger_function_gets_the_drift_and_quality_settings(dev_app) -> None:
    function = dev_app.retraining.get_logical_id(dev_app.retraining.triggers.function.node.default_child)
    variables = dev_app.template_json("retraining")["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert (variables["DRIFT_CONSECUTIVE_PERIODS"], variables["QUALITY_VIOLATIONS"]) == ("2", "true")


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
    assert len(rules) == 6  # requested, execution ended, drift alarm, monitoring runs, quality violations, labels (no schedule by default)
    for rule in rules.values():
        [target] = rule["Properties"]["Targets"]
        assert target["SqsParameters"] == {"MessageGroupId": "all"} and "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 185
    template.has_resource_properties("AWS::SQS::Queue", {"FifoQueue": True, "ContentBasedDeduplication": True, "KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"BatchSize": 1, "FunctionResponseTypes": ["ReportBatchItemFailures"]})


def test_every_task_times_out_retries_and_is_caught(sagemaker_app) -> None:
    states = all_states(definition(sagemaker_app)["States"])
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert {
        "Assemble", "Train", "CreateModel", "ServingModel", "ScoreCandidate", "ScoreServing", "Evaluate", "ScoreTrainingSet", "BaselineDataset",
        "Baselines", "DataQualityBaseline", "ExplainabilityBaseline", "Deploy", "CheckEndpoint", "Promote",
    } <= set(tasks)  # fmt: skip
    for name, task in tasks.items():
        assert task.get("TimeoutSeconds"), name
        if name.startswith("Notify"):
            continue  # the notifications are what the catches lead to
        assert task.get("Retry"), name
        if not name.endswith("Baseline") and name not in ("ScoreCandidate", "ScoreServing"):  # branches: the Parallel state catches
            assert any(c["ErrorEquals"] == ["States.ALL"] and c["Next"] == "NotifyFailure" for c in task["Catch"]), name
    assert states["BaselineJobs"]["Catch"][0]["Next"] == "NotifyFailure" and states["ScoreEvaluationSet"]["Catch"][0]["Next"] == "NotifyFailure"
    assert tasks["Train"]["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
    assert tasks["DataQualityBaseline"]["Resource"].endswith(":states:::sagemaker:createProcessingJob.sync")
    assert tasks["ScoreTrainingSet"]["Resource"].endswith(":states:::sagemaker:createTransformJob.sync")
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


@pytest.mark.parametrize("app, roles", [("sagemaker_app", 4), ("dev_app", 2)])
def test_state_machine_may_pass_only_the_sagemaker_roles_and_touch_only_app_names(request, app, roles) -> None:
    built = request.getfixturevalue(app)
    statements = statements_of(built, built.retraining.state_machine.role)
    [passing] = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    # training role, the model's execution role, and with the SageMaker back end the two monitors' job roles
    assert len(passing["Resource"]) == roles
    assert "*" not in json.dumps(passing["Resource"])
    # ListTags is on "*" (aws-cdk-lib merges it into one statement with the other "*" actions).
    sagemaker = [s for s in statements if any(a.startswith("sagemaker:") for a in actions(s)) and s["Resource"] != "*"]
    for statement in sagemaker:
        for resource in resources(statement):
            assert resource.endswith("/mlloop-dev-*"), resource
    # The only wildcards: the app-prefixed SageMaker names, the steps function's versions (aws-cdk-lib's
    # LambdaInvoke grant), ListTags as AWS documents it, and what aws-cdk-lib grants for X-Ray and log delivery.
    findings = wildcard_findings(statements)
    assert all(f.endswith("/mlloop-dev-*") or f in ("Resource::*", "Resource::<StepsFunction23E0B919.Arn>:*") for f in findings), findings
    star = sorted(a for s in statements if s["Resource"] == "*" for a in actions(s))
    assert all(a.startswith(("xray:", "logs:")) or a == "sagemaker:ListTags" for a in star), star


@pytest.mark.parametrize("app", ["sagemaker_app", "dev_app"])
def test_sync_integrations_have_what_aws_documents_for_them(request, app) -> None:
    """https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html ("Run a Job (.sync)"):
    Create/Describe/Stop on the job's name, ListTags on "*", and the managed rule of each job kind.
    The open monitoring back end runs no processing job: nothing is granted for one."""
    built = request.getfixturevalue(app)
    statements = statements_of(built, built.retraining.state_machine.role)
    kinds = [("training-job", "TrainingJob"), ("transform-job", "TransformJob")] + ([("processing-job", "ProcessingJob")] if app == "sagemaker_app" else [])
    [listing] = [s for s in statements if "sagemaker:ListTags" in actions(s)]
    assert listing["Resource"] == "*" and [a for a in actions(listing) if a.startswith("sagemaker:")] == ["sagemaker:ListTags"]
    for kind, api in kinds:
        [jobs] = [s for s in statements if f"sagemaker:Create{api}" in actions(s)]
        assert sorted(actions(jobs)) == sorted([f"sagemaker:Create{api}", f"sagemaker:Describe{api}", f"sagemaker:Stop{api}", "sagemaker:AddTags"])
        assert resources(jobs) == [f"arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:{kind}/mlloop-dev-*"]
    if app == "dev_app":
        assert not [s for s in statements if "sagemaker:CreateProcessingJob" in actions(s)]
    [rules] = [s for s in statements if "events:PutRule" in actions(s)]
    expected = {f"StepFunctionsGetEventsForSageMaker{api}sRule" for _, api in kinds}
    assert sorted(r.rsplit("/", 1)[1] for r in resources(rules)) == sorted(expected)


def run_state() -> dict:
    """The state the SageMaker tasks read: what Assemble returns (names from steps.names)."""
    settings = steps.StepSettings(
        prefix="mlloop-dev", endpoint_name="mlloop-dev", datasets_bucket="datasets", models_bucket="models", training_data_s3_uri="s3://datasets/b/train.csv",
        labels_bucket=None, feature_names=("a",), label_count=2, validation_percentage=20, holdout_percentage=20, test_data_s3_uri=None, variant_name="AllTraffic",
        objective_metric="validation:logloss", objective_goal="minimize", tolerance=0.0, deployment={}, served_model_parameter="/mlloop/dev/serving/model-data-url",
    )  # fmt: skip
    execution = "20261122-100000-abc123"
    return {
        "dataset": {"names": steps.names(settings, execution), **steps.run_locations("datasets", "models", execution)},
        "serving": {"modelName": "Model-old"},
    }


def test_the_training_request_is_valid_and_turns_the_profiler_off(dev_app) -> None:
    states = all_states(definition(dev_app, token=PLACEHOLDER_ARN)["States"])
    request = render(states["Train"]["Parameters"], run_state())
    validate_parameters(request, _input_shape("CreateTrainingJob"))
    # Debugger and Profiler are closed to new customers: the profiler is off, and no debugger hook or rule is sent.
    assert request["ProfilerConfig"] == {"DisableProfiler": True}
    assert not {"DebugHookConfig", "DebugRuleConfigurations", "ProfilerRuleConfigurations", "TensorBoardOutputConfig"} & set(request)
    # The metrics are not selected from the result (a job without them would be a States.Runtime error): Evaluate reads them.
    assert "FinalMetricDataList" not in json.dumps(states["Train"]["ResultSelector"])


def test_the_scoring_transform_joins_each_training_row_to_the_new_models_score(sagemaker_app) -> None:
    states = all_states(definition(sagemaker_app, token=PLACEHOLDER_ARN)["States"])
    state = run_state()
    request = render(states["ScoreTrainingSet"]["Parameters"], state)
    validate_parameters(request, _input_shape("CreateTransformJob"))
    assert request["ModelName"] == state["dataset"]["names"]["model"] and request["TransformJobName"] == state["dataset"]["names"]["transformJob"]
    assert request["TransformInput"]["DataSource"]["S3DataSource"] == {"S3DataType": "S3Prefix", "S3Uri": state["dataset"]["trainS3Uri"]}
    assert request["TransformInput"]["ContentType"] == "text/csv" and request["TransformInput"]["SplitType"] == "Line"
    assert request["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input"}  # the label is not sent to the model
    assert request["TransformOutput"]["S3OutputPath"] == state["dataset"]["scoresS3Uri"] and request["TransformOutput"]["AssembleWith"] == "Line"
    assert request["TransformOutput"]["KmsKeyId"] and request["TransformResources"]["VolumeKmsKeyId"]
    # (approved) -> ScoreTrainingSet -> BaselineDataset -> Baselines, which hands the dataset to the data-quality job.
    assert states["Better"]["Choices"][0]["Next"] == "ScoreTrainingSet" and states["ScoreTrainingSet"]["Next"] == "BaselineDataset"
    assert states["BaselineDataset"]["Next"] == "Baselines"
    assert states["Baselines"]["Parameters"]["baselineDataset.$"] == "$.baselineDataset"
    templates = states["Run"]["Parameters"]["templates"]
    assert templates["dataQuality"]["dataset"] == steps.SCORED_DATASET and templates["explainability"]["dataset"] == steps.TRAINING_DATASET


def test_the_gate_scores_both_models_on_the_same_evaluation_rows_before_it_decides(sagemaker_app) -> None:
    """Train -> CreateModel (the candidate) -> ServingModel -> ScoreEvaluationSet (both transforms
    over the same evaluation rows, in parallel) -> Evaluate -> Better."""
    states = all_states(definition(sagemaker_app, token=PLACEHOLDER_ARN)["States"])
    chain = ["Train", "CreateModel", "ServingModel", "ScoreEvaluationSet", "Evaluate", "Better"]
    assert [states[name]["Next"] for name in chain[:-1]] == chain[1:]
    assert states["ServingModel"]["Parameters"] == {"step": "servingModel"} and states["ServingModel"]["ResultPath"] == "$.serving"
    assert states["Evaluate"]["Parameters"] == {"step": "evaluate", "names.$": "$.dataset.names", "dataset.$": "$.dataset", "serving.$": "$.serving", "training.$": "$.training"}
    state = run_state()
    requests = {name: render(states[name]["Parameters"], state) for name in ("ScoreCandidate", "ScoreServing")}
    for model, request in requests.items():
        validate_parameters(request, _input_shape("CreateTransformJob"))
        assert states[model]["Resource"].endswith(":states:::sagemaker:createTransformJob.sync")
        assert request["TransformInput"]["DataSource"]["S3DataSource"] == {"S3DataType": "S3Prefix", "S3Uri": state["dataset"]["evaluationS3Uri"]}
        # The model reads the features only (row, weight, source and label filtered out); each output
        # line is the whole evaluation line, then the score.
        assert request["DataProcessing"] == {"InputFilter": "$[4:]", "JoinSource": "Input"}
        assert request["TransformInput"]["SplitType"] == "Line" and request["TransformOutput"]["AssembleWith"] == "Line"
    assert requests["ScoreCandidate"]["ModelName"] == state["dataset"]["names"]["model"] and requests["ScoreServing"]["ModelName"] == "Model-old"
    assert requests["ScoreCandidate"]["TransformJobName"] == f"{state['dataset']['names']['model']}-candidate"
    assert requests["ScoreServing"]["TransformOutput"]["S3OutputPath"] == "s3://datasets/retraining/20261122-100000-abc123/evaluation-scores/serving/"
    assert requests["ScoreCandidate"]["TransformOutput"]["S3OutputPath"] == "s3://datasets/retraining/20261122-100000-abc123/evaluation-scores/candidate/"


def test_an_objective_the_gate_cannot_compute_is_refused_at_synth_naming_the_key(tmp_path, dev_app) -> None:
    environment = json.loads(json.dumps(dev_app.app.node.try_get_context("environments")["dev"]))
    environment["retraining"] = {"objective_metric": "validation:rmse"}
    with pytest.raises(ValueError, match=r"retraining\.objective_metric: 'validation:rmse' is not a figure the promotion gate computes"):
        build_app(tmp_path, environment=environment)


def test_the_steps_function_gets_the_evaluation_settings(dev_app) -> None:
    function = dev_app.retraining.get_logical_id(dev_app.retraining.steps.function.node.default_child)
    variables = dev_app.template_json("retraining")["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert (variables["HOLDOUT_PERCENTAGE"], variables["VARIANT_NAME"]) == ("20", "AllTraffic")
    assert "/test.csv" in json.dumps(variables["TEST_DATA_S3_URI"])  # the bundled model's test set


def _input_shape(operation: str):
    return boto3.client("sagemaker", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x").meta.service_model.operation_model(operation).input_shape


def test_the_models_role_may_describe_the_rollback_alarm_and_run_the_transform_by_a_policy_of_this_stack(dev_app, template: Template) -> None:
    [policy] = template.find_resources("AWS::IAM::ManagedPolicy").values()
    [role] = policy["Properties"]["Roles"]
    # The serving stack's model role, by reference: the policy belongs to this stack.
    assert '"mlloop-dev-serving"' in json.dumps(role) and "InferenceExecutionRole" in json.dumps(role)
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    alarm_id = dev_app.retraining.get_logical_id(dev_app.retraining.rollback_alarm.node.default_child)
    [alarms] = [s for s in statements if "cloudwatch:DescribeAlarms" in actions(s)]
    assert actions(alarms) == ["cloudwatch:DescribeAlarms"] and alarms["Resource"] == {"Fn::GetAtt": [alarm_id, "Arn"]}
    # Derived from the transform requests (stacks/shared/job_roles.py): their input prefixes of every run, their outputs, their keys.
    by_action = {a: resources(s) for s in statements for a in actions(s)}
    assert sorted(r.split("}}", 1)[1] for r in by_action["s3:GetObject"]) == ["/retraining/*/evaluation/*", "/retraining/*/train/*"]
    assert sorted(r.split("}}", 1)[1] for r in by_action["s3:PutObject"]) == [
        "/retraining/*/evaluation-scores/candidate/*", "/retraining/*/evaluation-scores/serving/*", "/retraining/*/scores/*",
    ]  # fmt: skip
    assert len(by_action["s3:ListBucket"]) == 1 and "Datasets" in by_action["s3:ListBucket"][0]
    assert {"kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:CreateGrant"} <= set(by_action)


def test_the_training_roles_data_grants_are_derived_from_the_train_request(dev_app) -> None:
    statements = statements_of(dev_app, dev_app.retraining.training_role)
    by_action = {a: resources(s) for s in statements for a in actions(s)}
    assert sorted(r.split("}}", 1)[1] for r in by_action["s3:GetObject"]) == ["/retraining/*/train/*", "/retraining/*/validation/*"]
    assert [r.split("}}", 1)[1] for r in by_action["s3:PutObject"]] == ["/retraining/*/*"]  # the model output of every run
    assert "Models" in by_action["s3:PutObject"][0] and "Datasets" in by_action["s3:ListBucket"][0]
    [grant] = [s for s in statements if "kms:CreateGrant" in actions(s)]  # VolumeKmsKeyId
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert {"kms:Encrypt", "kms:GenerateDataKey"} <= set(by_action)  # OutputDataConfig.KmsKeyId


def test_steps_may_describe_the_rollback_alarm_and_write_the_served_model_parameter_only(dev_app) -> None:
    statements = statements_of(dev_app, dev_app.retraining.steps.role)
    [alarms] = [s for s in statements if "cloudwatch:DescribeAlarms" in actions(s)]
    alarm_id = dev_app.retraining.get_logical_id(dev_app.retraining.rollback_alarm.node.default_child)
    assert actions(alarms) == ["cloudwatch:DescribeAlarms"] and alarms["Resource"] == {"Fn::GetAtt": [alarm_id, "Arn"]}
    [parameter] = [s for s in statements if "ssm:PutParameter" in actions(s)]
    assert actions(parameter) == ["ssm:PutParameter"]
    # The serving stack's parameter (AppConfig.served_model_parameter), and nothing else.
    assert resources(parameter) == ["arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/mlloop/dev/serving/model-data-url"]


def test_triggers_may_describe_only_this_machines_executions(dev_app) -> None:
    statements = statements_of(dev_app, dev_app.retraining.triggers.role)
    [describe] = [s for s in statements if "states:DescribeExecution" in actions(s)]
    assert actions(describe) == ["states:DescribeExecution"]
    [resource] = resources(describe)
    assert resource.startswith("arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:") and resource.endswith(":*")


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
    assert {c["Next"] for c in approve["Catch"]} == {"ApprovalAnswer", "NotifyFailure"}
    # A rejection without a cause (the documented command sends none) is formatted without one.
    # Rules are tried in order: the first one tests that Cause is there before any other reads it.
    rules = states["ApprovalAnswer"]["Choices"]
    assert rules[0] == {"Not": {"Variable": "$.approval.Cause", "IsPresent": True}, "Next": "ApprovalWithheldWithoutCause"}
    assert {r["Next"] for r in rules} == {"ApprovalWithheldWithoutCause"} and states["ApprovalAnswer"]["Default"] == "ApprovalWithheld"
    assert "Cause" not in states["ApprovalWithheldWithoutCause"]["Parameters"]["reason.$"]
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


def test_jobs_on_instances_with_local_storage_request_no_volume_key(tmp_path, sagemaker_app) -> None:
    """botocore (ResourceConfig, ProcessingClusterConfig, TransformResources): "You can't request a
    VolumeKmsKeyId when using an instance type with local storage"; other instances keep the app's key."""
    dev_app = sagemaker_app
    environment = json.loads(json.dumps(dev_app.app.node.try_get_context("environments")["dev"]))
    environment["retraining"] = {"instance_type": "ml.g5.xlarge", "transform_instance_type": "ml.g4dn.xlarge"}
    environment["monitoring"] = {"backend": "sagemaker", "data_quality": {"instance_type": "ml.g5.xlarge"}}
    built = build_app(tmp_path, environment=environment)
    built.app.synth()
    states = all_states(definition(built, token=PLACEHOLDER_ARN)["States"])
    train, score, candidate = (render(states[name]["Parameters"], run_state()) for name in ("Train", "ScoreTrainingSet", "ScoreCandidate"))
    assert "VolumeKmsKeyId" not in train["ResourceConfig"] and "VolumeKmsKeyId" not in score["TransformResources"]
    assert candidate["TransformResources"] == score["TransformResources"]
    monitoring = built.template("monitoring")
    assert "VolumeKmsKeyId" not in _baseline_request(monitoring)["ProcessingResources"]["ClusterConfig"]
    [definition_] = monitoring.find_resources("AWS::SageMaker::DataQualityJobDefinition").values()
    assert "VolumeKmsKeyId" not in definition_["Properties"]["JobResources"]["ClusterConfig"]
    # The default instances (ml.m5.xlarge) keep their volumes on the app's key.
    default_states = all_states(definition(dev_app, token=PLACEHOLDER_ARN)["States"])
    assert render(default_states["Train"]["Parameters"], run_state())["ResourceConfig"]["VolumeKmsKeyId"]
    assert render(default_states["ScoreTrainingSet"]["Parameters"], run_state())["TransformResources"]["VolumeKmsKeyId"]
    assert _baseline_request(dev_app.template("monitoring"))["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]


def test_open_back_end_baselines_in_the_steps_lambda_with_no_job(dev_app) -> None:
    """The default (open) monitoring back end: (approved) ScoreTrainingSet -> BaselineDataset ->
    Baselines (the steps Lambda computes both baselines, from fixed monitor settings) -> Deploy."""
    assert dev_app.monitoring.backend == "open"
    states = all_states(definition(dev_app, token="TOKEN")["States"])
    assert not {"BaselineJobs", "DataQualityBaseline", "ExplainabilityBaseline", "NoBaselines"} & set(states)
    assert states["Better"]["Choices"][0]["Next"] == "ScoreTrainingSet" and states["BaselineDataset"]["Next"] == "Baselines"
    assert states["Baselines"]["Next"] == "Deploy" and states["Baselines"]["Catch"][0]["Next"] == "NotifyFailure"
    assert states["Baselines"]["TimeoutSeconds"] and states["Baselines"]["Retry"]
    payload = states["Baselines"]["Parameters"]  # payload_response_only: the Parameters are the payload
    assert payload["step"] == "openBaselines" and payload["training.$"] == "$.training" and payload["baselineDataset.$"] == "$.baselineDataset"
    assert payload["monitors"] == {
        "dataQuality": {"monitor": "data-quality", "bucket": "TOKEN", "threshold": 0.1},
        "explainability": {"monitor": "explainability", "bucket": "TOKEN", "label": "benign"},
    }
    assert states["Promote"]["Parameters"]["baselines.$"] == "$.baselines.monitors"
    assert states["Run"]["Parameters"]["templates"] == {}


def test_open_back_end_steps_may_write_the_monitors_baselines_and_load_xgboost(dev_app) -> None:
    steps_function = dev_app.retraining.steps
    statements = statements_of(dev_app, steps_function.role)
    writes = sorted(r for s in statements if "s3:PutObject" in actions(s) for r in resources(s) if "baselines" in r or "current" in r)
    assert [w.rsplit("/", 2)[-2:] for w in writes] == [["baselines", "*"], ["current", "*"], ["baselines", "*"], ["current", "*"]]
    assert {w.split("/")[-3] for w in writes} == {"data-quality", "explainability"}
    function = dev_app.template_json("retraining")["Resources"][dev_app.retraining.get_logical_id(steps_function.function.node.default_child)]
    assert len(function["Properties"]["Layers"]) == 2  # Powertools, and numpy (the gate) with XGBoost (the attribution baseline's TreeSHAP)


def test_the_trigger_and_steps_roles_list_and_write_only_what_their_code_does(dev_app) -> None:
    """Least privilege (deploy-fidelity review F7): the table actions triggers.py calls, and listings
    limited to the prefixes the code lists (training-rows/, ground-truth/, the training data and test set, retraining/)."""
    triggers = statements_of(dev_app, dev_app.retraining.triggers.role)
    table_actions = {a for s in triggers for a in actions(s) if a.startswith("dynamodb:")}
    assert table_actions == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"}
    steps = statements_of(dev_app, dev_app.retraining.steps.role)
    for statement in (s for s in triggers + steps if "s3:ListBucket" in actions(s)):
        if "FnGetAttModels" in str(statement["Resource"]):  # the models bucket, read through the storage stack's output
            continue  # a GetObject's 404 there needs an unconditioned ListBucket (the stack says why)
        prefixes = next(iter(statement["Condition"].values()))["s3:prefix"]
        assert prefixes and all(p.startswith(("training-rows/", "ground-truth/", "retraining/")) or p.endswith("*") for p in prefixes)
    labelled = [s for s in triggers if "s3:ListBucket" in actions(s)]
    assert [s["Condition"] for s in labelled] == [{"StringEquals": {"s3:prefix": ["training-rows/"]}}]
    # The steps list the bundled training data and test set, the run's folder, the labels and their ground-truth lines.
    listed = sorted(next(iter(s["Condition"].values()))["s3:prefix"][0] for s in steps if "s3:ListBucket" in actions(s) and "Condition" in s)
    bundled = [p.rsplit("/", 1)[1] for p in listed if p.startswith("bundled/")]
    assert sorted(bundled) == ["test.csv*", "train.csv*"] and [p for p in listed if not p.startswith("bundled/")] == ["ground-truth/", "retraining/*", "training-rows/"]
