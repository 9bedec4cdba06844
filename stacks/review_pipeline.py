"""From capture to labels: queues, the three review Lambdas, their EventBridge rules and alarms.

    capture bucket --(EventBridge "Object Created")--> capture queue --> capture_filter
        --> review queue --> human_loop_starter --> A2I human loop
    A2I "HumanLoop Status Change" --(EventBridge)--> results queue --> review_results
        --> labels bucket (ground truth + training rows) and a "Labels Available" event

Every queue has a dead-letter queue alarmed at one message; consumers report partial batch
failures, and records that can never succeed are parked on the DLQ with their reason.
"""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from lambdas.capture_filter.filtering import REJECTED_PREFIX
from lambdas.review_results.results import GROUND_TRUTH_PREFIX, LABELS_AVAILABLE, REPORT_PREFIX, TRAINING_PREFIX
from stacks import aws_facts
from stacks.compliance import acknowledge
from stacks.config import AppConfig
from lambdas.retraining.steps import RETRAINING_PREFIX
from stacks.functions import AppFunction, explain_layer
from stacks.human_task import A2I_OUTPUT_PREFIX, HumanTask
from stacks.inference import ModelEndpoint
from stacks.storage_stack import StorageStack
from stacks.work_queue import WorkQueue, encrypted_queue

class ReviewPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        storage: StorageStack,
        endpoint: ModelEndpoint,
        capture_prefix: str,
        human_task: HumanTask,
        layer: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        lower: str,
        upper: str,
        max_loops_per_day: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        review, key = config.review, storage.key
        prefix = config.prefix
        review_bucket, labels_bucket = storage.buckets["review"], storage.buckets["labels"]
        common = {"key": key, "layer": layer, "retain_logs": config.retain_data}
        timeout = Duration.minutes(5)

        def queue(name: str, purpose: str) -> WorkQueue:
            return WorkQueue(self, name, key=key, consumer_timeout=timeout, alarm_topic=alarm_topic, purpose=purpose)

        self.capture_events = queue("CaptureEvents", "New capture objects waiting for capture_filter")
        self.review_queue = queue("ReviewGroups", "Review groups waiting for a human loop")
        self.results_queue = queue("LoopResults", "Finished human loops waiting for review_results")
        self.deferred = encrypted_queue(self, "DeferredGroups", key=key, retention=Duration.days(14))
        acknowledge(
            self.deferred,
            "Holds review groups over the day's loop budget until the nightly redrive moves them back; it is not a "
            "consumer's source queue, so nothing is ever redriven from it to a dead-letter queue.",
            "AwsSolutions-SQS3",
        )

        # --- capture_filter -------------------------------------------------------------------
        self.capture_filter = AppFunction(
            self,
            "CaptureFilter",
            handler="lambdas.capture_filter.handler.handler",
            description="Reads new capture objects and queues low-confidence predictions for human review",
            service=f"{prefix}-capture-filter",
            timeout=timeout,
            memory_size=512,
            environment={
                "SELECTION_RULE": review.rule,
                "LOWER_THRESHOLD": lower,
                "UPPER_THRESHOLD": upper,
                "SELECTED_OUTCOME": str(review.outcome),
                "SCORE_PATH": config.model.score_path or "",
                "FEATURES_PATH": config.model.features_path,
                "ROWS_PER_LOOP": str(review.rows_per_loop),
                "REVIEW_QUEUE_URL": self.review_queue.queue.queue_url,
                "DEAD_LETTER_QUEUE_URL": self.capture_events.dead_letter_queue.queue_url,
                "REPORT_BUCKET": review_bucket.bucket_name,
            },
            **common,
        )
        self.capture_filter.allow(["s3:GetObject"], [storage.capture.arn_for_objects(f"{capture_prefix}/*")])
        self.capture_filter.allow(["s3:PutObject"], [review_bucket.arn_for_objects(f"{REJECTED_PREFIX}/*")])
        self.capture_filter.allow(["kms:Decrypt", "kms:GenerateDataKey"], [key.key_arn])
        self.review_queue.queue.grant_send_messages(self.capture_filter.role)
        self.capture_events.dead_letter_queue.grant_send_messages(self.capture_filter.role)
        self.capture_events.consume(self.capture_filter)
        events.Rule(
            self,
            "CaptureObjectCreated",
            description="New data-capture objects of this endpoint",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [storage.capture.bucket_name]}, "object": {"key": [{"prefix": f"{capture_prefix}/"}]}},
            ),
            targets=[targets.SqsQueue(self.capture_events.queue, dead_letter_queue=self.capture_events.dead_letter_queue, retry_attempts=185)],
        )

        # --- human_loop_starter ---------------------------------------------------------------
        self.budget_table = dynamodb.Table(
            self,
            "LoopBudget",
            partition_key=dynamodb.Attribute(name="day", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.budget_table,
            "Holds only today's count of started human loops (items expire after 7 days); point-in-time recovery "
            "is on, and a backup plan would protect nothing worth restoring.",
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "HIPAA.Security-DynamoDBInBackupPlan",
        )
        starter_environment = {
            "FLOW_DEFINITION_ARN": human_task.flow_definition_arn,
            "LOOP_PREFIX": human_task.loop_prefix,
            "LABEL_NAMES": json.dumps(list(config.model.label_names)),
            "FEATURE_NAMES": json.dumps(list(config.model.feature_names)),
            "DEAD_LETTER_QUEUE_URL": self.review_queue.dead_letter_queue.queue_url,
            "DEFERRED_QUEUE_URL": self.deferred.queue_url,
            "REVIEW_QUEUE_URL": self.review_queue.queue.queue_url,
            "BUDGET_TABLE": self.budget_table.table_name,
            "MAX_LOOPS_PER_DAY": max_loops_per_day,
        }
        attributions = review.attributions
        explaining, explain_environment = {}, {}
        if attributions.enabled:
            explain_environment = {
                "ATTRIBUTIONS": "on",
                "TOP_K": str(attributions.top_k),
                "MODEL_REFRESH_SECONDS": str(attributions.refresh_seconds),
                "ENDPOINT_NAME": endpoint.endpoint_name,
                "VARIANT_NAME": endpoint.variant_name,
            }
            # XGBoost, numpy and scipy load in about a second on a full vCPU (1,769 MB; make bench).
            explaining = {"extra_layers": (explain_layer(self, "ExplainDependencies"),), "memory_size": 1769}
        self.starter = AppFunction(
            self,
            "HumanLoopStarter",
            handler="lambdas.human_loop_starter.handler.handler",
            description="Starts one A2I human loop per review group, within the daily loop budget",
            service=f"{prefix}-human-loop-starter",
            timeout=timeout,
            environment={**starter_environment, **explain_environment},
            # StartHumanLoop is rate-limited per account: two concurrent starters keep well below it.
            reserved_concurrency=2,
            **explaining,
            **common,
        )
        if attributions.enabled:
            self._allow_reading_deployed_models(endpoint, storage, retraining=config.retraining.enabled)
        loop_arns = [
            human_task.flow_definition_arn,
            stack.format_arn(service="sagemaker", resource="human-loop", resource_name=f"{human_task.loop_prefix}-*"),
        ]
        self.starter.role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:StartHumanLoop"], resources=loop_arns))
        self.budget_table.grant(self.starter.role, "dynamodb:UpdateItem", "dynamodb:GetItem")
        self.deferred.grant_send_messages(self.starter.role)
        self.review_queue.dead_letter_queue.grant_send_messages(self.starter.role)
        self.review_queue.consume(self.starter)

        self.redrive = AppFunction(
            self,
            "DeferredRedrive",
            handler="lambdas.human_loop_starter.handler.redrive_handler",
            description="After midnight UTC, moves deferred review groups back to the review queue within the new budget",
            service=f"{prefix}-human-loop-starter",
            timeout=timeout,
            environment=starter_environment,
            **common,
        )
        self.budget_table.grant(self.redrive.role, "dynamodb:GetItem")
        self.deferred.grant_consume_messages(self.redrive.role)
        self.review_queue.queue.grant_send_messages(self.redrive.role)
        events.Rule(
            self,
            "NightlyRedrive",
            description="Moves review groups deferred by yesterday's loop budget back to the review queue",
            schedule=events.Schedule.cron(minute="5", hour="0"),
            targets=[targets.LambdaFunction(self.redrive.function, retry_attempts=2)],
        )

        # --- review_results -------------------------------------------------------------------
        self.event_source = f"{config.app_name}.review"
        self.results = AppFunction(
            self,
            "ReviewResults",
            handler="lambdas.review_results.handler.handler",
            description="Turns finished A2I human loops into ground truth and training rows",
            service=f"{prefix}-review-results",
            timeout=timeout,
            environment={
                "LABELS_BUCKET": labels_bucket.bucket_name,
                "REPORT_BUCKET": review_bucket.bucket_name,
                "LABEL_NAMES": json.dumps(list(config.model.label_names)),
                "EVENT_SOURCE": self.event_source,
                "EVENT_BUS_NAME": "default",
                "DEAD_LETTER_QUEUE_URL": self.results_queue.dead_letter_queue.queue_url,
            },
            **common,
        )
        self.results.allow(["s3:GetObject"], [review_bucket.arn_for_objects(f"{A2I_OUTPUT_PREFIX}/*")])
        self.results.allow(
            ["s3:PutObject"],
            [
                review_bucket.arn_for_objects(f"{REPORT_PREFIX}/*"),
                labels_bucket.arn_for_objects(f"{GROUND_TRUTH_PREFIX}/*"),
                labels_bucket.arn_for_objects(f"{TRAINING_PREFIX}/*"),
            ],
        )
        self.results.allow(["kms:Decrypt", "kms:GenerateDataKey"], [key.key_arn])
        self.results_queue.dead_letter_queue.grant_send_messages(self.results.role)
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        default_bus.grant_put_events_to(self.results.role)
        self.results_queue.consume(self.results)
        events.Rule(
            self,
            "HumanLoopFinished",
            description="A2I human loops of this app's flow definition that completed, failed or stopped",
            event_pattern=events.EventPattern(
                source=[aws_facts.SAGEMAKER_EVENT_SOURCE],
                detail_type=[aws_facts.A2I_STATUS_CHANGE],
                detail={"flowDefinitionArn": [human_task.flow_definition_arn], "humanLoopStatus": ["Completed", "Failed", "Stopped"]},
            ),
            targets=[targets.SqsQueue(self.results_queue.queue, dead_letter_queue=self.results_queue.dead_letter_queue, retry_attempts=185)],
        )
        self.labels_available_pattern = {"source": [self.event_source], "detail-type": [LABELS_AVAILABLE]}

        scoped = (
            "Object-level S3 access is limited to this function's own key prefix; KMS data-key actions "
            "(GenerateDataKey*, ReEncrypt*) are on the app's key only; log streams are named by Lambda."
        )
        for function in (self.capture_filter, self.starter, self.redrive, self.results):
            reason = scoped
            if function is self.starter and review.attributions.enabled:
                reason += (
                    " DescribeEndpointConfig and DescribeModel (read-only metadata) are on endpoint-config/* and model/*: "
                    "the endpoint's config and model have CloudFormation-generated or retraining-run names, which "
                    "SageMaker's ARNs spell in lower case, so no exact ARN can be written at synth time."
                )
            function.acknowledge_wildcards(reason)

    def _allow_reading_deployed_models(self, endpoint: ModelEndpoint, storage: StorageStack, *, retraining: bool) -> None:
        """Which model the endpoint serves (DescribeEndpoint -> config -> model) and its artefact."""
        stack = Stack.of(self)
        self.starter.allow(["sagemaker:DescribeEndpoint"], [endpoint.endpoint_arn])
        self.starter.allow(
            ["sagemaker:DescribeEndpointConfig"], [stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name="*")]
        )
        self.starter.allow(["sagemaker:DescribeModel"], [stack.format_arn(service="sagemaker", resource="model", resource_name="*")])
        artefacts = [endpoint.model_data_arn]
        if retraining:
            artefacts.append(storage.models.arn_for_objects(f"{RETRAINING_PREFIX}/*"))
        self.starter.allow(["s3:GetObject"], artefacts)
        self.starter.allow(["kms:Decrypt"], [storage.key.key_arn])
