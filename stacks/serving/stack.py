"""The stateless half of the loop: one construct per concern, wired to the storage stack."""

from __future__ import annotations

from aws_cdk import CfnOutput, CfnParameter, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from lambdas.retraining.steps import RETRAINING_PREFIX
from lambdas.shared.aws import split_s3_uri
from stacks.shared.alerts import AlertTopic
from stacks.serving.bundled_model import BundledModel
from stacks.shared.config import AppConfig
from stacks.shared.images import ContainerImage
from stacks.serving.inference import ModelEndpoint
from stacks.shared.ops_parameters import OpsParameters
from stacks.storage.stack import StorageStack


class ServingStack(Stack):
    """Serve and capture: the model, its endpoint and the bundled artefacts it starts from."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, storage: StorageStack, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.parameters = OpsParameters(self)
        # Batch only (serving.endpoint false): no endpoint, so no capture sampling to set and no model
        # resource to deploy from the served-model parameter (each nightly run reads it: stacks/batch).
        sampling = (
            self.parameters.add(
                "CaptureSamplingPercentage",
                group="Data capture",
                label="Capture sampling percentage",
                description="Percentage of endpoint requests whose input and output are captured to S3 (0-100).",
                type="Number",
                default=config.capture.sampling_percentage,
                min_value=0,
                max_value=100,
            )
            if config.serving.endpoint
            else None
        )

        self.alerts = AlertTopic(self, "Alerts", parameters=self.parameters, key=storage.key, display_name=f"{config.app_name} {config.environment} alerts")

        image = ContainerImage.for_model(self, "InferenceImage", config.model)

        self.bundled_model: BundledModel | None = None
        if config.model.is_bundled:
            self.bundled_model = BundledModel(
                self,
                "BundledModel",
                models_bucket=storage.models,
                datasets_bucket=storage.datasets,
                key=storage.key,
                retain_logs=config.retain_data,
            )
            model_data_arn = storage.models.arn_for_objects(self.bundled_model.model_key)
        else:
            bucket_name, model_key = split_s3_uri(config.model.artifact_s3_uri)
            model_data_arn = s3.Bucket.from_bucket_name(self, "ModelArtifactBucket", bucket_name).arn_for_objects(model_key)

        # The model serves what the storage stack's served-model parameter names now. "CloudFormation
        # always fetches the latest values from Parameter Store when it updates stacks", also when the
        # console's "Use existing value" is chosen (that keeps the key, not its value), so an update (a
        # changed sampling percentage, say) deploys the promoted model, never the one this template knew.
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/systems-manager-parameter-types.html
        served = (
            CfnParameter(
                self,
                "ServedModelDataUrl",
                type="AWS::SSM::Parameter::Value<String>",
                default=config.served_model_parameter,
                description="Name of the SSM parameter holding the served model's ModelDataUrl (kept by the storage stack and retraining).",
            )
            if config.serving.endpoint
            else None
        )
        self.inference = ModelEndpoint(
            self,
            "Inference",
            config=config,
            image=image,
            model_data_url=served.value_as_string if served is not None else None,
            model_data_arn=model_data_arn,
            # Models the retraining state machine trains and Promote names in the parameter.
            retrained_models_arn=storage.models.arn_for_objects(f"{RETRAINING_PREFIX}/*") if config.retraining.enabled else None,
            capture_bucket=storage.capture,
            key=storage.key,
            sampling_percentage=sampling.value_as_number if sampling is not None else None,
        )
        if self.bundled_model is not None and self.inference.model is not None:
            for deployment in self.bundled_model.deployments:
                self.inference.model.node.add_dependency(deployment)

        if self.inference.deployed:
            CfnOutput(self, "EndpointName", value=self.inference.endpoint_name, description="SageMaker endpoint to invoke")
            CfnOutput(
                self,
                "CaptureS3Uri",
                value=f"{self.inference.capture_s3_uri}/{self.inference.endpoint_name}/{self.inference.variant_name}/",
                description="Where captured requests and responses land, under yyyy/mm/dd/hh/ (UTC)",
            )
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn, description="SNS topic every alarm of the app notifies")
        if self.inference.model is not None:
            CfnOutput(self, "ModelName", value=self.inference.model.attr_model_name, description="SageMaker model this stack deployed")
        CfnOutput(self, "ServedModelParameter", value=config.served_model_parameter, description="SSM parameter naming the ModelDataUrl this stack deploys")
        if self.bundled_model is not None:
            CfnOutput(self, "TrainingDataS3Uri", value=self.bundled_model.train_s3_uri, description="Bundled model's training CSV (label first, no header)")
            CfnOutput(self, "TestDataS3Uri", value=self.bundled_model.test_s3_uri, description="Bundled model's held-out test CSV")
