"""Intent of the serving stack: model, endpoint config with data capture, endpoint, parameters."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from stacks.shared import default_model, images
from stacks.shared.compliance import flatten_reference, wildcard_findings
from tests.conftest import build_app


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("serving")


def _key_arn(dev_app) -> dict:
    """How the serving stack refers to the storage stack's key ARN once the app is prepared."""
    return dev_app.serving.resolve(dev_app.storage.key.key_arn)


def test_model_runs_in_network_isolation_with_the_regional_sdk_image(dev_app, template: Template) -> None:
    mapping_id = dev_app.serving.get_logical_id(dev_app.serving.node.find_child("InferenceImage").node.find_child("Regions"))
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "EnableNetworkIsolation": True,
            "PrimaryContainer": {
                "Image": {"Fn::FindInMap": [mapping_id, {"Ref": "AWS::Region"}, "uri"]},
                "ModelDataUrl": Match.any_value(),
                "Mode": "SingleModel",
            },
        },
    )


def test_image_mapping_is_the_sdk_table_for_every_region(dev_app, template: Template) -> None:
    mapping_id = dev_app.serving.get_logical_id(dev_app.serving.node.find_child("InferenceImage").node.find_child("Regions"))
    mapping = template.to_json()["Mappings"][mapping_id]
    expected = images.region_table("xgboost", "3.2-0", image_scope="inference")
    assert {region: row["uri"] for region, row in mapping.items()} == expected
    assert mapping["us-east-1"]["uri"].endswith("/sagemaker-xgboost:3.2-0")
    assert len(mapping) >= 30


def test_model_serves_what_the_served_model_parameter_names_now(dev_app, template: Template) -> None:
    """CloudFormation resolves the SSM parameter on every create and update, so no update (a changed
    CaptureSamplingPercentage, say) can bring back a model other than the promoted one."""
    model = next(iter(template.find_resources("AWS::SageMaker::Model").values()))
    assert model["Properties"]["PrimaryContainer"]["ModelDataUrl"] == {"Ref": "ServedModelDataUrl"}
    template.has_parameter(
        "ServedModelDataUrl", {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/mlloop/dev/serving/model-data-url"}
    )
    # The model still waits for the bundled artefact to be copied.
    deployments = [dev_app.serving.get_logical_id(d.node.find_child("CustomResource").node.default_child) for d in dev_app.serving.bundled_model.deployments]
    assert set(deployments) <= set(model["DependsOn"])


def test_served_model_parameter_starts_as_the_bundled_artefact_the_deployment_copies(dev_app, template: Template) -> None:
    [parameter] = dev_app.template("storage").find_resources("AWS::SSM::Parameter").values()
    assert parameter["Properties"]["Name"] == "/mlloop/dev/serving/model-data-url"
    models_id = dev_app.storage.get_logical_id(dev_app.storage.models.node.default_child)
    url = parameter["Properties"]["Value"]["Fn::Join"][1]
    assert url[:2] == ["s3://", {"Ref": models_id}]
    digest = default_model.content_hash(default_model.MODEL_ARTIFACT)
    assert url[2] == f"/bundled/{digest}/model.tar.gz"
    # ...which is exactly where the BucketDeployment copies model.tar.gz.
    copy = next(r for r in template.find_resources("Custom::CDKBucketDeployment").values() if r["Properties"]["DestinationBucketKeyPrefix"] == f"bundled/{digest}")
    assert copy["Properties"]["Prune"] is False and copy["Properties"]["RetainOnDelete"] is True
    assert "/" + copy["Properties"]["DestinationBucketKeyPrefix"] + "/" + default_model.MODEL_ARTIFACT.name == url[2]


def test_bundled_copy_can_write_only_its_own_prefixes_and_delete_nothing(dev_app, template: Template) -> None:
    """aws-cdk-lib's BucketDeployment grants read/write/delete on the whole destination bucket; the
    handler here runs with a role CDK cannot extend, so retrained models and datasets are safe."""
    bundled = dev_app.serving.bundled_model
    role_id = dev_app.serving.get_logical_id(bundled.role.node.default_child)
    handlers = [r for r in template.find_resources("AWS::Lambda::Function").values() if r["Properties"]["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}]
    assert len(handlers) == 1  # the BucketDeployment singleton
    policies = [r["Properties"] for r in template.find_resources("AWS::IAM::Policy").values() if {"Ref": role_id} in r["Properties"]["Roles"]]
    assert len(policies) == 1
    statements = policies[0]["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not [a for a in actions if a.startswith("s3:Delete") or a in ("s3:*", "s3:Abort*", "s3:PutObject*")]
    [put] = [s for s in statements if s["Action"] == "s3:PutObject"]
    prefixes = sorted(flatten_reference(r).split("/", 1)[1] for r in put["Resource"])
    model_prefix, data_prefix = (key.rsplit("/", 1)[0] for key in (bundled.model_key, bundled.train_key))
    assert model_prefix == f"bundled/{default_model.content_hash(default_model.MODEL_ARTIFACT)}" and data_prefix.startswith("bundled/")
    assert prefixes == sorted([f"{model_prefix}/*", f"{data_prefix}/*"])
    for listing in (s for s in statements if s["Action"] == "s3:ListBucket"):
        assert all(p.startswith("bundled/") for p in listing["Condition"]["StringLike"]["s3:prefix"])


def test_endpoint_config_captures_input_and_output_as_plain_text_with_kms(dev_app, template: Template) -> None:
    key_arn = _key_arn(dev_app)
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "KmsKeyId": key_arn,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    # dev: the cheapest type a real-time endpoint takes (botocore's ProductionVariantInstanceType
                    # has no smaller one); about $0.056 an hour, so the default deployment stays under $4 a day.
                    "InstanceType": "ml.t2.medium",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1,
                    "ModelName": Match.any_value(),
                }
            ],
            "DataCaptureConfig": {
                "EnableCapture": True,
                "InitialSamplingPercentage": {"Ref": "CaptureSamplingPercentage"},
                "DestinationS3Uri": Match.any_value(),
                "KmsKeyId": key_arn,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {
                    "CsvContentTypes": ["text/csv"],
                    "JsonContentTypes": ["application/json", "application/jsonlines"],
                },
            },
        },
    )
    config = next(iter(template.find_resources("AWS::SageMaker::EndpointConfig").values()))
    assert flatten_reference(config["Properties"]["DataCaptureConfig"]["DestinationS3Uri"]).endswith("/capture")


def test_endpoint_has_a_stable_name_and_waits_for_its_log_group(dev_app, template: Template) -> None:
    template.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "mlloop-dev"})
    log_group_id = dev_app.serving.get_logical_id(dev_app.serving.inference.log_group.node.default_child)
    endpoint = next(iter(template.find_resources("AWS::SageMaker::Endpoint").values()))
    assert log_group_id in endpoint["DependsOn"]
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"LogGroupName": "/aws/sagemaker/Endpoints/mlloop-dev", "RetentionInDays": 30, "KmsKeyId": Match.any_value()},
    )


def test_sampling_percentage_is_a_bounded_parameter_in_a_labelled_console_group(template: Template) -> None:
    template.has_parameter(
        "CaptureSamplingPercentage", {"Type": "Number", "Default": 100, "MinValue": 0, "MaxValue": 100, "Description": Match.any_value()}
    )
    interface = template.to_json()["Metadata"]["AWS::CloudFormation::Interface"]
    assert interface["ParameterGroups"] == [
        {"Label": {"default": "Data capture"}, "Parameters": ["CaptureSamplingPercentage"]},
        {"Label": {"default": "Alerts"}, "Parameters": ["AlertEmail"]},
    ]
    assert interface["ParameterLabels"]["CaptureSamplingPercentage"] == {"default": "Capture sampling percentage"}


def test_prod_samples_a_third_of_requests_by_default(prod_app) -> None:
    prod_app.template("serving").has_parameter("CaptureSamplingPercentage", {"Default": 34})


def test_prod_keeps_every_log_group_for_a_year(prod_app) -> None:
    groups = prod_app.template("serving").find_resources("AWS::Logs::LogGroup")
    assert len(groups) == 2
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 365 and "KmsKeyId" in group["Properties"]
        assert group["DeletionPolicy"] == "Retain"


def test_execution_role_wildcards_are_exactly_the_explained_ones(dev_app, template: Template) -> None:
    policy_id = dev_app.serving.get_logical_id(dev_app.serving.inference.policy.node.default_child)
    statements = template.to_json()["Resources"][policy_id]["Properties"]["PolicyDocument"]["Statement"]
    findings = wildcard_findings(statements)
    assert len(findings) == 3
    assert "Resource::*" in findings
    assert any(f.endswith("/capture/*") for f in findings)
    assert any(f.endswith("/retraining/*") for f in findings)  # models the retraining state machine creates
    star = [s for s in statements if s["Resource"] == "*"]
    assert sorted(a for s in star for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])) == [
        "cloudwatch:PutMetricData",
        "ecr:GetAuthorizationToken",
    ]
    # The image pull is scoped to the region's SageMaker XGBoost repository.
    ecr = next(s for s in statements if "ecr:BatchGetImage" in s["Action"])
    assert "repository/" in flatten_reference(ecr["Resource"])


def test_stack_outputs_for_operators(template: Template) -> None:
    assert {"EndpointName", "CaptureS3Uri", "ModelName", "ServedModelParameter", "TrainingDataS3Uri", "TestDataS3Uri"} <= set(template.find_outputs("*"))


def test_instance_with_nvme_storage_gets_no_volume_key(tmp_path) -> None:
    built = build_app(tmp_path, environment={"endpoint": {"instance_type": "ml.g5.xlarge"}})
    built.app.synth()  # the nag acknowledgment for the missing key must hold
    config = next(iter(built.template("serving").find_resources("AWS::SageMaker::EndpointConfig").values()))
    assert "KmsKeyId" not in config["Properties"]
    assert "KmsKeyId" in config["Properties"]["DataCaptureConfig"]


def test_bring_your_own_model_uses_its_artifact_image_and_no_bundled_assets(tmp_path) -> None:
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/my-model:1.4"
    built = build_app(
        tmp_path,
        environment={
            "model": {
                "artifact_s3_uri": "s3://my-models/churn/model.tar.gz",
                "image_uri": image,
                "feature_names": ["tenure", "monthly_charges"],
                "label_names": ["stays", "churns"],
            },
            "monitoring": {
                "backend": "sagemaker",  # Clarify explains a model in its own image; the open back end, XGBoost only
                "data_quality": {"dataset_s3_uri": "s3://my-datasets/churn/train.csv", "dataset_has_header": True},
                "explainability": {"dataset_s3_uri": "s3://my-datasets/churn/train-no-header.csv", "shap_baseline": [32.4, 64.8]},
            },
            "retraining": {"training_data_s3_uri": "s3://my-datasets/churn/train-no-header.csv", "training_image_uri": image},
        },
    )
    built.app.synth()
    template = built.template("serving")
    template.has_resource_properties(
        "AWS::SageMaker::Model", {"PrimaryContainer": {"Image": image, "ModelDataUrl": {"Ref": "ServedModelDataUrl"}, "Mode": "SingleModel"}}
    )
    built.template("storage").has_resource_properties(
        "AWS::SSM::Parameter", {"Name": "/mlloop/dev/serving/model-data-url", "Value": "s3://my-models/churn/model.tar.gz"}
    )
    template.resource_count_is("Custom::CDKBucketDeployment", 0)
    assert "TrainingDataS3Uri" not in template.find_outputs("*")
    policy = next(iter(template.find_resources("AWS::IAM::ManagedPolicy").values()))
    resources = [flatten_reference(r) for s in policy["Properties"]["PolicyDocument"]["Statement"] for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    assert "arn:<AWS::Partition>:s3:::my-models/churn/model.tar.gz" in resources
    assert "arn:<AWS::Partition>:ecr:eu-west-1:123456789012:repository/my-model" in resources
