"""The open monitoring back end: the app's own data-quality, feature-attribution and model-quality
monitors, which any account can deploy (Lambda, S3, EventBridge Scheduler, CloudWatch; no Model
Monitor or Clarify). The model-quality monitor is the app's own with either back end.

    capture objects --> capture Lambda (profiling: sketches and samples per capture object)
    EventBridge Scheduler, at minute 20 of each cadence --> evaluator Lambda --> report, latest.json,
        EMF metrics (drift distances, SHAP, model quality), "Monitoring Run Ended"
    (model quality reads the capture files and the ground-truth labels themselves, not profiles)
    deploy --> baseline custom resource --> <monitor>/current/ (the same code the evaluators use)

Each monitor exposes what the rest of the app reads from the SageMaker back end's monitors
(``stacks.monitoring.sagemaker``): ``kind``, ``schedule_name``, the drift alarms and metrics, the
SHAP metrics, the baseline URIs of the stack outputs, and ``role`` / ``baseline_template`` (None:
retraining runs no SageMaker baseline job for them). Schedule and alarm names are the SageMaker
back end's, so switching back ends keeps every name the alerts, the dashboard and retraining use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import CustomResource, Duration, Fn, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import custom_resources as cr
from constructs import Construct

from lambdas.capture.records import ParseOptions
from lambdas.monitoring.drift.evaluate import DRIFT_METRIC, SIGNIFICANT_DRIFT_METRIC
from lambdas.review.results.results import GROUND_TRUTH_PREFIX
from lambdas.monitoring.runs.runs import CADENCE_START, EVALUATION_MINUTE, LATEST_MARKER
from lambdas.shared import baseline as baseline_dataset
from lambdas.shared.aws import split_s3_uri
from stacks.shared import aws_facts
from stacks.monitoring.sagemaker import CURRENT, DATA_QUALITY_PREFIX, EXPLAINABILITY_PREFIX
from stacks.shared.compliance import acknowledge
from stacks.shared.config import AppConfig
from stacks.shared.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES, AppFunction, Invocation, acknowledge_provider_framework
from stacks.shared.log_groups import encrypted_log_group
from stacks.shared.work_queue import alarm_at_one_message, encrypted_queue
from stacks.shared.schedules import app_schedule

# An evaluation reads one period's sketch or sample files (a few KB each, read 16 at a time): 10,000
# capture objects take about a minute locally (make bench); the limit leaves room for ten times that.
EVALUATION_TIMEOUT = Duration.minutes(15)
# Computing a baseline reads the whole dataset (and, for attributions, explains it with TreeSHAP).
BASELINE_TIMEOUT = Duration.minutes(15)
# Lambda's own retries of a failed evaluation (its asynchronous-invocation default).
EVALUATION_RETRIES = 2

# The model-quality monitor's folder in the monitoring bucket and its events' "monitor" (the evaluator's
# MONITOR: lambdas/monitoring/open/model_quality.py imports Powertools and numpy, which synthesis lacks),
# and the metrics its evaluator publishes (Model Monitor's names, aws_facts.MODEL_QUALITY_BINARY_METRICS, in the app's namespace) beside: the label-free estimate of each
# figure, the rows labelled in the period, and 1 when a figure violates its constraint (0 when it does not).
MODEL_QUALITY = "model-quality"
ESTIMATED_METRIC = "estimated_{metric}"
LABELLED_ROWS_METRIC = "labelled_rows"
VIOLATION_METRIC = "{metric}_violation"


def evaluation_expression(cadence: str) -> str:
    """The schedule expression, in CloudFormation, for a cadence parameter's value: ``cron(0 <rest>``
    becomes ``cron(20 <rest>`` (every cadence of aws_facts.MONITORING_CADENCES starts with "cron(0 ";
    lambdas.monitoring.runs.runs.evaluation_expression is the same rule in Python)."""
    return Fn.join("", [f"cron({EVALUATION_MINUTE} ", Fn.select(1, Fn.split(CADENCE_START, cadence))])


@dataclass(frozen=True)
class S3Source:
    """Where a baseline reads a file or prefix from, with the grants that read it: object ARNs
    (GetObject) and, for a prefix of the user's, the bucket and ``s3:prefix`` pattern to list it."""

    uri: str
    object_arns: tuple[str, ...]
    listing: tuple[str, str] | None = None

    @classmethod
    def configured(cls, scope: Construct, uri: str, *, prefix: bool = True) -> S3Source:
        """A URI from the configuration: with ``prefix``, the key and every object it is a prefix of
        (a dataset may be a folder, as the SageMaker back end's S3Prefix inputs read it); else that object."""
        bucket, key = split_s3_uri(uri)
        partition = Stack.of(scope).partition
        if not prefix:
            return cls(uri, (f"arn:{partition}:s3:::{bucket}/{key}",))
        return cls(uri, (f"arn:{partition}:s3:::{bucket}/{key}*",), (f"arn:{partition}:s3:::{bucket}", f"{key}*"))

    @classmethod
    def object(cls, bucket: s3.IBucket, key: str) -> S3Source:
        return cls(f"s3://{bucket.bucket_name}/{key}", (bucket.arn_for_objects(key),))


class OpenBaselines(Construct):
    """The deploy-time baseline custom resource of the open monitors: ``lambdas.monitoring.open.
    baseline.handler`` behind aws-cdk-lib's Provider (on_event only: the baseline is computed within
    the call), writing ``<monitor>/baselines/<hash>/`` then ``<monitor>/current/`` unless a retraining
    promoted its own (lambdas/shared/baseline.py's marker)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        explain: lambda_.ILayerVersion | None,
        monitoring_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = monitoring_bucket
        self.handler = AppFunction(
            self,
            "Handler",
            handler="lambdas.monitoring.open.baseline.handler",
            description="Open monitoring: computes a monitor's baseline at deploy time and publishes it to current/",
            service=f"{config.prefix}-open-baseline",
            invocation=Invocation.custom_resource(),
            key=key,
            layer=layer,
            retain_logs=config.retain_data,
            environment={},
            timeout=BASELINE_TIMEOUT,
            # A full vCPU (1,769 MB) for parsing the dataset and, with attributions, TreeSHAP.
            memory_size=2048,
            extra_layers=(explain,) if explain is not None else (),
        )
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.handler.function,
            log_group=encrypted_log_group(self, "ProviderLogs", key=key, retain=config.retain_data),
            provider_function_env_encryption=key,
        )
        self._monitors: list[str] = []
        self.handler.allow(["kms:Decrypt", "kms:GenerateDataKey"], [key.key_arn])
        self._acknowledge_framework()

    def resource(self, scope: Construct, construct_id: str, *, monitor: str, resource_type: str, sources: list[S3Source], properties: dict[str, str]) -> CustomResource:
        """One monitor's baseline: the handler may read ``sources`` and write that monitor's folders."""
        if monitor not in self._monitors:
            self._monitors.append(monitor)
            marker = f"{monitor}/{CURRENT}/{baseline_dataset.PROMOTED_MARKER}"
            self.handler.allow(["s3:GetObject"], [self.bucket.arn_for_objects(f"{monitor}/baselines/*")])
            self.handler.allow(["s3:PutObject"], [self.bucket.arn_for_objects(f"{monitor}/{folder}/*") for folder in ("baselines", CURRENT)])
            self.handler.allow(["s3:DeleteObject"], [self.bucket.arn_for_objects(marker)])
            # Whether a retraining promoted current/ (listed, so a missing marker is not a 403).
            self.handler.role.add_to_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn], conditions={"StringEquals": {"s3:prefix": [marker]}})
            )
        for source in sources:
            self.handler.allow(["s3:GetObject"], list(source.object_arns))
            if source.listing is not None:
                bucket_arn, pattern = source.listing
                self.handler.role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket_arn], conditions={"StringLike": {"s3:prefix": [pattern]}}))
        resource = CustomResource(scope, construct_id, service_token=self.provider.service_token, resource_type=resource_type, properties=properties)
        resource.node.add_dependency(self.handler.role.node.find_child("DefaultPolicy"))
        return resource

    def allow_models(self, model_arns: list[str]) -> None:
        """Read the model artefacts an attribution baseline explains."""
        self.handler.allow(["s3:GetObject"], model_arns)

    def acknowledge(self, reason: str) -> None:
        """Call once every resource is added; ``reason`` explains the dataset and model wildcards."""
        self.handler.acknowledge_wildcards(
            "Baselines are written under <monitor>/baselines/<hash of their inputs>/ and published to <monitor>/current/ "
            "(file names the handler chooses); " + reason
        )

    def _acknowledge_framework(self) -> None:
        framework = (
            "aws-cdk-lib's custom-resource Provider framework (its onEvent framework function and role) runs only while "
            "CloudFormation deploys this stack; its runtime, managed policy and invoke grant on our handler (ARN plus ':*' "
            "for versions) are the library's. Its logs go to a KMS-encrypted log group with retention; CloudFormation "
            "invokes it asynchronously with a callback URL, to which any failure is reported (failing the deployment), so "
            "nothing is queued; it calls only Lambda and that URL, so it needs no VPC."
        )
        acknowledge_provider_framework(self.provider, framework)


class EvaluationSchedule(Construct):
    """An EventBridge Scheduler schedule that runs an evaluator at minute 20 of each cadence, with
    its own role (invoke that one function, send to the dead-letter queue), no flexible window, and
    a dead-letter queue for runs that could not be delivered or failed after Lambda's retries."""

    def __init__(
        self, scope: Construct, construct_id: str, *, name: str, function: AppFunction, cadence: str, key: kms.IKey, alarm_topic: sns.ITopic, description: str
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.failures = encrypted_queue(self, "Failures", key=key, retention=Duration.days(14))
        acknowledge(
            self.failures,
            f"This is a dead-letter queue: schedule {name}'s, for runs EventBridge Scheduler could not deliver and evaluations "
            "that still failed after Lambda's retries.",
            "AwsSolutions-SQS3",
        )
        self.alarm = alarm_at_one_message(
            self,
            "FailuresAlarm",
            self.failures,
            f"A scheduled evaluation of {name} was not delivered or failed (see the message, and the function's log); the period "
            "has no report: fix the cause, then invoke the function with the message's input to evaluate it.",
            alarm_topic,
        )
        # Lambda's asynchronous retries, then the same queue (Scheduler invokes Lambda asynchronously).
        function.function.configure_async_invoke(on_failure=destinations.SqsDestination(self.failures), retry_attempts=EVALUATION_RETRIES)
        # The trust is limited to this account's schedules (confused deputy).
        # https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}),
            description=f"EventBridge Scheduler: runs {name}'s evaluation and parks what it cannot deliver",
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function.function_arn]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.failures.queue_arn]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]))  # the SSE-KMS queue
        acknowledge(self.role.node.find_child("DefaultPolicy"), ACK_INLINE_POLICY, *INLINE_POLICY_RULES)
        self.expression = evaluation_expression(cadence)
        self.input = stack.to_json_string({"scheduledTime": aws_facts.SCHEDULER_SCHEDULED_TIME, "schedule": cadence})
        self.schedule = app_schedule(
            self, "Schedule", name=name, description=description, expression=self.expression, timezone="UTC",
            target_arn=function.function.function_arn, role=self.role, target_input=self.input, failures=self.failures,
        )  # fmt: skip
        self.schedule_arn = stack.format_arn(service="scheduler", resource="schedule", resource_name=f"default/{name}")


class OpenMonitor(Construct):
    """What the stack, the run events, retraining and the dashboard read from any monitor."""

    kind: str
    # Retraining re-baselines with SageMaker processing jobs only for the SageMaker back end's monitors.
    role = None
    baseline_template = None

    def _evaluator(
        self,
        *,
        config: AppConfig,
        handler: str,
        description: str,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        environment: dict[str, str],
        memory_size: int,
        extra_layers: tuple[lambda_.ILayerVersion, ...] = (),
    ) -> AppFunction:
        return AppFunction(
            self,
            "Evaluator",
            handler=handler,
            description=description,
            # The runs Lambda's service, so the dashboard's MonitoringRuns graph is one metric for either back end.
            service=f"{config.prefix}-monitoring-runs",
            invocation=Invocation.schedule(
                rate=f"EventBridge Scheduler, {self.schedule_name}",
                failures="after Lambda's two retries a failed run goes to the schedule's dead-letter queue (its on-failure "
                "destination), which is alarmed, as is a run Scheduler could not deliver.",
            ),
            key=key,
            layer=layer,
            retain_logs=config.retain_data,
            environment=environment,
            timeout=EVALUATION_TIMEOUT,
            memory_size=memory_size,
            extra_layers=extra_layers,
        )

    def _grant_period_files(self, bucket: s3.IBucket, key: kms.IKey, folder: str, *, read_reports: bool = False) -> None:
        """List and read one period's ``<monitor>/<folder>/<hour>/`` files, read ``current/``, write ``reports/``
        (and, with ``read_reports``, read them: the data-quality evaluator reads earlier periods'
        ``statistics.json`` to find sketches written after their report)."""
        kind = self.kind
        fn = self.function
        fn.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"], resources=[bucket.bucket_arn], conditions={"StringLike": {"s3:prefix": [f"{kind}/{folder}/*", f"{kind}/{CURRENT}/*"]}}
            )
        )
        fn.allow(["s3:GetObject"], [bucket.arn_for_objects(f"{kind}/{folder}/*"), bucket.arn_for_objects(f"{kind}/{CURRENT}/*")])
        fn.allow(["s3:PutObject"], [bucket.arn_for_objects(f"{kind}/reports/*")])
        if read_reports:
            fn.allow(["s3:GetObject"], [bucket.arn_for_objects(f"{kind}/reports/*")])
        fn.allow(["kms:Decrypt", "kms:GenerateDataKey"], [key.key_arn])

    def _grant_events(self) -> None:
        # PutEvents on the default bus only; PutMetricData is not needed (EMF in the function's log).
        events_arn = Stack.of(self).format_arn(service="events", resource="event-bus", resource_name="default")
        self.function.allow(["events:PutEvents"], [events_arn])

    def _schedule(self, cadence: str, key: kms.IKey, alarm_topic: sns.ITopic, description: str) -> None:
        self.evaluation = EvaluationSchedule(
            self, "Schedule", name=self.schedule_name, function=self.function, cadence=cadence, key=key, alarm_topic=alarm_topic, description=description
        )
        self.schedule = self.evaluation.schedule
        self.failures = self.evaluation.failures

    @staticmethod
    def environment(config: AppConfig, *, bucket: s3.IBucket, endpoint_name: str, schedule_name: str, event_source: str) -> dict[str, str]:
        return {
            "MONITORING_BUCKET": bucket.bucket_name,
            "ENDPOINT_NAME": endpoint_name,
            "SCHEDULE_NAME": schedule_name,
            "EVENT_SOURCE": event_source,
            "EVENT_BUS_NAME": "default",
            "CADENCES": json.dumps(aws_facts.MONITORING_CADENCES),
        }


class OpenDataQualityMonitor(OpenMonitor):
    kind = DATA_QUALITY_PREFIX

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        baselines: OpenBaselines,
        endpoint_name: str,
        dataset: S3Source | None,  # None: the configured baseline files are copied
        monitoring_bucket: s3.IBucket,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        schedule_expression: str,
        event_source: str,
    ) -> None:
        super().__init__(scope, construct_id)
        dq = config.monitoring.data_quality
        prefix = config.prefix
        bucket = monitoring_bucket
        self.schedule_name = f"{prefix}-data-quality"
        self.reports_s3_uri = f"s3://{bucket.bucket_name}/{self.kind}/reports"
        current = f"s3://{bucket.bucket_name}/{self.kind}/{CURRENT}"
        self.statistics_s3_uri, self.constraints_s3_uri = f"{current}/statistics.json", f"{current}/constraints.json"
        self.latest_marker_s3_uri = f"{self.reports_s3_uri}/{endpoint_name}/{self.schedule_name}/{LATEST_MARKER}"

        if dataset is not None:
            sources, properties = [dataset], {"DatasetS3Uri": dataset.uri}
        else:
            files = [S3Source.configured(self, uri, prefix=False) for uri in (dq.baseline_statistics_s3_uri, dq.baseline_constraints_s3_uri)]
            sources, properties = files, {"BaselineStatisticsS3Uri": files[0].uri, "BaselineConstraintsS3Uri": files[1].uri}
        self.baseline = baselines.resource(
            self,
            "Baseline",
            monitor=self.kind,
            resource_type="Custom::OpenDataQualityBaseline",
            sources=sources,
            properties={
                "Monitor": self.kind,
                "MonitoringBucket": bucket.bucket_name,
                "DriftThreshold": str(dq.drift_threshold),
                # The dataset's header must be the model's output, then these (what capture rows hold).
                "FeatureNames": json.dumps(list(config.model.feature_names)),
                **properties,
            },
        )

        self.function = self._evaluator(
            config=config,
            handler="lambdas.monitoring.open.data_quality.handler",
            description="Open data-quality monitor: merges the period's sketches, compares them with the baseline, reports drift",
            key=key,
            layer=layer,
            environment=self.environment(config, bucket=bucket, endpoint_name=endpoint_name, schedule_name=self.schedule_name, event_source=event_source),
            memory_size=1024,
        )
        self._grant_period_files(bucket, key, "sketches", read_reports=True)
        self._grant_events()
        self.function.acknowledge_wildcards(
            "The evaluator lists and reads only its monitor's sketches/<hour>/ files (one per capture object, named after it) "
            "and current/ baseline, and writes and reads only under its reports/<endpoint>/<schedule>/<hour>/ folders (it reads "
            "earlier periods' statistics.json to find sketches written after their run); kms:GenerateDataKey* "
            "and kms:ReEncrypt* are what aws-cdk-lib's grant_send_messages gives for the KMS-encrypted dead-letter queue "
            "(the on-failure destination of its failed runs), on the app's key only."
        )
        self._schedule(schedule_expression, key, alarm_topic, "Open data-quality monitor: evaluates the last cadence's capture sketches")
        self.function.function.node.add_dependency(self.baseline)  # no run before current/ holds a baseline

        period = Duration.seconds(aws_facts.MONITORING_CADENCES[dq.schedule])
        self.drift_threshold = dq.drift_threshold
        self.drift_alarm_prefix = f"{prefix}-drift-"  # retraining's rule matches alarm names on it
        self.drift_metrics: dict[str, cloudwatch.Metric] = {}
        self.drift_alarms = []
        dimensions = {"Endpoint": endpoint_name, "MonitoringSchedule": self.schedule_name}
        # One alarm per feature column of the baseline (its header after the model's output column).
        for feature in baseline_dataset.header(config.model.feature_names)[1:]:
            # The alarm watches the distance only where it is significant for the period's sample sizes.
            significant = self.function.metric(SIGNIFICANT_DRIFT_METRIC.format(feature=feature), statistic="Maximum", period=period, **dimensions)
            alarm = cloudwatch.Alarm(
                self,
                f"Drift{feature}",
                alarm_name=f"{self.drift_alarm_prefix}{feature}",
                alarm_description=(
                    f"Data drift on feature {feature}: the evaluation's baseline drift distance passed the threshold and the "
                    "KS critical value for the period's sample sizes."
                ),
                metric=significant,
                threshold=dq.drift_threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
            self.drift_metrics[feature] = self.function.metric(DRIFT_METRIC.format(feature=feature), statistic="Maximum", period=period, label=feature, **dimensions)
            self.drift_alarms.append(alarm)


class OpenExplainabilityMonitor(OpenMonitor):
    """Feature-attribution drift with exact TreeSHAP on a uniform sample of the period's rows, using
    the model the endpoint serves now (lambdas/shared/explain), compared with the baseline by nDCG."""

    kind = EXPLAINABILITY_PREFIX

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        baselines: OpenBaselines,
        endpoint_name: str,
        variant_name: str,
        endpoint_arn: str,
        model_data_url: str,
        model_arns: list[str],
        dataset: S3Source,
        monitoring_bucket: s3.IBucket,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        explain: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        schedule_expression: str,
        event_source: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        ex, model = config.monitoring.explainability, config.model
        bucket = monitoring_bucket
        self.schedule_name = f"{config.prefix}-explainability"
        self.label = model.label_names[-1]
        self.reports_s3_uri = f"s3://{bucket.bucket_name}/{self.kind}/reports"
        self.constraints_s3_uri = f"s3://{bucket.bucket_name}/{self.kind}/{CURRENT}/analysis.json"
        self.latest_marker_s3_uri = f"{self.reports_s3_uri}/{endpoint_name}/{self.schedule_name}/{LATEST_MARKER}"
        baselines.allow_models(model_arns)
        self.baseline = baselines.resource(
            self,
            "Baseline",
            monitor=self.kind,
            resource_type="Custom::OpenExplainabilityBaseline",
            sources=[dataset],
            properties={
                "Monitor": self.kind,
                "MonitoringBucket": bucket.bucket_name,
                "DatasetS3Uri": dataset.uri,
                "ModelDataUrl": model_data_url,
                "FeatureNames": json.dumps(list(model.feature_names)),
                # The score explained: the probability of the last label (Clarify's label_headers).
                "LabelName": self.label,
            },
        )

        self.function = self._evaluator(
            config=config,
            handler="lambdas.monitoring.open.attribution.handler",
            description="Open attribution monitor: TreeSHAP on the period's sample with the served model, nDCG against the baseline",
            key=key,
            layer=layer,
            environment={
                **self.environment(config, bucket=bucket, endpoint_name=endpoint_name, schedule_name=self.schedule_name, event_source=event_source),
                "VARIANT_NAME": variant_name,
                "NDCG_THRESHOLD": str(ex.ndcg_threshold),
                "SAMPLE_ROWS": str(ex.sample_rows),
                "FEATURE_NAMES": json.dumps(list(model.feature_names)),
                "LABEL_NAMES": json.dumps(list(model.label_names)),
            },
            # XGBoost, numpy and scipy load in about a second on a full vCPU (1,769 MB), as for the review starter.
            memory_size=2048,
            extra_layers=(explain,),
        )
        self._grant_period_files(bucket, key, "samples")
        self._grant_events()
        # Which model the endpoint serves (DescribeEndpoint -> config -> model) and its artefact,
        # as the review starter reads it (lambdas/shared/explain/deployed_model.py).
        fn = self.function
        fn.allow(["sagemaker:DescribeEndpoint"], [endpoint_arn])
        fn.allow(["sagemaker:DescribeEndpointConfig"], [stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name="*")])
        fn.allow(["sagemaker:DescribeModel"], [stack.format_arn(service="sagemaker", resource="model", resource_name="*")])
        fn.allow(["s3:GetObject"], model_arns)
        fn.acknowledge_wildcards(
            "The evaluator lists and reads only its monitor's samples/<hour>/ files (one per capture object, named after it) "
            "and current/ baseline, and writes only under its reports/<endpoint>/<schedule>/<hour>/ folders; it reads the served "
            "model's artefact (a retrained one under retraining/<execution>/). DescribeEndpointConfig and DescribeModel "
            "(read-only metadata) are on endpoint-config/* and model/*: the endpoint's config and model have "
            "CloudFormation-generated or retraining-run names, which SageMaker's ARNs spell in lower case, so no exact ARN "
            "can be written at synth time. kms:GenerateDataKey* and kms:ReEncrypt* are what aws-cdk-lib's grant_send_messages "
            "gives for the KMS-encrypted dead-letter queue (the on-failure destination of its failed runs), on the app's key only."
        )
        self._schedule(schedule_expression, key, alarm_topic, "Open attribution monitor: explains the last cadence's sampled rows")
        fn.function.node.add_dependency(self.baseline)

        period = Duration.seconds(aws_facts.MONITORING_CADENCES[ex.schedule])
        dimensions = {"Endpoint": endpoint_name, "MonitoringSchedule": self.schedule_name}
        self.shap_metrics = {
            # Clarify's metric name (the open evaluator keeps it): the global mean |SHAP| of each feature.
            feature: fn.metric(aws_facts.EXPLAINABILITY_FEATURE_METRIC.format(feature=feature), statistic="Average", period=period, label=feature, **dimensions)
            for feature in model.feature_names
        }


class OpenModelQualityMonitor(OpenMonitor):
    """Model quality, realized from the labels that arrived (reviewers' and uploaded, in Model Monitor's
    ground-truth format) joined with the captured predictions they label, and estimated from the scores
    where labels are missing (lambdas/monitoring/open/model_quality.py). The app's own monitor with
    either monitoring back end: Model Monitor's model-quality monitor is not used."""

    kind = MODEL_QUALITY

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        baselines: OpenBaselines,
        dataset: S3Source | None,  # the test-set scores (label,probability); None: figures without constraints or estimate
        endpoint_name: str,
        capture_bucket: s3.IBucket,
        capture_prefix: str,  # this endpoint's capture files: <capture destination prefix>/<endpoint>/
        labels_bucket: s3.IBucket,
        monitoring_bucket: s3.IBucket,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        explain: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        schedule_expression: str,
        event_source: str,
        review_selection: dict[str, str],  # the review rule's variables as capture_filter has them; empty without review
    ) -> None:
        super().__init__(scope, construct_id)
        mq, model = config.monitoring.model_quality, config.model
        bucket = monitoring_bucket
        self.schedule_name = f"{config.prefix}-model-quality"
        self.reports_s3_uri = f"s3://{bucket.bucket_name}/{self.kind}/reports"
        current = f"s3://{bucket.bucket_name}/{self.kind}/{CURRENT}"
        self.statistics_s3_uri, self.constraints_s3_uri = f"{current}/statistics.json", f"{current}/constraints.json"
        self.latest_marker_s3_uri = f"{self.reports_s3_uri}/{endpoint_name}/{self.schedule_name}/{LATEST_MARKER}"
        self.capture_prefix = capture_prefix.rstrip("/") + "/"
        self.ground_truth_prefix = f"{GROUND_TRUTH_PREFIX}/"
        # The evaluator's label for a score, as capture_filter's (records.ParseOptions' default).
        self.decision_threshold = ParseOptions().threshold

        # Without a dataset (your own model and no test-set scores) the baseline still publishes current/,
        # saying so: the evaluator then computes figures without constraints or estimate.
        self.baseline = baselines.resource(
            self,
            "Baseline",
            monitor=self.kind,
            resource_type="Custom::OpenModelQualityBaseline",
            sources=[dataset] if dataset is not None else [],
            properties={
                "Monitor": self.kind,
                "MonitoringBucket": bucket.bucket_name,
                **({"DatasetS3Uri": dataset.uri} if dataset is not None else {}),
                # A constraint's threshold is the test-set figure, at the evaluator's decision threshold, less the tolerance.
                "DecisionThreshold": str(self.decision_threshold),
                "Tolerance": str(mq.tolerance),
            },
        )

        self.function = self._evaluator(
            config=config,
            handler="lambdas.monitoring.open.model_quality.handler",
            description="Open model-quality monitor: joins labels with the captured predictions, estimates quality where labels are missing",
            key=key,
            layer=layer,
            environment={
                **self.environment(config, bucket=bucket, endpoint_name=endpoint_name, schedule_name=self.schedule_name, event_source=event_source),
                "CAPTURE_BUCKET": capture_bucket.bucket_name,
                "CAPTURE_PREFIX": self.capture_prefix,
                "LABELS_BUCKET": labels_bucket.bucket_name,
                "GROUND_TRUTH_PREFIX": self.ground_truth_prefix,
                "LABEL_WINDOW_HOURS": str(mq.label_window_hours),
                "DECISION_THRESHOLD": str(self.decision_threshold),
                "SCORE_PATH": model.score_path or "",
                "FEATURES_PATH": model.features_path,
                "TOLERANCE": str(mq.tolerance),
                "ESTIMATE": "true" if mq.estimate else "false",
                **review_selection,
            },
            # A day's capture files parsed and joined, and numpy (the explain layer's) for the curves and intervals.
            memory_size=2048,
            extra_layers=(explain,),
        )
        self._grant_period_files(bucket, key, "reports")
        fn = self.function
        # The endpoint's capture files and the labels' ground-truth lines, listed and read by hour folder.
        for source, prefix in ((capture_bucket, self.capture_prefix), (labels_bucket, self.ground_truth_prefix)):
            fn.role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[source.bucket_arn], conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}}))
            fn.allow(["s3:GetObject"], [source.arn_for_objects(f"{prefix}*")])
        self._grant_events()
        fn.acknowledge_wildcards(
            "The evaluator lists and reads only this endpoint's capture files (capture/<endpoint>/<variant>/<hour>/, named by "
            "SageMaker), the ground-truth/<hour>/ label files (named by the reviewers' results writer or the user who uploads "
            "them), its monitor's current/ baseline and its earlier reports (the metrics over recent periods), and writes only "
            "under its reports/<endpoint>/<schedule>/<hour>/ folders; kms:GenerateDataKey* and kms:ReEncrypt* are what "
            "aws-cdk-lib's grant_send_messages gives for the KMS-encrypted dead-letter queue (the on-failure destination of its "
            "failed runs), on the app's key only."
        )
        self._schedule(schedule_expression, key, alarm_topic, "Open model-quality monitor: realized and estimated quality of the last cadence's predictions")
        fn.function.node.add_dependency(self.baseline)  # no run before current/ holds the baseline

        period = Duration.seconds(aws_facts.MONITORING_CADENCES[mq.schedule])
        dimensions = {"Endpoint": endpoint_name, "MonitoringSchedule": self.schedule_name}

        def metric(name: str, statistic: str = "Average", label: str | None = None) -> cloudwatch.Metric:
            return self.function.metric(name, statistic=statistic, period=period, label=label, **dimensions)

        # Model Monitor's names for the realized figures, ours for the label-free estimates beside them.
        self.quality_metrics = {name: metric(name, label=f"{name} (labels)") for name in aws_facts.MODEL_QUALITY_BINARY_METRICS}
        self.estimated_metrics = {name: metric(ESTIMATED_METRIC.format(metric=name), label=f"{name} (estimated)") for name in aws_facts.MODEL_QUALITY_BINARY_METRICS}
        self.labelled_rows_metric = metric(LABELLED_ROWS_METRIC, statistic="Maximum", label="labelled rows")
        self.violation_alarm_prefix = f"{config.prefix}-model-quality-"
        self.violation_alarms = []
        for name in aws_facts.MODEL_QUALITY_BINARY_METRICS:
            alarm = cloudwatch.Alarm(
                self,
                f"Violation{name.title()}",
                alarm_name=f"{self.violation_alarm_prefix}{name}",
                alarm_description=(
                    f"Model quality: the evaluation's {name} (from labels, or without labels its estimate from the scores) fell below "
                    f"its test-set value less the tolerance ({mq.tolerance}), its whole 95 % interval below; see the run's "
                    "constraint_violations.json and report.html."
                ),
                metric=metric(VIOLATION_METRIC.format(metric=name), statistic="Maximum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # A period without enough labels, or without constraints, reports no violation.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
            self.violation_alarms.append(alarm)
