"""One rule for every log group the app creates: the app's key, and a retention that follows
whether the environment keeps its data."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct


def encrypted_log_group(
    scope: Construct, construct_id: str, *, key: kms.IKey, retain: bool, name: str | None = None
) -> logs.LogGroup:
    """KMS-encrypted; one year and kept with the stack's data when ``retain``, else one month."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=logs.RetentionDays.ONE_YEAR if retain else logs.RetentionDays.ONE_MONTH,
        encryption_key=key,
        removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
    )
