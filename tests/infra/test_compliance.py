"""The rule packs are live on every synth, and acknowledgments match cdk-nag's finding IDs."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from stacks.compliance import acknowledge_wildcards, flatten_reference, register_rule_packs, wildcard_findings


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
