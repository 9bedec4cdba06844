"""Before a deploy: does the account's SageMaker instance quota cover what the environment runs?

    make preflight [ENV=dev]        (make deploy runs it first)

A new account can have a quota of 0 for an instance type (public reports: "The account-level service
limit 'ml.m5.xlarge for endpoint usage' is 0 Instances"); the Serving stack then fails half-way
through a deploy and every stack after it rolls back, or the first retraining fails hours later. This
reads the quotas, read-only, through Service Quotas (``ListServiceQuotas``, then
``ListAWSDefaultServiceQuotas`` for quotas the account has never had applied), compares them with
what the environment's configuration runs, and names each short quota with the command that asks for
more. It makes no change and needs ``servicequotas:ListServiceQuotas`` and
``servicequotas:ListAWSDefaultServiceQuotas``.

What counts: the endpoint's instances (twice over when an update replaces the fleet: SageMaker's
blue/green update, which CloudFormation's endpoint updates and the retraining's promotion both use,
runs the new fleet beside the old one), the retraining's training and batch-transform jobs, and with
the SageMaker monitoring back end its processing jobs and Clarify's shadow endpoint. Quota names are
Service Quotas' own, ``<instance type> for <usage>`` (e.g. "ml.m5.xlarge for training job usage").
Exit codes: 0 enough to deploy; 1 a quota short, or the check could not be made; 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from dataclasses import dataclass

SERVICE_CODE = "sagemaker"
QUOTAS_CONSOLE = "https://console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas"
# Service Quotas' names for SageMaker's per-instance-type quotas, by what uses the instances.
ENDPOINT, TRAINING, TRANSFORM, PROCESSING = "endpoint usage", "training job usage", "transform job usage", "processing job usage"


@dataclass(frozen=True)
class Need:
    """Instances of one type for one usage: ``to_create`` for the first deploy, ``at_peak`` at most."""

    instance_type: str
    usage: str
    to_create: int
    at_peak: int
    why: tuple[str, ...]

    @property
    def quota_name(self) -> str:
        return f"{self.instance_type} for {self.usage}"


def needs(config) -> list[Need]:
    """What the environment's configuration (``stacks.shared.config.AppConfig``) runs, per quota."""
    parts: list[tuple[str, str, int, int, str]] = []  # (type, usage, to create, at peak, why)
    endpoint = config.endpoint
    parts.append(
        (endpoint.instance_type, ENDPOINT, endpoint.instance_count, 2 * endpoint.instance_count,
         f"endpoint {endpoint.name}: {endpoint.instance_count}, twice that while an update runs the new fleet beside the old")
    )  # fmt: skip
    retraining = config.retraining
    if retraining.enabled:
        parts.append((retraining.instance_type, TRAINING, 0, retraining.instance_count, f"retraining's training job: {retraining.instance_count}"))
        parts.append((retraining.transform_instance_type, TRANSFORM, 0, 2, "retraining's batch transforms: the candidate and the serving model score the evaluation rows at once (2), then the new model the training set (1)"))
    monitoring = config.monitoring
    if monitoring.backend == "sagemaker":
        for name, job in (("data-quality", monitoring.data_quality), ("explainability", monitoring.explainability)):
            if job.enabled:  # the deploy-time baseline job, then one job per scheduled run
                parts.append((job.instance_type, PROCESSING, job.instance_count, job.instance_count, f"{name} baseline and monitoring jobs: {job.instance_count}"))
        explainability = monitoring.explainability
        if explainability.enabled:
            parts.append(
                (explainability.shadow_instance_type, ENDPOINT, 0, explainability.shadow_instance_count,
                 f"Clarify's shadow endpoint during an explainability run: {explainability.shadow_instance_count}")
            )  # fmt: skip
    merged: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, []])
    for instance_type, usage, to_create, at_peak, why in parts:  # jobs of one type may run at once (both monitors at minute 0)
        entry = merged[instance_type, usage]
        entry[0] += to_create
        entry[1] += at_peak
        entry[2].append(why)
    return [Need(t, u, c, p, tuple(w)) for (t, u), (c, p, w) in merged.items()]


def quota_values(client) -> dict[str, dict]:
    """``{quota name: {"value", "code", "applied"}}`` for SageMaker: applied values over AWS defaults."""
    found: dict[str, dict] = {}
    for operation, applied in (("list_aws_default_service_quotas", False), ("list_service_quotas", True)):
        for page in client.get_paginator(operation).paginate(ServiceCode=SERVICE_CODE):
            for quota in page.get("Quotas", []):
                found[quota["QuotaName"]] = {"value": quota.get("Value"), "code": quota.get("QuotaCode"), "applied": applied}
    return found


@dataclass(frozen=True)
class Finding:
    need: Need
    value: float | None  # None: Service Quotas lists no such quota in this region
    code: str | None

    @property
    def blocks_deploy(self) -> bool:
        return self.value is None or self.value < self.need.to_create

    @property
    def short_at_peak(self) -> bool:
        return self.value is None or self.value < self.need.at_peak


def check(needs_: list[Need], quotas: dict[str, dict]) -> list[Finding]:
    findings = []
    for need in needs_:
        quota = quotas.get(need.quota_name)
        findings.append(Finding(need, None if quota is None else quota["value"], None if quota is None else quota["code"]))
    return findings


def request_command(finding: Finding, region: str) -> str:
    if finding.code is None:
        return f"no quota named {finding.need.quota_name!r} in {region}: the instance type may not be offered there; choose another"
    return (
        f"aws service-quotas request-service-quota-increase --region {region} --service-code {SERVICE_CODE} "
        f"--quota-code {finding.code} --desired-value {finding.need.at_peak}"
    )


def report(findings: list[Finding], region: str, environment: str) -> tuple[str, int]:
    """The text to print and the exit code."""
    lines = [f"SageMaker instance quotas for environment {environment!r} in {region} (read-only, Service Quotas):"]
    for f in findings:
        have = "not listed" if f.value is None else f"{f.value:g}"
        verdict = "SHORT: a deploy would fail" if f.blocks_deploy else ("low: updates and retraining would fail" if f.short_at_peak else "ok")
        lines.append(f"  {f.need.quota_name:45} have {have:>10}, need {f.need.to_create} to deploy, {f.need.at_peak} at peak: {verdict}")
        lines.extend(f"      {why}" for why in f.need.why)
    short = [f for f in findings if f.short_at_peak]
    if short:
        lines.append("Ask for more (Service Quotas console: " + QUOTAS_CONSOLE + ", or):")
        lines.extend(f"  {request_command(f, region)}" for f in short)
    blocking = [f for f in findings if f.blocks_deploy]
    if blocking:
        lines.append(f"Stopped: {len(blocking)} quota(s) below what the first deploy needs. Or choose other instance types in cdk.json.")
        return "\n".join(lines), 1
    if short:
        lines.append("The deploy can go ahead; raise the low quotas before the first model update or retraining.")
    return "\n".join(lines), 0


NO_CREDENTIALS = "no AWS credentials: set AWS_PROFILE or run `aws configure` (see README, Deploying)"


def credentials_configured() -> int:
    """0 when boto3 finds credentials (environment, profile, SSO...), else 1 with what to set; no AWS call."""
    import boto3

    if boto3.session.Session().get_credentials() is None:
        print(f"preflight: {NO_CREDENTIALS}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None, *, client=None, region: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev")
    parser.add_argument("--credentials-only", action="store_true", help="only check that AWS credentials are configured (no AWS call)")
    args = parser.parse_args(argv)
    if args.credentials_only:
        return credentials_configured()
    from stacks.shared.config import ConfigError, load_environment

    try:
        config = load_environment(args.env)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    if client is None:
        import boto3
        from botocore.exceptions import NoRegionError

        if credentials_configured():  # first: without credentials nothing else matters
            return 1
        # The CDK CLI reads AWS_REGION as well as AWS_DEFAULT_REGION; boto3 reads only the second.
        try:
            client = boto3.session.Session(region_name=config.region or os.environ.get("AWS_REGION") or None).client("service-quotas")
        except NoRegionError:
            print("preflight: no AWS region: set AWS_REGION or AWS_DEFAULT_REGION (or AWS_PROFILE with a region), or region in cdk.json", file=sys.stderr)
            return 1
    region = region or client.meta.region_name
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        quotas = quota_values(client)
    except NoCredentialsError:
        print(f"preflight: {NO_CREDENTIALS}", file=sys.stderr)
        return 1
    except ClientError as error:
        print(
            f"preflight: Service Quotas refused: {error.response['Error'].get('Code')}: {error.response['Error'].get('Message')} "
            "(needs servicequotas:ListServiceQuotas and servicequotas:ListAWSDefaultServiceQuotas)",
            file=sys.stderr,
        )
        return 1
    except BotoCoreError as error:
        print(f"preflight: could not reach Service Quotas: {error}", file=sys.stderr)
        return 1
    text, code = report(check(needs(config), quotas), region, config.environment)
    print(text, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
