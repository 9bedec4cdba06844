"""A custom-resource provider for SageMaker resources that finish after their API call returns.

CDK's Provider framework runs ``on_event`` (start the work) and then polls ``is_complete`` from a
waiter state machine until it says done or raises (the message becomes the CloudFormation event's
reason). Used for A2I flow definitions (no CloudFormation type) and baseline processing jobs.

CloudFormation waits at most an hour for a custom resource's answer (``ServiceTimeout``, 1-3600
seconds), and the Provider's ``total_timeout`` may be at most an hour too. The waiter gives up
first (:data:`MAX_WAIT`), so a deployment fails with the provider's "Operation timed out" rather
than CloudFormation's silence; each resource's ``ServiceTimeout`` is its waiter's time plus
:data:`ANSWER_MARGIN` for the framework's own calls.
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.shared import aws_facts
from stacks.shared.compliance import ignore_lint_check
from stacks.shared.functions import AppFunction, Invocation, acknowledge_provider_framework
from stacks.shared.log_groups import encrypted_log_group

# Time between the waiter giving up and CloudFormation doing so.
ANSWER_MARGIN = Duration.minutes(5)
# The longest a waiting custom resource may wait for its work.
MAX_WAIT = Duration.seconds(aws_facts.CUSTOM_RESOURCE_MAX_TIMEOUT_SECONDS - ANSWER_MARGIN.to_seconds())

_ACK_FRAMEWORK = (
    "aws-cdk-lib's custom-resource Provider framework (framework functions, their roles and the waiter "
    "state machine) runs only while CloudFormation deploys this stack; its runtime, managed policy and "
    "invoke grants on our two handler functions (ARN plus ':*' for versions) are the library's. Its logs "
    "go to KMS-encrypted log groups with retention; CloudFormation invokes its onEvent function asynchronously "
    "with a callback URL, to which any failure is reported, failing the deployment, so nothing is queued. It "
    "calls only AWS APIs (Lambda, Step Functions) and that URL, so it needs no VPC."
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
        if total_timeout.to_seconds() > MAX_WAIT.to_seconds():
            raise ValueError(f"{construct_id}: total_timeout {total_timeout.to_seconds()} s exceeds the {MAX_WAIT.to_seconds()} s a custom resource can wait")
        self.service_timeout = Duration.seconds(total_timeout.to_seconds() + ANSWER_MARGIN.to_seconds())
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
                invocation=Invocation.custom_resource(),
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
            scope,
            construct_id,
            service_token=self.service_token,
            resource_type=resource_type,
            properties={"Request": Stack.of(scope).to_json_string(request)},
            service_timeout=self.service_timeout,
        )
        resource.node.add_dependency(role.node.find_child("DefaultPolicy"))
        return resource

    def acknowledge_wildcards(self, reason: str) -> None:
        """Call once both handlers have their grants."""
        for handler in (self.on_event, self.is_complete):
            handler.acknowledge_wildcards(reason)

    def _acknowledge_framework(self) -> None:
        acknowledge_provider_framework(self.provider, _ACK_FRAMEWORK, "AwsSolutions-SF1", "AwsSolutions-SF2")
        for child in self.provider.node.find_all():
            if isinstance(child, sfn.CfnStateMachine):
                ignore_lint_check(child, "W3005", "aws-cdk-lib's waiter state machine depends on its role next to the GetAtt of the role's ARN.")
