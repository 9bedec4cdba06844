"""Model Monitor data quality and SageMaker Clarify explainability: baselines, job definitions and
schedules, plus the drift alarms of each.

Each baseline is a processing job with the request the SageMaker SDK sends (``DefaultModelMonitor.
suggest_baseline`` for data quality, ``ModelExplainabilityMonitor.suggest_baseline`` for Clarify;
tests derive the expectation from the SDK). The deployment waits for it (custom resource with a
waiter) and fails with the job's reason if it fails. Job definitions are create-only in every
property, so each is named after a hash of its content: any change replaces the definition cleanly
and the schedule (fixed name) is pointed at the new one by that name.

Each job role's data grants are derived (``stacks.shared.job_roles``) from the requests its jobs make: the
baseline request the custom resource sends, the same request on retraining's data, and the
processing job SageMaker starts for each scheduled run (:func:`scheduled_run_request`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from aws_cdk import CfnResource, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from lambdas.shared import baseline as baseline_dataset
from stacks.shared import aws_facts
from stacks.monitoring import clarify
from stacks.shared.compliance import acknowledge, acknowledge_wildcards
from stacks.shared.config import AppConfig, MonitorJobConfig, NetworkConfig
from stacks.shared.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES
from stacks.shared.images import ContainerImage
from stacks.shared.job_roles import job_data_statements, job_runtime_statements
from stacks.shared.waiting_provider import MAX_WAIT, WaitingProvider

# Container paths the Model Monitor analyzer and the Clarify container read and write
# (sagemaker.core.model_monitor, sagemaker.core.clarify.SageMakerClarifyProcessor).
PROCESSING = "/opt/ml/processing"
OUTPUT_PATH = f"{PROCESSING}/output"
ENDPOINT_INPUT_PATH = f"{PROCESSING}/input/endpoint"
BASELINE_INPUT_NAME = "baseline_dataset_input"
OUTPUT_NAME = "monitoring_output"
CLARIFY_DATASET_INPUT = ("dataset", f"{PROCESSING}/input/data")
CLARIFY_CONFIG_INPUT = ("analysis_config", f"{PROCESSING}/input/config")
CLARIFY_OUTPUT_NAME = "analysis_result"
DATA_QUALITY_PREFIX = "data-quality"
EXPLAINABILITY_PREFIX = "explainability"
METRICS_ENVIRONMENT = {"publish_cloudwatch_metrics": "Enabled"}
# Job definitions read their baselines from fixed files under <monitor prefix>/current/, which the
# baseline custom resource and each promoting retraining replace (job definitions are create-only).
CURRENT = "current"


def baseline_environment(has_header: bool) -> dict[str, str]:
    """The analyzer's environment for a CSV dataset, output column first (what suggest_baseline
    sends). The app's baselines always have a header (``lambdas.shared.baseline``)."""
    return {
        "output_path": OUTPUT_PATH,
        "publish_cloudwatch_metrics": "Disabled",
        "dataset_format": json.dumps({"csv": {"header": has_header, "output_columns_position": "START"}}),
        "dataset_source": f"{PROCESSING}/input/{BASELINE_INPUT_NAME}",
    }


def s3_prefix_input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated", "S3CompressionType": "None"},
    }


def scheduled_run_request(*, captures_s3_uri: str, baseline_s3_uris: list[str], reports_s3_uri: str, key: kms.IKey) -> dict[str, Any]:
    """The data side of the processing job SageMaker starts for each scheduled run: it lists and reads
    the endpoint's captures, reads the job definition's baseline files (and scripts) as S3Prefix
    inputs, and writes its report with the definition's output and volume keys."""
    inputs = [s3_prefix_input("endpoint", captures_s3_uri, ENDPOINT_INPUT_PATH)]
    inputs += [s3_prefix_input(f"baseline{i}", uri, f"{PROCESSING}/baseline/{i}") for i, uri in enumerate(baseline_s3_uris)]
    return {
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {"S3Uri": reports_s3_uri, "LocalPath": OUTPUT_PATH, "S3UploadMode": "Continuous"}}], "KmsKeyId": key.key_arn},
        "ProcessingResources": {"ClusterConfig": {"VolumeKmsKeyId": key.key_arn}},
    }


def with_dataset(request: dict[str, Any], input_name: str, s3_uri: str) -> dict[str, Any]:
    """``request`` reading its dataset input from ``s3_uri``: what retraining sends (its runs' data
    lies under one prefix, which stands for all of them here)."""
    variant = copy.deepcopy(request)
    for item in variant["ProcessingInputs"]:
        if item["InputName"] == input_name:
            item["S3Input"]["S3Uri"] = s3_uri
    return variant


def network_request(network: NetworkConfig) -> dict:
    """CreateProcessingJob's NetworkConfig: traffic between instances encrypted, in a VPC if configured."""
    request: dict = {"EnableInterContainerTrafficEncryption": True}
    if network.in_vpc:
        request["VpcConfig"] = {"SecurityGroupIds": list(network.security_group_ids), "Subnets": list(network.subnet_ids)}
    return request


def network_property(definition_type: type, network: NetworkConfig):
    """The same as a job definition's NetworkConfigProperty (each definition type has its own class)."""
    vpc = definition_type.VpcConfigProperty(security_group_ids=list(network.security_group_ids), subnets=list(network.subnet_ids)) if network.in_vpc else None
    return definition_type.NetworkConfigProperty(enable_inter_container_traffic_encryption=True, vpc_config=vpc)


class MonitoringRole(Construct):
    """The role SageMaker runs one monitor's baseline and monitoring jobs with, scoped to its data:
    the grants come from the job requests (:meth:`allow_requests`)."""

    def __init__(self, scope: Construct, construct_id: str, *, description: str, image: ContainerImage, key: kms.IKey, network: NetworkConfig) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"), description=description)
        # https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createprocessingjob-perms
        statements = job_runtime_statements(self, image=image, key=key, log_group="ProcessingJobs", metrics_namespace="*aws/sagemaker/*")
        reasons = [
            "Its S3 grants are derived from its jobs' requests: an S3Prefix input is every object under its key prefix "
            "(the endpoint's captures, the baseline dataset, the current/ baseline files), and SageMaker names the objects "
            "it writes under each output prefix (a job-named folder of baselines/, hourly reports); SageMaker names "
            "the processing-job log streams; ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no "
            "resource-level permissions (PutMetricData is limited to SageMaker's namespaces by condition)."
        ]
        if network.in_vpc:
            # https://docs.aws.amazon.com/sagemaker/latest/dg/process-vpc.html (CreateNetworkInterface and friends)
            statements.append(
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
                    ],
                    resources=["*"],
                )
            )  # fmt: skip
            reasons.append("The EC2 network-interface actions SageMaker needs to place jobs in your VPC do not support resource-level permissions.")
        self._reasons = reasons
        for statement in statements:
            self.role.add_to_policy(statement)

    def allow_requests(self, *requests: dict[str, Any]) -> None:
        """What the jobs of ``requests`` (CreateProcessingJob-shaped) read, list, write and encrypt with."""
        for statement in job_data_statements(requests):
            self.role.add_to_policy(statement)

    def allow(self, statement: iam.PolicyStatement, reason: str | None = None) -> None:
        self.role.add_to_policy(statement)
        if reason:
            self._reasons.append(reason)

    def acknowledge(self) -> None:
        """Call once every statement is added."""
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge_wildcards(policy, policy.document, " ".join(self._reasons))
        acknowledge(policy, ACK_INLINE_POLICY, *INLINE_POLICY_RULES)


class BaselineJobs(Construct):
    """The custom resource that runs baseline processing jobs and waits for them (both monitors)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, key: kms.IKey, layer: lambda_.ILayerVersion, monitoring_bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.prefix = config.prefix
        self.provider = WaitingProvider(
            self,
            "Provider",
            module="monitoring.baseline_job",
            description="Baseline processing job custom resource",
            service=f"{self.prefix}-baseline-job",
            key=key,
            layer=layer,
            retain_logs=config.retain_data,
            total_timeout=MAX_WAIT,
            query_interval=Duration.seconds(30),
        )
        job_arns = [stack.format_arn(service="sagemaker", resource="processing-job", resource_name=f"{self.prefix}-*")]
        self.provider.on_event.allow(["sagemaker:CreateProcessingJob", "sagemaker:AddTags", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"], job_arns)
        self.provider.is_complete.allow(["sagemaker:DescribeProcessingJob"], job_arns)
        # Clarify's analysis configs are written next to the job's output before it starts.
        self.provider.on_event.allow(["s3:PutObject"], [monitoring_bucket.arn_for_objects(f"{EXPLAINABILITY_PREFIX}/baselines/*")])
        self.provider.on_event.allow(["kms:GenerateDataKey"], [key.key_arn])
        # Completed baselines are copied into each monitor's current/ files (the CR's Publish).
        monitors = (DATA_QUALITY_PREFIX, EXPLAINABILITY_PREFIX)
        self.provider.is_complete.allow(["s3:GetObject"], [monitoring_bucket.arn_for_objects(f"{m}/baselines/*") for m in monitors])
        self.provider.is_complete.allow(["s3:PutObject"], [monitoring_bucket.arn_for_objects(f"{m}/{CURRENT}/*") for m in monitors])
        self.provider.is_complete.allow(["kms:Decrypt", "kms:GenerateDataKey"], [key.key_arn])
        # Whether a retraining promoted current/ (on_event, on update), and the marker cleared when
        # a new deploy-time baseline replaces it (is_complete). Listed, so a missing marker is not a 403.
        markers = [f"{m}/{CURRENT}/{baseline_dataset.PROMOTED_MARKER}" for m in monitors]
        self.provider.on_event.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[monitoring_bucket.bucket_arn], conditions={"StringEquals": {"s3:prefix": markers}})
        )
        self.provider.is_complete.allow(["s3:DeleteObject"], [monitoring_bucket.arn_for_objects(marker) for marker in markers])
        self.provider.acknowledge_wildcards(
            f"Baseline jobs are named {self.prefix}-<monitor>-baseline-<hash>-<attempt> at deploy time (the part before the "
            "hash cut to fit 63 characters), so the "
            f"name is known only as the prefix processing-job/{self.prefix}-*, which also matches retraining's "
            f"{self.prefix}-<execution> jobs (a longer app name can cut the '-baseline' part, so no narrower pattern holds); "
            "the handler only describes or stops the job named in its own physical resource ID. The analysis configs go "
            "under the job's own output prefix and baselines are copied from there to the monitors' current/ files."
        )

    def run(self, scope: Construct, construct_id: str, *, resource_type: str, request: dict, role: iam.IRole):
        self.provider.on_event.role.add_to_policy(
            iam.PolicyStatement(actions=["iam:PassRole"], resources=[role.role_arn], conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})
        )
        return self.provider.resource(scope, construct_id, resource_type=resource_type, request=request, role=role)


def job_definition_name(scope: Construct, *, prefix: str, kind: str, properties: dict[str, Any]) -> str:
    """``<prefix>-<kind>-<hash of the definition's properties>``, lower case.

    Every property of a job definition is create-only and CloudFormation cannot replace a resource
    whose name stays the same, so the name changes exactly when the content does. CloudFormation's
    own names (``CFN-<logical id>-<random>``, aws-cloudformation-resource-providers-sagemaker's
    CreateHandler) are mixed case, and the definition has no name attribute: cutting the name out of
    its ARN would depend on how SageMaker spells ARNs (lower case, as for other resources). This name
    is known at synth time in its one spelling. The hash is over the resolved template properties,
    whose references (role, key, buckets, endpoint) do not change value without a template change.
    """
    resolved = Stack.of(scope).resolve(properties)
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:16]
    return f"{prefix.lower()[: 62 - len(kind) - 18]}-{kind}-{digest}"


def monitoring_schedule(
    scope: Construct, *, name: str, endpoint_name: str, definition: CfnResource, definition_name: str, monitoring_type: str, expression: str
) -> sagemaker.CfnMonitoringSchedule:
    schedule = sagemaker.CfnMonitoringSchedule(
        scope,
        "Schedule",
        monitoring_schedule_name=name,
        endpoint_name=endpoint_name,
        monitoring_schedule_config=sagemaker.CfnMonitoringSchedule.MonitoringScheduleConfigProperty(
            monitoring_job_definition_name=definition_name,
            monitoring_type=monitoring_type,
            schedule_config=sagemaker.CfnMonitoringSchedule.ScheduleConfigProperty(schedule_expression=expression),
        ),
    )
    schedule.node.add_dependency(definition)  # named, not referenced: the definition must exist first
    return schedule


class _Monitor(Construct):
    """What the stack, the run events and the dashboard need from any monitor."""

    kind: str  # "data-quality" | "explainability": the ``monitor`` field of Monitoring Run Ended
    schedule_name: str
    schedule: sagemaker.CfnMonitoringSchedule

    @staticmethod
    def cluster(job: MonitorJobConfig, key: kms.IKey) -> dict:
        return {"InstanceType": job.instance_type, "InstanceCount": job.instance_count, "VolumeSizeInGB": job.volume_size_gb, **aws_facts.volume_key(job.instance_type, key.key_arn)}

    @staticmethod
    def resources(definition_type: type, job: MonitorJobConfig, key: kms.IKey):
        return definition_type.MonitoringResourcesProperty(
            cluster_config=definition_type.ClusterConfigProperty(
                instance_count=job.instance_count,
                instance_type=job.instance_type,
                volume_size_in_gb=job.volume_size_gb,
                volume_kms_key_id=aws_facts.volume_key(job.instance_type, key.key_arn).get("VolumeKmsKeyId"),
            )
        )

    @staticmethod
    def output(definition_type: type, uri: str, key: kms.IKey):
        return definition_type.MonitoringOutputConfigProperty(
            kms_key_id=key.key_arn,
            monitoring_outputs=[
                definition_type.MonitoringOutputProperty(
                    s3_output=definition_type.S3OutputProperty(s3_uri=uri, local_path=OUTPUT_PATH, s3_upload_mode="Continuous")
                )
            ],
        )


class DataQualityMonitor(_Monitor):
    kind = "data-quality"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        baselines: BaselineJobs | None,  # None only when the configured baseline files are used
        endpoint_name: str,
        dataset_s3_uri: str | None,
        capture_bucket: s3.IBucket,
        capture_prefix: str,
        monitoring_bucket: s3.IBucket,
        key: kms.IKey,
        alarm_topic: sns.ITopic,
        schedule_expression: str,
        retraining_data_s3_uri: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        dq, network = config.monitoring.data_quality, config.monitoring.network
        prefix = config.prefix
        self.image = ContainerImage.from_sdk(self, "AnalyzerImage", framework="model-monitor")
        self.job_role = MonitoringRole(self, "JobRole", description="Model Monitor data-quality baseline and monitoring jobs", image=self.image, key=key, network=network)
        self.role = self.job_role.role
        self.reports_s3_uri = f"s3://{monitoring_bucket.bucket_name}/{DATA_QUALITY_PREFIX}/reports"

        requests = []
        if dq.computes_baseline:
            assert baselines is not None and dataset_s3_uri is not None
            request = {
                "NamePrefix": f"{prefix}-dq-baseline",
                "ProcessingResources": {"ClusterConfig": self.cluster(dq, key)},
                "AppSpecification": {"ImageUri": self.image.uri},
                "RoleArn": self.role.role_arn,
                "ProcessingInputs": [s3_prefix_input(BASELINE_INPUT_NAME, dataset_s3_uri, f"{PROCESSING}/input/{BASELINE_INPUT_NAME}")],
                "ProcessingOutputConfig": {
                    "Outputs": [
                        {
                            "OutputName": OUTPUT_NAME,
                            "S3Output": {"S3Uri": f"s3://{monitoring_bucket.bucket_name}/{DATA_QUALITY_PREFIX}/baselines", "LocalPath": OUTPUT_PATH, "S3UploadMode": "EndOfJob"},
                        }
                    ],
                    "KmsKeyId": key.key_arn,
                },
                # The header names the analyzer's columns, and so its per-feature metrics (lambdas/shared/baseline.py).
                "Environment": baseline_environment(True),
                "StoppingCondition": {"MaxRuntimeInSeconds": dq.baseline_max_runtime_seconds},
                "NetworkConfig": network_request(network),
            }
            current = f"s3://{monitoring_bucket.bucket_name}/{DATA_QUALITY_PREFIX}/{CURRENT}"
            publish = {"statistics.json": f"{current}/statistics.json", "constraints.json": f"{current}/constraints.json"}
            self.baseline_template = {"request": request, "datasetInput": BASELINE_INPUT_NAME, "publish": publish}
            requests.append(request)
            if retraining_data_s3_uri is not None:
                requests.append(with_dataset(request, BASELINE_INPUT_NAME, retraining_data_s3_uri))
            self.baseline = baselines.run(self, "Baseline", resource_type="Custom::DataQualityBaseline", request={**request, "Publish": publish}, role=self.role)
            statistics, constraints = publish["statistics.json"], publish["constraints.json"]
        else:
            self.baseline_template = None  # your fixed baseline files: retraining leaves them alone
            statistics, constraints = dq.baseline_statistics_s3_uri, dq.baseline_constraints_s3_uri
        self.statistics_s3_uri, self.constraints_s3_uri = statistics, constraints
        scripts = [uri for uri in (dq.record_preprocessor_s3_uri, dq.post_analytics_processor_s3_uri) if uri is not None]
        requests.append(
            scheduled_run_request(
                captures_s3_uri=f"s3://{capture_bucket.bucket_name}/{capture_prefix}/",
                baseline_s3_uris=[statistics, constraints, *scripts],
                reports_s3_uri=self.reports_s3_uri,
                key=key,
            )
        )
        self.job_role.allow_requests(*requests)
        self.job_role.acknowledge()

        definition = sagemaker.CfnDataQualityJobDefinition
        properties = dict(
            data_quality_app_specification=definition.DataQualityAppSpecificationProperty(
                image_uri=self.image.uri,
                environment=METRICS_ENVIRONMENT,
                record_preprocessor_source_uri=dq.record_preprocessor_s3_uri,
                post_analytics_processor_source_uri=dq.post_analytics_processor_s3_uri,
            ),
            data_quality_baseline_config=definition.DataQualityBaselineConfigProperty(
                constraints_resource=definition.ConstraintsResourceProperty(s3_uri=constraints),
                statistics_resource=definition.StatisticsResourceProperty(s3_uri=statistics),
            ),
            data_quality_job_input=definition.DataQualityJobInputProperty(
                endpoint_input=definition.EndpointInputProperty(
                    endpoint_name=endpoint_name, local_path=ENDPOINT_INPUT_PATH, s3_input_mode="File", s3_data_distribution_type="FullyReplicated"
                )
            ),
            data_quality_job_output_config=self.output(definition, self.reports_s3_uri, key),
            job_resources=self.resources(definition, dq, key),
            network_config=network_property(definition, network),
            role_arn=self.role.role_arn,
            stopping_condition=definition.StoppingConditionProperty(max_runtime_in_seconds=dq.max_runtime_seconds),
        )
        self.job_definition_name = job_definition_name(self, prefix=prefix, kind="data-quality", properties=properties)
        self.job_definition = definition(self, "JobDefinition", job_definition_name=self.job_definition_name, **properties)
        self.job_definition.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        if dq.computes_baseline:
            self.job_definition.node.add_dependency(self.baseline)  # current/ holds its files from now on
        self.schedule_name = f"{prefix}-data-quality"
        self.schedule = monitoring_schedule(
            self,
            name=self.schedule_name,
            endpoint_name=endpoint_name,
            definition=self.job_definition,
            definition_name=self.job_definition_name,
            monitoring_type="DataQuality",
            expression=schedule_expression,
        )

        period = Duration.seconds(aws_facts.MONITORING_CADENCES[dq.schedule])
        self.drift_threshold = dq.drift_threshold
        self.drift_alarm_prefix = f"{prefix}-drift-"  # retraining's rule matches alarm names on it
        self.drift_metrics: dict[str, cloudwatch.Metric] = {}
        self.drift_alarms = []
        # The analyzer names each column after the baseline's header row, the output column then
        # the features (lambdas/shared/baseline.py): one alarm per feature.
        for feature in baseline_dataset.header(config.model.feature_names)[1:]:
            metric = cloudwatch.Metric(
                namespace=aws_facts.DATA_QUALITY_METRICS_NAMESPACE,
                metric_name=aws_facts.DATA_QUALITY_DRIFT_METRIC.format(feature=feature),
                dimensions_map={"Endpoint": endpoint_name, "MonitoringSchedule": self.schedule_name},
                statistic="Maximum",
                period=period,
            )
            alarm = cloudwatch.Alarm(
                self,
                f"Drift{feature}",
                alarm_name=f"{self.drift_alarm_prefix}{feature}",
                alarm_description=f"Data drift on feature {feature}: the data-quality run's baseline drift distance passed the threshold.",
                metric=metric,
                threshold=dq.drift_threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
            self.drift_metrics[feature] = metric.with_(label=feature)
            self.drift_alarms.append(alarm)


class ExplainabilityMonitor(_Monitor):
    """Clarify's feature-attribution drift monitor. Clarify explains by calling a temporary shadow
    endpoint of the served model, so the job role may create, tag, call and delete exactly those."""

    kind = "explainability"

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        baselines: BaselineJobs,
        endpoint_name: str,
        model_name: str,
        shap_baseline: list[float],
        dataset_s3_uri: str,
        capture_bucket: s3.IBucket,
        capture_prefix: str,
        monitoring_bucket: s3.IBucket,
        key: kms.IKey,
        schedule_expression: str,
        retraining_data_s3_uri: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        ex, network, model = config.monitoring.explainability, config.monitoring.network, config.model
        prefix = config.prefix
        self.image = ContainerImage.from_sdk(self, "ClarifyImage", framework="clarify", image_scope="processing")
        self.job_role = MonitoringRole(self, "JobRole", description="SageMaker Clarify explainability baseline and monitoring jobs", image=self.image, key=key, network=network)
        shadow = [
            stack.format_arn(service="sagemaker", resource="endpoint", resource_name=f"{aws_facts.CLARIFY_SHADOW_ENDPOINT_PREFIX}*"),
            stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name=f"{aws_facts.CLARIFY_SHADOW_ENDPOINT_CONFIG_PREFIX}*"),
        ]
        self.job_role.allow(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig",
                    "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:InvokeEndpoint",
                    # A dependent action of CreateEndpointConfig and CreateEndpoint (Service Authorization
                    # Reference); Clarify jobs fail "not authorized to perform: sagemaker:AddTags" without it.
                    "sagemaker:AddTags",
                ],
                resources=shadow,
            ),  # fmt: skip
            "Clarify names its temporary shadow endpoints and their configs itself, under the sm-clarify- prefix.",
        )
        # Clarify describes the model it explains: the served one (a CloudFormation-generated name, which
        # SageMaker's ARNs spell in lower case, so no exact ARN can be written at synth time) or a
        # retrained one (named by its retraining run).
        self.job_role.allow(
            iam.PolicyStatement(actions=["sagemaker:DescribeModel"], resources=[stack.format_arn(service="sagemaker", resource="model", resource_name="*")]),
            "DescribeModel (read-only metadata) is on model/*: the model Clarify explains has a CloudFormation-generated "
            "or retraining-run name, which SageMaker's ARNs spell in lower case, so no exact ARN can be written at synth time.",
        )
        self.role = self.job_role.role
        self.reports_s3_uri = f"s3://{monitoring_bucket.bucket_name}/{EXPLAINABILITY_PREFIX}/reports"
        self.label = model.label_names[-1]

        config_name, config_path = CLARIFY_CONFIG_INPUT
        dataset_name, dataset_path = CLARIFY_DATASET_INPUT
        config_input = s3_prefix_input(config_name, "", config_path)
        del config_input["S3Input"]["S3Uri"]  # the analysis config document below, written by the custom resource
        request = {
            "NamePrefix": f"{prefix}-shap-baseline",
            "ProcessingResources": {"ClusterConfig": self.cluster(ex, key)},
            "AppSpecification": {"ImageUri": self.image.uri},
            "RoleArn": self.role.role_arn,
            "ProcessingInputs": [s3_prefix_input(dataset_name, dataset_s3_uri, dataset_path), config_input],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": CLARIFY_OUTPUT_NAME,
                        "S3Output": {"S3Uri": f"s3://{monitoring_bucket.bucket_name}/{EXPLAINABILITY_PREFIX}/baselines", "LocalPath": OUTPUT_PATH, "S3UploadMode": "EndOfJob"},
                    }
                ],
                "KmsKeyId": key.key_arn,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": ex.baseline_max_runtime_seconds},
            "NetworkConfig": network_request(network),
            "Documents": {
                "AnalysisConfig": {"File": "analysis_config.json", "Input": config_name, "Body": clarify.baselining_config(config, model_name=model_name, baseline=shap_baseline)},
                "MonitoringConfig": {"File": "monitoring_analysis_config.json", "Body": clarify.monitoring_config(config, model_name=model_name, baseline=shap_baseline)},
            },
        }
        # The baselining job's analysis.json is the constraints file the monitor compares against.
        current = f"s3://{monitoring_bucket.bucket_name}/{EXPLAINABILITY_PREFIX}/{CURRENT}"
        publish = {"analysis.json": f"{current}/analysis.json", request["Documents"]["MonitoringConfig"]["File"]: f"{current}/analysis_config.json"}
        self.baseline_template = {"request": request, "datasetInput": dataset_name, "publish": publish}
        self.constraints_s3_uri = publish["analysis.json"]
        self.analysis_config_s3_uri = f"{current}/analysis_config.json"
        requests = [request]
        if retraining_data_s3_uri is not None:
            requests.append(with_dataset(request, dataset_name, retraining_data_s3_uri))
        requests.append(
            scheduled_run_request(
                captures_s3_uri=f"s3://{capture_bucket.bucket_name}/{capture_prefix}/",
                baseline_s3_uris=[self.analysis_config_s3_uri, self.constraints_s3_uri],
                reports_s3_uri=self.reports_s3_uri,
                key=key,
            )
        )
        self.job_role.allow_requests(*requests)
        self.job_role.acknowledge()
        self.baseline = baselines.run(self, "Baseline", resource_type="Custom::ExplainabilityBaseline", request={**request, "Publish": publish}, role=self.role)

        definition = sagemaker.CfnModelExplainabilityJobDefinition
        json_lines = model.content_type == clarify.JSON_LINES
        properties = dict(
            model_explainability_app_specification=definition.ModelExplainabilityAppSpecificationProperty(
                config_uri=self.analysis_config_s3_uri, image_uri=self.image.uri, environment=METRICS_ENVIRONMENT
            ),
            model_explainability_baseline_config=definition.ModelExplainabilityBaselineConfigProperty(
                constraints_resource=definition.ConstraintsResourceProperty(s3_uri=self.constraints_s3_uri)
            ),
            model_explainability_job_input=definition.ModelExplainabilityJobInputProperty(
                endpoint_input=definition.EndpointInputProperty(
                    endpoint_name=endpoint_name,
                    local_path=ENDPOINT_INPUT_PATH,
                    s3_input_mode="File",
                    s3_data_distribution_type="FullyReplicated",
                    # JSON Lines: where the features are in a captured request and the score in the response.
                    features_attribute=model.features_path if json_lines else None,
                    inference_attribute=model.score_path if json_lines else None,
                )
            ),
            model_explainability_job_output_config=self.output(definition, self.reports_s3_uri, key),
            job_resources=self.resources(definition, ex, key),
            network_config=network_property(definition, network),
            role_arn=self.role.role_arn,
            stopping_condition=definition.StoppingConditionProperty(max_runtime_in_seconds=ex.max_runtime_seconds),
        )
        self.job_definition_name = job_definition_name(self, prefix=prefix, kind="explainability", properties=properties)
        self.job_definition = definition(self, "JobDefinition", job_definition_name=self.job_definition_name, **properties)
        self.job_definition.node.add_dependency(self.role.node.find_child("DefaultPolicy"), self.baseline)
        self.schedule_name = f"{prefix}-explainability"
        self.schedule = monitoring_schedule(
            self,
            name=self.schedule_name,
            endpoint_name=endpoint_name,
            definition=self.job_definition,
            definition_name=self.job_definition_name,
            monitoring_type="ModelExplainability",
            expression=schedule_expression,
        )
        period = Duration.seconds(aws_facts.MONITORING_CADENCES[ex.schedule])
        self.shap_metrics = {
            feature: cloudwatch.Metric(
                namespace=aws_facts.EXPLAINABILITY_METRICS_NAMESPACE,
                metric_name=aws_facts.EXPLAINABILITY_FEATURE_METRIC.format(feature=feature),
                dimensions_map={
                    "Endpoint": endpoint_name,
                    "MonitoringSchedule": self.schedule_name,
                    "ExplainabilityMethod": aws_facts.EXPLAINABILITY_METHOD,
                    "Label": self.label,
                    "ValueType": aws_facts.EXPLAINABILITY_VALUE_TYPE,
                },
                statistic="Average",
                period=period,
                label=feature,
            )
            for feature in model.feature_names
        }
