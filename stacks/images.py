"""Container image URIs per region, from the SageMaker Python SDK's own image tables.

The SDK ships one JSON table per framework (account per region, repository, tags). Reading it at
synth time makes no AWS call; the template gets a ``Mappings`` section keyed by region, so one
template deploys to every region the SDK lists and fails with a clear ``FindInMap`` error elsewhere.
"""

from __future__ import annotations

import logging
from functools import cache

import re

from aws_cdk import Aws, CfnMapping, Stack
from constructs import Construct

# The SDK logs INFO lines ("Defaulting to only available Python version") on every lookup.
logging.getLogger("sagemaker").setLevel(logging.WARNING)


@cache
def _image_uris():
    from sagemaker.core import image_uris  # heavy import, deferred until an image is needed

    return image_uris


@cache
def framework_versions(framework: str) -> tuple[str, ...]:
    """Versions of ``framework`` with an inference image in the SDK's table."""
    table = _image_uris().config_for_framework(framework)["inference"]
    return tuple(table["versions"])


@cache
def region_table(framework: str, version: str | None = None, *, image_scope: str | None = None) -> dict[str, str]:
    """``{region: image URI}`` for every region the SDK's table lists for this image."""
    sdk = _image_uris()
    config = sdk.config_for_framework(framework)
    scoped = config.get(image_scope, config) if image_scope else config
    versions = scoped["versions"]
    registries = versions[version if version is not None else next(iter(versions))]["registries"]
    return {
        region: sdk.retrieve(framework, region, version=version, image_scope=image_scope)
        for region in sorted(registries)
    }


_ECR_URI = re.compile(r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.[^/]+/(?P<repository>[^:@]+)")


def _repository(uri: str) -> tuple[str, str]:
    """(account, repository name) of an ECR image URI."""
    match = _ECR_URI.match(uri)
    if match is None:
        raise ValueError(f"not an ECR image URI: {uri}")
    return match["account"], match["repository"]


class ContainerImage(Construct):
    """An image URI and its ECR repository ARN, for pulling the image with least privilege.

    ``ContainerImage.from_sdk`` resolves at deploy time to the image for the stack's region;
    ``ContainerImage.from_uri`` takes a fixed URI (bring your own container).
    """

    uri: str
    repository_arn: str

    @classmethod
    def from_sdk(
        cls, scope: Construct, construct_id: str, *, framework: str, version: str | None = None, image_scope: str | None = None
    ) -> ContainerImage:
        image = cls(scope, construct_id)
        table = region_table(framework, version, image_scope=image_scope)
        rows = {}
        for region, uri in table.items():
            account, repository = _repository(uri)
            rows[region] = {"uri": uri, "account": account, "repository": repository}
        mapping = CfnMapping(image, "Regions", mapping=rows)
        image.uri = mapping.find_in_map(Aws.REGION, "uri")
        image.repository_arn = Stack.of(image).format_arn(
            service="ecr",
            account=mapping.find_in_map(Aws.REGION, "account"),
            resource="repository",
            resource_name=mapping.find_in_map(Aws.REGION, "repository"),
        )
        return image

    @classmethod
    def from_uri(cls, scope: Construct, construct_id: str, uri: str) -> ContainerImage:
        image = cls(scope, construct_id)
        account, repository = _repository(uri)
        region = _ECR_URI.match(uri)["region"]
        image.uri = uri
        image.repository_arn = Stack.of(image).format_arn(
            service="ecr", region=region, account=account, resource="repository", resource_name=repository
        )
        return image
