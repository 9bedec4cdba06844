"""From capture to labels: queues, the three review Lambdas, their EventBridge rules and alarms.

    capture bucket --(EventBridge "Object Created")--> capture queue --> capture_filter
        --> review queue --> human_loop_starter --> A2I human loop | reviewers' app task
    A2I "HumanLoop Status Change" | app "Review Task Completed" --(EventBridge)--> results queue
        --> review_results --> labels bucket (ground truth + training rows) and a "Labels Available" event

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
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from constructs import Construct

from lambdas.review.results.results import GROUND_TRUTH_PREFIX, LABELS_AVAILABLE, REPORT_PREFIX, TRAINING_PREFIX
from stacks.shared import aws_facts
from stacks.shared.compliance import acknowledge
from stacks.shared.config import AppConfig
from lambdas.retraining.steps import RETRAINING_PREFIX
from stacks.shared.functions import AppFunction, Invocation, explain_layer
from lambdas.review.app.completion import ANNOUNCED_STATUSES, COMPLETED_DETAIL_TYPE
from stacks.review.a2i import A2I_OUTPUT_PREFIX, HumanTask, flow_definition_arn_prefix
from stacks.review.app import ReviewersApp
from stacks.review.capture import CapturePipeline, ReviewSelection, profiling_target
from stacks.serving.inference import ModelEndpoint
from stacks.storage.stack import StorageStack
from stacks.shared.work_queue import MIN_MAX_CONCURRENCY, WorkQueue, alarm_at_one_message, encrypted_queue

# SQS deletes a message this long after it was sent, whether or not anyone received it.
DEFERRED_RETENTION = Duration.days(14)
# Alarm while four days are left to raise the budget or review the backlog by hand.
DEFERRED_AGE_ALARM = Duration.days(10)


def review_event_source(config: AppConfig) -> str:
    """The EventBridge source of the review stage's own events ("Labels Available", "Review Task Completed")."""
    return f"{config.app_name}.review"


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
        back_end: HumanTask | ReviewersApp,
        layer: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        lower: str,
        upper: str,
        max_loops_per_day: str,
    ) -> None:
        super().__init__(scope, construct_id)
        review, key = config.review, storage.key
        prefix = config.prefix
        review_bucket, labels_bucket = storage.buckets["review"], storage.buckets["labels"]
        common = {"key": key, "layer": layer, "retain_logs": config.retain_data}
        timeout = Duration.minutes(5)

        def queue(name: str, purpose: str) -> WorkQueue:
            return WorkQueue(self, name, key=key, consumer_timeout=timeout, alarm_topic=alarm_topic, purpose=purpose)

        self.review_queue = queue("ReviewGroups", "Review groups waiting for a human loop")
        self.results_queue = queue("LoopResults", "Finished human loops waiting for review_results")
        self.deferred = encrypted_queue(self, "DeferredGroups", key=key, retention=DEFERRED_RETENTION)
        acknowledge(
            self.deferred,
            "Holds review groups over the day's loop budget until the nightly redrive moves them back; it is not a "
            "consumer's source queue, so nothing is ever redriven from it to a dead-letter queue.",
            "AwsSolutions-SQS3",
        )

        # --- capture_filter (also profiles for the open monitors: stacks/review/capture.py) ----
        self.capture = CapturePipeline(
            self,
            "Capture",
            config=config,
            storage=storage,
            capture_prefix=capture_prefix,
            layer=layer,
            alarm_topic=alarm_topic,
            report_bucket=review_bucket,
            # Batch only (no endpoint): no real-time capture arrives, and no capture sampling to ask for.
            review=ReviewSelection(
                self.review_queue, lower, upper, endpoint.endpoint_name if endpoint.deployed else None, endpoint.endpoint_arn if endpoint.deployed else None
            ),
            profiling=profiling_target(config, storage),
        )
        # The band's thresholds as this stack's parameters give them: the nightly batch selects with them too.
        self.band = (lower, upper)
        self.capture_events, self.capture_filter = self.capture.events, self.capture.filter

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
            **back_end.starter_environment(),
            "LOOP_PREFIX": prefix,
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
                # Batch only: the served-model parameter names the model the nightly run made.
                **(
                    {"ENDPOINT_NAME": endpoint.endpoint_name, "VARIANT_NAME": endpoint.variant_name}
                    if endpoint.deployed
                    else {"SERVED_MODEL_PARAMETER": config.served_model_parameter}
                ),
            }
            # XGBoost, numpy and scipy load in about a second on a full vCPU (1,769 MB; make bench).
            explaining = {"extra_layers": (explain_layer(self),), "memory_size": 1769}
        self.starter = AppFunction(
            self,
            "HumanLoopStarter",
            handler="lambdas.review.starter.handler.handler",
            description=(
                "Starts one A2I human loop per review group, within the daily loop budget"
                if isinstance(back_end, HumanTask)
                else "Opens one reviewers' app task per review group, within the daily loop budget"
            ),
            service=f"{prefix}-human-loop-starter",
            invocation=Invocation.queue(max_concurrency=MIN_MAX_CONCURRENCY),
            timeout=timeout,
            environment={**starter_environment, **explain_environment},
            **explaining,
            **common,
        )
        if attributions.enabled:
            self._allow_reading_deployed_models(endpoint, storage, retraining=config.retraining.enabled, served_model_parameter=config.served_model_parameter)
        back_end.allow_starting(self.starter)
        # The budget's TransactWriteItems is authorised as the Put/Update/Delete items it holds:
        # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
        self.budget_table.grant(self.starter.role, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem")
        self.deferred.grant_send_messages(self.starter.role)
        self.review_queue.dead_letter_queue.grant_send_messages(self.starter.role)
        # StartHumanLoop is rate-limited per account: two concurrent batches keep well below it.
        self.review_queue.consume(self.starter, max_concurrency=MIN_MAX_CONCURRENCY)

        self.redrive = AppFunction(
            self,
            "DeferredRedrive",
            handler="lambdas.review.starter.handler.redrive_handler",
            description="After midnight UTC, moves deferred review groups back to the review queue within the new budget",
            service=f"{prefix}-human-loop-starter",
            invocation=Invocation.schedule(
                rate="daily at 00:05 UTC",
                failures="an invocation that still fails after Lambda's two retries, and an event EventBridge cannot deliver, "
                "goes to the RedriveFailures queue, which is alarmed; the deferred groups stay on their queue.",
            ),
            timeout=timeout,
            environment=starter_environment,
            **common,
        )
        self.budget_table.grant(self.redrive.role, "dynamodb:GetItem")
        self.deferred.grant_consume_messages(self.redrive.role)
        self.review_queue.queue.grant_send_messages(self.redrive.role)
        # A failed redrive loses no group (they stay on the deferred queue), but a night without one
        # lets the backlog age: failed invocations are kept and alarmed, and so is the backlog's age.
        self.redrive_failures = encrypted_queue(self, "RedriveFailures", key=key, retention=Duration.days(14))
        acknowledge(
            self.redrive_failures,
            "This is a dead-letter queue: the nightly redrive's, for schedule events EventBridge could not deliver "
            "and invocations that failed after Lambda's retries.",
            "AwsSolutions-SQS3",
        )
        self.redrive.function.configure_async_invoke(on_failure=destinations.SqsDestination(self.redrive_failures), retry_attempts=2)
        events.Rule(
            self,
            "NightlyRedrive",
            description="Moves review groups deferred by yesterday's loop budget back to the review queue",
            schedule=events.Schedule.cron(minute="5", hour="0"),
            targets=[targets.LambdaFunction(self.redrive.function, retry_attempts=2, dead_letter_queue=self.redrive_failures)],
        )
        alarm_at_one_message(
            self,
            "RedriveFailuresAlarm",
            self.redrive_failures,
            "The nightly redrive of deferred review groups failed (the message says why); the groups are still on the "
            "deferred queue: fix the cause, then invoke the DeferredRedrive function by hand.",
            alarm_topic,
        )
        redrive_errors = cloudwatch.Alarm(
            self,
            "RedriveErrors",
            alarm_description="The nightly redrive of deferred review groups raised an error; see its logs. Lambda retries twice.",
            metric=self.redrive.function.metric_errors(period=Duration.hours(1), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        redrive_errors.add_alarm_action(cw_actions.SnsAction(alarm_topic))
        deferred_age = cloudwatch.Alarm(
            self,
            "DeferredGroupsAgeing",
            alarm_description=(
                f"A review group has waited on the deferred queue for {DEFERRED_AGE_ALARM.to_days():.0f} days; SQS deletes it after "
                f"{DEFERRED_RETENTION.to_days():.0f}. More groups arrive than MaxHumanLoopsPerDay starts: raise the budget, or "
                "move the oldest groups to review by hand."
            ),
            metric=self.deferred.metric_approximate_age_of_oldest_message(period=Duration.hours(1), statistic="Maximum"),
            threshold=DEFERRED_AGE_ALARM.to_seconds(),
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        deferred_age.add_alarm_action(cw_actions.SnsAction(alarm_topic))

        # --- review_results -------------------------------------------------------------------
        self.event_source = review_event_source(config)
        self.results = AppFunction(
            self,
            "ReviewResults",
            handler="lambdas.review.results.handler.handler",
            description="Turns finished A2I human loops into ground truth and training rows",
            service=f"{prefix}-review-results",
            invocation=Invocation.queue(),
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
        self.results_queue.add_rule(
            self,
            "HumanLoopFinished",
            description="A2I human loops of this app's flow definitions (current and replaced) that completed, failed or stopped",
            event_pattern=events.EventPattern(
                source=[aws_facts.SAGEMAKER_EVENT_SOURCE],
                detail_type=[aws_facts.A2I_STATUS_CHANGE],
                # Every flow definition this app ever made: a loop opened under a replaced one still
                # finishes, and its answers still become labels.
                detail={"flowDefinitionArn": [{"prefix": flow_definition_arn_prefix(self, prefix)}], "humanLoopStatus": ["Completed", "Failed", "Stopped"]},
            ),
        )
        if isinstance(back_end, ReviewersApp):
            # The reviewers' app announces a finished task like A2I a finished loop (lambdas/review/app/completion.py);
            # the rule above stays, so loops opened under A2I before a switch of back end still become labels.
            self.results_queue.add_rule(
                self,
                "ReviewTaskCompleted",
                description="Review tasks of this app's reviewers' app that completed (output.json written) or expired unfinished",
                event_pattern=events.EventPattern(
                    # Both statuses the app announces: an expired task's "Failed" event must reach
                    # review_results too, which records it in the loop's report.
                    source=[self.event_source], detail_type=[COMPLETED_DETAIL_TYPE], detail={"humanLoopStatus": list(ANNOUNCED_STATUSES)}
                ),
            )
        self.labels_available_pattern = {"source": [self.event_source], "detail-type": [LABELS_AVAILABLE]}

        scoped = (
            "Object-level S3 access is limited to this function's own key prefix; KMS data-key actions "
            "(GenerateDataKey*, ReEncrypt*) are on the app's key only."
        )
        for function in (self.starter, self.redrive, self.results):
            reason = scoped
            if function is self.starter and review.attributions.enabled and endpoint.deployed:
                reason += (
                    " DescribeEndpointConfig and DescribeModel (read-only metadata) are on endpoint-config/* and model/*: "
                    "the endpoint's config and model have CloudFormation-generated or retraining-run names, which "
                    "SageMaker's ARNs spell in lower case, so no exact ARN can be written at synth time."
                )
            function.acknowledge_wildcards(reason)

    def _allow_reading_deployed_models(self, endpoint: ModelEndpoint, storage: StorageStack, *, retraining: bool, served_model_parameter: str) -> None:
        """Which model the endpoint serves (DescribeEndpoint -> config -> model), or batch only the
        served-model parameter, and its artefact."""
        stack = Stack.of(self)
        if endpoint.deployed:
            self.starter.allow(["sagemaker:DescribeEndpoint"], [endpoint.endpoint_arn])
            self.starter.allow(
                ["sagemaker:DescribeEndpointConfig"], [stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name="*")]
            )
            self.starter.allow(["sagemaker:DescribeModel"], [stack.format_arn(service="sagemaker", resource="model", resource_name="*")])
        else:
            # By name, as the batch stack's GetServedModel reads it: no reference to the storage stack's parameter.
            self.starter.allow(["ssm:GetParameter"], [stack.format_arn(service="ssm", resource="parameter", resource_name=served_model_parameter.lstrip("/"))])
        artefacts = [endpoint.model_data_arn]
        if retraining:
            artefacts.append(storage.models.arn_for_objects(f"{RETRAINING_PREFIX}/*"))
        self.starter.allow(["s3:GetObject"], artefacts)
        self.starter.allow(["kms:Decrypt"], [storage.key.key_arn])
