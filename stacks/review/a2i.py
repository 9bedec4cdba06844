"""The A2I review back end (``review.backend: a2i``): the task UI, flow definition and A2I role.

CloudFormation has ``AWS::SageMaker::HumanTaskUi`` but no flow-definition resource, so the flow
definition is a custom resource (CDK Provider framework, with an ``is_complete`` waiter: creation
and deletion are asynchronous). Neither can be updated in place: the task UI's name carries a hash
of its template, and the handler names the flow definition after a hash of its request, so a change
creates a new one and CloudFormation deletes the old.

The templates escape every value they write (``| escape``; numbers in style attributes
``| plus: 0``). A2I escapes inputs by default and documents the explicit filter as the way to make
that visible in the source (Ground Truth "Adding automation with Liquid"); the explicit filters also
keep the templates safe under a renderer that does not autoescape (tests/lambdas/review/test_worker_template.py).
"""

from __future__ import annotations

import hashlib

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from lambdas.review.app.render import template_text  # one reader of a2i_templates/, shared with the reviewers' app
from stacks.shared import aws_facts
from stacks.shared.compliance import acknowledge, acknowledge_wildcards
from stacks.shared.config import AppConfig
from stacks.shared.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES
from stacks.shared.waiting_provider import WaitingProvider

A2I_OUTPUT_PREFIX = "a2i-output"


def flow_definition_arn_prefix(scope: Construct, prefix: str) -> str:
    """The start of every flow definition ARN the app names (``<prefix>-<hash of the request>``)."""
    return Stack.of(scope).format_arn(service="sagemaker", resource="flow-definition", resource_name=f"{prefix}-")


class HumanTask(Construct):
    """Task UI + flow definition + the role A2I writes answers with."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        template: str,
        workteam_arn: str,
        review_bucket: s3.IBucket,
        key: kms.IKey,
        layer,
    ) -> None:
        super().__init__(scope, construct_id)
        review = config.review
        prefix = config.prefix
        content = template_text(template)
        ui_hash = hashlib.sha256(content.encode()).hexdigest()[:12]
        self.task_ui = sagemaker.CfnHumanTaskUi(
            self,
            "TaskUi",
            human_task_ui_name=f"{prefix}-{template.replace('_', '-')}-{ui_hash}"[: aws_facts.A2I_NAME_MAX],
            ui_template=sagemaker.CfnHumanTaskUi.UiTemplateProperty(content=content),
        )

        self.output_s3_uri = f"s3://{review_bucket.bucket_name}/{A2I_OUTPUT_PREFIX}"
        self.role = iam.Role(
            self,
            "A2iRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Amazon A2I writes reviewers' answers to the review bucket with the app's key",
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[review_bucket.arn_for_objects(f"{A2I_OUTPUT_PREFIX}/*")]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]))
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge_wildcards(policy, policy.document, "A2I writes output.json under per-loop keys it chooses below a2i-output/.")
        acknowledge(policy, ACK_INLINE_POLICY, *INLINE_POLICY_RULES)

        self.provider = WaitingProvider(
            self,
            "FlowDefinitionProvider",
            module="review.flow_definition",
            description="Flow definition custom resource",
            service=f"{prefix}-flow-definition",
            key=key,
            layer=layer,
            retain_logs=config.retain_data,
            total_timeout=Duration.minutes(15),
        )
        # Flow definitions are named <prefix>-<hash of the request>: this prefix covers every one the
        # app has made, the current one and those a changed request replaced.
        self.flow_definition_arn_prefix = flow_definition_arn_prefix(self, prefix)
        flow_arn_pattern = f"{self.flow_definition_arn_prefix}*"
        on_event, is_complete = self.provider.on_event, self.provider.is_complete
        on_event.allow(["sagemaker:CreateFlowDefinition", "sagemaker:DeleteFlowDefinition"], [flow_arn_pattern])
        on_event.allow(["sagemaker:DescribeHumanTaskUi"], [self.task_ui.attr_human_task_ui_arn])
        on_event.role.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"], resources=[self.role.role_arn], conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
            )
        )
        is_complete.allow(["sagemaker:DescribeFlowDefinition"], [flow_arn_pattern])
        self.provider.acknowledge_wildcards(
            f"Flow definitions are named {prefix}-<hash of the request> at deploy time, so the name is known only as a prefix; "
            "log-stream names are chosen by Lambda."
        )
        request = {
            "NamePrefix": prefix,
            "RoleArn": self.role.role_arn,
            "HumanLoopConfig": {
                "WorkteamArn": workteam_arn,
                "HumanTaskUiArn": self.task_ui.attr_human_task_ui_arn,
                "TaskTitle": review.task_title,
                "TaskDescription": review.task_description,
                "TaskCount": review.task_count,
                "TaskAvailabilityLifetimeInSeconds": review.task_availability_seconds,
                "TaskTimeLimitInSeconds": review.task_time_limit_seconds,
                "TaskKeywords": list(review.task_keywords),
            },
            "OutputConfig": {"S3OutputPath": self.output_s3_uri, "KmsKeyId": key.key_arn},
        }
        self.flow_definition = self.provider.resource(self, "FlowDefinition", resource_type="Custom::A2IFlowDefinition", request=request, role=self.role)
        self.flow_definition_arn = self.flow_definition.get_att_string("FlowDefinitionArn")
        self.loop_prefix = prefix

    def starter_environment(self) -> dict[str, str]:
        """What the human-loop starter needs to start loops on this flow definition."""
        return {"FLOW_DEFINITION_ARN": self.flow_definition_arn}

    def allow_starting(self, starter) -> None:
        """StartHumanLoop on this flow definition, for loops named ``<prefix>-*``."""
        loop_arns = [
            self.flow_definition_arn,
            Stack.of(self).format_arn(service="sagemaker", resource="human-loop", resource_name=f"{self.loop_prefix}-*"),
        ]
        starter.role.add_to_policy(iam.PolicyStatement(actions=["sagemaker:StartHumanLoop"], resources=loop_arns))
