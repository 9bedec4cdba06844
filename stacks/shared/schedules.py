"""An EventBridge Scheduler schedule of the app: its target's delivery retried for up to a day, then
parked in a dead-letter queue, and created after its role's policy.

Used by the open monitors' evaluation schedules and the nightly batch.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.shared import aws_facts

# Scheduler's delivery to the target (Lambda's asynchronous invoke, Step Functions' StartExecution):
# retried for up to a day (SCHEDULER_MAX_EVENT_AGE_SECONDS), as the app's EventBridge rule targets
# are, then the dead-letter queue; a late run still knows its scheduled time from its input.
DELIVERY_RETRIES = 185


def app_schedule(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    description: str,
    expression: str,
    timezone: str,
    target_arn: str,
    role: iam.Role,
    target_input: str,
    failures: sqs.IQueue,
) -> scheduler.CfnSchedule:
    created = scheduler.CfnSchedule(
        scope,
        construct_id,
        name=name,
        description=description,
        schedule_expression=expression,
        schedule_expression_timezone=timezone,
        flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
        state=aws_facts.SCHEDULER_ENABLED,
        target=scheduler.CfnSchedule.TargetProperty(
            arn=target_arn,
            role_arn=role.role_arn,
            input=target_input,
            dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=failures.queue_arn),
            retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                maximum_event_age_in_seconds=aws_facts.SCHEDULER_MAX_EVENT_AGE_SECONDS, maximum_retry_attempts=DELIVERY_RETRIES
            ),
        ),
    )
    # Scheduler checks the role's permissions when it delivers, not when the schedule is created;
    # created after the policy all the same, so the first run never meets a half-made role.
    created.node.add_dependency(role.node.find_child("DefaultPolicy"))
    return created
