"""The capture pipeline construct: what capture_filter is told and allowed, with and without review and profiling."""

from __future__ import annotations

import copy
import json

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from stacks.review.capture import CapturePipeline, Profiling, profiling_target
from stacks.shared.compliance import wildcard_findings
from stacks.shared.functions import dependency_layer
from tests.conftest import CDK_CONTEXT, build_app


def _function(template: Template, pipeline: CapturePipeline, stack: Stack) -> dict:
    return template.to_json()["Resources"][stack.get_logical_id(pipeline.filter.function.node.default_child)]["Properties"]


def _statements(template: Template, pipeline: CapturePipeline, stack: Stack) -> list[dict]:
    policy = stack.get_logical_id(pipeline.filter.role.node.find_child("DefaultPolicy").node.default_child)
    return template.to_json()["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]


def _on(statements: list[dict], action: str) -> list[str]:
    """The object-key suffixes of the resources ``action`` is allowed on."""
    found = []
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            found += [_suffix(r) for r in resources]
    return sorted(found)


def _suffix(resource: str | dict) -> str:
    """``/key/prefix/*`` of ``{"Fn::Join": ["", [<bucket ARN>, "/key/prefix/*"]]}``."""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        last = resource["Fn::Join"][1][-1]
        return last if isinstance(last, str) else json.dumps(resource)
    return json.dumps(resource)


def test_with_review_and_the_open_monitors_one_filter_does_both(dev_app) -> None:
    review = dev_app.review
    pipeline = review.pipeline.capture
    template = dev_app.template("review")
    variables = _function(template, pipeline, review)["Environment"]["Variables"]
    assert (variables["REVIEW_SELECTION"], variables["PROFILING"], variables["SAMPLE_ROWS"]) == ("true", "data-quality,explainability", "500")
    assert json.loads(variables["FEATURE_NAMES"]) and "REVIEW_QUEUE_URL" in variables and "MONITORING_BUCKET" in variables
    statements = _statements(template, pipeline, review)
    assert _on(statements, "s3:PutObject") == ["/data-quality/sketches/*", "/explainability/samples/*", "/rejected-captures/*"]
    assert _on(statements, "s3:GetObject") == ["/capture/mlloop-dev/AllTraffic/*", "/data-quality/current/*"]
    listings = [s["Condition"]["StringLike"]["s3:prefix"] for s in statements if s["Action"] == "s3:ListBucket"]
    assert sorted(listings) == [["capture/mlloop-dev/AllTraffic/*"], ["data-quality/current/*"]]


def test_capture_filter_learns_the_audit_share_and_may_describe_exactly_its_own_endpoint(dev_app) -> None:
    """The audit percentage from the configuration; the capture sampling percentage asked of the
    endpoint (DescribeEndpoint on its ARN only: no other SageMaker action, no wildcard)."""
    review = dev_app.review
    pipeline = review.pipeline.capture
    template = dev_app.template("review")
    variables = _function(template, pipeline, review)["Environment"]["Variables"]
    config = _config(dev_app)
    assert float(variables["AUDIT_PERCENTAGE"]) == config.review.audit_percentage == 2.0
    assert variables["ENDPOINT_NAME"] == dev_app.serving.inference.endpoint_name == config.endpoint.name
    statements = _statements(template, pipeline, review)
    sagemaker = [s for s in statements if any(a.startswith("sagemaker:") for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))]
    assert [s["Action"] for s in sagemaker] == ["sagemaker:DescribeEndpoint"]
    resource = sagemaker[0]["Resource"]
    assert review.resolve(resource) == review.resolve(dev_app.serving.inference.endpoint_arn)
    assert json.dumps(review.resolve(resource)).endswith(f':endpoint/{config.endpoint.name.lower()}"]]}}')
    assert not wildcard_findings(sagemaker)


@pytest.fixture(scope="module")
def sagemaker_app(tmp_path_factory):
    environment = copy.deepcopy(CDK_CONTEXT["environments"]["dev"])
    environment.setdefault("monitoring", {})["backend"] = "sagemaker"
    return build_app(tmp_path_factory.mktemp("sagemaker"), environment=environment)


def test_with_sagemaker_monitors_capture_filter_only_reviews_and_may_not_touch_the_monitoring_bucket(sagemaker_app) -> None:
    review = sagemaker_app.review
    pipeline = review.pipeline.capture
    template = Template.from_stack(review)
    variables = _function(template, pipeline, review)["Environment"]["Variables"]
    assert variables["PROFILING"] == "" and "MONITORING_BUCKET" not in variables
    statements = _statements(template, pipeline, review)
    assert _on(statements, "s3:PutObject") == ["/rejected-captures/*"]
    assert _on(statements, "s3:GetObject") == ["/capture/mlloop-dev/AllTraffic/*"]


def test_profiling_alone_as_the_monitoring_stack_builds_it_without_review(tmp_path) -> None:
    built = build_app(tmp_path)
    stack = Stack(built.app, "ProfilingOnly")
    target = Profiling(built.storage.buckets["monitoring"], ("data-quality",), 200)
    pipeline = CapturePipeline(
        stack,
        "Capture",
        config=_config(built),
        storage=built.storage,
        capture_prefix="capture/ep/AllTraffic",
        layer=dependency_layer(stack, "Dependencies"),
        alarm_topic=built.serving.alerts.topic,
        report_bucket=built.storage.buckets["monitoring"],
        profiling=target,
    )
    template = Template.from_stack(stack)
    variables = _function(template, pipeline, stack)["Environment"]["Variables"]
    assert (variables["REVIEW_SELECTION"], variables["PROFILING"], variables["SAMPLE_ROWS"]) == ("false", "data-quality", "200")
    assert not {"REVIEW_QUEUE_URL", "SELECTION_RULE", "FEATURE_NAMES"} & set(variables)
    statements = _statements(template, pipeline, stack)
    assert _on(statements, "s3:PutObject") == ["/data-quality/sketches/*", "/rejected-captures/*"]  # no samples
    sends = [s for s in statements if "sqs:SendMessage" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]
    assert len(sends) == 1  # only its own dead-letter queue: there is no review queue
    assert len(template.find_resources("AWS::Events::Rule")) == 1
    assert len(wildcard_findings(statements)) == 6  # kms x2, the capture prefix, reports, the baseline, sketches


def _config(built):
    from stacks.shared import config as app_config

    return app_config.load(built.app.node.try_get_context)


def test_profiling_follows_the_back_end_and_the_monitors(dev_app) -> None:
    config = _config(dev_app)
    target = profiling_target(config, dev_app.storage)
    assert target is not None and target.monitors == ("data-quality", "explainability")
    off = config.model_copy(update={"monitoring": config.monitoring.model_copy(update={"backend": "sagemaker"})})
    assert profiling_target(off, dev_app.storage) is None
    with pytest.raises(ValueError, match="non-empty subset"):
        Profiling(dev_app.storage.buckets["monitoring"], ("drift",), 10)
