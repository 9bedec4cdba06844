"""Queues in front of Lambda consumers: nothing that must not be lost goes through async invokes."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.functions import AppFunction

# SQS: set the source queue's visibility timeout to at least six times the function's timeout.
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
VISIBILITY_PER_TIMEOUT = 6
MAX_RECEIVES = 5


def encrypted_queue(scope: Construct, construct_id: str, *, key: kms.IKey, retention: Duration, **props) -> sqs.Queue:
    """KMS-encrypted with the app's key, SSL-only."""
    return sqs.Queue(
        scope, construct_id, encryption=sqs.QueueEncryption.KMS, encryption_master_key=key, enforce_ssl=True, retention_period=retention, **props
    )


class WorkQueue(Construct):
    """A KMS-encrypted, SSL-only queue with its dead-letter queue and an alarm at one message."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, consumer_timeout: Duration, alarm_topic: sns.ITopic, purpose: str) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = encrypted_queue(self, "DeadLetterQueue", key=key, retention=Duration.days(14))
        self.queue = encrypted_queue(
            self,
            "Queue",
            key=key,
            retention=Duration.days(4),
            visibility_timeout=Duration.seconds(consumer_timeout.to_seconds() * VISIBILITY_PER_TIMEOUT),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVES),
        )
        self.alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description=f"{purpose}: messages parked on the dead-letter queue. Each carries a 'reason' attribute; fix the cause, then redrive.",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))

    def consume(self, function: AppFunction, batch_size: int = 10) -> None:
        """``function`` reads this queue in batches and reports partial failures."""
        function.function.add_event_source(
            sources.SqsEventSource(self.queue, batch_size=batch_size, max_batching_window=Duration.seconds(5), report_batch_item_failures=True)
        )
