"""Operations dashboard: one place with every part of the loop, rows only for the parts deployed;
the same rows for either monitoring back end, each with its own metrics."""

from __future__ import annotations

import json

import pytest

from stacks.shared import aws_facts, default_model
from tests.conftest import build_app

SERVICE = "mlloop-dev-monitoring-runs"
# Per back end: (namespace, dimensions) of the drift graphs and of the SHAP row.
BACKENDS = {
    "sagemaker": (
        (aws_facts.DATA_QUALITY_METRICS_NAMESPACE, {"Endpoint": "mlloop-dev", "MonitoringSchedule": "mlloop-dev-data-quality"}),
        # SHAP metrics carry the dimensions Clarify publishes (Label is the positive label's name).
        (aws_facts.EXPLAINABILITY_METRICS_NAMESPACE, {"Endpoint": "mlloop-dev", "MonitoringSchedule": "mlloop-dev-explainability", "ExplainabilityMethod": "KernelShap", "Label": "benign", "ValueType": "GlobalShapValues"}),
    ),
    # The open evaluators' EMF metrics (Powertools adds service).
    "open": (
        ("MlLoop", {"Endpoint": "mlloop-dev", "MonitoringSchedule": "mlloop-dev-data-quality", "service": SERVICE}),
        ("MlLoop", {"Endpoint": "mlloop-dev", "MonitoringSchedule": "mlloop-dev-explainability", "service": SERVICE}),
    ),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend_app(request, dev_app, tmp_path_factory):
    """The dev app on each monitoring back end (open is the default)."""
    if request.param == "open":
        return "open", dev_app
    from tests.stacks.monitoring.conftest import sagemaker_build

    return "sagemaker", sagemaker_build(tmp_path_factory.mktemp("dashboard-sagemaker"))


def _widgets(built) -> list[dict]:
    [dashboard] = built.template("operations").find_resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "<ref>" for p in parts))["widgets"]  # every token sits inside a string


def _metric_names(widgets: list[dict]) -> set[tuple[str, str]]:
    return {(m[0], m[1]) for w in widgets for m in w.get("properties", {}).get("metrics", []) if isinstance(m[0], str) and not m[0].startswith("{")}


def _titles(widgets: list[dict]) -> list[str]:
    return [w["properties"].get("title", "") for w in widgets]


def _dimensions(metric: list) -> dict:
    return dict(zip(metric[2:-1:2], metric[3:-1:2], strict=True))


def test_dashboard_shows_endpoint_drift_shap_runs_and_review(backend_app) -> None:
    backend, built = backend_app
    (drift_namespace, drift_dimensions), (shap_namespace, shap_dimensions) = BACKENDS[backend]
    widgets = _widgets(built)
    names = _metric_names(widgets)
    for metric in ("Invocations", "ModelLatency", "OverheadLatency", "Invocation4XXErrors", "Invocation5XXErrors"):
        assert (aws_facts.ENDPOINT_METRICS_NAMESPACE, metric) in names
    assert (aws_facts.ENDPOINT_INSTANCE_METRICS_NAMESPACE, "CPUUtilization") in names
    for feature in default_model.FEATURE_NAMES:
        assert (drift_namespace, f"feature_baseline_drift_{feature}") in names
        assert (shap_namespace, f"feature_{feature}") in names
    assert ("MlLoop", "MonitoringRuns") in names and ("MlLoop", "LabelsWritten") in names and ("MlLoop", "HumanLoopsStarted") in names
    assert ("MlLoop", "RecordsNotExplained") in names
    titles = _titles(widgets)
    assert any(t.startswith("Global SHAP per feature") for t in titles) and "Human review backlog (messages waiting)" in titles
    shap = next(w for w in widgets if w["properties"].get("title", "").startswith("Global SHAP"))
    assert shap["properties"]["view"] == "bar"
    drift = [w for w in widgets if w["properties"].get("title", "").startswith("Data drift per feature")]
    assert len(drift) == 3 and all(w["properties"]["annotations"]["horizontal"][0]["value"] == 0.1 for w in drift)
    assert all(_dimensions(m) == drift_dimensions for w in drift for m in w["properties"]["metrics"])
    assert all(_dimensions(m) == shap_dimensions for m in shap["properties"]["metrics"])
    # The same endpoint and monitoring rows, in the same order, for either back end (review's follow).
    assert [t for t in _titles(widgets) if t and not t.startswith("Human review")] == [
        "Endpoint invocations", "Endpoint latency (microseconds)", "Endpoint errors", "Endpoint instances",
        *(f"Data drift per feature (baseline distance) {i}/3" for i in (1, 2, 3)),
        "Global SHAP per feature (mean |SHAP|, label benign), latest run",
        *(f"Model quality: {m}, from labels and estimated from scores" for m in ("accuracy", "precision", "recall", "f1", "auc")),
        "Model quality: labelled rows per evaluation",
        "Monitoring run outcomes per day", "Monitoring alarms (overdue schedules, failed runs, drift, model quality)",
    ]  # fmt: skip
    runs = next(w for w in widgets if w["properties"].get("title") == "Monitoring run outcomes per day")
    assert {m[1] for m in runs["properties"]["metrics"]} == {"MonitoringRuns"} and all(_dimensions(m)["service"] == SERVICE for m in runs["properties"]["metrics"])
    alarms = next(w for w in widgets if w["properties"].get("title", "").startswith("Monitoring alarms"))
    # Three overdue alarms (model quality's too), then the run-event queue's and model quality's evaluation queue's
    # (sagemaker) or the three evaluation queues' (open), then 30 drift alarms and 5 model-quality violation alarms.
    assert len(alarms["properties"]["alarms"]) == {"sagemaker": 3 + 2 + 30 + 5, "open": 3 + 3 + 30 + 5}[backend]


def test_dashboard_leaves_out_the_parts_that_are_off(tmp_path) -> None:
    off = {"data_quality": {"enabled": False}, "explainability": {"enabled": False}, "model_quality": {"enabled": False}}
    built = build_app(tmp_path, environment={"monitoring": off, "review": {"enabled": False}})
    widgets = _widgets(built)
    names = _metric_names(widgets)
    assert (aws_facts.ENDPOINT_METRICS_NAMESPACE, "Invocations") in names
    assert {namespace for namespace, _ in names} == {aws_facts.ENDPOINT_METRICS_NAMESPACE, aws_facts.ENDPOINT_INSTANCE_METRICS_NAMESPACE}
