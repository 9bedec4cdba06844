"""Offline AWS for the Lambda tests: fake credentials, one region, and fresh clients per test."""

from __future__ import annotations

import json
from typing import Any

import boto3

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def sqs_event(*bodies: str, receive_count: int = 1) -> dict[str, Any]:
    """An SQS event as Lambda delivers it."""
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "0", "SenderId": "x", "ApproximateFirstReceiveTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": "x",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:source",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


def drain(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        for m in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def event_sink(pattern: dict[str, Any]) -> tuple[Any, str]:
    """An EventBridge client and a queue that receives what ``pattern`` matches on the default bus."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="runs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="runs", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="runs", Targets=[{"Id": "q", "Arn": arn}])
    return events, queue


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000
