"""Monitoring stack on the SageMaker back end (``monitoring.backend: sagemaker``): Model Monitor and
Clarify baselines, job definitions, schedules, drift alarms, run events and watchdog. The open back
end (the default) is tested in test_open.py."""

from __future__ import annotations

import csv
import json
from unittest import mock

import boto3
import pytest
from aws_cdk.assertions import Match, Template

from lambdas.shared import baseline as baseline_dataset
from stacks.shared import aws_facts, default_model
from stacks.shared.compliance import flatten_reference
from stacks.shared.config import BASELINE_MAX_RUNTIME
from stacks.monitoring.sagemaker import baseline_environment
from stacks.shared.waiting_provider import MAX_WAIT
from tests.conftest import build_app
from tests.stacks.monitoring.conftest import sagemaker_build

MARK = "<ref>"


@pytest.fixture(scope="module")
def template(sagemaker_app) -> Template:
    return sagemaker_app.template("monitoring")


def _baseline_request(template: Template) -> dict:
    [baseline] = template.find_resources("Custom::DataQualityBaseline").values()
    parts = baseline["Properties"]["Request"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else MARK for part in parts))


def _sdk_monitor(kind: type, max_runtime: int = BASELINE_MAX_RUNTIME) -> tuple[mock.MagicMock, object]:
    """An SDK monitor of ``kind`` with our cluster settings, whose SageMaker client records calls."""
    from sagemaker.core.helper.session_helper import Session

    client = mock.MagicMock()
    session = Session(
        boto_session=boto3.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"), sagemaker_client=client, default_bucket="unused"
    )
    monitor = kind(
        role="arn:aws:iam::123456789012:role/r", instance_count=1, instance_type="ml.m5.xlarge", volume_size_in_gb=20,
        volume_kms_key=MARK, output_kms_key=MARK, max_runtime_in_seconds=max_runtime, sagemaker_session=session,
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
    assert ours["Environment"] == baseline_environment(True)  # the bundled baseline dataset has a header row
    without_uri = lambda items, field: [{**i, field: {k: v for k, v in i[field].items() if k != "S3Uri"}} for i in items]  # noqa: E731
    assert without_uri(ours["ProcessingInputs"], "S3Input") == without_uri(sdk["ProcessingInputs"], "S3Input")
    assert without_uri(ours["ProcessingOutputConfig"]["Outputs"], "S3Output") == without_uri(sdk["ProcessingOutputConfig"]["Outputs"], "S3Output")
    assert ours["ProcessingOutputConfig"]["KmsKeyId"] == sdk["ProcessingOutputConfig"]["KmsKeyId"] == MARK
    assert ours["ProcessingResources"] == sdk["ProcessingResources"]
    assert ours["StoppingCondition"] == sdk["StoppingCondition"]
    assert ours["NetworkConfig"] == {"EnableInterContainerTrafficEncryption": True}


def test_analyzer_image_is_the_sdks_for_each_region(template: Template) -> None:
    from sagemaker.core import image_uris

    mappings = template.to_json()["Mappings"]
    [regions] = [m for name, m in mappings.items() if name.startswith("DataQualityAnalyzerImage")]
    for region in ("eu-west-1", "us-east-1", "ap-southeast-2"):
        assert regions[region]["uri"] == image_uris.retrieve("model-monitor", region)


def test_job_definition_encrypts_and_emits_metrics_under_a_content_hashed_name(template: Template) -> None:
    [definition] = template.find_resources("AWS::SageMaker::DataQualityJobDefinition").values()
    props = definition["Properties"]
    # Create-only everywhere: the name changes with the content (see the long-runtime test), so
    # CloudFormation can replace it; lower case, so the ARN spells it the same way.
    assert props["JobDefinitionName"].startswith("mlloop-dev-data-quality-") and props["JobDefinitionName"] == props["JobDefinitionName"].lower()
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


def _definition_name(template: Template, kind: str) -> str:
    [definition] = template.find_resources(kind).values()
    return definition["Properties"]["JobDefinitionName"]


def test_schedule_is_hourly_by_default_and_a_parameter_limited_to_cadences_that_fit_the_runtime(template: Template) -> None:
    parameter = template.to_json()["Parameters"]["DataQualitySchedule"]
    assert parameter["Default"] == "cron(0 * ? * * *)"
    assert parameter["AllowedValues"] == list(aws_facts.MONITORING_CADENCES)
    template.has_resource_properties("AWS::SageMaker::MonitoringSchedule", {
        "MonitoringScheduleName": "mlloop-dev-data-quality",
        "MonitoringScheduleConfig": {
            "MonitoringType": "DataQuality",
            "ScheduleConfig": {"ScheduleExpression": {"Ref": "DataQualitySchedule"}},
            # The definition's own name, not a piece of its ARN (whose case SageMaker decides).
            "MonitoringJobDefinitionName": _definition_name(template, "AWS::SageMaker::DataQualityJobDefinition"),
        },
    })
    [definition] = template.find_resources("AWS::SageMaker::DataQualityJobDefinition")
    [schedule] = [r for r in template.find_resources("AWS::SageMaker::MonitoringSchedule").values() if r["Properties"]["MonitoringScheduleName"] == "mlloop-dev-data-quality"]
    assert definition in schedule["DependsOn"]


def test_a_long_runtime_removes_the_cadences_it_cannot_fit_and_renames_the_definition(tmp_path, template: Template) -> None:
    built = sagemaker_build(tmp_path, {"monitoring": {"data_quality": {"schedule": "cron(0 0/6 ? * * *)", "max_runtime_seconds": 14_400}}})
    long = built.template("monitoring")
    parameter = long.to_json()["Parameters"]["DataQualitySchedule"]
    assert parameter["AllowedValues"] == ["cron(0 0/4 ? * * *)", "cron(0 0/6 ? * * *)", "cron(0 0/8 ? * * *)", "cron(0 0/12 ? * * *)", "cron(0 0 ? * * *)"]
    # A changed (create-only) property gives the definition a new name, so CloudFormation can replace it.
    kind = "AWS::SageMaker::DataQualityJobDefinition"
    assert _definition_name(long, kind) != _definition_name(template, kind)
    # The deploy-time baseline still fits the custom resource's wait.
    assert _baseline_request(long)["StoppingCondition"] == {"MaxRuntimeInSeconds": BASELINE_MAX_RUNTIME}


def test_one_drift_alarm_per_feature_on_the_metric_the_baseline_header_names(template: Template) -> None:
    """The analyzer names its columns (and metrics) after the baseline dataset's header row, the
    output column first: the alarms watch exactly the feature columns of the file the job reads."""
    with default_model.BASELINE_CSV.open(newline="") as handle:
        columns = next(csv.reader(handle))
    assert columns[0] == baseline_dataset.OUTPUT_COLUMN and json.loads(_baseline_request(template)["Environment"]["dataset_format"])["csv"]["header"] is True
    assert _baseline_request(template)["ProcessingInputs"][0]["S3Input"]["S3Uri"].endswith(f"/{default_model.BASELINE_CSV.name}")
    alarms = {k: a for k, a in template.find_resources("AWS::CloudWatch::Alarm").items() if a["Properties"].get("Namespace") == aws_facts.DATA_QUALITY_METRICS_NAMESPACE}
    names = sorted(a["Properties"]["MetricName"] for a in alarms.values())
    assert names == sorted(f"feature_baseline_drift_{column}" for column in columns[1:])
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert props["Namespace"] == aws_facts.DATA_QUALITY_METRICS_NAMESPACE
        assert {d["Name"] for d in props["Dimensions"]} == {"Endpoint", "MonitoringSchedule"}
        assert (props["Threshold"], props["Period"], props["ComparisonOperator"]) == (0.1, 3600, "GreaterThanThreshold")
        assert len(props["AlarmActions"]) == 1


def test_existing_baseline_files_replace_the_baseline_job(tmp_path) -> None:
    statistics, constraints = "s3://my-baselines/statistics.json", "s3://my-baselines/constraints.json"
    built = sagemaker_build(tmp_path, {"monitoring": {"data_quality": {"baseline_statistics_s3_uri": statistics, "baseline_constraints_s3_uri": constraints}}})
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
    built = sagemaker_build(tmp_path, {"monitoring": {off: {"enabled": False}}})
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


def test_turning_every_monitor_off_removes_the_monitoring_stack(tmp_path) -> None:
    off = {"data_quality": {"enabled": False}, "explainability": {"enabled": False}, "model_quality": {"enabled": False}}
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
                "$or": [
                    {"MonitoringScheduleArn": [
                        {"Fn::GetAtt": [Match.string_like_regexp("DataQualitySchedule"), "MonitoringScheduleArn"]},
                        {"Fn::GetAtt": [Match.string_like_regexp("ExplainabilitySchedule"), "MonitoringScheduleArn"]},
                    ]},
                    Match.any_value(),  # or the run's report under the monitors' prefixes (tests/stacks/serving/test_alerts.py)
                ],
                "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
            },
        },
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [Match.string_like_regexp("RunEventsQueue"), "Arn"]},
                                       "DeadLetterConfig": Match.any_value(), "RetryPolicy": Match.any_value()})],
    })  # fmt: skip
    functions = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.monitoring.runs.handler.handler"}})
    [function] = functions.values()
    schedules = json.loads(function["Properties"]["Environment"]["Variables"]["SCHEDULES"])
    assert schedules == {
        "mlloop-dev-data-quality": {"monitor": "data-quality", "endpoint": "mlloop-dev"},
        "mlloop-dev-explainability": {"monitor": "explainability", "endpoint": "mlloop-dev"},
    }


def test_runs_with_violations_or_failures_notify_the_alert_topic(template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["mlloop.monitoring"],
            "detail-type": ["Monitoring Run Ended"],
            "detail": {"outcome": ["CompletedWithViolations", "Failed", "Stopped"]},
        },
        "Targets": [Match.object_like({"InputTransformer": Match.any_value(), "RoleArn": Match.any_value()})],
    })
    # The rule publishes with its own role (no confused deputy: the topic trusts no service principal).
    [rule] = template.find_resources("AWS::Events::Rule", {"Properties": {"EventPattern": {"source": ["mlloop.monitoring"]}}}).values()
    [role_id, _] = rule["Properties"]["Targets"][0]["RoleArn"]["Fn::GetAtt"]
    policies = [p for p in template.find_resources("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]]
    assert any(s["Action"] == "sns:Publish" for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"])


def test_a_schedule_that_stops_running_raises_an_alarm(template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(1 hour)", "Targets": [Match.object_like({"Arn": Match.any_value()})]})
    alarms = {k: a for k, a in template.find_resources("AWS::CloudWatch::Alarm").items() if a["Properties"].get("MetricName") == "MonitoringScheduleOverdue"}
    dimensions = sorted(tuple(sorted((d["Name"], d["Value"]) for d in a["Properties"]["Dimensions"])) for a in alarms.values())
    assert dimensions == [
        (("Schedule", "mlloop-dev-data-quality"), ("service", "mlloop-dev-monitoring-runs")),
        (("Schedule", "mlloop-dev-explainability"), ("service", "mlloop-dev-monitoring-runs")),
        # The app's own model-quality schedule, watched by a watchdog that asks Scheduler (test_model_quality.py).
        (("Schedule", "mlloop-dev-model-quality"), ("service", "mlloop-dev-monitoring-runs")),
    ]
    for alarm in alarms.values():
        props = alarm["Properties"]
        assert (props["Namespace"], props["Period"], props["Statistic"]) == ("MlLoop", 3600, "Maximum")
        assert props["EvaluationPeriods"] == 2 and len(props["AlarmActions"]) == 1
        # Not ALARM from creation until the watchdog's first run (missing data is not "overdue"), and a
        # watchdog that stops reporting notifies through INSUFFICIENT_DATA.
        assert props["TreatMissingData"] == "missing" and props["InsufficientDataActions"] == props["AlarmActions"]
    # The watchdogs' functions are the ones whose service the alarm names (Powertools adds it as a dimension).
    watchdogs = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": "lambdas.monitoring.runs.handler.watchdog"}}).values()
    assert [w["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] for w in watchdogs] == ["mlloop-dev-monitoring-runs"] * 2


def test_job_role_wildcards_are_exactly_the_explained_ones(sagemaker_app, template: Template) -> None:
    from stacks.shared.compliance import wildcard_findings

    dev_app = sagemaker_app
    role = dev_app.monitoring.data_quality.role
    policy = dev_app.monitoring.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    findings = wildcard_findings(statements)
    objects = sorted(f.split("}}", 1)[1] for f in findings if ":s3:::" in f)  # after the bucket's reference
    assert objects == sorted([
        f"/bundled/{dev_app.serving.bundled_model.baseline_key.split('/')[1]}/{default_model.BASELINE_CSV.name}*",  # the baseline dataset (S3Prefix input)
        "/retraining/*",  # retraining's assembled datasets
        "/capture/mlloop-dev/*",  # the endpoint's captures, read by each run
        "/data-quality/current/statistics.json*", "/data-quality/current/constraints.json*",  # the baseline files each run reads
        "/data-quality/baselines/*",  # each baseline job's output folder
        "/data-quality/reports/*",  # each run's report
    ])  # fmt: skip
    others = [f for f in findings if ":s3:::" not in f]
    assert len(others) == 2 and others[0] == "Resource::*" and others[1].endswith(":log-group:/aws/sagemaker/ProcessingJobs:*")
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
    built = sagemaker_build(tmp_path, {"model": model, "review": {"enabled": False}, "retraining": {"enabled": False}})
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
    assert props["JobDefinitionName"].startswith("mlloop-dev-explainability-")
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
                                     "MonitoringJobDefinitionName": props["JobDefinitionName"]},
    })  # fmt: skip


def test_clarify_role_may_run_only_its_shadow_endpoints_of_the_served_model(sagemaker_app, template: Template) -> None:
    from stacks.shared.compliance import wildcard_findings

    dev_app = sagemaker_app
    role = dev_app.monitoring.explainability.role
    policy = dev_app.monitoring.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    [shadow] = [s for s in statements if "sagemaker:CreateEndpoint" in s["Action"]]
    resources = json.dumps(shadow["Resource"])
    assert ":endpoint/sm-clarify-*" in resources and ":endpoint-config/sm-clarify-config*" in resources
    assert "sagemaker:InvokeEndpoint" in shadow["Action"] and "sagemaker:CreateModel" not in shadow["Action"]
    # Creating an endpoint config or endpoint also authorises AddTags on it (a dependent action).
    assert "sagemaker:AddTags" in shadow["Action"]
    # The explained model's name is CloudFormation's or a retraining run's; SageMaker spells ARNs in
    # lower case, so an exact mixed-case ARN would not match: any model, described only.
    [describe] = [s for s in statements if s["Action"] == "sagemaker:DescribeModel"]
    assert flatten_reference(describe["Resource"]).endswith(":model/*")
    findings = wildcard_findings(statements)
    assert sum("sm-clarify" in f for f in findings) == 2 and not any(f.endswith(":endpoint/*") for f in findings)


# --- job-role grants derived from the requests -----------------------------------------------

def _flat(node: object) -> str:
    """A reference flattened as cdk-nag flattens ARNs, usable inside a JSON string."""
    return flatten_reference(node).replace('"', "'")


def _flat_request(resource: dict) -> dict:
    """A custom resource's Request with every reference flattened."""
    parts = resource["Properties"]["Request"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else _flat(part) for part in parts))


def _role_grants(template: Template, role_arn: dict) -> dict[str, set[str]]:
    """Action -> flattened resources, over every policy attached to the role ``role_arn`` names."""
    [role_id, _] = role_arn["Fn::GetAtt"]
    grants: dict[str, set[str]] = {}
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
                grants.setdefault(action, set()).update(_flat(r) for r in resources)
    return grants


@pytest.mark.parametrize("resource_type", ["Custom::DataQualityBaseline", "Custom::ExplainabilityBaseline"])
def test_each_baseline_job_role_may_list_read_write_and_encrypt_what_its_request_names(template: Template, resource_type: str) -> None:
    """Re-derived from the synthesised request (not from the code that wrote the grants): an S3Prefix
    input needs ListBucket on its bucket and GetObject on the objects under its prefix; the output
    PutObject under its folder, and the output key kms:Encrypt (sagemaker-roles page)."""
    [resource] = template.find_resources(resource_type).values()
    request = _flat_request(resource)
    role_arn = next(p for p in resource["Properties"]["Request"]["Fn::Join"][1] if isinstance(p, dict) and p.get("Fn::GetAtt", [""])[0].startswith(request["RoleArn"][1:].split(".")[0]))
    grants = _role_grants(template, role_arn)
    s3 = "arn:<AWS::Partition>:s3:::"
    inputs = [i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"] if "S3Uri" in i["S3Input"]]
    assert inputs  # the dataset at least
    for uri in inputs:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        assert f"{s3}{bucket}" in grants["s3:ListBucket"], uri
        assert f"{s3}{bucket}/{key}*" in grants["s3:GetObject"], uri
    [output] = request["ProcessingOutputConfig"]["Outputs"]
    bucket, key = output["S3Output"]["S3Uri"].removeprefix("s3://").split("/", 1)
    assert f"{s3}{bucket}/{key}/*" in grants["s3:PutObject"]
    # An input fed by a document (Clarify's analysis config) is read where the handler writes it.
    if "Documents" in request:
        assert f"{s3}{bucket}/{key}/*" in grants["s3:GetObject"] and f"{s3}{bucket}" in grants["s3:ListBucket"]
    assert request["ProcessingOutputConfig"]["KmsKeyId"] in grants["kms:Encrypt"]
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] in grants["kms:CreateGrant"]
    # Retraining sends the same request on its assembled data, and each scheduled run reads the captures.
    assert any(r.endswith("/retraining/*") for r in grants["s3:GetObject"])
    assert any(r.endswith("/capture/mlloop-dev/*") for r in grants["s3:GetObject"])


def test_baseline_jobs_end_before_the_deployment_stops_waiting(template: Template) -> None:
    """CloudFormation waits an hour for a custom resource: the waiter gives up a little earlier, and
    each deploy-time baseline job is stopped before the waiter gives up."""
    for resource_type in ("Custom::DataQualityBaseline", "Custom::ExplainabilityBaseline"):
        [resource] = template.find_resources(resource_type).values()
        timeout = int(resource["Properties"]["ServiceTimeout"])
        assert MAX_WAIT.to_seconds() < timeout <= aws_facts.CUSTOM_RESOURCE_MAX_TIMEOUT_SECONDS
        runtime = _flat_request(resource)["StoppingCondition"]["MaxRuntimeInSeconds"]
        assert runtime == BASELINE_MAX_RUNTIME < MAX_WAIT.to_seconds()
    # The waiter's own limit: retries of the is_complete poll within MAX_WAIT.
    [machine] = [m for k, m in template.find_resources("AWS::StepFunctions::StateMachine").items() if k.startswith("BaselineJobsProvider")]
    definition = json.loads("".join(p if isinstance(p, str) else "x" for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1]))
    [retry] = [r for state in definition["States"].values() for r in state.get("Retry", []) if r.get("ErrorEquals") == ["States.ALL"]]
    assert retry["IntervalSeconds"] * retry["MaxAttempts"] <= MAX_WAIT.to_seconds()
