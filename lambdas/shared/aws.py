"""boto3 clients with the ``standard`` retry mode, created on first use and replaceable in tests.

boto3 defaults to the ``legacy`` retry mode, which does not back off on throttling the way AWS
recommends: https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
"""

from __future__ import annotations

from functools import cache
from typing import Any

RETRIES = {"mode": "standard", "max_attempts": 5}


@cache
def client(service: str) -> Any:
    # boto3 is imported here, not with the module: the stacks import this module (split_s3_uri) at
    # every synth, which makes no AWS call and should not pay for loading boto3.
    import boto3
    from botocore.config import Config

    return boto3.client(service, config=Config(retries=RETRIES))


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ValueError for anything else."""
    if not isinstance(uri, str) or not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    if not bucket or not key:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return bucket, key


def key_listed(s3: Any, bucket: str, key: str) -> bool:
    """Whether ``key`` exists, by listing it (it sorts first among the keys it is a prefix of).

    S3 answers GetObject of a missing key with 404 only to a caller whose ListBucket allows it and
    with 403 AccessDenied otherwise, and AWS does not document which ``s3:prefix`` it evaluates for
    that decision. A ListObjectsV2 with ``Prefix=key`` is documented to be checked against
    ``s3:prefix`` = that prefix, so roles whose ListBucket is limited to a prefix settle a 403 here.
    """
    contents = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents") or []
    return any(item.get("Key") == key for item in contents)


def park(sqs: Any, queue_url: str, body: str, reason: str, source: str, group_id: str | None = None) -> None:
    """Put a message that cannot be processed on a dead-letter queue with its reason.

    The message keeps its original body, so a fixed consumer can take it back with an SQS redrive.
    A FIFO dead-letter queue (content-based deduplication) needs ``group_id``.
    """
    fifo = {"MessageGroupId": group_id} if group_id is not None else {}
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=body,
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason[:1000] or "unknown"},
            "source": {"DataType": "String", "StringValue": source},
        },
        **fifo,
    )
