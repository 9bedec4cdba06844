"""The environments that rebuild the source documents' systems (seeds 001, 002 and 003) synthesise
with every cdk-nag finding acknowledged and lint clean, and deploy what their document describes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk.assertions import Template

from stacks.shared.compliance import flatten_reference
from stacks.review.a2i import template_text
from tests.conftest import CDK_CONTEXT, SynthesisedApp, build_app
from tests.stacks.test_cfn_lint import LINT_REGIONS, lint, templates
from tests.stacks.monitoring.test_stack import _baseline_request, _explainability_request
from tests.stacks.retraining.test_stack import all_states, definition
from tests.stacks.review.test_stack import _starter

# Environment -> the source document (shared/seeds/) whose system it rebuilds.
SEED_ENVIRONMENTS = {"churn": "001", "income": "002", "jsonl": "003"}

# Where the user brings a model, data or scripts, the environment names an object of a bucket nobody
# can create: "Bucket names must not start with the prefix amzn-s3-demo-" (S3 general purpose bucket
# naming rules, https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html). A
# placeholder left in place fails the deployment; it can never read someone else's objects.
PLACEHOLDER = "s3://amzn-s3-demo-bucket/REPLACE-ME/"

DEPLOYED_STACKS = {
    "churn": {"Storage", "Serving", "Monitoring", "Operations"},
    "income": {"Storage", "Serving", "Review", "Retraining", "Operations", "Batch"},
    "jsonl": {"Storage", "Serving", "Monitoring", "Operations"},
}

ADULT_FEATURES = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "ethnic_group", "sex", "capital_gain", "capital_loss", "hours_per_week", "country",
]  # fmt: skip


@dataclass
class Synthesis:
    built: SynthesisedApp
    nag_failure: str | None  # what synth raised: the rule packs' unacknowledged findings


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Synthesis]:
    """Each environment synthesised once (the rule packs run in synth), on first use."""
    done: dict[str, Synthesis] = {}

    def get(env: str) -> Synthesis:
        if env not in done:
            built = build_app(tmp_path_factory.mktemp(env), env=env)
            try:
                built.app.synth()
                done[env] = Synthesis(built, None)
            except RuntimeError as failure:  # ValidationFailed, listing every unacknowledged finding
                done[env] = Synthesis(built, str(failure))
        return done[env]

    return get


def _environment(env: str) -> dict[str, Any]:
    return CDK_CONTEXT["environments"][env]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _resources(template: Template, kind: str) -> list[dict]:
    return list(template.find_resources(kind).values())


def _granted(template: Template, action: str) -> set[str]:
    """Every resource (flattened) an IAM policy of ``template`` allows ``action`` on."""
    found = set()
    for policy in _resources(template, "AWS::IAM::Policy") + _resources(template, "AWS::IAM::ManagedPolicy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions, resources = ([v] if isinstance(v, str) else v for v in (statement["Action"], statement["Resource"]))
            if statement["Effect"] == "Allow" and action in actions:
                found.update(flatten_reference(r) for r in resources)
    return found


def _function(built: SynthesisedApp, function) -> dict:
    logical_id = built.review.get_logical_id(function.function.node.default_child)
    return built.template_json("review")["Resources"][logical_id]["Properties"]


def test_cdk_json_has_one_environment_per_source_document_beside_dev_and_prod() -> None:
    assert set(CDK_CONTEXT["environments"]) == {"dev", "prod", *SEED_ENVIRONMENTS}


@pytest.mark.parametrize("env", SEED_ENVIRONMENTS)
def test_what_the_user_brings_is_a_placeholder_no_one_can_own(env: str) -> None:
    uris = [s for s in _strings(_environment(env)) if s.startswith("s3://")]
    assert uris
    assert [u for u in uris if not u.startswith(f"{PLACEHOLDER}{env}/")] == []


@pytest.mark.parametrize("env", SEED_ENVIRONMENTS)
def test_synth_leaves_no_cdk_nag_finding_unacknowledged(synthesised, env: str) -> None:
    assert synthesised(env).nag_failure is None


@pytest.mark.parametrize("env", SEED_ENVIRONMENTS)
def test_templates_lint_clean(synthesised, env: str) -> None:
    built = synthesised(env).built
    found = templates(built)
    assert {t.name.removesuffix(".template.json") for t in found} == DEPLOYED_STACKS[env]
    # A stack pinned to a region deploys only there; the others in every region lint checks.
    region = _environment(env).get("region")
    for template in found:
        assert lint(template, [region] if region else LINT_REGIONS) == [], template.name


@pytest.mark.parametrize("env", SEED_ENVIRONMENTS)
def test_the_endpoint_serves_the_artefact_the_environment_names(synthesised, env: str) -> None:
    built = synthesised(env).built
    [parameter] = _resources(built.template("storage"), "AWS::SSM::Parameter")
    assert parameter["Properties"]["Value"] == _environment(env)["model"]["artifact_s3_uri"]


# --- seed 001: churn model, data-quality monitor with a header baseline and scripts ---------------


def test_churn_serves_the_seeds_xgboost_0_90_model_on_an_m4(synthesised) -> None:
    serving = synthesised("churn").built.template_json("serving")
    [images] = [m for name, m in serving["Mappings"].items() if name.startswith("InferenceImageRegions")]
    assert {row["uri"].rsplit(":", 1)[1] for row in images.values()} == {"0.90-1-cpu-py3"}
    [config] = [r for r in serving["Resources"].values() if r["Type"] == "AWS::SageMaker::EndpointConfig"]
    assert config["Properties"]["ProductionVariants"][0]["InstanceType"] == "ml.m4.xlarge"


def test_churn_baselines_its_header_dataset_and_runs_both_scripts_hourly(synthesised) -> None:
    built = synthesised("churn").built
    settings = _environment("churn")["monitoring"]["data_quality"]
    template = built.template("monitoring")
    request = _baseline_request(template)
    assert [i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]] == [settings["dataset_s3_uri"]]
    assert json.loads(request["Environment"]["dataset_format"])["csv"]["header"] is True
    [definition_] = _resources(template, "AWS::SageMaker::DataQualityJobDefinition")
    app = definition_["Properties"]["DataQualityAppSpecification"]
    assert app["RecordPreprocessorSourceUri"] == settings["record_preprocessor_s3_uri"]
    assert app["PostAnalyticsProcessorSourceUri"] == settings["post_analytics_processor_s3_uri"]
    readable = _granted(template, "s3:GetObject")  # each input is read as an S3 prefix: the key and what starts with it
    for key in ("dataset_s3_uri", "record_preprocessor_s3_uri", "post_analytics_processor_s3_uri"):
        assert f"arn:<AWS::Partition>:s3:::{settings[key].removeprefix('s3://')}*" in readable, key
    assert template.to_json()["Parameters"]["DataQualitySchedule"]["Default"] == "cron(0 * ? * * *)"
    assert _resources(template, "AWS::SageMaker::ModelExplainabilityJobDefinition") == []


def test_churn_alarms_on_the_drift_of_every_feature_the_header_names(synthesised) -> None:
    template = synthesised("churn").built.template("monitoring")
    watched = {a["Properties"]["MetricName"] for a in _resources(template, "AWS::CloudWatch::Alarm") if "MetricName" in a["Properties"]}
    features = _environment("churn")["model"]["feature_names"]
    assert len(features) == 69
    assert {f"feature_baseline_drift_{f}" for f in features} <= watched


# --- seed 002: adult income, review of negative outcomes with attributions, labels retrain ---------


def test_income_reviews_negative_outcomes_three_rows_a_loop_with_the_outcome_template(synthesised) -> None:
    built = synthesised("income").built
    review = built.template("review")
    [ui] = _resources(review, "AWS::SageMaker::HumanTaskUi")
    assert ui["Properties"]["UiTemplate"]["Content"] == template_text("outcome_review")
    capture_filter = _function(built, built.review.pipeline.capture_filter)["Environment"]["Variables"]
    assert (capture_filter["SELECTION_RULE"], capture_filter["SELECTED_OUTCOME"], capture_filter["ROWS_PER_LOOP"]) == ("outcome", "0", "3")
    starter = _starter(built)["Environment"]["Variables"]
    assert (starter["ATTRIBUTIONS"], starter["TOP_K"]) == ("on", "4")
    assert json.loads(starter["LABEL_NAMES"]) == ["<=50K", ">50K"]  # outcome 0: an income of at most 50K
    assert json.loads(starter["FEATURE_NAMES"]) == ADULT_FEATURES
    # As in dev, the workteam is given at deploy time: no made-up ARN.
    assert "Default" not in review.to_json()["Parameters"]["WorkteamArn"]


def test_income_is_batch_only_nightly_and_selects_as_the_capture_filter_does(synthesised) -> None:
    """Seed 002 runs a nightly batch job, no endpoint: the batch run's rows are selected and grouped
    with the capture filter's own settings (one code path, lambdas/capture)."""
    built = synthesised("income").built
    assert not {r["Type"] for r in built.template_json("serving")["Resources"].values()} & {"AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig"}
    [schedule] = _resources(built.template("batch"), "AWS::Scheduler::Schedule")
    assert (schedule["Properties"]["ScheduleExpression"], schedule["Properties"]["ScheduleExpressionTimezone"]) == ("cron(0 2 * * ? *)", "UTC")
    steps = built.template_json("batch")["Resources"][built.batch.get_logical_id(built.batch.steps.function.node.default_child)]["Properties"]
    batch = steps["Environment"]["Variables"]
    capture_filter = _function(built, built.review.pipeline.capture_filter)["Environment"]["Variables"]
    shared = ("REVIEW_SELECTION", "SELECTION_RULE", "SELECTED_OUTCOME", "ROWS_PER_LOOP", "AUDIT_PERCENTAGE", "SCORE_PATH", "FEATURES_PATH", "PROFILING")
    assert {k: batch[k] for k in shared} == {k: capture_filter[k] for k in shared}
    assert "PipelineReviewGroups" in json.dumps(batch["REVIEW_QUEUE_URL"]) and "PipelineReviewGroups" in json.dumps(capture_filter["REVIEW_QUEUE_URL"])


def test_income_retrains_on_the_seeds_training_data_and_hyperparameters(synthesised) -> None:
    built = synthesised("income").built
    train = all_states(definition(built)["States"])["Train"]["Parameters"]
    assert train["HyperParameters"]["num_round"] == "800"
    assert _environment("income")["retraining"]["training_data_s3_uri"] in set(_strings(built.template_json("retraining")["Resources"]))


# --- seed 003: JSON Lines endpoint and the Clarify explainability monitor ------------------------


def test_jsonl_serves_linear_learner_in_its_region(synthesised) -> None:
    built = synthesised("jsonl").built
    [model] = _resources(built.template("serving"), "AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"]["Image"] == "174872318107.dkr.ecr.us-west-2.amazonaws.com/linear-learner:1"
    assert {stack.region for stack in (built.storage, built.serving, built.monitoring, built.operations)} == {"us-west-2"}


def test_jsonl_explains_json_lines_records_hourly_from_the_seeds_baseline(synthesised) -> None:
    template = synthesised("jsonl").built.template("monitoring")
    settings = _environment("jsonl")["monitoring"]["explainability"]
    request = _explainability_request(template)
    assert request["ProcessingInputs"][0]["S3Input"]["S3Uri"] == settings["dataset_s3_uri"]
    analysis = request["Documents"]["AnalysisConfig"]["Body"]
    assert (analysis["dataset_type"], analysis["features"], analysis["label"]) == ("application/jsonlines", "features", "label")
    assert analysis["headers"] == [*ADULT_FEATURES, "label"]  # Clarify's JSON Lines headers: the label last
    predictor = analysis["predictor"]
    assert (predictor["content_type"], predictor["accept_type"], predictor["label"]) == ("application/jsonlines", "application/jsonlines", "score")
    assert predictor["content_template"] == '{"features":$features}'
    assert analysis["methods"]["shap"]["baseline"] == [{"features": settings["shap_baseline"]}]
    [job] = _resources(template, "AWS::SageMaker::ModelExplainabilityJobDefinition")
    endpoint_input = job["Properties"]["ModelExplainabilityJobInput"]["EndpointInput"]
    assert (endpoint_input["FeaturesAttribute"], endpoint_input["InferenceAttribute"]) == ("features", "score")
    assert template.to_json()["Parameters"]["ExplainabilitySchedule"]["Default"] == "cron(0 * ? * * *)"
    assert _resources(template, "AWS::SageMaker::DataQualityJobDefinition") == []
