"""``monitoring.backend`` switches the monitoring back end: both synthesise with every cdk-nag
finding acknowledged and lint clean, and switching changes the monitoring stack and, in the other
stacks, exactly the parts that name a back end's monitors."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import SynthesisedApp
from tests.stacks.monitoring.conftest import sagemaker_app  # noqa: F401 (the fixture)
from tests.stacks.test_cfn_lint import LINT_REGIONS, lint, templates

STACKS = ("storage", "serving", "review", "monitoring", "retraining", "operations")
ASSET_HASH = re.compile(r"[0-9a-f]{64}")

# What differs outside the monitoring stack between the open back end (the default) and the
# SageMaker one, by stack and template section, and why.
OTHER_STACKS_DIFFER = {
    # Clarify explains the served model by name: the serving stack exports it for the monitoring stack.
    ("serving", "Outputs"): {"PublishOutputFnGetAttInferenceModelEF882A04ModelName7AC5AFBD"},
    # The open monitors' profiling in capture_filter: its environment (PROFILING, MONITORING_BUCKET, ...),
    # its grants (the current baseline, sketches/, samples/) and its description (and so its role's).
    ("review", "Resources"): {
        "PipelineCaptureCaptureFilterFunction8BD3DAA3",
        "PipelineCaptureCaptureFilterRoleDefaultPolicyCFC47D17",
        "PipelineCaptureCaptureFilterRoleEB8DF879",
    },
    ("retraining", "Resources"): {
        # Retraining re-baselines each back end's monitors its own way: SageMaker processing jobs in the
        # state machine, or the steps Lambda computing the open baselines (the steps function has the
        # explain layer with either: the promotion gate's paired bootstrap uses numpy).
        "WorkflowStateMachine8F1B1C15",
        "WorkflowStateMachineRoleDefaultPolicyB2EAF58E",  # PassRole to the monitors' job roles, processing-job .sync rules
    },
    # The Model Monitor and Clarify image tables the processing jobs' requests copy.
    ("retraining", "Mappings"): {"MappingCopyRegionsc8be137bd5e9e0191e023fa48333e07cff3ddad51d", "MappingCopyRegionsc8f02b900b37a9d756bfba14b62033111f337b0aab"},
    # The drift and SHAP rows read each back end's metrics, the alarms row its alarms.
    ("operations", "Resources"): {"Dashboard9E4231ED"},
}


def _normalised(built: SynthesisedApp, stack: str) -> dict:
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(built.template_json(stack), sort_keys=True)))


def _differences(one: SynthesisedApp, other: SynthesisedApp) -> dict[tuple[str, str], set[str]]:
    """(stack, section) -> the logical IDs (or names) whose definitions differ, outside the monitoring stack."""
    found: dict[tuple[str, str], set[str]] = {}
    for stack in STACKS:
        if stack == "monitoring":
            continue
        a, b = _normalised(one, stack), _normalised(other, stack)
        for section in set(a) | set(b):
            left, right = a.get(section, {}), b.get(section, {})
            if not isinstance(left, dict) or not isinstance(right, dict):
                if left != right:
                    found[(stack, section)] = {"<the whole section>"}
                continue
            keys = {k for k in set(left) | set(right) if left.get(k) != right.get(k)}
            if keys:
                found[(stack, section)] = keys
    return found


def test_switching_backends_changes_the_monitoring_stack_and_only_the_parts_of_others_that_name_it(dev_app, sagemaker_app) -> None:
    assert (dev_app.monitoring.backend, sagemaker_app.monitoring.backend) == ("open", "sagemaker")
    assert _normalised(dev_app, "monitoring") != _normalised(sagemaker_app, "monitoring")
    assert _differences(dev_app, sagemaker_app) == OTHER_STACKS_DIFFER


def test_the_monitoring_stack_holds_each_back_ends_own_resources(dev_app, sagemaker_app) -> None:
    def types(built: SynthesisedApp) -> set[str]:
        return {r["Type"] for r in built.template_json("monitoring")["Resources"].values()}

    open_only = {"Custom::OpenDataQualityBaseline", "Custom::OpenExplainabilityBaseline"}
    # The model-quality monitor is the app's own with either back end.
    model_quality = {"AWS::Scheduler::Schedule", "AWS::Lambda::EventInvokeConfig", "Custom::OpenModelQualityBaseline"}
    sagemaker_only = {
        "AWS::SageMaker::MonitoringSchedule", "AWS::SageMaker::DataQualityJobDefinition", "AWS::SageMaker::ModelExplainabilityJobDefinition",
        "Custom::DataQualityBaseline", "Custom::ExplainabilityBaseline", "AWS::StepFunctions::StateMachine", "AWS::Lambda::EventSourceMapping",
    }  # fmt: skip
    assert open_only <= types(dev_app) and not sagemaker_only & types(dev_app)
    assert sagemaker_only <= types(sagemaker_app) and not open_only & types(sagemaker_app)
    assert model_quality <= types(dev_app) and model_quality <= types(sagemaker_app)
    # The names every consumer relies on are the same.
    for built in (dev_app, sagemaker_app):
        monitoring = built.monitoring
        assert [m.schedule_name for m in monitoring.monitors] == ["mlloop-dev-data-quality", "mlloop-dev-explainability", "mlloop-dev-model-quality"]
        assert [m.kind for m in monitoring.monitors] == ["data-quality", "explainability", "model-quality"]
        assert monitoring.data_quality.drift_alarm_prefix == "mlloop-dev-drift-" and len(monitoring.data_quality.drift_alarms) == 30
        assert monitoring.events.event_source == "mlloop.monitoring"
    # The stack's description names its back end.
    assert dev_app.template_json("monitoring")["Description"].startswith("mlloop model loop (dev): open monitoring back end (Lambda and EventBridge Scheduler)")
    assert sagemaker_app.template_json("monitoring")["Description"] == "mlloop model loop (dev): Model Monitor data quality and Clarify explainability: baselines, schedules, alarms"


def test_the_sagemaker_back_end_synthesises_nag_clean(sagemaker_app) -> None:
    # The default (open) back end is checked by every test using dev_app (its synth raises on a finding).
    assert sagemaker_app.nag_failure is None
    assert {t.name for t in templates(sagemaker_app)} == {f"{s.title()}.template.json" for s in STACKS}


@pytest.mark.parametrize("stack", ["Storage", "Serving", "Review", "Monitoring", "Retraining", "Operations"])
def test_the_sagemaker_back_end_lints_clean(sagemaker_app, stack: str) -> None:
    [template] = [t for t in templates(sagemaker_app) if t.name == f"{stack}.template.json"]
    assert lint(template, LINT_REGIONS) == []


def test_an_unknown_backend_fails_synth_with_the_allowed_values(tmp_path) -> None:
    from stacks.shared.config import ConfigError
    from tests.conftest import build_app

    with pytest.raises(ConfigError, match=r"environments\.dev\.monitoring\.backend: 'clarify' is not allowed; allowed values: open, sagemaker"):
        build_app(tmp_path, environment={"monitoring": {"backend": "clarify"}})
