"""cfn-lint reports nothing (no error, no warning) on any synthesised template."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from stacks.shared import aws_facts

# Regions with different partitions and image registries; the templates are region-agnostic.
LINT_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1"]


def templates(built) -> list[Path]:
    outdir = Path(built.app.outdir)
    return sorted(outdir.glob("*.template.json"))


def lint(template: Path, regions: list[str] = LINT_REGIONS) -> list[str]:
    """cfn-lint's findings on ``template`` in each of ``regions`` its services are offered in."""
    # A2I and Model Monitor exist in fewer regions, the open review back end's Cognito and CloudFront
    # not in the China and GovCloud partitions; config refuses the others.
    if template.name.startswith("Review") and "sagemaker:CreateFlowDefinition" in template.read_text():  # the A2I back end
        regions = [r for r in regions if r in aws_facts.A2I_REGIONS]
    elif template.name.startswith("Review"):
        regions = [r for r in regions if not r.startswith(aws_facts.OPEN_REVIEW_UNAVAILABLE_REGION_PREFIXES)]
    if template.name.startswith("Monitoring") and "AWS::SageMaker::MonitoringSchedule" in template.read_text():  # the SageMaker back end
        regions = [r for r in regions if not r.startswith(aws_facts.MODEL_MONITOR_UNAVAILABLE_REGION_PREFIXES)]
    return [str(m) for m in lint_file(template, config=ManualArgs(regions=regions))]


@pytest.mark.parametrize("fixture", ["dev_app", "prod_app"])
def test_templates_lint_clean(request, fixture: str) -> None:
    built = request.getfixturevalue(fixture)
    found = templates(built)
    assert {t.name for t in found} == {"Storage.template.json", "Serving.template.json", "Review.template.json", "Monitoring.template.json", "Retraining.template.json", "Operations.template.json"}
    for template in found:
        assert lint(template) == [], template.name


def test_lint_does_report_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text('{"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketNam": "x"}}}}')
    assert any(m.rule.id == "E3002" for m in lint_file(broken, config=ManualArgs(regions=["us-east-1"])))
