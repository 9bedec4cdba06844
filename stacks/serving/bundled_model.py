"""Copies the bundled model and its datasets into the app's own encrypted buckets."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from stacks.shared import default_model
from stacks.shared.compliance import acknowledge, acknowledge_wildcards, ignore_lint_check
from stacks.shared.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES
from stacks.shared.log_groups import encrypted_log_group
from stacks.storage.stack import BUNDLED_PREFIX, bundled_model_key, bundled_model_prefix


class BundledModel(Construct):
    """The breast-cancer model artefact, training CSV and test CSV, under content-hashed prefixes.

    A changed artefact lands under a new prefix, so the model that reads it is replaced; old
    objects are kept (``prune=False``, ``retain_on_delete``) because a rollback may still need them.

    The copy runs in aws-cdk-lib's BucketDeployment handler, whose own grant is read/write/delete on
    the whole destination bucket (``grantReadWrite``, whatever the key prefix). It gets a role here
    whose policy CDK cannot extend: the handler may list and write only the bundled prefixes, so it
    cannot delete or overwrite retrained models, datasets or labels it did not write.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        models_bucket: s3.IBucket,
        datasets_bucket: s3.IBucket,
        key: kms.IKey,
        retain_logs: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        model_prefix = bundled_model_prefix()
        data_prefix = f"{BUNDLED_PREFIX}/{default_model.content_hash(*default_model.DATASETS)}"

        self.models_bucket = models_bucket
        self.datasets_bucket = datasets_bucket
        self.model_key = bundled_model_key()
        self.train_key = f"{data_prefix}/{default_model.TRAIN_CSV.name}"
        self.test_key = f"{data_prefix}/{default_model.TEST_CSV.name}"
        self.baseline_key = f"{data_prefix}/{default_model.BASELINE_CSV.name}"
        self.test_scores_key = f"{data_prefix}/{default_model.TEST_SCORES_CSV.name}"

        self.log_group = encrypted_log_group(self, "DeploymentLogs", key=key, retain=retain_logs)
        self.role = iam.Role(self, "CopyRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description="Copies the bundled model and datasets (BucketDeployment)")
        self.log_group.grant_write(self.role)
        # `aws s3 sync` into an SSE-KMS bucket: PutObject needs a data key (Decrypt for multipart parts).
        self.role.add_to_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]))
        self.deployments = []
        for deployment_id, bucket, prefix, files in (
            ("ModelArtifact", models_bucket, model_prefix, [default_model.MODEL_ARTIFACT]),
            ("Datasets", datasets_bucket, data_prefix, list(default_model.DATASETS)),
        ):
            files_asset = s3_assets.Asset(self, f"{deployment_id}Files", path=str(default_model.ARTIFACTS_DIR), exclude=["*", *(f"!{path.name}" for path in files)])
            self.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[files_asset.bucket.arn_for_objects(files_asset.s3_object_key)]))
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn], conditions={"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}})
            )
            self.role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{prefix}/*")]))
            self.deployments.append(
                s3deploy.BucketDeployment(
                    self,
                    deployment_id,
                    sources=[s3deploy.Source.bucket(files_asset.bucket, files_asset.s3_object_key)],
                    destination_bucket=bucket,
                    destination_key_prefix=prefix,
                    prune=False,
                    retain_on_delete=True,
                    log_group=self.log_group,
                    role=self.role.without_policy_updates(),
                )
            )
        # The handler's role gets its policy here, not from the library, so nothing else makes the
        # copy wait for it.
        for deployment in self.deployments:
            deployment.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        self._acknowledge_copy_handler()

    def _acknowledge_copy_handler(self) -> None:
        """The copy runs in aws-cdk-lib's BucketDeployment handler, a stack-level singleton."""
        stack = Stack.of(self)
        handler = next(c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
        ignore_lint_check(
            handler.node.default_child,
            "W3005",
            "aws-cdk-lib's Function adds a construct dependency on its role next to the GetAtt.",
        )
        acknowledge(
            handler,
            "aws-cdk-lib's BucketDeployment handler (its runtime is the library's), behind the library's custom-resource "
            "provider: CloudFormation invokes that asynchronously with a callback URL, only while deploying this stack, to "
            "copy the bundled artefacts; a failure is reported to the callback and fails the deployment, so there is "
            "nothing to dead-letter, and it runs once per deployment, so nothing to reserve concurrency for.",
            "AwsSolutions-L1",
            "HIPAA.Security-LambdaConcurrency",
            "HIPAA.Security-LambdaDLQ",
            "NIST.800.53.R5-LambdaConcurrency",
            "NIST.800.53.R5-LambdaDLQ",
        )
        acknowledge(
            handler,
            "The handler calls only S3 (its source asset and the two destination buckets) over TLS with IAM auth and "
            "reaches no resource inside a VPC.",
            "HIPAA.Security-LambdaInsideVPC",
            "NIST.800.53.R5-LambdaInsideVPC",
        )
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge_wildcards(
            policy,
            policy.document,
            "The copy writes (s3:PutObject, no delete) and lists only the content-hashed bundled/<hash>/ prefixes it "
            "deploys to, whose object names come from the bundled files.",
        )
        acknowledge(policy, ACK_INLINE_POLICY, *INLINE_POLICY_RULES)

    @property
    def train_s3_uri(self) -> str:
        return f"s3://{self.datasets_bucket.bucket_name}/{self.train_key}"

    @property
    def test_s3_uri(self) -> str:
        return f"s3://{self.datasets_bucket.bucket_name}/{self.test_key}"

    @property
    def baseline_s3_uri(self) -> str:
        return f"s3://{self.datasets_bucket.bucket_name}/{self.baseline_key}"
