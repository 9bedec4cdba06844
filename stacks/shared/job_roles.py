"""What a SageMaker job's role needs: the data its request names (derived here from the request
itself, so an input added to a request cannot miss its grant), and what every job needs besides
(the app's key for reading, its image, its logs and metrics).

https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html (CreateProcessingJob and
CreateTrainingJob permissions): ``s3:ListBucket`` on each bucket an input names, ``s3:GetObject``
on the objects read, ``s3:PutObject`` under each output, ``kms:Encrypt`` for an output
``KmsKeyId`` and ``kms:CreateGrant`` for a ``VolumeKmsKeyId``. The page scopes ListBucket to the
bucket and documents no prefix condition SageMaker's listing would satisfy, so it is bucket-level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import ArnFormat, Aws, Fn, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.shared.images import ContainerImage

# An output KmsKeyId: kms:Encrypt (sagemaker-roles page); SageMaker writes the output to S3 with
# SSE-KMS under that key, which takes kms:GenerateDataKey, and kms:Decrypt for a multipart upload
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html#require-sse-kms).
OUTPUT_KEY_ACTIONS = ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")
# A VolumeKmsKeyId: kms:CreateGrant (sagemaker-roles page), for AWS resources only (the volume).
VOLUME_KEY_ACTIONS = ("kms:CreateGrant",)
# S3DataType values whose objects the request itself names (all objects under the key prefix).
_PREFIX_TYPES = ("S3Prefix",)


@dataclass
class JobData:
    """The S3 locations and keys a job request names, as IAM resource ARNs (tokens allowed)."""

    reads: list[str] = field(default_factory=list)  # object ARN patterns: s3:GetObject
    lists: list[str] = field(default_factory=list)  # bucket ARNs: s3:ListBucket
    writes: list[str] = field(default_factory=list)  # object ARN patterns: s3:PutObject
    output_keys: list[str] = field(default_factory=list)
    volume_keys: list[str] = field(default_factory=list)

    def add(self, attribute: str, *values: Any) -> None:
        items = getattr(self, attribute)
        for value in values:
            if value is not None and value not in items:
                items.append(value)


def _bucket_arn(bucket: str) -> str:
    return f"arn:{Aws.PARTITION}:s3:::{bucket}"


def s3_location(uri: str) -> tuple[str, str]:
    """(bucket ARN, ARN of the object key ``uri`` names, without a trailing wildcard). An ``s3://``
    URI is split here (its bucket may be a token); a URI that is a token as a whole (a parameter, an
    attribute) is split by CloudFormation at deploy time."""
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
        return _bucket_arn(bucket), f"{_bucket_arn(bucket)}/{key}"
    if Token.is_unresolved(uri):
        bucket = Fn.select(2, Fn.split("/", uri))
        return _bucket_arn(bucket), Fn.join("", [f"arn:{Aws.PARTITION}:s3:::", Fn.select(1, Fn.split("s3://", uri))])
    raise ValueError(f"not an s3://bucket/key URI: {uri!r}")


def _read(data: JobData, uri: str, data_type: str, where: str) -> None:
    if data_type not in _PREFIX_TYPES:
        # A manifest names its objects in S3, not in the request: nothing here could grant them.
        raise ValueError(f"{where}: S3DataType {data_type!r} is not derivable from the request; only {', '.join(_PREFIX_TYPES)}")
    bucket, key = s3_location(uri)
    data.add("lists", bucket)
    data.add("reads", f"{key}*")  # every object whose key starts with the prefix


def _folder(uri: str) -> tuple[str, str]:
    """An output or checkpoint location: SageMaker writes objects under it."""
    bucket, key = s3_location(uri.rstrip("/") if uri.startswith("s3://") else uri)
    return bucket, f"{key}/*"


def job_data(request: Mapping[str, Any]) -> JobData:
    """What a CreateProcessingJob, CreateTrainingJob or CreateTransformJob request reads, lists, writes and encrypts with.

    Processing: ``ProcessingInputs[].S3Input``, ``ProcessingOutputConfig{Outputs[].S3Output, KmsKeyId}``,
    ``ProcessingResources.ClusterConfig.VolumeKmsKeyId``; the baseline custom resource's ``Documents``
    (an input fed by a document reads under the first output, where the handler writes it).
    Training: ``InputDataConfig[].DataSource.S3DataSource``, ``OutputDataConfig{S3OutputPath, KmsKeyId}``,
    ``CheckpointConfig.S3Uri`` (read and written), ``ResourceConfig.VolumeKmsKeyId``.
    A request whose URIs are known only at run time (Step Functions paths) passes, at synth time,
    the S3 prefix they fall under. Input kinds whose objects the request does not name (manifests,
    dataset definitions, file systems) raise ValueError rather than yield a grant that cannot work.
    """
    data = JobData()
    output_config = request.get("ProcessingOutputConfig") or {}
    outputs = output_config.get("Outputs", [])
    for output in outputs:
        if "S3Output" not in output:
            raise ValueError(f"processing output {output.get('OutputName')!r}: only S3Output is derivable")
        data.add("writes", _folder(output["S3Output"]["S3Uri"])[1])
    document_inputs = {spec.get("Input") for spec in (request.get("Documents") or {}).values()} - {None}
    for item in request.get("ProcessingInputs", []):
        name = item.get("InputName")
        if "S3Input" not in item:
            raise ValueError(f"processing input {name!r}: only S3Input is derivable")
        s3_input = item["S3Input"]
        if "S3Uri" in s3_input:
            _read(data, s3_input["S3Uri"], s3_input.get("S3DataType", ""), f"processing input {name!r}")
        elif name in document_inputs and outputs:
            bucket, objects = _folder(outputs[0]["S3Output"]["S3Uri"])
            data.add("lists", bucket)
            data.add("reads", objects)
        else:
            raise ValueError(f"processing input {name!r} has no S3Uri and no document feeds it")
    data.add("output_keys", output_config.get("KmsKeyId"))
    data.add("volume_keys", ((request.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get("VolumeKmsKeyId"))

    for channel in request.get("InputDataConfig", []):
        name = channel.get("ChannelName")
        source = channel.get("DataSource", {})
        if "S3DataSource" not in source:
            raise ValueError(f"training channel {name!r}: only S3DataSource is derivable")
        _read(data, source["S3DataSource"]["S3Uri"], source["S3DataSource"].get("S3DataType", ""), f"training channel {name!r}")
    training_output = request.get("OutputDataConfig") or {}
    if "S3OutputPath" in training_output:
        data.add("writes", _folder(training_output["S3OutputPath"])[1])
    data.add("output_keys", training_output.get("KmsKeyId"))
    checkpoint = (request.get("CheckpointConfig") or {}).get("S3Uri")
    if checkpoint is not None:
        bucket, objects = _folder(checkpoint)
        data.add("lists", bucket)
        data.add("reads", objects)
        data.add("writes", objects)
    data.add("volume_keys", (request.get("ResourceConfig") or {}).get("VolumeKmsKeyId"))

    # CreateTransformJob (the model's execution role runs it): TransformInput.DataSource.S3DataSource,
    # TransformOutput{S3OutputPath, KmsKeyId}, TransformResources.VolumeKmsKeyId.
    transform_input = (request.get("TransformInput") or {}).get("DataSource")
    if transform_input is not None:
        if "S3DataSource" not in transform_input:
            raise ValueError("transform input: only S3DataSource is derivable")
        _read(data, transform_input["S3DataSource"]["S3Uri"], transform_input["S3DataSource"].get("S3DataType", ""), "transform input")
    transform_output = request.get("TransformOutput") or {}
    if "S3OutputPath" in transform_output:
        data.add("writes", _folder(transform_output["S3OutputPath"])[1])
    data.add("output_keys", transform_output.get("KmsKeyId"))
    data.add("volume_keys", (request.get("TransformResources") or {}).get("VolumeKmsKeyId"))
    return data


def job_data_statements(requests: Iterable[Mapping[str, Any]]) -> list[iam.PolicyStatement]:
    """The IAM statements a job role needs for every request in ``requests`` (a role that runs
    several kinds of job, e.g. a monitor's baseline, its retraining variant and its scheduled runs)."""
    merged = JobData()
    for request in requests:
        data = job_data(request)
        for attribute in ("reads", "lists", "writes", "output_keys", "volume_keys"):
            merged.add(attribute, *getattr(data, attribute))
    statements = []
    if merged.reads:
        statements.append(iam.PolicyStatement(actions=["s3:GetObject"], resources=merged.reads))
    if merged.lists:
        statements.append(iam.PolicyStatement(actions=["s3:ListBucket"], resources=merged.lists))
    if merged.writes:
        statements.append(iam.PolicyStatement(actions=["s3:PutObject"], resources=merged.writes))
    if merged.output_keys:
        statements.append(iam.PolicyStatement(actions=list(OUTPUT_KEY_ACTIONS), resources=merged.output_keys))
    if merged.volume_keys:
        statements.append(
            iam.PolicyStatement(actions=list(VOLUME_KEY_ACTIONS), resources=merged.volume_keys, conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}})
        )
    return statements


def job_runtime_statements(scope: Construct, *, image: ContainerImage, key: kms.IKey, log_group: str, metrics_namespace: str) -> list[iam.PolicyStatement]:
    """Reading objects the app's key encrypts (its buckets use SSE-KMS; a request does not say how
    its inputs are encrypted), pulling ``image``, writing to ``/aws/sagemaker/<log_group>`` and
    metrics under namespaces matching ``metrics_namespace`` (ecr:GetAuthorizationToken and
    cloudwatch:PutMetricData take no resource; the latter is limited by that condition). The keys
    a request names get their grants from :func:`job_data_statements`."""
    stack = Stack.of(scope)
    return [
        iam.PolicyStatement(actions=["kms:Decrypt", "kms:DescribeKey"], resources=[key.key_arn]),
        iam.PolicyStatement(actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], resources=[image.repository_arn]),
        iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[stack.format_arn(service="logs", resource="log-group", resource_name=f"/aws/sagemaker/{log_group}:*", arn_format=ArnFormat.COLON_RESOURCE_NAME)],
        ),
        iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"], conditions={"StringLike": {"cloudwatch:namespace": metrics_namespace}}),
    ]
