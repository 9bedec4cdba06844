"""A custom-resource provider for SageMaker resources that finish after their API call returns.

CDK's Provider framework runs ``on_event`` (start the work) and then polls ``is_complete`` from a
waiter state machine until it says done or raises (the message becomes the CloudFormation event's
reason). Used for A2I flow definitions (no CloudFormation type) and baseline processing jobs.
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.compliance import acknowledge, acknowledge_wildcards, ignore_lint_check
from stacks.functions import INLINE_POLICY_RULES, AppFunction, ignore_redundant_role_dependency
from stacks.log_groups import encrypted_log_group

_ACK_FRAMEWORK = (
    "aws-cdk-lib's custom-resource Provider framework (framework functions, their roles and the waiter "
    "state machine) runs only while CloudFormation deploys this stack; its runtime, managed policy and "
    "invoke grants on our two handler functions (ARN plus ':*' for versions) are the library's. Its logs "
    "go to KMS-encrypted log groups with retention; a failure fails the deployment, so nothing is queued."
)


class WaitingProvider(Construct):
    """``lambdas/<module>/handler.py``'s ``on_event`` and ``is_complete`` behind a Provider."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        module: str,
        description: str,
        service: str,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        retain_logs: bool,
        total_timeout: Duration,
        query_interval: Duration = Duration.seconds(10),
        environment: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.on_event, self.is_complete = (
            AppFunction(
                self,
                kind.title().replace("_", ""),
                handler=f"lambdas.{module}.handler.{kind}",
                description=f"{description}: {kind}",
                key=key,
                layer=layer,
                retain_logs=retain_logs,
                service=service,
                environment=environment or {},
                timeout=Duration.minutes(1),
            )
            for kind in ("on_event", "is_complete")
        )
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.on_event.function,
            is_complete_handler=self.is_complete.function,
            query_interval=query_interval,
            total_timeout=total_timeout,
            log_group=encrypted_log_group(self, "ProviderLogs", key=key, retain=retain_logs),
            provider_function_env_encryption=key,
            waiter_state_machine_log_options=cr.LogOptions(destination=encrypted_log_group(self, "WaiterLogs", key=key, retain=retain_logs)),
        )
        self._acknowledge_framework()

    @property
    def service_token(self) -> str:
        return self.provider.service_token

    def resource(self, scope: Construct, construct_id: str, *, resource_type: str, request: dict, role: iam.IRole) -> CustomResource:
        """A custom resource whose one property, ``Request``, is the API request as a JSON string
        (CloudFormation turns custom-resource property values into strings; the API wants numbers).
        It waits for ``role``'s policy: the job or definition runs with that role."""
        resource = CustomResource(
            scope, construct_id, service_token=self.service_token, resource_type=resource_type, properties={"Request": Stack.of(scope).to_json_string(request)}
        )
        resource.node.add_dependency(role.node.find_child("DefaultPolicy"))
        return resource

    def acknowledge_wildcards(self, reason: str) -> None:
        """Call once both handlers have their grants."""
        for handler in (self.on_event, self.is_complete):
            handler.acknowledge_wildcards(reason)

    def _acknowledge_framework(self) -> None:
        acknowledge(
            self.provider,
            _ACK_FRAMEWORK,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "AwsSolutions-L1",
            "AwsSolutions-SF1",
            "AwsSolutions-SF2",
            "HIPAA.Security-LambdaConcurrency",
            "HIPAA.Security-LambdaDLQ",
            "HIPAA.Security-LambdaInsideVPC",
            "NIST.800.53.R5-LambdaConcurrency",
            "NIST.800.53.R5-LambdaDLQ",
            "NIST.800.53.R5-LambdaInsideVPC",
            *INLINE_POLICY_RULES,
        )
        for child in self.provider.node.find_all():
            if isinstance(child, lambda_.Function):
                ignore_redundant_role_dependency(child)
            if isinstance(child, sfn.CfnStateMachine):
                ignore_lint_check(child, "W3005", "aws-cdk-lib's waiter state machine depends on its role next to the GetAtt of the role's ARN.")
            if isinstance(child, iam.Policy):
                acknowledge_wildcards(child, child.document, _ACK_FRAMEWORK)
