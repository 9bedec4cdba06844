"""Copies the bundled model and its datasets into the app's own encrypted buckets."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from stacks import default_model
from stacks.compliance import acknowledge, acknowledge_wildcards, ignore_lint_check
from stacks.log_groups import encrypted_log_group


class BundledModel(Construct):
    """The breast-cancer model artefact, training CSV and test CSV, under content-hashed prefixes.

    A changed artefact lands under a new prefix, so the model that reads it is replaced; old
    objects are kept (``prune=False``) because a rollback may still need them.
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
        model_prefix = f"bundled/{default_model.content_hash(default_model.MODEL_ARTIFACT)}"
        data_prefix = f"bundled/{default_model.content_hash(default_model.TRAIN_CSV, default_model.TEST_CSV)}"

        self.models_bucket = models_bucket
        self.datasets_bucket = datasets_bucket
        self.model_key = f"{model_prefix}/{default_model.MODEL_ARTIFACT.name}"
        self.train_key = f"{data_prefix}/{default_model.TRAIN_CSV.name}"
        self.test_key = f"{data_prefix}/{default_model.TEST_CSV.name}"

        self.log_group = encrypted_log_group(self, "DeploymentLogs", key=key, retain=retain_logs)
        self.deployments = [
            s3deploy.BucketDeployment(
                self,
                deployment_id,
                sources=[
                    s3deploy.Source.asset(
                        str(default_model.ARTIFACTS_DIR), exclude=["*", *(f"!{path.name}" for path in files)]
                    )
                ],
                destination_bucket=bucket,
                destination_key_prefix=prefix,
                prune=False,
                retain_on_delete=True,
                log_group=self.log_group,
            )
            for deployment_id, bucket, prefix, files in (
                ("ModelArtifact", models_bucket, model_prefix, [default_model.MODEL_ARTIFACT]),
                ("Datasets", datasets_bucket, data_prefix, [default_model.TRAIN_CSV, default_model.TEST_CSV]),
            )
        ]
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
            "aws-cdk-lib's BucketDeployment handler: runtime, role and policy are the library's. "
            "CloudFormation invokes it synchronously, only while deploying, to copy the bundled "
            "artefacts; a failure fails the deployment, so there is nothing to queue or throttle.",
            "AwsSolutions-L1",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "HIPAA.Security-LambdaConcurrency",
            "HIPAA.Security-LambdaDLQ",
            "HIPAA.Security-LambdaInsideVPC",
            "HIPAA.Security-IAMNoInlinePolicy",
            "NIST.800.53.R5-LambdaConcurrency",
            "NIST.800.53.R5-LambdaDLQ",
            "NIST.800.53.R5-LambdaInsideVPC",
            "NIST.800.53.R5-IAMNoInlinePolicy",
        )
        policy = handler.node.find_child("ServiceRole").node.find_child("DefaultPolicy")
        acknowledge_wildcards(
            policy,
            policy.document,
            "BucketDeployment grants itself read on the CDK asset bucket and read/write on the "
            "destination buckets with aws-cdk-lib's grant methods (their S3 and KMS action wildcards); "
            "the objects it writes are the bundled files under content-hashed prefixes.",
        )

    @property
    def train_s3_uri(self) -> str:
        return f"s3://{self.datasets_bucket.bucket_name}/{self.train_key}"

    @property
    def test_s3_uri(self) -> str:
        return f"s3://{self.datasets_bucket.bucket_name}/{self.test_key}"
