"""The rule packs are live on every synth, acknowledgments match cdk-nag's finding IDs, and every
acknowledgment in the app still matches a finding (none is stale)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from stacks.shared import compliance
from stacks.shared.compliance import acknowledge_wildcards, flatten_reference, register_rule_packs, wildcard_findings
from tests.conftest import build_app


def test_rule_packs_report_a_non_compliant_construct(tmp_path) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "NonCompliant")
    s3.Bucket(stack, "PlainBucket")  # no TLS-only policy, no access logs, no KMS, no versioning
    register_rule_packs(app)
    with pytest.raises(RuntimeError, match="ValidationFailed") as failure:
        app.synth()
    for rule in ("AwsSolutions-S10", "HIPAA.Security-S3BucketSSLRequestsOnly", "NIST.800.53.R5-S3BucketVersioningEnabled"):
        assert rule in str(failure.value), rule


def test_acknowledged_wildcards_pass_and_new_ones_are_still_reported(tmp_path) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Wildcards")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    policy = iam.ManagedPolicy(
        stack,
        "Policy",
        roles=[role],
        statements=[iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])],
    )
    acknowledge_wildcards(policy, policy.document, "GetAuthorizationToken takes no resource ARN.")
    register_rule_packs(app)
    app.synth()  # passes: the only wildcard is acknowledged

    app2 = App(outdir=str(tmp_path / "second"))
    stack2 = Stack(app2, "Wildcards")
    role2 = iam.Role(stack2, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    policy2 = iam.ManagedPolicy(stack2, "Policy", roles=[role2])
    policy2.add_statements(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
    policy2.add_statements(iam.PolicyStatement(actions=["s3:Get*"], resources=["arn:aws:s3:::b/k"]))
    acknowledge_wildcards(policy2, iam.PolicyDocument(statements=[iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])]), "only this one")
    register_rule_packs(app2)
    with pytest.raises(RuntimeError, match="ValidationFailed") as failure:
        app2.synth()
    assert "AwsSolutions-IAM5[Action::s3:Get*]" in str(failure.value)
    assert "AwsSolutions-IAM5[Resource::*]" not in str(failure.value)


@pytest.mark.parametrize(
    ("reference", "flat"),
    [
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/*"),
        ({"Fn::Sub": "arn:${AWS::Partition}:s3:::b/*"}, "arn:<AWS::Partition>:s3:::b/*"),
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/capture/*"]]}, "<Bucket.Arn>/capture/*"),
        ({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":logs"]]}, "arn:<AWS::Partition>:logs"),
        ({"Fn::ImportValue": "export-name"}, "export-name"),
        ({"Fn::GetStackOutput": {"StackName": "s", "OutputName": "o"}}, '{"Fn::GetStackOutput":{"StackName":"s","OutputName":"o"}}'),
    ],
)
def test_flatten_reference_matches_cdk_nag(reference, flat) -> None:
    assert flatten_reference(reference) == flat


def test_wildcard_findings_ignore_deny_statements_and_exact_names() -> None:
    statements = [
        {"Effect": "Allow", "Action": ["s3:GetObject", "kms:GenerateDataKey*"], "Resource": "arn:aws:s3:::b/k"},
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
    ]
    assert wildcard_findings(statements) == ["Action::kms:GenerateDataKey*", "Resource::*"]


# --- every acknowledgment of the app matches a finding -------------------------------------------


@dataclass(frozen=True)
class Acknowledged:
    path: str
    rule: str
    reason: str


@dataclass(frozen=True)
class Finding:
    path: str
    rule: str


class _RecordingValidations:
    """Stands in for aws_cdk.Validations inside stacks.shared.compliance: records each acknowledgment and
    each rule pack instead of applying them, so the packs can then report every finding."""

    acknowledged: list[Acknowledged] = []
    plugins: list[Any] = []

    def __init__(self, scope) -> None:
        self._scope = scope

    @classmethod
    def of(cls, scope) -> _RecordingValidations:
        return cls(scope)

    def acknowledge(self, *rules) -> None:
        self.acknowledged.extend(Acknowledged(self._scope.node.path, rule.id, rule.reason) for rule in rules)

    def add_plugins(self, *plugins) -> None:
        self.plugins.extend(plugins)


@pytest.fixture(scope="module")
def unacknowledged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[Acknowledged], list[Finding]]:
    """The app, its acknowledgments and the findings of its rule packs with none applied (one synth)."""
    monkeypatch = pytest.MonkeyPatch()
    _RecordingValidations.acknowledged, _RecordingValidations.plugins = [], []
    monkeypatch.setattr(compliance, "Validations", _RecordingValidations)
    try:
        built = build_app(tmp_path_factory.mktemp("unacknowledged"))
        built.app.synth()  # prepares the app and runs the wildcard acknowledgments (construct validations)
    finally:
        monkeypatch.undo()
    assert len(_RecordingValidations.plugins) == 3
    findings = [
        Finding(resource.construct_path, violation.rule_name)
        for pack in _RecordingValidations.plugins
        for violation in pack.validate_scope(built.app).violations
        for resource in violation.violating_resources
    ]
    return built, list(_RecordingValidations.acknowledged), findings


def _covers(ack: Acknowledged, finding: Finding) -> bool:
    """cdk-nag honours an acknowledgment on the finding's construct or any construct above it."""
    return ack.rule == finding.rule and (finding.path == ack.path or finding.path.startswith(ack.path + "/"))


def test_every_finding_is_acknowledged(unacknowledged) -> None:
    _, acknowledged, findings = unacknowledged
    assert len(findings) > 100  # the packs really ran on the app
    assert [f for f in findings if not any(_covers(a, f) for a in acknowledged)] == []


def test_no_acknowledgment_is_stale(unacknowledged) -> None:
    """An acknowledgment that matches no finding would silently absorb a future one there."""
    _, acknowledged, findings = unacknowledged
    stale = sorted({(a.path, a.rule) for a in acknowledged if not any(_covers(a, f) for f in findings)})
    assert stale == []


def test_every_acknowledgment_has_a_reason(unacknowledged) -> None:
    _, acknowledged, _ = unacknowledged
    assert [a for a in acknowledged if len(a.reason.strip()) < 40] == []


def _reason(acknowledged: list[Acknowledged], path: str, rule: str) -> str:
    """The reason of the acknowledgment cdk-nag applies to ``path`` (the closest one above it)."""
    covering = [a for a in acknowledged if _covers(a, Finding(path, rule))]
    return max(covering, key=lambda a: len(a.path)).reason


def test_each_functions_dead_letter_and_concurrency_reasons_say_how_it_is_invoked(unacknowledged) -> None:
    """Queue consumers are invoked synchronously by their event source mapping; scheduled functions
    asynchronously by EventBridge: neither reason may be one blanket sentence for both."""
    built, acknowledged, _ = unacknowledged
    consumers, scheduled = set(), set()
    for stack in (built.storage, built.serving, built.monitoring, built.review, built.retraining):
        resources = Template.from_stack(stack).to_json()["Resources"]
        for resource in resources.values():
            if resource["Type"] == "AWS::Lambda::EventSourceMapping":
                consumers.add((stack.stack_name, resource["Properties"]["FunctionName"]["Ref"]))
            if resource["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in resource["Properties"]:
                for target in resource["Properties"]["Targets"]:
                    if "Fn::GetAtt" in target["Arn"]:
                        scheduled.add((stack.stack_name, target["Arn"]["Fn::GetAtt"][0]))
            if resource["Type"] == "AWS::Scheduler::Schedule":  # the open monitors' evaluations
                scheduled.add((stack.stack_name, resource["Properties"]["Target"]["Arn"]["Fn::GetAtt"][0]))
    functions = {
        (Stack.of(c).stack_name, Stack.of(c).resolve(Stack.of(c).get_logical_id(c))): c.node.path
        for c in built.app.node.find_all()
        if isinstance(c, lambda_.CfnFunction)
    }
    assert len(consumers) >= 4 and len(scheduled) >= 4  # at least the watchdog, the redrive and the two open evaluations
    for function in consumers:
        path = functions[function]
        assert _reason(acknowledged, path, "HIPAA.Security-LambdaDLQ").startswith("Invoked synchronously by an SQS event source mapping"), path
        assert _reason(acknowledged, path, "NIST.800.53.R5-LambdaConcurrency").startswith("Reads one SQS queue"), path
    for function in scheduled:
        path = functions[function]
        assert _reason(acknowledged, path, "HIPAA.Security-LambdaDLQ").startswith("Invoked asynchronously by an EventBridge schedule"), path
        assert "queue" not in _reason(acknowledged, path, "NIST.800.53.R5-LambdaConcurrency"), path


def test_each_acknowledged_action_wildcard_is_named_in_its_reason(unacknowledged) -> None:
    """A reason that explains resource prefixes says nothing about kms:GenerateDataKey* beside them."""
    _, acknowledged, _ = unacknowledged
    actions = [(a, a.rule.removeprefix(f"{compliance.WILDCARD_RULE}[Action::").removesuffix("]")) for a in acknowledged if "[Action::" in a.rule]
    assert actions  # aws-cdk-lib's queue grants bring kms:GenerateDataKey* and kms:ReEncrypt*
    assert [(a.path, action) for a, action in actions if action.split(":", 1)[1] not in a.reason] == []
