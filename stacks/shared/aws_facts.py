"""Facts about AWS that the stacks rely on, each verified once and kept here with its source.

Nothing here calls AWS: botocore's service models ship inside the botocore package.
"""

from __future__ import annotations

import re
from functools import cache

import botocore.session

# SageMaker resource names (EndpointName, VariantName, ModelName, EndpointConfigName):
# botocore sagemaker service-2.json, shape ``EndpointName``: pattern
# ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``, max 63.
SAGEMAKER_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
SAGEMAKER_NAME_MAX = 63

# Task UI, flow definition and human loop names: botocore sagemaker ``HumanTaskUiName`` /
# ``FlowDefinitionName`` and sagemaker-a2i-runtime ``HumanLoopName``: ``^[a-z0-9](-*[a-z0-9])*$``, max 63.
A2I_NAME_PATTERN = re.compile(r"[a-z0-9](-*[a-z0-9])*")
A2I_NAME_MAX = 63

# CreateFlowDefinition ``HumanLoopConfig.WorkteamArn``: botocore pattern
# ``arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:workteam/.*``.
WORKTEAM_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:workteam/[A-Za-z0-9/_-]+")

# CreateFlowDefinition ``HumanLoopConfig`` text fields, botocore sagemaker model (patterns are Java
# regexes, checked by the service, not by botocore): ``FlowDefinitionTaskKeyword`` 1-30 chars
# ``[A-Za-z0-9]+( [A-Za-z0-9]+)*``, 1-5 of them; ``FlowDefinitionTaskTitle`` 1-128 chars
# ``[\t\n\r -\uD7FF\uE000-\uFFFD]*``; ``FlowDefinitionTaskDescription`` 1-255 chars ``.+`` (Java's
# ``.`` matches no line terminator: \n, \r, \u0085, \u2028, \u2029).
TASK_KEYWORD_PATTERN = re.compile(r"(?=.{1,30}\Z)[A-Za-z0-9]+( [A-Za-z0-9]+)*", re.DOTALL)
TASK_KEYWORDS_MAX = 5
TASK_TITLE_PATTERN = re.compile(r"[\t\n\r\x20-\ud7ff\ue000-\ufffd]{1,128}")
TASK_DESCRIPTION_PATTERN = re.compile(r"[^\n\r\x85\u2028\u2029]{1,255}")

# Lambda quotas, https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html: a function's
# code and all its layers, extracted, at most 250 MB (262,144,000 bytes); at most 5 layers.
LAMBDA_UNZIPPED_MAX_BYTES = 262_144_000
LAMBDA_MAX_LAYERS = 5

# Rows per human loop. StartHumanLoop's InputContent may hold 3,145,728 characters, far more than
# any page a reviewer can work through; 10 rows is the most one task page stays usable with.
MAX_ROWS_PER_LOOP = 10

# Regions with Amazon A2I (and AWS::SageMaker::HumanTaskUi): https://docs.aws.amazon.com/general/latest/gr/a2i.html
# The same twelve commercial regions carry the resource type in cfn-lint 1.58's provider schemas.
A2I_REGIONS = (
    "us-east-1", "us-east-2", "us-west-2", "ca-central-1", "eu-central-1", "eu-west-1", "eu-west-2",
    "ap-south-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2",
)

# SageMaker's EventBridge events (A2I human loops, processing jobs) all come from this source.
# https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
SAGEMAKER_EVENT_SOURCE = "aws.sagemaker"

# EventBridge's per-rule metrics (namespace AWS/Events, dimension RuleName): "FailedInvocations: the
# number of invocations that failed permanently ... It also doesn't count failed invocations that are
# counted in InvocationsSentToDLQ"; "InvocationsFailedToBeSentToDlq: the number of invocations that
# couldn't be moved to a dead-letter queue". A delivery to an SSE-KMS queue that the key policy does
# not allow fails both ways (the dead-letter queue shares the key), so both are watched.
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html
EVENTS_METRICS_NAMESPACE = "AWS/Events"
EVENTS_DELIVERY_FAILURE_METRICS = ("FailedInvocations", "InvocationsFailedToBeSentToDlq")

# A2I completion events' detail-type:
# https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-cloudwatch-events.html
A2I_STATUS_CHANGE = "SageMaker A2I HumanLoop Status Change"

# Data capture stores a payload as plain text only when its media type is listed in
# ``CaptureContentTypeHeader`` (CsvContentTypes / JsonContentTypes); anything else is base64.
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html
CAPTURE_CSV_CONTENT_TYPES = ("text/csv",)
CAPTURE_JSON_CONTENT_TYPES = ("application/json", "application/jsonlines")

# CreateEndpointConfig ``KmsKeyId``: "You can't request a KmsKeyId when using an instance type
# with local storage" (the call fails); those volumes are encrypted by a hardware module.
# EC2 instance naming puts ``d`` in the attribute suffix for instance-store families (c5d, m5d,
# r5d, g4dn, p3dn, p4d, m6id, ...); these families have NVMe instance storage without that letter
# (SageMaker ResourceConfig docs name ml.g5 and ml.p4d; EC2 instance-store docs the rest).
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html
_LOCAL_STORAGE_FAMILIES = frozenset({"g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "trn1", "trn1n"})
_INSTANCE_STORE_SUFFIX = re.compile(r"[a-z]+\d+[a-z]*d[a-z]*")


def has_local_instance_storage(instance_type: str) -> bool:
    """Whether an ``ml.<family>.<size>`` instance has NVMe instance storage (no KmsKeyId allowed)."""
    family = instance_type.split(".")[1]
    return family in _LOCAL_STORAGE_FAMILIES or bool(_INSTANCE_STORE_SUFFIX.fullmatch(family))


def volume_key(instance_type: str, key_arn: str) -> dict[str, str]:
    """``{"VolumeKmsKeyId": key_arn}`` for a job's storage volume, or nothing on an instance with local
    storage: botocore's ResourceConfig, ProcessingClusterConfig and TransformResources docs say
    "You can't request a VolumeKmsKeyId when using an instance type with local storage" (those
    instances encrypt their NVMe storage with a hardware module)."""
    return {} if has_local_instance_storage(instance_type) else {"VolumeKmsKeyId": key_arn}


@cache
def _sagemaker_model():
    return botocore.session.get_session().get_service_model("sagemaker")


def endpoint_instance_types() -> tuple[str, ...]:
    """Instance types a real-time endpoint accepts: botocore's ``ProductionVariantInstanceType`` enum."""
    return tuple(_sagemaker_model().shape_for("ProductionVariantInstanceType").enum)


def processing_instance_types() -> tuple[str, ...]:
    """Instance types a processing (monitoring, baseline) job accepts: ``ProcessingInstanceType``."""
    return tuple(_sagemaker_model().shape_for("ProcessingInstanceType").enum)


# Model Monitor schedules: hourly, every N hours, or daily, as CreateMonitoringSchedule accepts them,
# with the period each gives; MaxRuntimeInSeconds must not exceed it (hourly: at most 3600).
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-schedule-expression.html
MONITORING_CADENCES: dict[str, int] = {
    "cron(0 * ? * * *)": 3_600,
    **{f"cron(0 0/{n} ? * * *)": n * 3_600 for n in (2, 3, 4, 6, 8, 12)},
    "cron(0 0 ? * * *)": 86_400,
}
MONITORING_MAX_RUNTIME = 86_400

# The open review back end needs Cognito user pools and CloudFront, which CloudFormation does not
# offer in the China (no AWS::Cognito::* types) and GovCloud (no AWS::CloudFront::*) partitions
# (cfn-lint 1.58's provider schemas).
OPEN_REVIEW_UNAVAILABLE_REGION_PREFIXES = ("cn-", "us-gov-")
# A Cognito prefix domain "can't use the text aws, amazon, or cognito" (Amazon Cognito Developer
# Guide, "Using the Amazon Cognito prefix domain"); the reviewers' app names its domain after the prefix.
COGNITO_DOMAIN_RESERVED_WORDS = ("aws", "amazon", "cognito")

# CloudFormation has no Model Monitor resource types (DataQualityJobDefinition, MonitoringSchedule)
# in the China and GovCloud partitions (cfn-lint 1.58's provider schemas).
MODEL_MONITOR_UNAVAILABLE_REGION_PREFIXES = ("cn-", "us-gov-")

# Data-quality metrics (emit_metrics Enabled): feature_baseline_drift_<feature>, Sum per run.
# The docs disagree on the namespace and dimensions (model-monitor-interpreting-cloudwatch says
# "/aws/sagemaker/Endpoints/data-metric" with EndpointName/ScheduleName; model-monitor-byoc-cloudwatch
# says "/aws/sagemaker/Endpoint/data-metrics"); the SageMaker "Monitoring with CloudWatch" page and
# the public alarm code we checked use this one, with Endpoint and MonitoringSchedule. Verify on
# the first deployed run (CloudWatch > All metrics) and change it only here.
DATA_QUALITY_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
DATA_QUALITY_DRIFT_METRIC = "feature_baseline_drift_{feature}"

# Every monitoring run is a processing job, and SageMaker emits "SageMaker Processing Job State
# Change" events whose detail mirrors DescribeProcessingJob. A run with violations ends Completed
# with an ExitMessage that starts "CompletedWithViolations" (the monitoring execution status).
# Events can repeat. https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
# UNVERIFIED (Nov 2026): that the event carries MonitoringScheduleArn. DescribeProcessingJob has the
# field (botocore sagemaker model), but AWS's event page shows no processing-job example (it was
# asked for in awsdocs/amazon-sagemaker-developer-guide#262, closed unanswered) and no public
# code or issue shows the field in a real event. So RunFinished also matches a run by its report
# under our monitors' output prefixes, and monitoring_runs takes the schedule from the report folder
# (<output>/<endpoint>/<schedule>/yyyy/mm/dd/hh) when the ARN is absent. Check both on the first
# deployed run, together with the ExitMessage prefix.
PROCESSING_JOB_STATE_CHANGE = "SageMaker Processing Job State Change"
VIOLATIONS_EXIT_MESSAGE_PREFIX = "CompletedWithViolations"

# Clarify feature-attribution metrics (publish_cloudwatch_metrics Enabled): ``feature_<name>`` is the
# global SHAP value of a feature, ``ExpectedValue`` the base value, with dimensions Endpoint,
# MonitoringSchedule, ExplainabilityMethod (KernelShap), Label (the analysis config's
# ``label_headers`` entry, else label0) and ValueType (GlobalShapValues | ExpectedValue).
# https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-feature-attribute-drift-cw.html
EXPLAINABILITY_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/explainability-metrics"
EXPLAINABILITY_FEATURE_METRIC = "feature_{feature}"
EXPLAINABILITY_METHOD = "KernelShap"
EXPLAINABILITY_VALUE_TYPE = "GlobalShapValues"

# Model Monitor's model-quality metrics (enable_cloudwatch_metrics): "Model quality metrics appear in
# the following namespace: For real-time endpoints: aws/sagemaker/Endpoints/model-metrics"; each metric
# is named after its key in statistics.json's ``binary_classification_metrics`` ("For a list of the
# metrics that are emitted, see the previous sections on this page"), with the dimensions Endpoint and
# MonitoringSchedule (the SageMaker Python SDK's model-quality dashboard searches
# ``{aws/sagemaker/Endpoints/model-metrics,Endpoint,MonitoringSchedule}``, sagemaker/dashboard/
# automatic_model_quality_dashboard.py). The open model-quality monitor uses the same metric names and
# dimensions but, like the other open monitors, publishes them through EMF in the app's own namespace
# (functions.METRICS_NAMESPACE, with Powertools' ``service``): a Lambda writing into a SageMaker
# namespace is unverified and would mix with a Model Monitor job's figures.
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html
MODEL_QUALITY_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
MODEL_QUALITY_BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "auc")

# Clarify runs each baseline and monitoring job against a temporary "shadow" endpoint that it
# creates from the analysis config's model_name and deletes afterwards; its endpoint and endpoint
# config names start with these prefixes (the SageMaker MLOps Workload Orchestrator solution
# scopes its Clarify role the same way). The job role needs Create/Describe/Delete/Invoke on them.
CLARIFY_SHADOW_ENDPOINT_PREFIX = "sm-clarify-"
CLARIFY_SHADOW_ENDPOINT_CONFIG_PREFIX = "sm-clarify-config"

# SageMaker's built-in endpoint metrics: AWS/SageMaker, dimensions EndpointName and VariantName.
# https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html#cloudwatch-metrics-endpoint-invocation
ENDPOINT_METRICS_NAMESPACE = "AWS/SageMaker"
# Endpoint instance metrics (CPUUtilization, MemoryUtilization, DiskUtilization), same dimensions:
# https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html#cloudwatch-metrics-endpoint-instance
ENDPOINT_INSTANCE_METRICS_NAMESPACE = "/aws/sagemaker/Endpoints"



def training_instance_types() -> tuple[str, ...]:
    """Instance types a training job accepts: botocore's ``TrainingInstanceType`` enum."""
    return tuple(_sagemaker_model().shape_for("TrainingInstanceType").enum)


# CreateTrainingJob StoppingCondition.MaxRuntimeInSeconds: the default quota is 5 days
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_StoppingCondition.html).
TRAINING_MAX_RUNTIME = 432_000

# How long CloudFormation waits for a custom resource's answer: ServiceTimeout "from 1 to 3600"
# seconds, default 3600 (AWS::CloudFormation::CustomResource); aws-cdk-lib's Provider totalTimeout
# likewise "The maximum timeout is 1 hour". A longer wait fails the deployment.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudformation-customresource.html
CUSTOM_RESOURCE_MAX_TIMEOUT_SECONDS = 3_600

# EventBridge schedule expressions: rate(value unit) or a six-field cron.
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html
EVENTBRIDGE_SCHEDULE_PATTERN = re.compile(r"rate\([1-9]\d* (minute|minutes|hour|hours|day|days)\)|cron\(\S+ \S+ \S+ \S+ \S+ \S+\)")

# constraint_violations.json ``check_type`` values: Model Monitor's data-quality checks
# (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-interpreting-violations.html)
# and Clarify's feature-attribution drift check (clarify-model-monitor-feature-attribution-drift-violations).
VIOLATION_CHECK_TYPES = (
    "data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
    "extra_column_check", "categorical_values_check", "feature_attribution_drift_check",
)  # fmt: skip

# The AWS events retraining consumes (CloudWatch alarm state changes, Step Functions execution
# status changes, scheduled events) are defined, with their sources, where the trigger Lambda reads
# them: lambdas/retraining/triggers.py.

# The managed rules Step Functions creates to learn that a SageMaker job ended (``.sync``); its role
# needs events:PutTargets/PutRule/DescribeRule on them.
# https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html
SFN_SAGEMAKER_SYNC_RULES = {
    "training": "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "processing": "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
    "transform": "StepFunctionsGetEventsForSageMakerTransformJobsRule",
}


def transform_instance_types() -> tuple[str, ...]:
    """Instance types a batch transform job accepts: botocore's ``TransformInstanceType`` enum."""
    return tuple(_sagemaker_model().shape_for("TransformInstanceType").enum)


# --- Batch transform (the nightly batch path, stacks/batch) ---------------------------------------
# CreateTransformJob ``MaxPayloadInMB``: "The value of MaxPayloadInMB cannot be greater than 100 MB",
# default 6 (botocore sagemaker model: min 0); with BatchStrategy MultiRecord and SplitType Line a
# mini-batch holds as many lines as fit in it.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html
TRANSFORM_MAX_PAYLOAD_MB = 100
# TransformResources.InstanceCount: botocore ``TransformInstanceCount`` min 1; the default quota for
# transform instances of one type per account is far lower than any value above 100.
TRANSFORM_MAX_INSTANCE_COUNT = 100
# TransformInput.DataSource.S3DataSource.S3DataType ``ManifestFile``: "an S3 object that is a
# manifest file containing a list of object keys": [{"prefix": "s3://bucket/"}, "key1", ...].
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_TransformS3DataSource.html
TRANSFORM_MANIFEST_DATA_TYPE = "ManifestFile"
# Content types the nightly batch takes for now: CSV lines, one record per line (SplitType Line).
BATCH_CONTENT_TYPES = ("text/csv",)
# The transform's outcome as DescribeTransformJob reports it (TransformJobStatus) and the times its
# instance-seconds are counted from (TransformStartTime, TransformEndTime).
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTransformJob.html
TRANSFORM_STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
# A CloudWatch alarm's Period x EvaluationPeriods: "can't be more than 604,800 seconds. For alarms
# with a period of less than one hour (3,600 seconds), the total evaluation period can't be longer
# than one day" (PutMetricAlarm, Period). The batch's overdue alarm is one period of overdue_hours.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
ALARM_MAX_EVALUATION_SECONDS = 604_800
# EventBridge Scheduler's ScheduleExpressionTimezone: an IANA time zone name of 1-50 characters
# (botocore scheduler model ``ScheduleExpressionTimezone``).
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
SCHEDULER_TIMEZONE_MAX = 50
# Scheduler's cron(minutes hours day-of-month month day-of-week year): one of day-of-month and
# day-of-week must be "?". https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
SCHEDULER_CRON_PATTERN = re.compile(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)")

# --- EventBridge Scheduler (the open monitoring back end's evaluation schedules) -----------------
# A schedule's target input may hold context keywords that Scheduler replaces at each invocation;
# "<aws.scheduler.scheduled-time>" is "the time you specified for the schedule to invoke its
# target", e.g. 2022-03-22T18:59:43Z (so a retry or a late delivery still names its own period).
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html
SCHEDULER_SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# "When you set up EventBridge Scheduler with Lambda, EventBridge Scheduler invokes your Lambda
# function asynchronously": a failed run is retried by Lambda (twice by default) and then goes to the
# function's on-failure destination; Scheduler's own dead-letter queue receives what it could not
# deliver (after its RetryPolicy). https://docs.aws.amazon.com/lambda/latest/dg/with-eventbridge-scheduler.html
# The execution role needs sqs:SendMessage on that queue (configuring-schedule-dlq), and on an
# SSE-KMS queue the sender needs the key's GenerateDataKey and Decrypt (Amazon SQS key management).
# https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
# RetryPolicy: MaximumEventAgeInSeconds 60-86,400, MaximumRetryAttempts 0-185
# (AWS::Scheduler::Schedule RetryPolicy; botocore scheduler model).
SCHEDULER_MAX_EVENT_AGE_SECONDS = 86_400
# GetSchedule's State is ENABLED or DISABLED (botocore scheduler model, ``ScheduleState``); its
# CreationDate is when the schedule was created.
# https://docs.aws.amazon.com/scheduler/latest/APIReference/API_GetSchedule.html
SCHEDULER_ENABLED = "ENABLED"
