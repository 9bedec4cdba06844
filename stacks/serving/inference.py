"""Serve: the SageMaker model and its real-time endpoint, capturing requests and responses."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.shared import aws_facts
from stacks.shared.compliance import acknowledge, acknowledge_wildcards
from stacks.shared.config import AppConfig
from stacks.shared.images import ContainerImage
from stacks.shared.log_groups import encrypted_log_group

CAPTURE_PREFIX = "capture"


class ModelEndpoint(Construct):
    """A model in network isolation behind a real-time endpoint with KMS-encrypted data capture.

    Model and endpoint-config names are generated: every property of both is create-only, so a
    change replaces them and CloudFormation moves the endpoint (whose name callers use, and so is
    fixed) onto the new config in place.

    With ``serving.endpoint`` false (batch only) there is no model, endpoint config, endpoint or
    endpoint log group: only the execution role, which the nightly batch's per-run model and
    retraining's models run as (``deployed`` is False; ``model``, ``endpoint_config`` and
    ``endpoint`` are None, and ``endpoint_name`` is the name an endpoint would have, which names the
    capture and report folders).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        image: ContainerImage,
        model_data_url: str | None,  # None: batch only
        model_data_arn: str,
        retrained_models_arn: str | None,
        capture_bucket: s3.IBucket,
        key: kms.IKey,
        sampling_percentage: int | float | None,  # None: batch only
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint_cfg = config.endpoint
        self.endpoint_name = endpoint_cfg.name
        self.image_uri = image.uri
        self.variant_name = endpoint_cfg.variant_name
        self.capture_s3_uri = f"s3://{capture_bucket.bucket_name}/{CAPTURE_PREFIX}"
        self.model_data_url = model_data_url
        self.model_data_arn = model_data_arn
        self.image = image
        self.deployed = config.serving.endpoint
        self.endpoint_arn = Stack.of(self).format_arn(service="sagemaker", resource="endpoint", resource_name=endpoint_cfg.name.lower())
        self.log_group = None
        self.model = self.endpoint_config = self.endpoint = None

        if self.deployed:
            # SageMaker creates /aws/sagemaker/Endpoints/<name> on first start if it does not exist;
            # creating it first (the endpoint depends on it) gives it a retention period and our key.
            self.log_group = encrypted_log_group(
                self, "Logs", key=key, retain=config.retain_data, name=f"/aws/sagemaker/Endpoints/{endpoint_cfg.name}"
            )

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of the {endpoint_cfg.name} model and endpoint"
            if self.deployed
            else f"SageMaker execution role of the {config.prefix} models (batch transforms)",
        )
        model_objects = [model_data_arn] if retrained_models_arn is None else [model_data_arn, retrained_models_arn]
        statements = self._execution_statements(image, model_objects, capture_bucket, key)
        self.policy = iam.ManagedPolicy(self, "ExecutionPolicy", roles=[self.role], statements=statements)
        acknowledge_wildcards(
            self.policy,
            self.policy.document,
            "Wildcards only where AWS allows nothing narrower: ecr:GetAuthorizationToken"
            + (
                " and cloudwatch:PutMetricData (limited by a namespace condition) take no resource ARN; data "
                f"capture writes objects under the '{CAPTURE_PREFIX}/' prefix with keys SageMaker chooses"
                if self.deployed
                else " takes no resource ARN"
            )
            + (
                "; the model may serve any artefact retraining wrote under its prefix of the models bucket (keys named "
                "by each execution), because Promote names it in the served-model parameter the model reads"
                if retrained_models_arn is not None
                else ""
            )
            + ".",
        )

        if self.deployed:
            self._endpoint(config, image, model_data_url, capture_bucket, key, sampling_percentage)

    def _endpoint(
        self, config: AppConfig, image: ContainerImage, model_data_url: str, capture_bucket: s3.IBucket, key: kms.IKey, sampling_percentage: int | float
    ) -> None:
        endpoint_cfg = config.endpoint
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            enable_network_isolation=True,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.uri,
                model_data_url=model_data_url,
                mode="SingleModel",
            ),
        )
        self.model.node.add_dependency(self.policy)  # the role itself is referenced already

        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            kms_key_id=key.key_arn if endpoint_cfg.volume_kms_allowed else None,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=endpoint_cfg.variant_name,
                    model_name=self.model.attr_model_name,
                    instance_type=endpoint_cfg.instance_type,
                    initial_instance_count=endpoint_cfg.instance_count,
                    initial_variant_weight=1.0,
                )
            ],
            data_capture_config=sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True,
                initial_sampling_percentage=sampling_percentage,
                destination_s3_uri=self.capture_s3_uri,
                kms_key_id=key.key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                ],
                capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                    csv_content_types=list(aws_facts.CAPTURE_CSV_CONTENT_TYPES),
                    json_content_types=list(aws_facts.CAPTURE_JSON_CONTENT_TYPES),
                ),
            ),
        )
        if not endpoint_cfg.volume_kms_allowed:
            acknowledge(
                self.endpoint_config,
                f"{endpoint_cfg.instance_type} has NVMe instance storage, which a hardware module encrypts; "
                "CreateEndpointConfig rejects a KmsKeyId for such instance types.",
                "HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured",
                "NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured",
            )

        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_cfg.name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        self.endpoint.node.add_dependency(self.log_group)

    def _execution_statements(
        self, image: ContainerImage, model_object_arns: list[str], capture_bucket: s3.IBucket, key: kms.IKey
    ) -> list[iam.PolicyStatement]:
        """What CreateModel's execution role needs, each action on its own resource.

        https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createmodel-perms
        """
        model = [
            iam.PolicyStatement(actions=["s3:GetObject"], resources=model_object_arns),
        ]
        if not self.deployed:  # the artefact and the image: the batch stack grants its transforms' data, logs and metrics
            return [
                *model,
                iam.PolicyStatement(actions=["kms:Decrypt", "kms:DescribeKey"], resources=[key.key_arn]),
                iam.PolicyStatement(
                    actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    resources=[image.repository_arn],
                ),
                iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            ]
        return [
            *model,
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[capture_bucket.arn_for_objects(f"{CAPTURE_PREFIX}/*")]),
            # Decrypt the artefact, encrypt captured data and the endpoint's storage volume.
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], resources=[key.key_arn]),
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            iam.PolicyStatement(
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[image.repository_arn],
            ),
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.log_group.log_group_arn],
            ),
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints*"}},
            ),
        ]
