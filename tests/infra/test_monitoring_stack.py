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


def _sdk_request(has_header: bool) -> dict:
    """What the SageMaker SDK's DefaultModelMonitor.suggest_baseline sends for the same dataset."""
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.model_monitor import DatasetFormat, DefaultModelMonitor

    client = mock.MagicMock()
    session = Session(
        boto_session=boto3.Session(region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"), sagemaker_client=client, default_bucket="unused"
    )
    monitor = DefaultModelMonitor(
        role="arn:aws:iam::123456789012:role/r", instance_count=1, instance_type="ml.m5.xlarge", volume_size_in_gb=20,
        volume_kms_key=MARK, output_kms_key=MARK, max_runtime_in_seconds=3600, sagemaker_session=session,
    )
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
    baseline = props["DataQualityBaselineConfig"]
    assert baseline["StatisticsResource"]["S3Uri"]["Fn::GetAtt"][1] == "StatisticsS3Uri"
    assert baseline["ConstraintsResource"]["S3Uri"]["Fn::GetAtt"][1] == "ConstraintsS3Uri"
    assert props["DataQualityJobInput"]["EndpointInput"]["LocalPath"] == "/opt/ml/processing/input/endpoint"


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
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
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


def test_turning_data_quality_off_removes_exactly_the_monitoring_stack(tmp_path, dev_app) -> None:
    built = build_app(tmp_path, environment={"removal_policy": "destroy", "monitoring": {"data_quality": {"enabled": False}}})
    built.app.synth()
    assert built.monitoring is None
    assert {c.node.id for c in built.app.node.children} >= {"Storage", "Serving", "Review"}


def test_runs_with_violations_or_failures_notify_the_alert_topic(dev_app, template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Processing Job State Change"],
            "detail": {
                "MonitoringScheduleArn": [{"Fn::GetAtt": [Match.string_like_regexp("DataQualitySchedule"), "MonitoringScheduleArn"]}],
                "$or": [{"ProcessingJobStatus": ["Failed", "Stopped"]}, {"ExitMessage": [{"prefix": "CompletedWithViolations"}]}],
            },
        },
        "Targets": [Match.object_like({"InputTransformer": Match.any_value()})],
    })
    # EventBridge may publish to the serving stack's topic.
    policies = dev_app.template("serving").find_resources("AWS::SNS::TopicPolicy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert any(s.get("Principal") == {"Service": "events.amazonaws.com"} and s["Action"] == "sns:Publish" for s in statements)


def test_job_role_wildcards_are_exactly_the_explained_ones(dev_app, template: Template) -> None:
    from stacks.compliance import wildcard_findings

    role = dev_app.monitoring.data_quality.role
    policy = dev_app.monitoring.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    statements = template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    findings = wildcard_findings(statements)
    assert len(findings) == 4
    assert findings[0].endswith("/capture/mlloop-dev/*") and findings[1].endswith("/data-quality/*")
    assert findings[2] == "Resource::*" and findings[3].endswith(":log-group:/aws/sagemaker/ProcessingJobs:*")
    star = sorted(s["Action"] for s in statements if s["Resource"] == "*")
    assert star == ["cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"]
    [metrics] = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": "*aws/sagemaker/*"}}
