"""The image tables read from the SDK's JSON files are what the SDK's ``retrieve`` returns."""

from __future__ import annotations

from functools import cache

import pytest

from stacks.shared import images
from stacks.shared.config import _supported_frameworks


@pytest.fixture(scope="module")
def retrieve():
    from sagemaker.core import common_utils, image_uris

    # retrieve reloads botocore's endpoint table on each call (seconds per table); one copy serves.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(common_utils, "_botocore_resolver", cache(common_utils._botocore_resolver))
        yield image_uris.retrieve


def _every_image_the_configuration_allows():
    yield "model-monitor", None, None
    yield "clarify", None, "processing"
    for framework in _supported_frameworks():
        for version in images.framework_versions(framework):
            for scope in ("inference", "training"):
                yield framework, version, scope


@pytest.mark.parametrize(("framework", "version", "image_scope"), list(_every_image_the_configuration_allows()))
def test_region_table_is_the_sdks_retrieve_for_every_region(retrieve, framework: str, version: str | None, image_scope: str | None) -> None:
    table = images.region_table(framework, version, image_scope=image_scope)
    assert len(table) >= 20
    assert table == {region: retrieve(framework, region, version=version, image_scope=image_scope) for region in table}


def test_the_tables_are_the_sdks_files(retrieve) -> None:
    from sagemaker.core import image_uris

    assert images._table("xgboost") == image_uris.config_for_framework("xgboost")


@pytest.mark.parametrize(
    ("framework", "version", "image_scope", "refused"),
    [
        ("xgboost", "0.1-0", "inference", "unsupported xgboost version: 0.1-0"),
        ("xgboost", "3.2-0", "eia", "unsupported xgboost image scope: eia"),
        ("xgboost", "1.5-1", "inference_graviton", "Graviton"),
        ("pytorch", "2.5", "inference", "processor must be chosen among cpu, gpu"),
    ],
)
def test_what_the_sdk_needs_more_arguments_for_is_refused(framework: str, version: str, image_scope: str, refused: str) -> None:
    with pytest.raises(ValueError, match=refused):
        images.image_uri(framework, "eu-west-1", version, image_scope=image_scope)


def test_unknown_region_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported region: mars-north-1"):
        images.image_uri("model-monitor", "mars-north-1")


def test_the_pinned_table_package_is_the_one_the_sdk_installs() -> None:
    """requirements-image-tables.txt (synthesis, no dependencies) pins what sagemaker installs for the tests."""
    from importlib.metadata import version
    from pathlib import Path

    pins = Path(__file__).resolve().parents[3] / "requirements-image-tables.txt"
    pinned = dict(line.split("==") for line in pins.read_text().splitlines() if line and not line.startswith("#"))
    assert pinned == {"sagemaker-core": version("sagemaker-core")}
