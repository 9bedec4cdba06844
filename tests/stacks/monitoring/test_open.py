"""Monitoring stack on the open back end (the default, ``monitoring.backend: open``): no Model
Monitor or Clarify resource; EventBridge Scheduler evaluations with the expression and input the
evaluators read; least-privilege grants; the SageMaker back end's alarm and schedule names."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from lambdas.monitoring.drift.evaluate import DRIFT_METRIC, SIGNIFICANT_DRIFT_METRIC
from lambdas.monitoring.open import common
from lambdas.monitoring.runs import runs
from lambdas.shared import baseline as baseline_dataset
from lambdas.shared.consumer import Environment
from stacks.shared import aws_facts, default_model
from stacks.shared.compliance import flatten_reference, wildcard_findings
from tests.conftest import build_app

# Every resource type of Model Monitor, Clarify and the SageMaker back end's baseline jobs.
SAGEMAKER_MONITORING_TYPES = {
    "AWS::SageMaker::MonitoringSchedule",
    "AWS::SageMaker::DataQualityJobDefinition",
    "AWS::SageMaker::ModelExplainabilityJobDefinition",
    "AWS::SageMaker::ModelBiasJobDefinition",
    "AWS::SageMaker::ModelQualityJobDefinition",
    "Custom::DataQualityBaseline",
    "Custom::ExplainabilityBaseline",
}
SERVICE = "mlloop-dev-monitoring-runs"
FEATURES = list(default_model.FEATURE_NAMES)


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("monitoring")


def _resources(template: Template, kind: str) -> dict[str, dict]:
    return template.find_resources(kind)


def _evaluate(node: Any, parameters: dict[str, str]) -> Any:
    """A CloudFormation value with Ref (to parameters), Fn::Join, Fn::Split and Fn::Select worked out."""
    if isinstance(node, dict) and len(node) == 1:
        [(name, argument)] = node.items()
        if name == "Ref":
            return parameters[argument]
        if name == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(_evaluate(item, parameters) for item in items)
        if name == "Fn::Split":
            delimiter, value = argument
            return _evaluate(value, parameters).split(delimiter)
        if name == "Fn::Select":
            index, values = argument
            return _evaluate(values, parameters)[int(index)]
    return node


def _schedule(template: Template, name: str) -> dict:
    [schedule] = [s["Properties"] for s in _resources(template, "AWS::Scheduler::Schedule").values() if s["Properties"]["Name"] == name]
    return schedule


def _statements(template: Template, role_ref: dict) -> list[dict]:
    """Every statement of the IAM policies attached to the role ``role_ref`` ({"Fn::GetAtt": [id, "Arn"]} or {"Ref": id})."""
    role_id = role_ref["Fn::GetAtt"][0] if "Fn::GetAtt" in role_ref else role_ref["Ref"]
    return [
        statement
        for policy in _resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _grants(statements: list[dict]) -> dict[str, set[str]]:
    """Action -> flattened resources (a condition, if any, appended after ' if ')."""
    grants: dict[str, set[str]] = {}
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        condition = f" if {json.dumps(statement['Condition'], sort_keys=True)}" if "Condition" in statement else ""
        for action in actions:
            grants.setdefault(action, set()).update(flatten_reference(r) + condition for r in resources)
    return grants


def _function(template: Template, handler: str) -> tuple[str, dict]:
    """The one function with ``handler``: its logical ID and properties."""
    [(logical_id, function)] = [(k, f) for k, f in _resources(template, "AWS::Lambda::Function").items() if f["Properties"]["Handler"] == handler]
    return logical_id, function["Properties"]


def test_the_default_synth_has_no_model_monitor_or_clarify_resource(dev_app) -> None:
    assert dev_app.monitoring.backend == "open"
    for stack in ("storage", "serving", "review", "monitoring", "retraining", "operations"):
        types = {r["Type"] for r in dev_app.template_json(stack)["Resources"].values()}
        assert not types & SAGEMAKER_MONITORING_TYPES, stack
    monitoring = json.dumps(dev_app.template_json("monitoring"))
    # No processing job (baseline) or monitoring schedule is started or described by anything in it,
    # and no Model Monitor or Clarify image is mapped.
    for action in ("sagemaker:CreateProcessingJob", "sagemaker:DescribeMonitoringSchedule", "sagemaker-model-monitor-analyzer", "sagemaker-clarify-processing"):
        assert action not in monitoring, action


def test_schedules_fire_at_minute_20_of_the_cadence_parameter_with_the_input_the_evaluators_read(template: Template) -> None:
    parameters = template.to_json()["Parameters"]
    for name, parameter, default in (("mlloop-dev-data-quality", "DataQualitySchedule", "cron(0 * ? * * *)"), ("mlloop-dev-explainability", "ExplainabilitySchedule", "cron(0 0 ? * * *)")):
        assert parameters[parameter]["Default"] == default
        assert parameters[parameter]["AllowedValues"] == list(aws_facts.MONITORING_CADENCES)  # an evaluation fits any cadence
        schedule = _schedule(template, name)
        assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert (schedule["ScheduleExpressionTimezone"], schedule["State"]) == ("UTC", "ENABLED")
        assert schedule["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86_400, "MaximumRetryAttempts": 185}
        for cadence, seconds in aws_facts.MONITORING_CADENCES.items():
            # CloudFormation's Fn::Split/Select/Join gives the watchdog's expression for every allowed value.
            expression = _evaluate(schedule["ScheduleExpression"], {parameter: cadence})
            assert expression == runs.evaluation_expression(cadence) and expression.startswith("cron(20 ")
            # The input as Scheduler sends it (context keyword replaced) is one period of the evaluators.
            text = _evaluate(schedule["Target"]["Input"], {parameter: cadence})
            assert json.loads(text) == {"scheduledTime": "<aws.scheduler.scheduled-time>", "schedule": cadence}
            sent = json.loads(text.replace(aws_facts.SCHEDULER_SCHEDULED_TIME, "2026-11-22T10:20:00Z"))
            period = common.period(sent, aws_facts.MONITORING_CADENCES)
            assert period.end == dt.datetime(2026, 11, 22, 10, tzinfo=dt.UTC) and (period.end - period.start).total_seconds() == seconds


def test_each_schedule_runs_its_evaluator_with_its_own_role_and_parks_failures(template: Template) -> None:
    for name, handler in (("mlloop-dev-data-quality", "lambdas.monitoring.open.data_quality.handler"), ("mlloop-dev-explainability", "lambdas.monitoring.open.attribution.handler")):
        schedule = _schedule(template, name)
        function_id, _ = _function(template, handler)
        assert schedule["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
        dlq = schedule["Target"]["DeadLetterConfig"]["Arn"]
        role_id = schedule["Target"]["RoleArn"]["Fn::GetAtt"][0]
        role = template.to_json()["Resources"][role_id]["Properties"]
        [trust] = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"} and trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
        grants = _grants(_statements(template, {"Ref": role_id}))
        [key] = grants["kms:Decrypt"]
        assert "DataKey" in key  # the app's key (the storage stack's output)
        assert grants == {"lambda:InvokeFunction": {f"<{function_id}.Arn>"}, "sqs:SendMessage": {flatten_reference(dlq)}, "kms:GenerateDataKey": {key}, "kms:Decrypt": {key}}
        # Lambda's own retries of a failed run, then the same queue (Scheduler invokes asynchronously).
        [invoke] = [c["Properties"] for c in _resources(template, "AWS::Lambda::EventInvokeConfig").values() if c["Properties"]["FunctionName"] == {"Ref": function_id}]
        assert invoke["MaximumRetryAttempts"] == 2 and invoke["DestinationConfig"] == {"OnFailure": {"Destination": dlq}}
        # The queue is alarmed at one message.
        queue_id = dlq["Fn::GetAtt"][0]
        alarms = [a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values() if {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}} in a["Properties"].get("Dimensions", [])]
        assert len(alarms) == 1 and alarms[0]["Threshold"] == 1


def _evaluator_grants(template: Template, handler: str) -> dict[str, set[str]]:
    function_id, function = _function(template, handler)
    return _grants(_statements(template, function["Role"]))


def test_evaluators_may_read_their_period_files_and_baseline_and_write_only_their_reports(template: Template) -> None:
    for handler, kind, folder in (("lambdas.monitoring.open.data_quality.handler", "data-quality", "sketches"), ("lambdas.monitoring.open.attribution.handler", "explainability", "samples")):
        grants = _evaluator_grants(template, handler)
        # Data quality also reads its earlier reports: each run looks back for periods that got late sketches.
        earlier_reports = {f"/{kind}/reports/*"} if kind == "data-quality" else set()
        assert {r.split("}}")[-1] for r in grants["s3:GetObject"] if "monitoring" in r.lower()} == {f"/{kind}/{folder}/*", f"/{kind}/current/*"} | earlier_reports
        assert {r.split("}}")[-1] for r in grants["s3:PutObject"]} == {f"/{kind}/reports/*"}
        [listing] = grants["s3:ListBucket"]
        assert listing.endswith(json.dumps({"StringLike": {"s3:prefix": [f"{kind}/{folder}/*", f"{kind}/current/*"]}}, sort_keys=True))
        assert grants["events:PutEvents"] == {"arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:event-bus/default"}
        assert "cloudwatch:PutMetricData" not in grants  # EMF: metrics go through the log
        assert not any(a.startswith("s3:") and "*" in a for a in grants)


def test_the_attribution_evaluator_may_find_and_read_the_served_model_only(template: Template) -> None:
    grants = _evaluator_grants(template, "lambdas.monitoring.open.attribution.handler")
    [endpoint] = grants["sagemaker:DescribeEndpoint"]
    assert endpoint.endswith(":endpoint/mlloop-dev")
    assert {g.rsplit(":", 1)[1] for g in grants["sagemaker:DescribeEndpointConfig"] | grants["sagemaker:DescribeModel"]} == {"endpoint-config/*", "model/*"}
    models = {r for r in grants["s3:GetObject"] if "Models" in r}
    assert any(r.endswith("/retraining/*") for r in models) and any("/bundled/" in r for r in models)
    assert not {a for a in grants if a.startswith("sagemaker:")} - {"sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"}


def test_evaluator_environments_are_what_the_handlers_read(template: Template, monkeypatch) -> None:
    _, dq = _function(template, "lambdas.monitoring.open.data_quality.handler")
    variables = dq["Environment"]["Variables"]
    settings = common.read_settings(Environment(variables))
    assert (settings.endpoint, settings.schedule, settings.event_source, settings.event_bus) == ("mlloop-dev", "mlloop-dev-data-quality", "mlloop.monitoring", "default")
    assert settings.cadences == aws_facts.MONITORING_CADENCES and variables["POWERTOOLS_SERVICE_NAME"] == SERVICE
    _, ex = _function(template, "lambdas.monitoring.open.attribution.handler")
    from lambdas.monitoring.open import attribution

    for name, value in ex["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value if isinstance(value, str) else "resolved-at-deploy")
    attribution.settings.cache_clear()
    try:
        read = attribution.settings()
    finally:
        attribution.settings.cache_clear()
    assert (read.ndcg_threshold, read.sample_rows, read.feature_names, read.label) == (0.9, 500, tuple(FEATURES), "benign")
    assert read.evaluator.schedule == "mlloop-dev-explainability" and ex["Environment"]["Variables"]["VARIANT_NAME"] == "AllTraffic"
    assert len(ex["Layers"]) == 2  # the dependency layer and the explain layer (XGBoost)


def test_drift_alarms_keep_their_names_and_watch_the_significant_distance(template: Template) -> None:
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in _resources(template, "AWS::CloudWatch::Alarm").values() if "AlarmName" in a["Properties"]}
    features = baseline_dataset.header(FEATURES)[1:]
    # Beside them, only the model-quality alarms (tests/stacks/monitoring/test_model_quality.py).
    assert set(alarms) == {f"mlloop-dev-drift-{f}" for f in features} | {f"mlloop-dev-model-quality-{m}" for m in aws_facts.MODEL_QUALITY_BINARY_METRICS}
    for feature in features:
        alarm = alarms[f"mlloop-dev-drift-{feature}"]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("MlLoop", SIGNIFICANT_DRIFT_METRIC.format(feature=feature))
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"Endpoint": "mlloop-dev", "MonitoringSchedule": "mlloop-dev-data-quality", "service": SERVICE}
        assert (alarm["Statistic"], alarm["Threshold"], alarm["Period"], alarm["ComparisonOperator"]) == ("Maximum", 0.1, 3600, "GreaterThanThreshold")
        assert alarm["TreatMissingData"] == "notBreaching" and len(alarm["AlarmActions"]) == 1


def test_dashboard_metrics_are_the_ones_the_evaluators_emit(dev_app) -> None:
    dq, ex = dev_app.monitoring.data_quality, dev_app.monitoring.explainability
    assert {m.metric_name for m in dq.drift_metrics.values()} == {DRIFT_METRIC.format(feature=f) for f in FEATURES}
    assert {m.metric_name for m in ex.shap_metrics.values()} == {f"feature_{f}" for f in FEATURES}
    for metric in (*dq.drift_metrics.values(), *ex.shap_metrics.values()):
        assert metric.namespace == "MlLoop" and metric.dimensions["service"] == SERVICE
    assert ex.label == "benign" and dq.role is None and dq.baseline_template is None and ex.baseline_template is None


def test_baselines_are_computed_at_deploy_from_the_bundled_datasets_and_the_served_model(template: Template) -> None:
    [dq] = _resources(template, "Custom::OpenDataQualityBaseline").values()
    [ex] = _resources(template, "Custom::OpenExplainabilityBaseline").values()
    dq, ex = dq["Properties"], ex["Properties"]
    assert (dq["Monitor"], dq["DriftThreshold"], json.loads(dq["FeatureNames"])) == ("data-quality", "0.1", FEATURES)
    assert flatten_reference(dq["DatasetS3Uri"]).endswith(f"/{default_model.BASELINE_CSV.name}")
    assert (ex["Monitor"], ex["LabelName"], json.loads(ex["FeatureNames"])) == ("explainability", "benign", FEATURES)
    assert flatten_reference(ex["DatasetS3Uri"]).endswith(f"/{default_model.TRAIN_CSV.name}")
    assert ex["ModelDataUrl"] == {"Ref": "ServedModelDataUrl"}
    assert template.to_json()["Parameters"]["ServedModelDataUrl"] == {
        "Type": "AWS::SSM::Parameter::Value<String>", "Default": "/mlloop/dev/serving/model-data-url",
        "Description": "Name of the SSM parameter holding the served model's ModelDataUrl (the attribution baseline explains it).",
    }  # fmt: skip
    # The evaluators start only once current/ holds a baseline.
    functions = _resources(template, "AWS::Lambda::Function")
    for handler, resource_type in (("data_quality", "Custom::OpenDataQualityBaseline"), ("attribution", "Custom::OpenExplainabilityBaseline")):
        function_id, _ = _function(template, f"lambdas.monitoring.open.{handler}.handler")
        [custom] = _resources(template, resource_type)
        assert custom in functions[function_id]["DependsOn"]
    # The handler's grants: the datasets, the served model's artefacts, its monitors' folders.
    _, handler = _function(template, "lambdas.monitoring.open.baseline.handler")
    grants = _grants(_statements(template, handler["Role"]))
    tails = {r.split("}}")[-1] for r in grants["s3:GetObject"]}
    assert {f"/data-quality/baselines/*", "/explainability/baselines/*", "/retraining/*"} <= tails
    assert any(t.endswith(default_model.BASELINE_CSV.name) for t in tails) and any(t.endswith(default_model.TRAIN_CSV.name) for t in tails)
    # The model-quality baseline shares the handler (tests/stacks/monitoring/test_model_quality.py).
    monitors = ("data-quality", "explainability", "model-quality")
    assert {r.split("}}")[-1] for r in grants["s3:PutObject"]} == {f"/{m}/{f}/*" for m in monitors for f in ("baselines", "current")}
    assert {r.split("}}")[-1] for r in grants["s3:DeleteObject"]} == {f"/{m}/current/promoted.json" for m in monitors}
    assert all("StringEquals" in listing and "promoted.json" in listing for listing in grants["s3:ListBucket"])
    assert handler["Timeout"] == 900 and len(handler["Layers"]) == 2


def test_baseline_files_given_in_config_are_copied_not_computed(tmp_path) -> None:
    statistics, constraints = "s3://my-baselines/statistics.json", "s3://my-baselines/constraints.json"
    built = build_app(tmp_path, environment={"monitoring": {"data_quality": {"baseline_statistics_s3_uri": statistics, "baseline_constraints_s3_uri": constraints}}})
    template = built.template("monitoring")
    [dq] = _resources(template, "Custom::OpenDataQualityBaseline").values()
    assert (dq["Properties"]["BaselineStatisticsS3Uri"], dq["Properties"]["BaselineConstraintsS3Uri"]) == (statistics, constraints)
    assert "DatasetS3Uri" not in dq["Properties"]
    _, handler = _function(template, "lambdas.monitoring.open.baseline.handler")
    grants = _grants(_statements(template, handler["Role"]))
    assert {"arn:<AWS::Partition>:s3:::my-baselines/statistics.json", "arn:<AWS::Partition>:s3:::my-baselines/constraints.json"} <= grants["s3:GetObject"]
    assert not any("my-baselines" in r for r in grants.get("s3:ListBucket", set()))
    # The handler publishes exactly those files (this app's own baseline format) to current/.
    import boto3
    from moto import mock_aws

    from lambdas.monitoring.open import baseline as handler

    properties = {k: _deployed(v, {"Monitoring": "app-monitoring"}, {}) for k, v in dq["Properties"].items() if k != "ServiceToken"}
    documents = handler.data_quality_documents(default_model.BASELINE_CSV.read_text(), source="bundled", feature_names=FEATURES)
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        for bucket in ("app-monitoring", "my-baselines"):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for name, body in documents.items():
            s3.put_object(Bucket="my-baselines", Key=name, Body=body)
        handler.on_event({"RequestType": "Create", "ResourceProperties": properties}, s3=s3)
        published = {name: s3.get_object(Bucket="app-monitoring", Key=f"data-quality/current/{name}")["Body"].read() for name in documents}
    assert published == documents


def test_the_watchdog_asks_scheduler_and_reads_the_run_markers(template: Template) -> None:
    _, watchdog = _function(template, "lambdas.monitoring.runs.handler.watchdog")
    variables = watchdog["Environment"]["Variables"]
    assert variables["BACKEND"] == "open" and "MONITORING_BUCKET" in variables
    grants = _grants(_statements(template, watchdog["Role"]))
    kinds = ("data-quality", "explainability", "model-quality")
    assert grants["scheduler:GetSchedule"] == {f"arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/default/mlloop-dev-{kind}" for kind in kinds}
    markers = [runs.latest_marker_key(kind, "mlloop-dev", f"mlloop-dev-{kind}") for kind in kinds]
    # The evaluators write the same keys (lambdas/monitoring/open/common.py).
    for kind, marker in zip(kinds, markers, strict=True):
        settings = common.EvaluatorSettings("b", "mlloop-dev", f"mlloop-dev-{kind}", "s", "default", {})
        assert common.latest_key(kind, settings) == marker
    assert {r.split("}}")[-1] for r in grants["s3:GetObject"]} == {f"/{m}" for m in markers}
    [listing] = grants["s3:ListBucket"]
    assert listing.endswith(json.dumps({"StringEquals": {"s3:prefix": markers}}, sort_keys=True))
    assert not any(a.startswith("sagemaker:") for a in grants)
    assert not any("*" in finding for finding in wildcard_findings(_statements(template, watchdog["Role"])) if "s3" in finding or "scheduler" in finding)


def test_no_sagemaker_run_events_and_alerts_link_the_html_report(template: Template) -> None:
    rules = [r["Properties"] for r in _resources(template, "AWS::Events::Rule").values()]
    assert not any("aws.sagemaker" in json.dumps(r.get("EventPattern", {})) for r in rules)
    assert _resources(template, "AWS::Lambda::EventSourceMapping") == {}  # no monitoring_runs queue consumer
    [alert] = [r for r in rules if r.get("EventPattern", {}).get("source") == ["mlloop.monitoring"]]
    paths = alert["Targets"][0]["InputTransformer"]["InputPathsMap"]
    assert paths["detail-reportHtmlS3Uri"] == "$.detail.reportHtmlS3Uri"
    assert "<detail-reportHtmlS3Uri>" in alert["Targets"][0]["InputTransformer"]["InputTemplate"]


def _capture_filters(built) -> dict[str, list[dict]]:
    """Each stack's capture_filter functions (properties)."""
    return {
        stack: [f["Properties"] for f in built.template(stack).find_resources("AWS::Lambda::Function").values() if f["Properties"]["Handler"] == "lambdas.capture.handler.handler"]
        for stack in ("review", "monitoring")
        if getattr(built, stack) is not None
    }


def test_with_review_on_its_capture_filter_profiles_and_the_monitoring_stack_builds_none(dev_app) -> None:
    filters = _capture_filters(dev_app)
    assert filters["monitoring"] == [] and len(filters["review"]) == 1
    variables = filters["review"][0]["Environment"]["Variables"]
    assert (variables["REVIEW_SELECTION"], variables["PROFILING"]) == ("true", "data-quality,explainability")


def test_without_review_the_monitoring_stack_builds_a_profiling_only_capture_pipeline(tmp_path) -> None:
    built = build_app(tmp_path, environment={"removal_policy": "destroy", "review": {"enabled": False}, "monitoring": {"explainability": {"enabled": False}}})
    built.app.synth()  # the cdk-nag packs pass with it
    assert built.review is None
    [capture] = _capture_filters(built)["monitoring"]
    variables = capture["Environment"]["Variables"]
    assert (variables["REVIEW_SELECTION"], variables["PROFILING"]) == ("false", "data-quality")
    assert "REVIEW_QUEUE_URL" not in variables
    template = built.template("monitoring")
    [rule] = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values() if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]]
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "capture/mlloop-dev/AllTraffic/"}]
    grants = _grants(_statements(template, capture["Role"]))
    assert {r.split("}}")[-1] for r in grants["s3:PutObject"]} == {"/rejected-captures/*", "/data-quality/sketches/*"}


def test_the_sagemaker_back_end_profiles_nothing(tmp_path) -> None:
    from tests.stacks.monitoring.conftest import sagemaker_build

    built = sagemaker_build(tmp_path, {"removal_policy": "destroy", "review": {"enabled": False}})
    assert _capture_filters(built) == {"monitoring": []}


def _deployed(node: Any, buckets: dict[str, str], parameters: dict[str, str]) -> Any:
    """A custom-resource property as CloudFormation passes it: the storage stack's bucket outputs
    replaced by bucket names (``buckets``: a word of the output's name -> name), Refs by ``parameters``."""
    if isinstance(node, str):
        return node
    if "Ref" in node:
        return parameters[node["Ref"]]
    if "Fn::GetStackOutput" in node:
        output = node["Fn::GetStackOutput"]["OutputName"]
        [name] = [bucket for word, bucket in buckets.items() if word in output]
        return name
    delimiter, parts = node["Fn::Join"]
    return delimiter.join(_deployed(part, buckets, parameters) for part in parts)


def test_the_baseline_handler_computes_both_baselines_from_the_synthesised_properties(template: Template, monkeypatch) -> None:
    """The properties the stack sends are the ones lambdas.monitoring.open.baseline reads: on moto, the
    bundled datasets and model give current/ files the evaluators load."""
    import boto3
    from moto import mock_aws

    from lambdas.monitoring.drift.baseline import load
    from lambdas.monitoring.open import baseline as handler
    from lambdas.monitoring.open.attribution import baseline_values

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    buckets = {"Datasets": "app-datasets", "Models": "app-models", "Monitoring": "app-monitoring"}
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        for bucket in buckets.values():
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        model_key = "bundled/model.tar.gz"
        s3.put_object(Bucket="app-models", Key=model_key, Body=default_model.MODEL_ARTIFACT.read_bytes())
        parameters = {"ServedModelDataUrl": f"s3://app-models/{model_key}"}
        for resource_type in ("Custom::OpenDataQualityBaseline", "Custom::OpenExplainabilityBaseline"):
            [resource] = _resources(template, resource_type).values()
            properties = {k: _deployed(v, buckets, parameters) for k, v in resource["Properties"].items() if k != "ServiceToken"}
            dataset = properties["DatasetS3Uri"].removeprefix("s3://app-datasets/")
            local = default_model.BASELINE_CSV if dataset.endswith(default_model.BASELINE_CSV.name) else default_model.TRAIN_CSV
            s3.put_object(Bucket="app-datasets", Key=dataset, Body=local.read_bytes())
            answer = handler.on_event({"RequestType": "Create", "ResourceProperties": properties}, s3=s3)
            assert answer["Data"]["NewBaseline"] == "true"
        current = {name: json.loads(s3.get_object(Bucket="app-monitoring", Key=f"data-quality/current/{name}")["Body"].read()) for name in ("statistics.json", "constraints.json")}
        baseline = load(current["statistics.json"], current["constraints.json"])
        analysis = json.loads(s3.get_object(Bucket="app-monitoring", Key="explainability/current/analysis.json")["Body"].read())
    assert baseline.threshold == 0.1 and len(baseline.counts) == len(baseline_dataset.header(FEATURES))  # DriftThreshold, and the output column then every feature
    values = baseline_values(analysis, "benign", FEATURES)
    assert set(values) == set(FEATURES) and any(v > 0 for v in values.values())
