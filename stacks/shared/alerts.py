"""The app's one alert topic: every alarm (dead-letter queues, drift, failed monitoring runs) goes here."""

from __future__ import annotations

from aws_cdk import CfnCondition, Fn
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.shared.ops_parameters import OpsParameters


class AlertTopic(Construct):
    """KMS-encrypted, SSL-only SNS topic with an optional e-mail subscription (``AlertEmail``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        parameters: OpsParameters,
        key: kms.IKey,
        display_name: str,
        parameter: str = "AlertEmail",
        group: str = "Alerts",
        label: str = "Alert e-mail (optional)",
        what: str = "the alert topic (dead-letter queues, drift, failed runs)",
    ) -> None:
        super().__init__(scope, construct_id)
        email = parameters.add(
            parameter,
            group=group,
            label=label,
            description=f"E-mail address subscribed to {what}. Leave empty for none.",
            type="String",
            default="",
            allowed_pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$",
        )
        self.topic = sns.Topic(self, "Topic", display_name=display_name, master_key=key, enforce_ssl=True)
        subscription = sns.CfnSubscription(self, "EmailSubscription", topic_arn=self.topic.topic_arn, protocol="email", endpoint=email.value_as_string)
        subscription.cfn_options.condition = CfnCondition(self, "HasEmail", expression=Fn.condition_not(Fn.condition_equals(email.value_as_string, "")))
