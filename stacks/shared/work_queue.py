"""Queues in front of Lambda consumers: nothing that must not be lost goes through async invokes."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.shared import aws_facts
from stacks.shared.compliance import acknowledge
from stacks.shared.functions import AppFunction

# SQS: set the source queue's visibility timeout to at least six times the function's timeout.
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
VISIBILITY_PER_TIMEOUT = 6
MAX_RECEIVES = 5
# ScalingConfig.MaximumConcurrency of an SQS event source mapping: 2 to 1,000 (botocore lambda model).
MIN_MAX_CONCURRENCY = 2
FIFO_GROUP = "all"  # one group: a FIFO queue's messages are consumed strictly one batch at a time


def encrypted_queue(scope: Construct, construct_id: str, *, key: kms.IKey, retention: Duration, **props) -> sqs.Queue:
    """KMS-encrypted with the app's key, SSL-only."""
    return sqs.Queue(
        scope, construct_id, encryption=sqs.QueueEncryption.KMS, encryption_master_key=key, enforce_ssl=True, retention_period=retention, **props
    )


def alarm_at_one_message(scope: Construct, construct_id: str, queue: sqs.IQueue, description: str, topic: sns.ITopic) -> cloudwatch.Alarm:
    alarm = cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarm.add_alarm_action(cw_actions.SnsAction(topic))
    return alarm


class WorkQueue(Construct):
    """A KMS-encrypted, SSL-only queue with its dead-letter queue and an alarm at one message."""

    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, consumer_timeout: Duration, alarm_topic: sns.ITopic, purpose: str, fifo: bool = False
    ) -> None:
        super().__init__(scope, construct_id)
        self._alarm_topic = alarm_topic
        self._purpose = purpose
        # FIFO (one message group): messages are handled one after another, in order; redelivered
        # copies within five minutes are dropped (content-based deduplication).
        ordering = {"fifo": True, "content_based_deduplication": True} if fifo else {}
        self.fifo = fifo
        self.dead_letter_queue = encrypted_queue(self, "DeadLetterQueue", key=key, retention=Duration.days(14), **ordering)
        self.queue = encrypted_queue(
            self,
            "Queue",
            key=key,
            retention=Duration.days(4),
            **ordering,
            visibility_timeout=Duration.seconds(consumer_timeout.to_seconds() * VISIBILITY_PER_TIMEOUT),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVES),
        )
        self.alarm = alarm_at_one_message(
            self,
            "DeadLetterAlarm",
            self.dead_letter_queue,
            f"{purpose}: messages parked on the dead-letter queue. Each carries a 'reason' attribute; fix the cause, then redrive.",
            alarm_topic,
        )
        self.undelivered: sqs.Queue | None = None
        if fifo:
            # EventBridge's dead-letter queue for a target must be a standard queue.
            self.undelivered = encrypted_queue(self, "UndeliveredEvents", key=key, retention=Duration.days(14))
            acknowledge(self.undelivered, "This is a dead-letter queue: EventBridge's, for events it could not deliver to the FIFO queue.", "AwsSolutions-SQS3")
            alarm_at_one_message(
                self,
                "UndeliveredAlarm",
                self.undelivered,
                f"{purpose}: events EventBridge could not deliver to the queue (see the ERROR_CODE attribute); redrive them by hand.",
                alarm_topic,
            )

    def _rule_target(self) -> targets.SqsQueue:
        """An EventBridge target for this queue; undeliverable events are kept, retried for 24 hours first."""
        if self.fifo:
            return targets.SqsQueue(self.queue, message_group_id=FIFO_GROUP, dead_letter_queue=self.undelivered, retry_attempts=185)
        return targets.SqsQueue(self.queue, dead_letter_queue=self.dead_letter_queue, retry_attempts=185)

    def add_rule(self, scope: Construct, construct_id: str, **rule_props) -> events.Rule:
        """An EventBridge rule (``events.Rule`` props but targets) delivering to this queue, with an alarm
        on deliveries that failed for good: an event EventBridge could neither put on the queue nor on
        its dead-letter queue (a key policy that refuses EventBridge, say) is otherwise lost silently."""
        rule = events.Rule(scope, construct_id, targets=[self._rule_target()], **rule_props)
        failed = {
            name: cloudwatch.Metric(
                namespace=aws_facts.EVENTS_METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"RuleName": rule.rule_name},
                statistic="Sum",
                period=Duration.minutes(5),
            )
            for name in aws_facts.EVENTS_DELIVERY_FAILURE_METRICS
        }
        alarm = cloudwatch.Alarm(
            scope,
            f"{construct_id}DeliveryFailures",
            alarm_description=(
                f"{self._purpose}: EventBridge failed to deliver events of rule {construct_id} to the queue and its dead-letter queue "
                "(lost). Check the queue's key policy and the rule's target (FailedInvocations, InvocationsFailedToBeSentToDlq)."
            ),
            metric=cloudwatch.MathExpression(
                expression="FILL(failed, 0) + FILL(undlq, 0)",
                using_metrics={"failed": failed["FailedInvocations"], "undlq": failed["InvocationsFailedToBeSentToDlq"]},
                label="events lost",
                period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self._alarm_topic))
        return rule

    def consume(self, function: AppFunction, batch_size: int = 10, max_concurrency: int | None = None) -> None:
        """``function`` reads this queue in batches and reports partial failures.

        ``max_concurrency`` caps the batches the event source runs at once. Reserved concurrency
        would not: the poller ignores it, and each batch Lambda throttles returns to the queue after
        its visibility timeout counting as a receive, so throttling alone could park healthy
        messages on the dead-letter queue. https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html
        """
        if max_concurrency is not None and max_concurrency < MIN_MAX_CONCURRENCY:
            raise ValueError(f"an SQS event source's maximum concurrency is at least {MIN_MAX_CONCURRENCY}, got {max_concurrency}")
        window = None if self.fifo else Duration.seconds(5)  # FIFO event sources take no batching window
        function.function.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=batch_size, max_batching_window=window, report_batch_item_failures=True, max_concurrency=max_concurrency
            )
        )
