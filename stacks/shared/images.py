"""Container image URIs per region, from the SageMaker Python SDK's own image tables.

The SDK ships one JSON table per framework (account per region, repository, tags). Reading it at
synth time makes no AWS call; the template gets a ``Mappings`` section keyed by region, so one
template deploys to every region the SDK lists and fails with a clear ``FindInMap`` error elsewhere.

The tables are read here directly, not through ``sagemaker.core.image_uris.retrieve``: importing
the SDK takes seconds and ``retrieve`` reloads botocore's endpoint table on every call (a 37-region
table costs seconds more), which made up most of a synth. :func:`image_uri` follows ``retrieve``'s
rules for what the app asks (no instance type, accelerator or Python version) and refuses the rest;
tests/stacks/shared/test_images.py compares every table the configuration allows with ``retrieve``.
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path

from aws_cdk import Aws, CfnMapping, Stack
from constructs import Construct


@cache
def _tables_dir() -> Path:
    # Located without importing the SDK (find_spec of a top-level package does not import it).
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the SageMaker Python SDK (sagemaker, requirements.txt) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "core" / "image_uri_config"


@cache
def _table(framework: str) -> dict:
    """The SDK's table for ``framework`` (``image_uris.config_for_framework``)."""
    return json.loads((_tables_dir() / f"{framework}.json").read_text())


@cache
def _ecr_hostname(region: str) -> str:
    """ECR's API host in ``region``, from botocore's endpoint table as ``retrieve`` takes it."""
    endpoint = _endpoint_resolver().construct_endpoint("ecr", region)
    if region == "il-central-1" and not endpoint:  # retrieve's own fallback
        endpoint = {"hostname": f"ecr.{region}.amazonaws.com"}
    return endpoint["hostname"]


@cache
def _endpoint_resolver():
    from botocore import loaders, regions

    return regions.EndpointResolver(loaders.create_loader().load_data("endpoints"))


def _one_of(value: str | None, options, what: str) -> str:
    if value not in options:
        raise ValueError(f"unsupported {what}: {value}; the SDK's table has {', '.join(options)}")
    return value


def _scoped(framework: str, image_scope: str | None) -> dict:
    """The part of the table for ``image_scope`` (``retrieve``'s ``_config_for_framework_and_scope``)."""
    table = _table(framework)
    scopes = table.get("scope", list(table))
    if image_scope is None and framework in ("xgboost", "sklearn"):
        image_scope = "training"  # retrieve's default for these two (their tables dropped "scope")
    if len(scopes) == 1:
        image_scope = scopes[0]
    if image_scope is None and "scope" in table and set(scopes) == {"training", "inference"}:
        image_scope = scopes[0]
    _one_of(image_scope, scopes, f"{framework} image scope")
    return table if "scope" in table else table[image_scope]


def _only(options, what: str) -> str | None:
    """The single option, None for none; several need an argument the app never passes."""
    if not options:
        return None
    if len(options) > 1:
        raise ValueError(f"{what} must be chosen among {', '.join(options)}, which this app does not support")
    return options[0]


@cache
def image_uri(framework: str, region: str, version: str | None = None, *, image_scope: str | None = None) -> str:
    """``sagemaker.core.image_uris.retrieve(framework, region, version=version, image_scope=image_scope)``."""
    if image_scope == "inference_graviton":
        raise ValueError("Graviton inference images are not supported")
    scoped = _scoped(framework, image_scope)
    versions = list(scoped["versions"])
    aliases = scoped.get("version_aliases", {})
    if len(versions) == 1 and version not in aliases:
        version = versions[0]
    _one_of(version, versions + list(aliases), f"{framework} version")
    config = scoped["versions"][aliases.get(version, version)]
    py_versions = config.get("py_versions") if "repository" in config else list(config)  # else keyed by Python version
    py_version = _only(py_versions, f"{framework} {version}'s Python version")
    config = config.get(py_version) or config
    account = config["registries"][_one_of(region, list(config["registries"]), "region")]
    repository = config["repository"]
    # retrieve builds these tags from arguments the app never passes (SDK versions, base frameworks).
    special = (f"{framework}-inference-graviton", f"{framework}-inference-arm64")
    if repository in special or "neuron" in repository or "huggingface" in framework:
        raise ValueError(f"{framework} images need arguments this app does not support")
    processor = _only(scoped.get("processors") or config.get("processors"), f"{framework} {version}'s processor")
    container_version = config["container_version"][processor] if config.get("container_version") else None
    if not config.get("processor_in_tag", True):
        processor = None
    tag = "-".join(part for part in (config.get("tag_prefix", version), processor, py_version, container_version) if part)
    return f"{account}.dkr.{_ecr_hostname(region)}/{repository}" + (f":{tag}" if tag else "")


@cache
def framework_versions(framework: str) -> tuple[str, ...]:
    """Versions of ``framework`` with an inference image in the SDK's table."""
    return tuple(_table(framework)["inference"]["versions"])


@cache
def region_table(framework: str, version: str | None = None, *, image_scope: str | None = None) -> dict[str, str]:
    """``{region: image URI}`` for every region the SDK's table lists for this image."""
    config = _table(framework)
    scoped = config.get(image_scope, config) if image_scope else config
    versions = scoped["versions"]
    registries = versions[version if version is not None else next(iter(versions))]["registries"]
    return {region: image_uri(framework, region, version, image_scope=image_scope) for region in sorted(registries)}


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
    def for_model(cls, scope: Construct, construct_id: str, model) -> ContainerImage:
        """The serving image of ``model`` (``config.ModelConfig``): its own ``image_uri``, else the SDK's.

        Each stack that names the image builds its own: a stack reading another stack's mapping gets
        a copy of it that the CDK announces with an INFO annotation on every synthesis."""
        if model.image_uri is not None:
            return cls.from_uri(scope, construct_id, model.image_uri)
        return cls.from_sdk(scope, construct_id, framework=model.framework, version=model.framework_version, image_scope="inference")

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
