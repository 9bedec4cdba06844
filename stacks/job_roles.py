"""What every SageMaker job role needs besides its data: the app's key, its image, its logs and metrics.

https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html (CreateProcessingJob and
CreateTrainingJob permissions).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.images import ContainerImage


def job_runtime_statements(scope: Construct, *, image: ContainerImage, key: kms.IKey, log_group: str, metrics_namespace: str) -> list[iam.PolicyStatement]:
    """KMS on the app's key, pulling ``image``, writing to ``/aws/sagemaker/<log_group>`` and
    metrics under namespaces matching ``metrics_namespace`` (ecr:GetAuthorizationToken and
    cloudwatch:PutMetricData take no resource; the latter is limited by that condition)."""
    stack = Stack.of(scope)
    return [
        iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], resources=[key.key_arn]),
        iam.PolicyStatement(actions=["kms:CreateGrant"], resources=[key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}),
        iam.PolicyStatement(actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], resources=[image.repository_arn]),
        iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[stack.format_arn(service="logs", resource="log-group", resource_name=f"/aws/sagemaker/{log_group}:*", arn_format=ArnFormat.COLON_RESOURCE_NAME)],
        ),
        iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"], conditions={"StringLike": {"cloudwatch:namespace": metrics_namespace}}),
    ]
