"""The SageMaker monitoring back end's app, for the retraining tests of its baseline jobs (the
default, open back end computes its baselines in the steps Lambda): synthesised once per session."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import CDK_CONTEXT, SynthesisedApp, build_app


@pytest.fixture(scope="session")
def sagemaker_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedApp:
    environment = copy.deepcopy(CDK_CONTEXT["environments"]["dev"])
    environment.setdefault("monitoring", {})["backend"] = "sagemaker"
    built = build_app(tmp_path_factory.mktemp("sagemaker"), environment=environment)
    built.app.synth()  # the cdk-nag packs, as for dev_app
    return built
