"""Operations dashboard: one place with every part of the loop, rows only for the parts deployed."""

from __future__ import annotations

import json

from stacks.shared import aws_facts, default_model
from tests.conftest import build_app


def _widgets(built) -> list[dict]:
    [dashboard] = built.template("operations").find_resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "<ref>" for p in parts))["widgets"]  # every token sits inside a string


def _metric_names(widgets: list[dict]) -> set[tuple[str, str]]:
    return {(m[0], m[1]) for w in widgets for m in w.get("properties", {}).get("metrics", []) if isinstance(m[0], str) and not m[0].startswith("{")}


def _titles(widgets: list[dict]) -> list[str]:
    return [w["properties"].get("title", "") for w in widgets]


def test_dashboard_shows_endpoint_drift_shap_runs_and_review(dev_app) -> None:
    widgets = _widgets(dev_app)
    names = _metric_names(widgets)
    for metric in ("Invocations", "ModelLatency", "OverheadLatency", "Invocation4XXErrors", "Invocation5XXErrors"):
        assert (aws_facts.ENDPOINT_METRICS_NAMESPACE, metric) in names
    assert (aws_facts.ENDPOINT_INSTANCE_METRICS_NAMESPACE, "CPUUtilization") in names
    for feature in default_model.FEATURE_NAMES:
        assert (aws_facts.DATA_QUALITY_METRICS_NAMESPACE, f"feature_baseline_drift_{feature}") in names
        assert (aws_facts.EXPLAINABILITY_METRICS_NAMESPACE, f"feature_{feature}") in names
    assert ("MlLoop", "MonitoringRuns") in names and ("MlLoop", "LabelsWritten") in names and ("MlLoop", "HumanLoopsStarted") in names
    assert ("MlLoop", "RecordsNotExplained") in names
    titles = _titles(widgets)
    assert any(t.startswith("Global SHAP per feature") for t in titles) and "Human review backlog (messages waiting)" in titles
    shap = next(w for w in widgets if w["properties"].get("title", "").startswith("Global SHAP"))
    assert shap["properties"]["view"] == "bar"
    drift = [w for w in widgets if w["properties"].get("title", "").startswith("Data drift per feature")]
    assert len(drift) == 3 and all(w["properties"]["annotations"]["horizontal"][0]["value"] == 0.1 for w in drift)
    # SHAP metrics carry the dimensions Clarify publishes (Label is the positive label's name).
    shap_metric = shap["properties"]["metrics"][0]
    dims = dict(zip(shap_metric[2:-1:2], shap_metric[3:-1:2], strict=True))
    assert dims == {"Endpoint": "mlloop-dev", "MonitoringSchedule": "mlloop-dev-explainability", "ExplainabilityMethod": "KernelShap", "Label": "benign", "ValueType": "GlobalShapValues"}


def test_dashboard_leaves_out_the_parts_that_are_off(tmp_path) -> None:
    off = {"data_quality": {"enabled": False}, "explainability": {"enabled": False}}
    built = build_app(tmp_path, environment={"monitoring": off, "review": {"enabled": False}})
    widgets = _widgets(built)
    names = _metric_names(widgets)
    assert (aws_facts.ENDPOINT_METRICS_NAMESPACE, "Invocations") in names
    assert {namespace for namespace, _ in names} == {aws_facts.ENDPOINT_METRICS_NAMESPACE, aws_facts.ENDPOINT_INSTANCE_METRICS_NAMESPACE}
