"""`make preflight`: the quotas each environment needs, read through Service Quotas (botocore's Stubber
checks every request against the real API model; moto does not implement applied SageMaker quotas)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from local import preflight
from stacks.shared.config import parse_environment
from tests.conftest import CDK_CONTEXT

REGION = "eu-west-1"


def quota(name: str, value: float, code: str) -> dict:
    return {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": code, "Value": value, "Adjustable": True}


@pytest.fixture
def service_quotas():
    client = boto3.client("service-quotas", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def stub_quotas(stubber: Stubber, *, defaults: list[dict], applied: list[dict]) -> None:
    # Defaults over two pages: the paginator must follow NextToken.
    half = len(defaults) // 2
    stubber.add_response("list_aws_default_service_quotas", {"Quotas": defaults[:half], "NextToken": "page-2"}, {"ServiceCode": "sagemaker"})
    stubber.add_response("list_aws_default_service_quotas", {"Quotas": defaults[half:]}, {"ServiceCode": "sagemaker", "NextToken": "page-2"})
    stubber.add_response("list_service_quotas", {"Quotas": applied}, {"ServiceCode": "sagemaker"})


def config(environment: str):
    return parse_environment(environment, CDK_CONTEXT["environments"][environment])


def test_dev_needs_its_endpoint_twice_over_and_the_retraining_jobs() -> None:
    dev = config("dev")
    by_name = {n.quota_name: n for n in preflight.needs(dev)}
    endpoint = by_name[f"{dev.endpoint.instance_type} for endpoint usage"]
    assert (endpoint.to_create, endpoint.at_peak) == (1, 2)
    assert by_name[f"{dev.retraining.instance_type} for training job usage"].at_peak == 1
    assert by_name[f"{dev.retraining.transform_instance_type} for transform job usage"].at_peak == 2  # both models score the evaluation rows at once
    assert not any(n.usage == preflight.PROCESSING for n in by_name.values())  # the open monitors run no processing job


def test_prod_counts_both_endpoint_instances() -> None:
    prod = config("prod")
    endpoint = next(n for n in preflight.needs(prod) if n.usage == preflight.ENDPOINT)
    assert (endpoint.to_create, endpoint.at_peak) == (2, 4)


def test_the_sagemaker_back_end_adds_processing_jobs_and_the_shadow_endpoint() -> None:
    raw = {**CDK_CONTEXT["environments"]["dev"], "monitoring": {"backend": "sagemaker"}}
    needs = {n.quota_name: n for n in preflight.needs(parse_environment("dev", raw))}
    processing = needs["ml.m5.xlarge for processing job usage"]
    assert (processing.to_create, processing.at_peak) == (2, 2)  # the two monitors' jobs can run at once
    assert len(processing.why) == 2
    shadow = needs["ml.m5.xlarge for endpoint usage"]  # Clarify's shadow endpoint, on the default type
    assert shadow.at_peak == 1


def test_a_zero_quota_stops_the_deploy_and_says_how_to_ask(service_quotas, capsys) -> None:
    client, stubber = service_quotas
    dev = config("dev")
    endpoint = f"{dev.endpoint.instance_type} for endpoint usage"
    training = f"{dev.retraining.instance_type} for training job usage"
    transform = f"{dev.retraining.transform_instance_type} for transform job usage"
    stub_quotas(
        stubber,
        defaults=[quota(endpoint, 0, "L-ENDPOINT"), quota(training, 0, "L-TRAIN"), quota(transform, 1, "L-TRANSFORM"), quota("ml.p5.48xlarge for endpoint usage", 0, "L-OTHER")],
        applied=[quota(training, 2, "L-TRAIN")],  # an applied value wins over the default
    )
    assert preflight.main(["--env", "dev"], client=client) == 1
    err = capsys.readouterr().err
    assert f"{endpoint}" in err and "SHORT: a deploy would fail" in err
    assert "--quota-code L-ENDPOINT --desired-value 2" in err
    assert "L-TRAIN" not in err.split("Ask for more")[1]  # enough after the increase
    assert "Stopped: 1 quota(s)" in err


def test_enough_to_deploy_but_not_to_update_warns_and_passes(service_quotas, capsys) -> None:
    client, stubber = service_quotas
    dev = config("dev")
    names = [f"{dev.endpoint.instance_type} for endpoint usage", f"{dev.retraining.instance_type} for training job usage",
             f"{dev.retraining.transform_instance_type} for transform job usage"]  # fmt: skip
    stub_quotas(stubber, defaults=[quota(names[0], 1, "L-E"), quota(names[1], 5, "L-T"), quota(names[2], 5, "L-B")], applied=[])
    assert preflight.main(["--env", "dev"], client=client) == 0
    out = capsys.readouterr().out
    assert "low: updates and retraining would fail" in out
    assert "--quota-code L-E --desired-value 2" in out
    assert "raise the low quotas before the first model update" in out


def test_a_quota_service_quotas_does_not_list_is_named(service_quotas, capsys) -> None:
    client, stubber = service_quotas
    stub_quotas(stubber, defaults=[quota("ml.m5.large for endpoint usage", 4, "L-X"), quota("ml.c5.large for endpoint usage", 4, "L-Y")], applied=[])
    assert preflight.main(["--env", "dev"], client=client) == 1
    assert "not listed" in capsys.readouterr().err


def test_access_denied_names_the_permissions(service_quotas, capsys) -> None:
    client, stubber = service_quotas
    stubber.add_client_error("list_aws_default_service_quotas", "AccessDeniedException", "not authorized", expected_params={"ServiceCode": "sagemaker"})
    assert preflight.main(["--env", "dev"], client=client) == 1
    assert "servicequotas:ListServiceQuotas" in capsys.readouterr().err


@pytest.fixture
def no_credentials(monkeypatch):
    """No credentials anywhere boto3 looks (variables, files, instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def test_no_credentials_says_what_to_set(no_credentials, capsys) -> None:
    no_credentials.setenv("AWS_DEFAULT_REGION", REGION)
    assert preflight.main(["--env", "dev"]) == 1
    assert "no AWS credentials: set AWS_PROFILE" in capsys.readouterr().err


def test_without_credentials_or_a_region_it_names_the_credentials_first(no_credentials, capsys) -> None:
    no_credentials.delenv("AWS_DEFAULT_REGION", raising=False)
    no_credentials.delenv("AWS_REGION", raising=False)
    assert preflight.main(["--env", "dev"]) == 1
    assert "no AWS credentials: set AWS_PROFILE" in capsys.readouterr().err


def test_a_region_from_aws_region_is_used_and_a_missing_one_names_both_variables(no_credentials, capsys) -> None:
    """The CDK CLI reads AWS_REGION as well as AWS_DEFAULT_REGION; boto3 reads only the second."""
    no_credentials.setenv("AWS_ACCESS_KEY_ID", "x")
    no_credentials.setenv("AWS_SECRET_ACCESS_KEY", "x")
    no_credentials.delenv("AWS_DEFAULT_REGION", raising=False)
    no_credentials.delenv("AWS_REGION", raising=False)
    assert preflight.main(["--env", "dev"]) == 1
    assert "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION" in capsys.readouterr().err
    no_credentials.setenv("AWS_REGION", "eu-central-1")
    asked = []
    no_credentials.setattr(preflight, "quota_values", lambda client: asked.append(client.meta.region_name) or {})
    preflight.main(["--env", "dev"])
    assert asked == ["eu-central-1"]  # no AWS call: the quotas are stubbed out


def test_an_unknown_environment_is_a_usage_error(capsys) -> None:
    assert preflight.main(["--env", "nope"]) == 2
    assert "env: 'nope' is not an environment in cdk.json" in capsys.readouterr().err


def test_the_credentials_check_needs_no_aws_call(no_credentials, capsys) -> None:
    assert preflight.main(["--credentials-only"]) == 1
    assert "set AWS_PROFILE or run `aws configure`" in capsys.readouterr().err
    no_credentials.setenv("AWS_ACCESS_KEY_ID", "x")
    no_credentials.setenv("AWS_SECRET_ACCESS_KEY", "x")
    assert preflight.main(["--credentials-only"]) == 0
