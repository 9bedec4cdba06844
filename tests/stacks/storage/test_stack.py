"""Intent of the stateful stack: one rotating CMK, SSL-only versioned logged buckets."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from stacks.storage.stack import DATA_BUCKETS


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("storage")


def test_customer_managed_key_rotates(template: Template) -> None:
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/mlloop-dev"})


def test_key_lets_cloudwatch_logs_encrypt_this_accounts_log_groups(template: Template) -> None:
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": {"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}},
                                "Condition": {
                                    "ArnLike": {
                                        "kms:EncryptionContext:aws:logs:arn": {
                                            "Fn::Join": [
                                                "",
                                                [
                                                    "arn:",
                                                    {"Ref": "AWS::Partition"},
                                                    ":logs:",
                                                    {"Ref": "AWS::Region"},
                                                    ":",
                                                    {"Ref": "AWS::AccountId"},
                                                    ":log-group:*",
                                                ],
                                            ]
                                        }
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


@pytest.mark.parametrize("name", DATA_BUCKETS)
def test_each_data_bucket_is_kms_encrypted_private_versioned_and_logged(dev_app, template: Template, name: str) -> None:
    bucket = dev_app.storage.buckets[name]
    key_id = dev_app.storage.get_logical_id(dev_app.storage.key.node.default_child)
    logs_id = dev_app.storage.get_logical_id(dev_app.storage.access_logs.node.default_child)
    resource = template.to_json()["Resources"][dev_app.storage.get_logical_id(bucket.node.default_child)]
    properties = resource["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {
            "BucketKeyEnabled": True,
            "ServerSideEncryptionByDefault": {
                "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
                "SSEAlgorithm": "aws:kms",
            },
        }
    ]
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": logs_id},
        "LogFilePrefix": f"{name}/",
    }


def test_every_bucket_denies_requests_without_tls(dev_app, template: Template) -> None:
    policies = template.find_resources("AWS::S3::BucketPolicy")
    secured = set()
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} and statement["Effect"] == "Deny":
                secured.add(policy["Properties"]["Bucket"]["Ref"])
    buckets = set(template.find_resources("AWS::S3::Bucket"))
    assert secured == buckets and len(buckets) == len(DATA_BUCKETS) + 1


def test_access_log_bucket_uses_sse_s3_because_s3_log_delivery_requires_it(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "LoggingConfiguration": Match.absent(),
        },
    )


def test_dev_data_is_removed_with_the_stack(template: Template) -> None:
    for resource in template.find_resources("AWS::S3::Bucket").values():
        assert resource["DeletionPolicy"] == "Delete"
    template.resource_count_is("Custom::S3AutoDeleteObjects", len(DATA_BUCKETS) + 1)


def test_prod_data_is_retained_and_the_stack_protected(prod_app) -> None:
    template = prod_app.template("storage")
    for resource in [*template.find_resources("AWS::S3::Bucket").values(), *template.find_resources("AWS::KMS::Key").values()]:
        assert resource["DeletionPolicy"] == "Retain"
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    assert prod_app.storage.termination_protection is True


def test_outputs_name_every_bucket(template: Template) -> None:
    outputs = template.find_outputs("*")
    assert {f"{name.capitalize()}BucketName" for name in DATA_BUCKETS} | {"DataKeyArn"} <= set(outputs)
