"""Keys and buckets that outlive redeploys of everything else."""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.shared import default_model
from stacks.shared.compliance import acknowledge, drop_redundant_dependency
from stacks.shared.config import AppConfig

# Why each bucket exists; the keys are the attribute names other stacks wire to.
DATA_BUCKETS: dict[str, str] = {
    "models": "model artefacts: the bundled model and every retrained one",
    "datasets": "training, validation and baseline datasets",
    "capture": "the endpoint's captured requests and responses",
    "monitoring": "monitoring baselines and reports",
    "review": "human-review (A2I) output",
    "labels": "labels from reviewers: ground truth and training rows",
}

_ACK_REPLICATION = (
    "Single-region by design: cross-region replication is an account-level disaster-recovery "
    "decision (and a second region's key) that this app leaves to the owner; objects are versioned."
)

_REPLICATION_RULES = ("HIPAA.Security-S3BucketReplicationEnabled", "NIST.800.53.R5-S3BucketReplicationEnabled")

# The bundled model's artefacts go under bundled/<content hash>/ in the models and datasets buckets.
BUNDLED_PREFIX = "bundled"


def bundled_model_prefix() -> str:
    """Where the serving stack copies the bundled model.tar.gz: named by its content hash."""
    return f"{BUNDLED_PREFIX}/{default_model.content_hash(default_model.MODEL_ARTIFACT)}"


def bundled_model_key() -> str:
    return f"{bundled_model_prefix()}/{default_model.MODEL_ARTIFACT.name}"


class StorageStack(Stack):
    """One customer-managed key and the S3 locations of the loop, SSL-only, versioned and logged."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY

        self.key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{config.app_name}-{config.environment}",
            description=f"Encrypts the {config.app_name} {config.environment} model loop's data",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        # CloudWatch Logs encrypts log groups with the key only if the key policy lets the regional
        # Logs service use it for this account's log groups.
        # https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": self.format_arn(
                            service="logs", resource="log-group", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
                        )
                    }
                },
            )
        )

        # EventBridge delivers to the app's KMS-encrypted queues (targets and dead-letter queues), and
        # CloudWatch alarms publish to its KMS-encrypted topic, only if the key policy lets those services
        # make data keys with it; only for this account's resources (no confused deputy). EventBridge
        # publishes to the topic with a rule role instead (stacks/monitoring/events.py): a key policy
        # cannot scope that by source.
        # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-troubleshooting.html (encrypted SQS targets)
        # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html (CloudWatch alarms)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com"), iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )

        # S3 server access logs can only be delivered to a bucket with SSE-S3 default encryption.
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90))],
            removal_policy=removal,
            auto_delete_objects=not config.retain_data,
        )
        acknowledge(
            self.access_logs,
            "S3 delivers server access logs only to buckets with SSE-S3 default encryption.",
            "HIPAA.Security-S3DefaultEncryptionKMS",
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
        )
        acknowledge(self.access_logs, _ACK_REPLICATION, *_REPLICATION_RULES)

        self.buckets: dict[str, s3.Bucket] = {}
        for name, purpose in DATA_BUCKETS.items():
            bucket = s3.Bucket(
                self,
                name.capitalize(),
                encryption=s3.BucketEncryption.KMS,
                encryption_key=self.key,
                bucket_key_enabled=True,
                enforce_ssl=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                versioned=True,
                server_access_logs_bucket=self.access_logs,
                server_access_logs_prefix=f"{name}/",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        abort_incomplete_multipart_upload_after=Duration.days(7),
                        noncurrent_version_expiration=Duration.days(90),
                    )
                ],
                removal_policy=removal,
                auto_delete_objects=not config.retain_data,
            )
            acknowledge(bucket, _ACK_REPLICATION, *_REPLICATION_RULES)
            if name == "capture":
                # Human review reads new capture objects through EventBridge "Object Created" events.
                # Set on the bucket itself: the L2's event_bridge_enabled deploys a custom-resource
                # Lambda to do what this one CloudFormation property does.
                bucket.node.default_child.add_property_override(
                    "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
                )
            self.buckets[name] = bucket
            CfnOutput(self, f"{name.capitalize()}BucketName", value=bucket.bucket_name, description=f"Bucket for {purpose}")

        # The ModelDataUrl the serving stack deploys, read by it on every create and update. It starts
        # as the configured (or bundled) artefact; retraining's Promote overwrites it, and CloudFormation
        # writes it again only when this template value changes, that is when another model is
        # configured or the bundled one changes. Keep its other properties fixed: changing any of them
        # makes CloudFormation write the whole resource, value included.
        self.served_model = ssm.StringParameter(
            self,
            "ServedModel",
            parameter_name=config.served_model_parameter,
            string_value=config.model.artifact_s3_uri or f"s3://{self.models.bucket_name}/{bundled_model_key()}",
            description="ModelDataUrl (s3://...model.tar.gz) of the model the serving stack deploys; retraining's Promote writes it",
        )

        provider = self.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
        if provider is not None:
            drop_redundant_dependency(provider.node.find_child("Handler"), provider.node.find_child("Role"))

        CfnOutput(self, "DataKeyArn", value=self.key.key_arn, description="KMS key that encrypts every data bucket")

    @property
    def models(self) -> s3.Bucket:
        return self.buckets["models"]

    @property
    def datasets(self) -> s3.Bucket:
        return self.buckets["datasets"]

    @property
    def capture(self) -> s3.Bucket:
        return self.buckets["capture"]
