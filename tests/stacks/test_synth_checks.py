"""What checks the synthesised templates where: `cdk synth` runs the cdk-nag packs; the tests' apps
also run aws-cdk-lib's built-in CloudFormation validation, which `cdk synth` skips for speed (app.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import CfnResource

from tests.conftest import build_app


def test_the_tests_apps_fail_on_a_cloudformation_validation_error(tmp_path: Path) -> None:
    built = build_app(tmp_path)
    # No rule pack looks at SSM parameters; the resource schema requires Type and Value.
    CfnResource(built.storage, "Unchecked", type="AWS::SSM::Parameter", properties={"Name": "/mlloop/unchecked"})
    with pytest.raises(Exception, match="ValidationFailed"):
        built.app.synth()
    reports = json.loads((tmp_path / "validation-report.json").read_text())["pluginReports"]
    [report] = [r for r in reports if r["pluginName"] == "CloudFormation Validate"]
    assert report["conclusion"] == "failure"
    assert {(v["ruleName"], v["severity"]) for v in report["violations"]} == {("F3003", "error")}
