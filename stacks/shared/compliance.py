"""The cdk-nag rule packs every synth runs (cdk-nag 3: CDK policy-validation plugins), and the
helpers that acknowledge a finding on the narrowest construct with its reason."""

from __future__ import annotations

import json
from typing import Any

import jsii
from aws_cdk import Acknowledgment, App, CfnResource, Stack, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks
from constructs import IConstruct, IValidation

WILDCARD_RULE = "AwsSolutions-IAM5"


def register_rule_packs(app: App) -> None:
    """AwsSolutions, HIPAA Security and NIST 800-53 R5; an unacknowledged finding fails synth."""
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True),
        HIPAASecurityChecks(app, verbose=True),
        NIST80053R5Checks(app, verbose=True),
    )


def acknowledge(scope: IConstruct, reason: str, *rule_ids: str) -> None:
    """Acknowledge rule findings on ``scope`` (keep it the narrowest construct) for one stated reason."""
    Validations.of(scope).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in rule_ids))


def acknowledge_wildcards(scope: IConstruct, document: iam.PolicyDocument, reason: str) -> None:
    """Acknowledge ``AwsSolutions-IAM5`` for each wildcard in ``document``, by its exact finding ID.

    cdk-nag 3 reports one finding per wildcard (``AwsSolutions-IAM5[Resource::...]``), named after
    the deployed form of the ARN, and matches acknowledgments by exact ID. A cross-stack ARN only
    takes its deployed form (``Fn::GetStackOutput``) once the app is prepared, so the IDs are
    computed then, in a construct validation (which CDK runs after preparing, before the rule
    packs). The infra tests pin the exact wildcard list of every policy, so a new wildcard is seen.
    """
    scope.node.add_validation(_WildcardAcknowledgment(scope, document, reason))


@jsii.implements(IValidation)
class _WildcardAcknowledgment:
    def __init__(self, scope: IConstruct, document: iam.PolicyDocument, reason: str) -> None:
        self._scope = scope
        self._document = document
        self._reason = reason

    def validate(self) -> list[str]:
        resolved = Stack.of(self._scope).resolve(self._document) or {}
        findings = wildcard_findings(resolved.get("Statement", []))
        acknowledge(self._scope, self._reason, *(f"{WILDCARD_RULE}[{finding}]" for finding in findings))
        return []


def wildcard_findings(statements: list[dict[str, Any]]) -> list[str]:
    """The finding IDs cdk-nag's IAMNoWildcardPermissions reports for resolved policy statements."""
    findings: dict[str, None] = {}
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement.get("Action")):
            if "*" in action:
                findings[f"Action::{action}"] = None
        for resource in _as_list(statement.get("Resource")):
            flat = flatten_reference(resource)
            if "*" in flat:
                findings[f"Resource::{flat}"] = None
    return list(findings)


def flatten_reference(node: Any) -> str:
    """cdk-nag's ``flattenCfnReference``: a CloudFormation reference as the flat string it reports."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(flatten_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def drop_redundant_dependency(resource: CfnResource, role: IConstruct) -> None:
    """Remove an explicit ``DependsOn`` on a role that ``resource`` already references with GetAtt.

    aws-cdk-lib adds both for its custom-resource providers; cfn-lint reports the pair as W3005.
    """
    role_resource = role.node.default_child if not isinstance(role, CfnResource) else role
    resource.remove_resource_dependency(role_resource)


def ignore_lint_check(resource: CfnResource, check: str, reason: str) -> None:
    """Tell cfn-lint to skip one check on one resource, via the resource's metadata, with why."""
    resource.add_metadata("cfn-lint", {"config": {"ignore_checks": [check], "ignore_reasons": {check: reason}}})
