"""Monitoring stack: data-quality baseline, job definition, schedule and drift alarms."""

from __future__ import annotations

import json
from unittest import mock

import boto3
import pytest
from aws_cdk.assertions import Match, Template

from stacks import aws_facts, default_model
from stacks.monitoring import baseline_environment
from tests.conftest import build_app

MARK = "<ref>"


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("monitoring")


def _baseline_request(template: Template) -> dict:
    [baseline] = template.find_resources("Custom::DataQualityBaseline").values()
    parts = baseline["Properties"]["Request"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else MARK for part in parts))


def _sdk_monitor(kind: type) -> tuple[mock.MagicMock, object]:
    """An SDK monitor of ``kind`` with our cluster settings, whose SageMaker client records calls."""
    from sagemaker.core.helper.session_helper import Session

    client = mock.MagicMock()
    session = Session(
        boto_session=boto3.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"), sagemaker_client=client, default_bucket="unused"
    )
    monitor = kind(
        role="arn:aws:iam::123456789012:role/r", instance_count=1, instance_type="ml.m5.xlarge", volume_size_in_gb=20,
        volume_kms_key=MARK, output_kms_key=MARK, max_runtime_in_seconds=3600, sagemaker_session=session,
    )  # fmt: skip
    return client, monitor


def _sdk_request(has_header: bool) -> dict:
    """What the SageMaker SDK's DefaultModelMonitor.suggest_baseline sends for the same dataset."""
    from sagemaker.core.model_monitor import DatasetFormat, DefaultModelMonitor

    client, monitor = _sdk_monitor(DefaultModelMonitor)
    monitor.suggest_baseline(
        baseline_dataset="s3://datasets/train.csv", dataset_format=DatasetFormat.csv(header=has_header),
        output_s3_uri="s3://monitoring/baseline", wait=False, logs=False, job_name="job",
    )
    return client.create_processing_job.call_args.kwargs


@pytest.mark.parametrize("has_header", [False, True])
def test_baseline_job_sends_what_the_sdk_suggest_baseline_sends(template: Template, has_header: bool) -> None:
    ours = _baseline_request(template)
    sdk = _sdk_request(has_header)
    assert baseline_environment(has_header) == sdk["Environment"]
    assert ours["Environment"] == baseline_environment(False)  # the bundled dataset has no header row
    without_uri = lambda items, field: [{**i, field: {k: v for k, v in i[field].items() if k != "S3Uri"}} for i in items]  # noqa: E731
    assert without_uri(ours["ProcessingInputs"], "S3Input") == without_uri(sdk["ProcessingInputs"], "S3Input")
    assert without_uri(ours["ProcessingOutputConfig"]["Outputs"], "S3Output") == without_uri(sdk["ProcessingOutputConfig"]["Outputs"], "S3Output")
    assert ours["ProcessingOutputConfig"]["KmsKeyId"] == sdk["ProcessingOutputConfig"]["KmsKeyId"] == MARK
    assert ours["ProcessingResources"] == sdk["ProcessingResources"]
    assert ours["StoppingCondition"] == sdk["StoppingCondition"]
    assert ours["NetworkConfig"] == {"EnableInterContainerTrafficEncryption": True}


def test_analyzer_image_is_the_sdks_for_each_region(dev_app, template: Template) -> None:
    from sagemaker.core import image_uris

    mappings = template.to_json()["Mappings"]
    [regions] = [m for name, m in mappings.items() if name.startswith("DataQualityAnalyzerImage")]
    for region in ("eu-west-1", "us-east-1", "ap-southeast-2"):
        assert regions[region]["uri"] == image_uris.retrieve("model-monitor", region)


def test_job_definition_encrypts_and_emits_metrics_under_a_generated_name(template: Template) -> None:
    [definition] = template.find_resources("AWS::SageMaker::DataQualityJobDefinition").values()
    props = definition["Properties"]
    assert "JobDefinitionName" not in props  # create-only everywhere: CloudFormation names and replaces it
    assert props["DataQualityAppSpecification"]["Environment"] == {"publish_cloudwatch_metrics": "Enabled"}
    assert props["NetworkConfig"] == {"EnableInterContainerTrafficEncryption": True}
    assert "KmsKeyId" in props["DataQualityJobOutputConfig"] and "VolumeKmsKeyId" in props["JobResources"]["ClusterConfig"]
    assert props["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    # Fixed current/ files, which the baseline custom resource (and each promoting retraining) fills.
    baseline = props["DataQualityBaselineConfig"]
    for resource, file in (("StatisticsResource", "/data-quality/current/statistics.json"), ("ConstraintsResource", "/data-quality/current/constraints.json")):
        assert json.dumps(baseline[resource]["S3Uri"]).endswith(f'{file}"]]}}')
    [custom] = [k for k in template.find_resources("Custom::DataQualityBaseline")]
    assert custom in definition["DependsOn"]
    publish = _data_quality_publish(template)
    assert publish == {f: f"s3://<bucket>/data-quality/current/{f}" for f in ("statistics.json", "constraints.json")}
    assert props["DataQualityJobInput"]["EndpointInput"]["LocalPath"] == "/opt/ml/processing/input/endpoint"


def _data_quality_publish(template: Template) -> dict:
    [baseline] = template.find_resources("Custom::DataQualityBaseline").values()
    parts = baseline["Properties"]["Request"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else "<bucket>" for part in parts))["Publish"]


def test_schedule_is_hourly_by_default_and_a_parameter_limited_to_cadences_that_fit_the_runtime(template: Template) -> None:
    parameter = template.to_json()["Parameters"]["DataQualitySchedule"]
    assert parameter["Default"] == "cron(0 * ? * * *)"
    assert parameter["AllowedValues"] == list(aws_facts.MONITORING_CADENCES)
    template.has_resource_properties("AWS::SageMaker::MonitoringSchedule", {
        "MonitoringScheduleName": "mlloop-dev-data-quality",
        "MonitoringScheduleConfig": {
            "MonitoringType": "DataQuality",
            "ScheduleConfig": {"ScheduleExpression": {"Ref": "DataQualitySchedule"}},
            "MonitoringJobDefinitionName": {"Fn::Select": [1, {"Fn::Split": ["/", Match.any_value()]}]},
        },
    })


def test_a_long_runtime_removes_the_cadences_it_cannot_fit(tmp_path) -> None:
    built = build_app(tmp_path, environment={"monitoring": {"data_quality": {"schedule": "cron(0 0/6 ? * * *)", "max_runtime_seconds": 14_400}}})
    parameter = built.template("monitoring").to_json()["Parameters"]["DataQualitySchedule"]
    assert parameter["AllowedValues"] == ["cron(0 0/4 ? * * *)", "cron(0 0/6 ? * * *)", "cron(0 0/8 ? * * *)", "cron(0 0/12 ? * * *)", "cron(0 0 ? * * *)"]


def test_one_drift_alarm_per_feature_on_the_documented_metric(template: Template) -> None:
    alarms = {k: a for k, a in template.find_resources("AWS::CloudWatch::Alarm").items() if a["Properties"].get("Namespace") == aws_facts.DATA_QUALITY_METRICS_NAMESPACE}
    assert len(alarms) == len(default_model.FEATURE_NAMES)
    names = sorted(a["Properties"]["MetricName"] for a in alarms.values())
    assert names == sorted(f"feature_baseline_drift_{f}" for f in default_model.FEATURE_NAMES)
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert props["Namespace"] == aws_facts.DATA_QUALITY_METRICS_NAMESPACE
        assert {d["Name"] for d in props["Dimensions"]} == {"Endpoint", "MonitoringSchedule"}
        assert (props["Threshold"], props["Period"], props["ComparisonOperator"]) == (0.1, 3600, "GreaterThanThreshold")
        assert len(props["AlarmActions"]) == 1


def test_existing_baseline_files_replace_the_baseline_job(tmp_path) -> None:
    statistics, constraints = "s3://my-baselines/statistics.json", "s3://my-baselines/constraints.json"
    built = build_app(tmp_path, environment={"monitoring": {"data_quality": {"baseline_statistics_s3_uri": statistics, "baseline_constraints_s3_uri": constraints}}})
    monitoring = built.template("monitoring")
    assert monitoring.find_resources("Custom::DataQualityBaseline") == {}
    monitoring.has_resource_properties("AWS::SageMaker::DataQualityJobDefinition", {
        "DataQualityBaselineConfig": {"StatisticsResource": {"S3Uri": statistics}, "ConstraintsResource": {"S3Uri": constraints}},
    })


DATA_QUALITY_TYPES = {"Custom::DataQualityBaseline", "AWS::SageMaker::DataQualityJobDefinition"}
EXPLAINABILITY_TYPES = {"Custom::ExplainabilityBaseline", "AWS::SageMaker::ModelExplainabilityJobDefinition"}


@pytest.mark.parametrize(
    ("off", "gone", "kept"),
    [("data_quality", DATA_QUALITY_TYPES, EXPLAINABILITY_TYPES), ("explainability", EXPLAINABILITY_TYPES, DATA_QUALITY_TYPES)],
)
def test_turning_one_monitor_off_removes_exactly_its_resources(tmp_path, template: Template, off: str, gone: set, kept: set) -> None:
    built = build_app(tmp_path, environment={"monitoring": {off: {"enabled": False}}})
    one = built.template("monitoring").to_json()["Resources"]
    types = {r["Type"] for r in one.values()}
    assert not types & gone and kept <= types
    both = template.to_json()["Resources"]
    assert len([r for r in one.values() if r["Type"] == "AWS::SageMaker::MonitoringSchedule"]) == 1
    # Exactly the switched-off monitor's constructs left (the shared run events, watchdog and baseline
    # provider stay while one monitor remains); the drift alarms go with data quality.
    prefix = {"data_quality": "DataQuality", "explainability": "Explainability"}[off]
    assert {k for k in both if not k.startswith(prefix)} >= set(one) - {k for k in one if k.startswith("RunEvents")}
    assert not any(k.startswith(prefix) for k in one)


def test_turning_both_monitors_off_removes_the_monitoring_stack(tmp_path) -> None:
    off = {"data_quality": {"enabled": False}, "explainability": {"enabled": False}}
    built = build_app(tmp_path, environment={"removal_policy": "destroy", "monitoring": off})
    built.app.synth()
    assert built.monitoring is None
    assert {c.node.id for c in built.app.node.children} >= {"Storage", "Serving", "Review", "Operations"}


def test_finished_runs_of_both_schedules_reach_the_run_events_queue(template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Processing Job State Change"],
            "detail": {
                "MonitoringScheduleArn": [
                    {"Fn::GetAtt": [Match.string_like_regexp("DataQualitySchedule"), "MonitoringScheduleArn"]},
                    {"Fn::GetAtt": [Match.string_like_regexp("ExplainabilitySchedule"), "MonitoringScheduleArn"]},
                ],
                "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
            },
        },
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [Match.string_like_regexp("RunEventsQueue"), "Arn"]},
                                       "DeadLetterConfig": Match.any_value(), "RetryPolicy": Match.any_value()})],
    })  # fmt: skip
    functions = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.monitoring_runs.handler.handler"}})
    [function] = functions.values()
    schedules = json.loads(function["Properties"]["Environment"]["Variables"]["SCHEDULES"])
    assert schedules == {
        "mlloop-dev-data-quality": {"monitor": "data-quality", "endpoint": "mlloop-dev"},
        "mlloop-dev-explainability": {"monitor": "explainability", "endpoint": "mlloop-dev"},
    }


def test_runs_with_violations_or_failures_notify_the_alert_topic(dev_app, template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["mlloop.monitoring"],
            "detail-type": ["Monitoring Run Ended"],
            "detail": {"outcome": ["CompletedWithViolations", "Failed", "Stopped"]},
        },
        "Targets": [Match.object_like({"InputTransformer": Match.any_value()})],
    })
    # EventBridge may publish to the serving stack's topic.
    policies = dev_app.template("serving").find_resources("AWS::SNS::TopicPolicy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert any(s.get("Principal") == {"Service": "events.amazonaws.com"} and s["Action"] == "sns:Publish" for s in statements)


def test_a_schedule_that_stops_running_raises_an_alarm(template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(1 hour)", "Targets": [Match.object_like({"Arn": Match.any_value()})]})
    alarms = {k: a for k, a in template.find_resources("AWS::CloudWatch::Alarm").items() if a["Properties"].get("MetricName") == "MonitoringScheduleOverdue"}
    dimensions = sorted(tuple(sorted((d["Name"], d["Value"]) for d in a["Properties"]["Dimensions"])) for a in alarms.values())
    assert dimensions == [
        (("Schedule", "mlloop-dev-data-quality"), ("service", "mlloop-dev-monitoring-runs")),
        (("Schedule", "mlloop-dev-explainability"), ("service", "mlloop-dev-monitoring-runs")),
    ]
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert (props["Namespace"], props["Period"], props["Statistic"]) == ("MlLoop", 3600, "Maximum")
        assert props["TreatMissingData"] == "breaching" and props["EvaluationPeriods"] == 2 and len(props["AlarmActions"]) == 1
    # The watchdog's function is the one whose service the alarm names (Powertools adds it as a dimension).
    [watchdog] = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.monitoring_runs.handler.watchdog"}}).values()
    assert watchdog["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "mlloop-dev-monitoring-runs"


def test_job_role_wildcards_are_exactly_the_explained_ones(dev_app, template: Template) -> None:
    from stacks.compliance import wildcard_findings

    role = dev_app.monitoring.data_quality.role
    policy = dev_app.monitoring.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    findings = wildcard_findings(statements)
    assert len(findings) == 5
    assert findings[0].endswith("/capture/mlloop-dev/*") and findings[1].endswith("/retraining/*") and findings[2].endswith("/data-quality/*")
    assert findings[3] == "Resource::*" and findings[4].endswith(":log-group:/aws/sagemaker/ProcessingJobs:*")
    star = sorted(s["Action"] for s in statements if s["Resource"] == "*")
    assert star == ["cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"]
    [metrics] = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": "*aws/sagemaker/*"}}


# --- explainability (Clarify) ------------------------------------------------------------------

def _explainability_request(template: Template) -> dict:
    [baseline] = template.find_resources("Custom::ExplainabilityBaseline").values()
    parts = baseline["Properties"]["Request"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else MARK for part in parts))


def _sdk_clarify(features: list[str], baseline: list, *, json_lines: bool = False) -> tuple[dict, dict, dict]:
    """What the SDK's ModelExplainabilityMonitor sends for the same model and settings: the
    baselining job request, its analysis config and the monitoring analysis config."""
    from sagemaker.core import clarify as sdk
    from sagemaker.core.model_monitor import ExplainabilityAnalysisConfig, ModelExplainabilityMonitor

    client, monitor = _sdk_monitor(ModelExplainabilityMonitor)
    if json_lines:
        data = sdk.DataConfig(s3_data_input_path="s3://d/train.jsonl", s3_output_path="s3://m/out", features="features", label="label",
                              headers=[*features, "label"], dataset_type="application/jsonlines")  # fmt: skip
        model = sdk.ModelConfig(model_name=MARK, instance_type="ml.m5.xlarge", instance_count=1, content_type="application/jsonlines",
                                accept_type="application/jsonlines", content_template='{"features":$features}')  # fmt: skip
        scores = sdk.ModelPredictedLabelConfig(label="score", label_headers=["benign"])
    else:
        data = sdk.DataConfig(s3_data_input_path="s3://d/train.csv", s3_output_path="s3://m/out", label="label", headers=["label", *features], dataset_type="text/csv")
        model = sdk.ModelConfig(model_name=MARK, instance_type="ml.m5.xlarge", instance_count=1, content_type="text/csv", accept_type="text/csv")
        scores = sdk.ModelPredictedLabelConfig(label_headers=["benign"])
    shap = sdk.SHAPConfig(baseline=baseline, num_samples=100, agg_method="mean_abs", use_logit=False, save_local_shap_values=False)
    uploaded = {}
    with mock.patch("sagemaker.core.clarify._upload_analysis_config", side_effect=lambda path, prefix, *_: uploaded.setdefault("config", json.load(open(path))) and f"{prefix}/analysis_config.json"):
        monitor._create_baselining_processor().run_explainability(data_config=data, model_config=model, explainability_config=shap, model_scores=scores, wait=False, logs=False, job_name="job", kms_key=None)
    monitoring = ExplainabilityAnalysisConfig(explainability_config=shap, model_config=model, headers=list(features), label_headers=["benign"])._to_dict()
    return client.create_processing_job.call_args.kwargs, uploaded["config"], monitoring


def test_shap_baseline_is_the_mean_of_the_training_features(template: Template) -> None:
    import csv
    import statistics

    [baseline] = _explainability_request(template)["Documents"]["AnalysisConfig"]["Body"]["methods"]["shap"]["baseline"]
    with default_model.TRAIN_CSV.open() as handle:
        columns = list(zip(*([float(v) for v in row[1:]] for row in csv.reader(handle)), strict=True))
    assert len(baseline) == len(default_model.FEATURE_NAMES) == len(columns)
    assert baseline == pytest.approx([statistics.fmean(c) for c in columns], rel=1e-5)


def test_explainability_baseline_job_and_configs_are_what_the_sdk_builds(template: Template) -> None:
    from sagemaker.core.clarify import ANALYSIS_CONFIG_SCHEMA_V1_0

    ours = _explainability_request(template)
    documents = ours.pop("Documents")
    baselining, monitoring = documents["AnalysisConfig"]["Body"], documents["MonitoringConfig"]["Body"]
    sdk_request, sdk_baselining, sdk_monitoring = _sdk_clarify(list(default_model.FEATURE_NAMES), baselining["methods"]["shap"]["baseline"])
    assert baselining == sdk_baselining
    assert monitoring == sdk_monitoring
    ANALYSIS_CONFIG_SCHEMA_V1_0.validate(baselining)
    assert len(monitoring["headers"]) == len(default_model.FEATURE_NAMES) and "label" not in monitoring["headers"]
    assert documents["AnalysisConfig"]["Input"] == "analysis_config" and "Input" not in documents["MonitoringConfig"]
    without_uri = lambda items, field: [{**i, field: {k: v for k, v in i[field].items() if k != "S3Uri"}} for i in items]  # noqa: E731
    assert without_uri(ours["ProcessingInputs"], "S3Input") == without_uri(sdk_request["ProcessingInputs"], "S3Input")
    assert without_uri(ours["ProcessingOutputConfig"]["Outputs"], "S3Output") == without_uri(sdk_request["ProcessingOutputConfig"]["Outputs"], "S3Output")
    assert ours["ProcessingResources"] == sdk_request["ProcessingResources"]
    assert ours["StoppingCondition"] == sdk_request["StoppingCondition"]
    assert "Environment" not in ours and "Environment" not in sdk_request  # Clarify takes no environment
    assert ours["NetworkConfig"] == {"EnableInterContainerTrafficEncryption": True}


def test_json_lines_models_get_a_content_template_and_endpoint_attributes(tmp_path) -> None:
    model = {"content_type": "application/jsonlines", "score_path": "score", "features_path": "features"}
    built = build_app(tmp_path, environment={"model": model, "review": {"enabled": False}})
    template = built.template("monitoring")
    documents = _explainability_request(template)["Documents"]
    baselining = documents["AnalysisConfig"]["Body"]
    _, sdk_baselining, sdk_monitoring = _sdk_clarify(list(default_model.FEATURE_NAMES), baselining["methods"]["shap"]["baseline"], json_lines=True)
    assert baselining == sdk_baselining and documents["MonitoringConfig"]["Body"] == sdk_monitoring
    assert baselining["predictor"]["content_template"].count("$features") == 1
    assert baselining["methods"]["shap"]["baseline"][0].keys() == {"features"}  # a record in the dataset's format
    template.has_resource_properties("AWS::SageMaker::ModelExplainabilityJobDefinition", {
        "ModelExplainabilityJobInput": {"EndpointInput": Match.object_like({"FeaturesAttribute": "features", "InferenceAttribute": "score"})},
    })


def test_clarify_image_is_the_sdks_for_each_region(template: Template) -> None:
    from sagemaker.core import image_uris

    mappings = template.to_json()["Mappings"]
    [regions] = [m for name, m in mappings.items() if name.startswith("ExplainabilityClarifyImage")]
    for region in ("eu-west-1", "us-east-1", "ap-southeast-2"):
        assert regions[region]["uri"] == image_uris.retrieve("clarify", region, image_scope="processing")


def test_explainability_job_definition_reads_the_baselines_config_and_constraints(template: Template) -> None:
    [definition] = template.find_resources("AWS::SageMaker::ModelExplainabilityJobDefinition").values()
    props = definition["Properties"]
    assert "JobDefinitionName" not in props
    app = props["ModelExplainabilityAppSpecification"]
    assert json.dumps(app["ConfigUri"]).endswith('/explainability/current/analysis_config.json"]]}')
    assert app["Environment"] == {"publish_cloudwatch_metrics": "Enabled"}
    assert json.dumps(props["ModelExplainabilityBaselineConfig"]["ConstraintsResource"]["S3Uri"]).endswith('/explainability/current/analysis.json"]]}')
    [custom] = [k for k in template.find_resources("Custom::ExplainabilityBaseline")]
    assert custom in definition["DependsOn"]  # the custom resource fills current/ first
    publish = _explainability_request(template)["Publish"]
    assert publish == {
        "analysis.json": f"s3://{MARK}/explainability/current/analysis.json",
        "monitoring_analysis_config.json": f"s3://{MARK}/explainability/current/analysis_config.json",
    }
    assert props["NetworkConfig"] == {"EnableInterContainerTrafficEncryption": True}
    assert "KmsKeyId" in props["ModelExplainabilityJobOutputConfig"] and "VolumeKmsKeyId" in props["JobResources"]["ClusterConfig"]
    endpoint_input = props["ModelExplainabilityJobInput"]["EndpointInput"]
    assert "FeaturesAttribute" not in endpoint_input and "InferenceAttribute" not in endpoint_input  # CSV: one score per line
    parameter = template.to_json()["Parameters"]["ExplainabilitySchedule"]
    assert parameter["Default"] == "cron(0 0 ? * * *)"
    template.has_resource_properties("AWS::SageMaker::MonitoringSchedule", {
        "MonitoringScheduleName": "mlloop-dev-explainability",
        "MonitoringScheduleConfig": {"MonitoringType": "ModelExplainability", "ScheduleConfig": {"ScheduleExpression": {"Ref": "ExplainabilitySchedule"}},
                                     "MonitoringJobDefinitionName": Match.any_value()},
    })  # fmt: skip


def test_clarify_role_may_run_only_its_shadow_endpoints_of_the_served_model(dev_app, template: Template) -> None:
    from stacks.compliance import wildcard_findings

    role = dev_app.monitoring.explainability.role
    policy = dev_app.monitoring.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    [shadow] = [s for s in statements if "sagemaker:CreateEndpoint" in s["Action"]]
    resources = json.dumps(shadow["Resource"])
    assert ":endpoint/sm-clarify-*" in resources and ":endpoint-config/sm-clarify-config*" in resources
    assert "sagemaker:InvokeEndpoint" in shadow["Action"] and "sagemaker:CreateModel" not in shadow["Action"]
    [describe] = [s for s in statements if s["Action"] == "sagemaker:DescribeModel"]
    served, retrained = describe["Resource"]  # the served model, and the models retraining creates
    assert "*" not in json.dumps(served) and json.dumps(retrained).endswith(':model/mlloop-dev-*"]]}')
    findings = wildcard_findings(statements)
    assert sum("sm-clarify" in f for f in findings) == 2 and not any(f.endswith(":endpoint/*") for f in findings)
