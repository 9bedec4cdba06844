"""The SageMaker monitoring back end (Model Monitor and Clarify), which ``monitoring.backend:
sagemaker`` selects: the tests written for it build the app with that key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import CDK_CONTEXT, SynthesisedApp, build_app


def with_backend(backend: str, environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """``environment`` (default: cdk.json's dev entry) with ``monitoring.backend`` set."""
    merged = copy.deepcopy(CDK_CONTEXT["environments"]["dev"] if environment is None else environment)
    merged.setdefault("monitoring", {})["backend"] = backend
    return merged


def sagemaker_build(tmp_path, environment: dict[str, Any] | None = None, env: str = "dev") -> SynthesisedApp:
    return build_app(tmp_path, env=env, environment=with_backend("sagemaker", environment))


@pytest.fixture(scope="session")
def sagemaker_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedApp:
    """The dev environment on the SageMaker back end, synthesised; ``nag_failure`` is what synth
    raised (the cdk-nag packs' unacknowledged findings), None when it passed."""
    built = sagemaker_build(tmp_path_factory.mktemp("sagemaker"))
    try:
        built.app.synth()
        built.nag_failure = None
    except RuntimeError as failure:  # ValidationFailed, listing every unacknowledged finding
        built.nag_failure = str(failure)
    return built
