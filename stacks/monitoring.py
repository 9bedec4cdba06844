"""Model Monitor data quality: a baseline computed from the training data, an hourly schedule,
one drift alarm per feature and EventBridge rules for runs that end badly.

The baseline is a processing job run by the Model Monitor analyzer image with the request the
SageMaker SDK's ``DefaultModelMonitor.suggest_baseline`` sends (tests derive the expectation from
the SDK); the deployment waits for it (custom resource with a waiter) and fails with the job's
reason if it fails. Job definitions are create-only in every property, so their names are left to
CloudFormation: any change replaces the definition cleanly and the schedule (fixed name) is
pointed at the new one.
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Duration, Fn, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks import aws_facts
from stacks.compliance import acknowledge, acknowledge_wildcards
from stacks.config import AppConfig
from stacks.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES
from stacks.images import ContainerImage
from stacks.waiting_provider import WaitingProvider

# Container paths the Model Monitor analyzer reads and writes (sagemaker.core.model_monitor).
PROCESSING = "/opt/ml/processing"
BASELINE_INPUT_NAME = "baseline_dataset_input"
OUTPUT_NAME = "monitoring_output"
DATA_QUALITY_PREFIX = "data-quality"


def baseline_environment(has_header: bool) -> dict[str, str]:
    """The analyzer's environment for a CSV dataset, label first (what suggest_baseline sends)."""
    return {
        "output_path": f"{PROCESSING}/output",
        "publish_cloudwatch_metrics": "Disabled",
        "dataset_format": json.dumps({"csv": {"header": has_header, "output_columns_position": "START"}}),
        "dataset_source": f"{PROCESSING}/input/{BASELINE_INPUT_NAME}",
    }


class MonitoringRole(Construct):
    """The role SageMaker runs baseline and monitoring jobs with, scoped to this app's data."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: ContainerImage,
        key: kms.IKey,
        monitoring_bucket: s3.IBucket,
        readable_objects: list[str],
        readable_buckets: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"), description="Model Monitor baseline and monitoring jobs")
        # https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createprocessingjob-perms
        for statement in (
            iam.PolicyStatement(actions=["s3:GetObject"], resources=readable_objects),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=readable_buckets),
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[monitoring_bucket.arn_for_objects(f"{DATA_QUALITY_PREFIX}/*")]),
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], resources=[key.key_arn]),
            iam.PolicyStatement(actions=["kms:CreateGrant"], resources=[key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}),
            iam.PolicyStatement(actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], resources=[image.repository_arn]),
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[stack.format_arn(service="logs", resource="log-group", resource_name="/aws/sagemaker/ProcessingJobs:*", arn_format=ArnFormat.COLON_RESOURCE_NAME)],
            ),
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"], resources=["*"], conditions={"StringLike": {"cloudwatch:namespace": "*aws/sagemaker/*"}}
            ),
        ):
            self.role.add_to_policy(statement)
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge_wildcards(
            policy,
            policy.document,
            "SageMaker names the captured objects, baseline outputs and processing-job log streams; "
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions "
            "(PutMetricData is limited to SageMaker's namespaces by condition).",
        )
        acknowledge(policy, ACK_INLINE_POLICY, *INLINE_POLICY_RULES)


class DataQualityMonitor(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        endpoint_name: str,
        dataset_s3_uri: str,
        dataset_object_arn: str,
        capture_bucket: s3.IBucket,
        capture_prefix: str,
        monitoring_bucket: s3.IBucket,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        schedule_expression: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        dq = config.monitoring.data_quality
        prefix = f"{config.app_name}-{config.environment}"
        self.image = ContainerImage.from_sdk(self, "AnalyzerImage", framework="model-monitor")
        self.role = MonitoringRole(
            self,
            "JobRole",
            image=self.image,
            key=key,
            monitoring_bucket=monitoring_bucket,
            readable_objects=[dataset_object_arn, capture_bucket.arn_for_objects(f"{capture_prefix}/*")],
            readable_buckets=[capture_bucket.bucket_arn],
        ).role
        cluster = {"InstanceType": dq.instance_type, "InstanceCount": dq.instance_count, "VolumeSizeInGB": dq.volume_size_gb, "VolumeKmsKeyId": key.key_arn}

        if dq.computes_baseline:
            self.baseline_provider = WaitingProvider(
                self,
                "BaselineProvider",
                module="baseline_job",
                description="Data-quality baseline job custom resource",
                service=f"{prefix}-baseline-job",
                key=key,
                layer=layer,
                retain_logs=config.retain_data,
                total_timeout=Duration.hours(2),
                query_interval=Duration.seconds(30),
            )
            job_arns = [stack.format_arn(service="sagemaker", resource="processing-job", resource_name=f"{prefix}-*")]
            self.baseline_provider.on_event.allow(["sagemaker:CreateProcessingJob", "sagemaker:AddTags", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"], job_arns)
            self.baseline_provider.on_event.role.add_to_policy(
                iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.role.role_arn], conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})
            )
            self.baseline_provider.is_complete.allow(["sagemaker:DescribeProcessingJob"], job_arns)
            self.baseline_provider.acknowledge_wildcards(
                f"Baseline jobs are named {prefix}-dq-baseline-<hash> at deploy time, so the name is known only as a prefix; "
                "log-stream names are chosen by Lambda."
            )
            request = {
                "NamePrefix": f"{prefix}-dq-baseline",
                "ProcessingResources": {"ClusterConfig": cluster},
                "AppSpecification": {"ImageUri": self.image.uri},
                "RoleArn": self.role.role_arn,
                "ProcessingInputs": [
                    {
                        "InputName": BASELINE_INPUT_NAME,
                        "S3Input": {
                            "S3Uri": dataset_s3_uri,
                            "LocalPath": f"{PROCESSING}/input/{BASELINE_INPUT_NAME}",
                            "S3DataType": "S3Prefix",
                            "S3InputMode": "File",
                            "S3DataDistributionType": "FullyReplicated",
                            "S3CompressionType": "None",
                        },
                    }
                ],
                "ProcessingOutputConfig": {
                    "Outputs": [
                        {
                            "OutputName": OUTPUT_NAME,
                            "S3Output": {"S3Uri": f"s3://{monitoring_bucket.bucket_name}/{DATA_QUALITY_PREFIX}/baselines", "LocalPath": f"{PROCESSING}/output", "S3UploadMode": "EndOfJob"},
                        }
                    ],
                    "KmsKeyId": key.key_arn,
                },
                "Environment": baseline_environment(dq.dataset_has_header),
                "StoppingCondition": {"MaxRuntimeInSeconds": dq.max_runtime_seconds},
                "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
            }
            self.baseline = self.baseline_provider.resource(self, "Baseline", resource_type="Custom::DataQualityBaseline", request=request, role=self.role)
            statistics, constraints = self.baseline.get_att_string("StatisticsS3Uri"), self.baseline.get_att_string("ConstraintsS3Uri")
        else:
            statistics, constraints = dq.baseline_statistics_s3_uri, dq.baseline_constraints_s3_uri

        self.job_definition = sagemaker.CfnDataQualityJobDefinition(
            self,
            "JobDefinition",
            data_quality_app_specification=sagemaker.CfnDataQualityJobDefinition.DataQualityAppSpecificationProperty(
                image_uri=self.image.uri, environment={"publish_cloudwatch_metrics": "Enabled"}
            ),
            data_quality_baseline_config=sagemaker.CfnDataQualityJobDefinition.DataQualityBaselineConfigProperty(
                constraints_resource=sagemaker.CfnDataQualityJobDefinition.ConstraintsResourceProperty(s3_uri=constraints),
                statistics_resource=sagemaker.CfnDataQualityJobDefinition.StatisticsResourceProperty(s3_uri=statistics),
            ),
            data_quality_job_input=sagemaker.CfnDataQualityJobDefinition.DataQualityJobInputProperty(
                endpoint_input=sagemaker.CfnDataQualityJobDefinition.EndpointInputProperty(
                    endpoint_name=endpoint_name, local_path=f"{PROCESSING}/input/endpoint", s3_input_mode="File", s3_data_distribution_type="FullyReplicated"
                )
            ),
            data_quality_job_output_config=sagemaker.CfnDataQualityJobDefinition.MonitoringOutputConfigProperty(
                kms_key_id=key.key_arn,
                monitoring_outputs=[
                    sagemaker.CfnDataQualityJobDefinition.MonitoringOutputProperty(
                        s3_output=sagemaker.CfnDataQualityJobDefinition.S3OutputProperty(
                            s3_uri=f"s3://{monitoring_bucket.bucket_name}/{DATA_QUALITY_PREFIX}/reports", local_path=f"{PROCESSING}/output", s3_upload_mode="Continuous"
                        )
                    )
                ],
            ),
            job_resources=sagemaker.CfnDataQualityJobDefinition.MonitoringResourcesProperty(
                cluster_config=sagemaker.CfnDataQualityJobDefinition.ClusterConfigProperty(
                    instance_count=dq.instance_count, instance_type=dq.instance_type, volume_size_in_gb=dq.volume_size_gb, volume_kms_key_id=key.key_arn
                )
            ),
            network_config=sagemaker.CfnDataQualityJobDefinition.NetworkConfigProperty(enable_inter_container_traffic_encryption=True),
            role_arn=self.role.role_arn,
            stopping_condition=sagemaker.CfnDataQualityJobDefinition.StoppingConditionProperty(max_runtime_in_seconds=dq.max_runtime_seconds),
        )
        self.job_definition.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        self.schedule_name = f"{prefix}-data-quality"
        self.schedule = sagemaker.CfnMonitoringSchedule(
            self,
            "Schedule",
            monitoring_schedule_name=self.schedule_name,
            endpoint_name=endpoint_name,
            monitoring_schedule_config=sagemaker.CfnMonitoringSchedule.MonitoringScheduleConfigProperty(
                # The generated name is the last part of the definition's ARN (…:data-quality-job-definition/<name>).
                monitoring_job_definition_name=Fn.select(1, Fn.split("/", self.job_definition.attr_job_definition_arn)),
                monitoring_type="DataQuality",
                schedule_config=sagemaker.CfnMonitoringSchedule.ScheduleConfigProperty(schedule_expression=schedule_expression),
            ),
        )

        self.outcome_rule = events.Rule(
            self,
            "RunEndedBadly",
            description="Data-quality monitoring runs that found violations, failed or were stopped",
            event_pattern=events.EventPattern(
                source=[aws_facts.SAGEMAKER_EVENT_SOURCE],
                detail_type=[aws_facts.PROCESSING_JOB_STATE_CHANGE],
                detail={
                    "MonitoringScheduleArn": [self.schedule.attr_monitoring_schedule_arn],
                    "$or": [
                        {"ProcessingJobStatus": ["Failed", "Stopped"]},
                        {"ExitMessage": [{"prefix": aws_facts.VIOLATIONS_EXIT_MESSAGE_PREFIX}]},
                    ],
                },
            ),
            targets=[
                targets.SnsTopic(
                    alarm_topic,
                    message=events.RuleTargetInput.from_text(
                        f"Data-quality monitoring run {events.EventField.from_path('$.detail.ProcessingJobName')} of schedule "
                        f"{self.schedule_name} ended {events.EventField.from_path('$.detail.ProcessingJobStatus')}: "
                        f"{events.EventField.from_path('$.detail.ExitMessage')} {events.EventField.from_path('$.detail.FailureReason')} "
                        f"Reports: s3://{monitoring_bucket.bucket_name}/{DATA_QUALITY_PREFIX}/reports/"
                    ),
                )
            ],
        )

        period = Duration.seconds(aws_facts.MONITORING_CADENCES[dq.schedule])
        self.drift_alarms = []
        for feature in config.model.feature_names:
            alarm = cloudwatch.Alarm(
                self,
                f"Drift{feature}",
                alarm_description=f"Data drift on feature {feature}: the data-quality run's baseline drift distance passed the threshold.",
                metric=cloudwatch.Metric(
                    namespace=aws_facts.DATA_QUALITY_METRICS_NAMESPACE,
                    metric_name=aws_facts.DATA_QUALITY_DRIFT_METRIC.format(feature=feature),
                    dimensions_map={"Endpoint": endpoint_name, "MonitoringSchedule": self.schedule_name},
                    statistic="Maximum",
                    period=period,
                ),
                threshold=dq.drift_threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
            self.drift_alarms.append(alarm)
