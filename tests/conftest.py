"""Shared helpers: build the real app (same composition root as ``cdk synth``) from a config."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Powertools reads these when a handler module is imported, as it does in Lambda; the stacks and
# infra tests import handler modules too (the retraining execution test runs them), so they are set
# before anything below is imported.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MlLoopTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tests")

import pytest  # noqa: E402
from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

import app as composition_root  # noqa: E402
from stacks.batch.stack import BatchStack
from stacks.monitoring.stack import MonitoringStack
from stacks.retraining.stack import RetrainingStack
from stacks.operations.dashboard import DashboardStack
from stacks.review.stack import ReviewStack
from stacks.serving.stack import ServingStack
from stacks.storage.stack import StorageStack

ROOT = Path(__file__).resolve().parent.parent
CDK_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]


@dataclass
class SynthesisedApp:
    app: App
    storage: StorageStack
    serving: ServingStack
    monitoring: MonitoringStack | None
    review: ReviewStack | None
    retraining: RetrainingStack | None
    operations: DashboardStack
    batch: BatchStack | None = None

    def template(self, stack: str) -> Template:
        return Template.from_stack(getattr(self, stack))

    def template_json(self, stack: str) -> dict[str, Any]:
        return self.template(stack).to_json()


def build_app(tmp_path: Path, env: str = "dev", environment: dict[str, Any] | None = None) -> SynthesisedApp:
    """The app as ``cdk synth -c env=ENV`` builds it, with ``environment`` replacing that entry."""
    context = copy.deepcopy(CDK_CONTEXT)
    if environment is not None:
        context["environments"][env] = environment
    context["env"] = env
    app = App(context=context, outdir=str(tmp_path))
    return SynthesisedApp(app, *composition_root.build(app))


@pytest.fixture(scope="session")
def dev_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedApp:
    built = build_app(tmp_path_factory.mktemp("dev"))
    built.app.synth()  # runs the cdk-nag packs: raises on any unacknowledged finding
    return built


@pytest.fixture(scope="session")
def prod_app(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedApp:
    built = build_app(tmp_path_factory.mktemp("prod"), env="prod")
    built.app.synth()
    return built
