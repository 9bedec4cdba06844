"""The app's Python Lambda functions: one runtime, one dependency layer, one way to log.

The function code is the repository's ``lambdas`` package, copied as it is (no Docker: these
machines and many CI runners have none). Its third-party dependencies (Powertools for AWS Lambda)
come from ``build/lambda-layer``, which ``make layer`` builds from PyPI wheels for the Lambda
platform (``lambdas/requirements.txt``, pinned). boto3 is the runtime's own.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, Size, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.shared.compliance import acknowledge, acknowledge_wildcards, ignore_lint_check
from stacks.shared.log_groups import encrypted_log_group

ROOT = Path(__file__).resolve().parents[2]
LAMBDAS = ROOT / "lambdas"
LAYER = ROOT / "build" / "lambda-layer"
EXPLAIN_LAYER = ROOT / "build" / "explain-layer"
REVIEW_APP_LAYER = ROOT / "build" / "review-app-layer"
# The worker templates, shipped beside the ``lambdas`` package: the reviewers' app renders them too.
TEMPLATES = ROOT / "a2i_templates"
EXPLAIN_REQUIREMENTS = LAMBDAS / "shared" / "explain" / "requirements.txt"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
# Must match the --platform / --python-version that `make layer` passes to pip. The python3.14
# runtime is Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels (the explain layer's) run on it:
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
LAYER_PLATFORM = "manylinux2014_aarch64"
EXPLAIN_LAYER_PLATFORM = "manylinux_2_28_aarch64"
LAYER_PYTHON = "3.14"

_ACK_VPC = (
    "The function calls only AWS APIs (S3, SQS, DynamoDB, SageMaker, EventBridge) over TLS with IAM "
    "auth and reaches no resource inside a VPC; a VPC would add NAT or endpoint cost and no control."
)
# One statement of why each function role's policy is inline.
ACK_INLINE_POLICY = (
    "The policy belongs to exactly one role and is created, changed and deleted with it; a managed "
    "policy would add a second resource that could be attached elsewhere and outlive its purpose."
)
INLINE_POLICY_RULES = ("HIPAA.Security-IAMNoInlinePolicy", "NIST.800.53.R5-IAMNoInlinePolicy")


@dataclass(frozen=True)
class Invocation:
    """How a function is invoked, which decides where a failed invocation ends up and what bounds
    its concurrency. These two sentences are the reasons its cdk-nag LambdaDLQ and
    LambdaConcurrency findings are acknowledged with, so each constructor states only what is
    true for that kind of invocation; pass the function-specific part where it differs.
    """

    failures: str
    scaling: str

    @classmethod
    def queue(cls, *, max_concurrency: int | None = None) -> Invocation:
        """A consumer of an SQS queue through an event source mapping (synchronous invokes)."""
        bound = (
            f"its event source mapping's MaximumConcurrency ({max_concurrency}) caps the concurrent batches"
            if max_concurrency is not None
            else "its event source mapping scales pollers with the queue's backlog, bounded by the account's concurrency limit; "
            "a reservation would only throttle batches back onto the queue, where each throttle counts towards the dead-letter limit"
        )
        return cls(
            failures=(
                "Invoked synchronously by an SQS event source mapping, which never uses a function-level dead-letter queue: "
                "a record that keeps failing moves to the source queue's own dead-letter queue, which is alarmed."
            ),
            scaling=f"Reads one SQS queue: {bound}.",
        )

    @classmethod
    def schedule(cls, *, failures: str, rate: str) -> Invocation:
        """Invoked asynchronously by an EventBridge schedule; ``failures`` says what catches a failed run."""
        return cls(
            failures=f"Invoked asynchronously by an EventBridge schedule ({rate}); {failures}",
            scaling=f"Runs once per EventBridge schedule tick ({rate}), then only Lambda's retries of a failed run; it needs no reservation.",
        )

    @classmethod
    def custom_resource(cls) -> Invocation:
        """A handler behind aws-cdk-lib's custom-resource Provider framework (on_event / is_complete)."""
        return cls(
            failures=(
                "Invoked synchronously by aws-cdk-lib's custom-resource Provider framework (its onEvent function or its "
                "waiter state machine) while CloudFormation deploys the stack: an error fails the custom resource and so "
                "the deployment, with the error as the reason; there is no asynchronous invocation to dead-letter."
            ),
            scaling="Runs only while CloudFormation deploys the stack, once per custom-resource event and poll; it needs no reservation.",
        )

    @classmethod
    def state_machine_task(cls, *, state_machine: str) -> Invocation:
        """A Lambda task of a Step Functions state machine (synchronous invokes, retried by the state)."""
        return cls(
            failures=(
                f"Invoked synchronously by the {state_machine} state machine's Lambda tasks: an error returns to the "
                "state, whose Retry and Catch handle it (the execution fails with a notification); nothing is asynchronous."
            ),
            scaling=f"Runs only as a task of the {state_machine} state machine, whose Lambda states run one after another in each execution; it needs no reservation.",
        )


class LambdaError(RuntimeError):
    pass


def _source_files() -> list[Path]:
    return sorted(
        path
        for folder in (LAMBDAS, TEMPLATES)
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def _code_hash() -> str:
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class _CopyLambdasPackage:
    """Copies ``lambdas/`` into the asset as the package ``lambdas`` (handlers: ``lambdas.x.handler.f``),
    and ``a2i_templates/`` beside it."""

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        for path in _source_files():
            if path.name == "requirements.txt":
                continue
            target = Path(output_dir) / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return True


def lambdas_code() -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(LAMBDAS),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=_code_hash(),
        bundling=BundlingOptions(image=DockerImage.from_registry("unused-local-bundling"), local=_CopyLambdasPackage()),
    )


def _built_from(requirements: Path, makefile_target: str) -> str:
    """A layer's asset hash from what `make layer` builds it from: its requirements and its recipe.

    For a layer whose wheels are pinned by hash, these decide its bytes (the build drops pip's
    per-install records), so hashing them names the same content as fingerprinting the folder,
    which for the explain layer (~170 MB) took about a second of every synth.
    """
    return hashlib.sha256(requirements.read_bytes() + b"\0" + _recipe(makefile_target).encode()).hexdigest()


def _recipe(makefile_target: str) -> str:
    """The Makefile's rule for ``makefile_target``: its target line and commands."""
    makefile = (ROOT / "Makefile").read_text()
    start = makefile.index(f"\n{makefile_target}:") + 1
    return makefile[start : makefile.index("\n\n", start)]


def _layer(scope: Construct, construct_id: str, folder: Path, description: str, asset_hash: str | None = None) -> lambda_.LayerVersion:
    if not (folder / "python").is_dir():
        raise LambdaError(f"{folder} is missing: run `make layer` (make synth and make test do) to build the Lambda layers")
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=lambda_.Code.from_asset(str(folder), asset_hash_type=AssetHashType.CUSTOM if asset_hash else None, asset_hash=asset_hash),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        description=description,
    )


def dependency_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    """What every function uses: Powertools and orjson (lambdas/requirements.txt)."""
    return _layer(scope, construct_id, LAYER, "Powertools for AWS Lambda (Python), pinned in lambdas/requirements.txt")


EXPLAIN_LAYER_ID = "ExplainDependencies"


def explain_layer(scope: Construct) -> lambda_.LayerVersion:
    """XGBoost, numpy and scipy (lambdas/shared/explain/requirements.txt): TreeSHAP for the review
    starter and the attribution monitor, numpy for the sketch fold of profiling and baselines. One
    layer version per stack, shared by the stack's functions that need it."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child(EXPLAIN_LAYER_ID)
    if existing is not None:
        return existing
    return _layer(
        stack,
        EXPLAIN_LAYER_ID,
        EXPLAIN_LAYER,
        "XGBoost, numpy and scipy for TreeSHAP and sketches, pinned in lambdas/shared/explain/requirements.txt",
        asset_hash=_built_from(EXPLAIN_REQUIREMENTS, "build/.explain-layer.built"),
    )


def review_app_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    """The reviewers' app API's python-liquid, which renders tasks from a2i_templates/ (lambdas/review/app/requirements.txt)."""
    return _layer(scope, construct_id, REVIEW_APP_LAYER, "python-liquid for the reviewers' app, pinned in lambdas/review/app/requirements.txt")


def ignore_redundant_role_dependency(function: lambda_.Function) -> None:
    ignore_lint_check(
        function.node.default_child,
        "W3005",
        "aws-cdk-lib's Function adds a construct dependency on its role next to the GetAtt of the role's ARN.",
    )


# What nag reports on aws-cdk-lib's custom-resource Provider framework (its functions, their role
# and managed policy); every Provider of the app acknowledges them with its reason.
PROVIDER_FRAMEWORK_RULES = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    "HIPAA.Security-LambdaConcurrency",
    "HIPAA.Security-LambdaDLQ",
    "HIPAA.Security-LambdaInsideVPC",
    "NIST.800.53.R5-LambdaConcurrency",
    "NIST.800.53.R5-LambdaDLQ",
    "NIST.800.53.R5-LambdaInsideVPC",
    *INLINE_POLICY_RULES,
)


def acknowledge_provider_framework(provider: Construct, reason: str, *more_rules: str) -> None:
    """The framework's findings, its functions' redundant role dependency and its policies' wildcards,
    acknowledged with ``reason`` (``more_rules``: what a Provider with a waiter adds, e.g. its state machine's)."""
    acknowledge(provider, reason, *PROVIDER_FRAMEWORK_RULES, *more_rules)
    for child in provider.node.find_all():
        if isinstance(child, lambda_.Function):
            ignore_redundant_role_dependency(child)
        if isinstance(child, iam.Policy):
            acknowledge_wildcards(child, child.document, reason)


class AppFunction(Construct):
    """A Python function with its own role, KMS-encrypted log group and environment; ``invocation``
    says how it is invoked (the reasons of its dead-letter and concurrency acknowledgments)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        retain_logs: bool,
        service: str,
        invocation: Invocation,
        environment: dict[str, str],
        timeout: Duration,
        memory_size: int = 256,
        reserved_concurrency: int | None = None,
        ephemeral_storage_mib: int | None = None,
        extra_layers: tuple[lambda_.ILayerVersion, ...] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.service = service
        self.log_group = encrypted_log_group(self, "Logs", key=key, retain=retain_logs)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=f"{description} (Lambda)")
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=lambdas_code(),
            layers=[layer, *extra_layers],
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            description=description,
            environment={"POWERTOOLS_SERVICE_NAME": service, "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE, **environment},
            environment_encryption=key,
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mib) if ephemeral_storage_mib else None,
        )
        ignore_redundant_role_dependency(self.function)
        key.grant_decrypt(self.role)  # the environment is encrypted with the app's key
        self.log_group.grant_write(self.role)
        acknowledge(self.role.node.find_child("DefaultPolicy"), ACK_INLINE_POLICY, *INLINE_POLICY_RULES)
        acknowledge(self.function, _ACK_VPC, "HIPAA.Security-LambdaInsideVPC", "NIST.800.53.R5-LambdaInsideVPC")
        acknowledge(self.function, invocation.failures, "HIPAA.Security-LambdaDLQ", "NIST.800.53.R5-LambdaDLQ")
        if reserved_concurrency is None:
            acknowledge(self.function, invocation.scaling, "HIPAA.Security-LambdaConcurrency", "NIST.800.53.R5-LambdaConcurrency")

    def metric(self, name: str, *, statistic: str = "Sum", period: Duration = Duration.hours(1), label: str | None = None, **dimensions: str) -> cloudwatch.Metric:
        """A metric this function emits with Powertools (namespace MlLoop; Powertools adds ``service``).
        Leave ``label`` unset for an alarm's metric (a label turns it into a metric-math alarm)."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE, metric_name=name, dimensions_map={**dimensions, "service": self.service}, statistic=statistic, period=period, label=label
        )

    def allow(self, actions: list[str], resources: list[str]) -> None:
        """One statement on exact resources: where an L2 grant would add more actions than needed."""
        self.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))

    def acknowledge_wildcards(self, reason: str) -> None:
        """Acknowledges each wildcard of the role's policy by its ID, once every grant is made (the
        IDs are computed when the app is prepared); ``reason`` must explain every one of them."""
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge_wildcards(policy, policy.document, reason)


# Custom CloudWatch namespace of the app's own Lambda metrics (Powertools EMF); the dimension
# ``service`` tells the functions apart.
METRICS_NAMESPACE = "MlLoop"
