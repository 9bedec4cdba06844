"""Every bad configuration value stops synth with a message naming the key and what is allowed."""

from __future__ import annotations

import pytest

from stacks.shared import aws_facts
from stacks.shared import config as app_config
from stacks.shared.config import BASELINE_MAX_RUNTIME, ConfigError, parse_environment
from tests.conftest import CDK_CONTEXT


def test_defaults_serve_the_bundled_model() -> None:
    config = parse_environment("dev", {})
    assert config.model.is_bundled
    assert config.model.framework == "xgboost" and config.model.framework_version == "3.2-0"
    assert len(config.model.feature_names) == 30
    assert config.model.label_names == ("malignant", "benign")
    assert config.endpoint.name == "mlloop-dev"
    assert config.capture.sampling_percentage == 100
    assert config.retain_data  # data is kept unless an environment says otherwise


def test_batch_is_off_and_nightly_by_default_and_the_endpoint_on() -> None:
    config = parse_environment("dev", {})
    assert config.serving.endpoint and not config.batch.enabled
    batch = config.batch
    assert (batch.schedule, batch.timezone, batch.input_prefix, batch.content_type) == ("cron(0 2 * * ? *)", "UTC", "batch/input/", "text/csv")
    assert (batch.instance_type, batch.instance_count, batch.max_payload_mb, batch.overdue_hours) == ("ml.m5.xlarge", 1, 6, 26)
    off = {"explainability": {"enabled": False}, "model_quality": {"enabled": False}}
    batch_only = parse_environment("dev", {"serving": {"endpoint": False}, "batch": {"enabled": True, "timezone": "Europe/Paris"}, "monitoring": off})
    assert not batch_only.serving.endpoint and batch_only.batch.enabled and batch_only.batch.timezone == "Europe/Paris"


@pytest.mark.parametrize("monitor", ["explainability", "model_quality"])
def test_batch_only_refuses_the_monitors_that_read_the_endpoints_capture(monitor) -> None:
    """The attribution and model-quality monitors read real-time capture; batch only they would see nothing."""
    monitoring = {"explainability": {"enabled": False}, "model_quality": {"enabled": False}, monitor: {"enabled": True}}
    with pytest.raises(ConfigError, match=rf"environments.dev.monitoring.{monitor}.enabled: the .* monitor reads the real-time endpoint's capture, and serving.endpoint is false \(batch only\).*set it to false"):
        parse_environment("dev", {"serving": {"endpoint": False}, "batch": {"enabled": True}, "monitoring": monitoring})


def test_income_is_batch_only() -> None:
    income = app_config.load_environment("income")
    assert not income.serving.endpoint and income.batch.enabled
    assert income.review.rule == "outcome" and income.review.rows_per_loop == 3


def test_review_defaults_follow_seed_000() -> None:
    review = parse_environment("dev", {}).review
    assert review.enabled and review.rule == "band" and (review.lower, review.upper) == (0.1, 0.9)
    assert review.rows_per_loop == 3 and review.task_count == 1 and review.workteam_arn is None


def test_review_shows_attributions_of_xgboost_models_with_either_template() -> None:
    review = parse_environment("dev", {}).review
    assert review.template == "low_confidence" and review.task_description.startswith("Check each prediction against the record")
    assert (review.attributions.enabled, review.attributions.top_k, review.attributions.refresh_seconds) == (True, 10, 60)
    seed_002 = parse_environment("dev", {"review": {"template": "outcome_review", "rule": "outcome"}}).review
    assert seed_002.task_description.startswith("Check each predicted outcome against the features that drove it")
    loop_off = {"monitoring": {"data_quality": {"enabled": False}, "explainability": {"enabled": False}}, "retraining": {"enabled": False}}
    small = parse_environment("dev", {"model": BYO, **loop_off}).review.attributions
    assert small.enabled and small.top_k == 2  # never more than the model's features
    sklearn = {"model": {**BYO, "framework": "sklearn", "framework_version": "1.2-1"}, **loop_off}
    assert not parse_environment("dev", sklearn).review.attributions.enabled
    own_image = {"model": {**BYO, "image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:1"}, **loop_off}
    assert not parse_environment("dev", own_image).review.attributions.enabled  # on only if you say it serves XGBoost
    own_image["review"] = {"attributions": {"enabled": True}}
    assert parse_environment("dev", own_image).review.attributions.enabled


def test_review_and_monitoring_can_be_turned_off_where_they_are_not_offered() -> None:
    off = {"data_quality": {"enabled": False}, "explainability": {"enabled": False}, "model_quality": {"enabled": False}}
    config = parse_environment("dev", {"region": "cn-north-1", "review": {"enabled": False}, "monitoring": off})
    assert not config.review.enabled and not config.monitoring.any_enabled


def test_explainability_defaults_follow_seeds_003_and_004() -> None:
    ex = parse_environment("dev", {}).monitoring.explainability
    assert ex.enabled and ex.schedule == "cron(0 0 ? * * *)"  # daily (seed 004)
    assert (ex.num_samples, ex.agg_method, ex.use_logit) == (100, "mean_abs", False)
    assert ex.shap_baseline is None and ex.dataset_s3_uri is None  # the bundled data's mean, computed at synth


def test_both_stages_default_to_the_back_ends_any_account_can_deploy() -> None:
    config = parse_environment("dev", {})
    assert config.monitoring.backend == "open" and config.review.backend == "open" and config.review.mfa == "required"
    assert (config.monitoring.explainability.sample_rows, config.monitoring.explainability.ndcg_threshold) == (500, 0.9)
    # A2I's and Model Monitor's regional limits bind only the SageMaker back ends.
    china = parse_environment("dev", {"region": "cn-north-1", "review": {"enabled": False}})
    assert china.monitoring.any_enabled
    assert parse_environment("dev", {"app_name": "awsloop", "review": {"backend": "a2i"}}).prefix == "awsloop-dev"
    with pytest.raises(ConfigError, match=r"review\.enabled: Amazon A2I is not offered in cn-north-1"):
        parse_environment("dev", {"region": "cn-north-1", "review": {"backend": "a2i"}})
    with pytest.raises(ConfigError, match=r"monitoring\.data_quality\.enabled: CloudFormation has no Model Monitor resources in cn-north-1"):
        parse_environment("dev", {"region": "cn-north-1", "monitoring": {"backend": "sagemaker"}})


def test_the_open_back_end_refuses_keys_only_sagemaker_jobs_read_and_explains_only_xgboost() -> None:
    with pytest.raises(ConfigError, match=r"monitoring\.data_quality: instance_type, record_preprocessor_s3_uri: only the sagemaker back end runs"):
        parse_environment("dev", {"monitoring": {"data_quality": {"instance_type": "ml.m5.large", "record_preprocessor_s3_uri": "s3://bucket/p.py"}}})
    with pytest.raises(ConfigError, match=r"monitoring\.explainability: shap_baseline: only the sagemaker back end"):
        parse_environment("dev", {"monitoring": {"explainability": {"shap_baseline": [0.0] * 30}}})
    with pytest.raises(ConfigError, match=r"monitoring\.network: monitoring jobs run in a VPC only with the sagemaker back end"):
        parse_environment("dev", {"monitoring": {"network": {"subnet_ids": ["subnet-0123abcd"], "security_group_ids": ["sg-0123abcd"]}}})
    own_image = {"image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mine:1", **BYO}
    own = {"model": own_image, "monitoring": {"data_quality": {"dataset_s3_uri": "s3://bucket/b.csv"}}, "retraining": {"enabled": False}}
    assert not parse_environment("dev", own).monitoring.explainability.enabled  # on only if you say it serves XGBoost
    with pytest.raises(ConfigError, match=r"monitoring\.explainability\.dataset_s3_uri: required with your own model .* mean \|SHAP\| of these rows"):
        parse_environment("dev", {**own, "monitoring": {**own["monitoring"], "explainability": {"enabled": True}}})
    clarify = {**own, "monitoring": {**own["monitoring"], "backend": "sagemaker"}}
    assert parse_environment("dev", {**clarify, "monitoring": {**clarify["monitoring"], "explainability": {"enabled": False}}}).monitoring.backend == "sagemaker"


def test_monitoring_jobs_can_run_in_a_vpc() -> None:
    vpc = {"subnet_ids": ["subnet-0123abcd"], "security_group_ids": ["sg-0123abcd"]}
    network = parse_environment("dev", {"monitoring": {"backend": "sagemaker", "network": vpc}}).monitoring.network
    assert network.in_vpc and network.subnet_ids == ("subnet-0123abcd",)
    assert not parse_environment("dev", {}).monitoring.network.in_vpc


def test_a_daily_schedule_allows_runs_longer_than_an_hour() -> None:
    daily = {"schedule": "cron(0 0 ? * * *)", "max_runtime_seconds": 7200}
    dq = parse_environment("dev", {"monitoring": {"backend": "sagemaker", "data_quality": daily}}).monitoring.data_quality
    assert dq.max_runtime_seconds == 7200 and dq.computes_baseline
    # The deploy-time baseline job still ends while the deployment waits for it.
    assert dq.baseline_max_runtime_seconds == BASELINE_MAX_RUNTIME < aws_facts.CUSTOM_RESOURCE_MAX_TIMEOUT_SECONDS


def test_cdk_json_environments_parse() -> None:
    dev = app_config.load({"environments": CDK_CONTEXT["environments"], "env": None}.get)
    prod = app_config.load({"environments": CDK_CONTEXT["environments"], "env": "prod"}.get)
    assert dev.environment == "dev" and not dev.retain_data
    assert prod.retain_data and prod.capture.sampling_percentage == 34


# The checks of Model Monitor's and Clarify's jobs apply to that back end.
SAGEMAKER = {"backend": "sagemaker"}
BYO = {"artifact_s3_uri": "s3://bucket/model.tar.gz", "feature_names": ["a", "b"]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"capture": {"sampling_percentage": 140}}, r"environments\.dev\.capture\.sampling_percentage: must be a whole number from 0 to 100, got 140"),
        ({"capture": {"sampling_percentage": -1}}, r"capture\.sampling_percentage: must be a whole number from 0 to 100"),
        ({"capture": {"sampling_percentage": "50"}}, r"capture\.sampling_percentage: must be a whole number"),
        ({"capture": {"sampling_percentage": True}}, r"capture\.sampling_percentage: must be a whole number"),
        ({"capture": {"sampling_pct": 50}}, r"environments\.dev\.capture: unknown key\(s\) sampling_pct; allowed keys: sampling_percentage"),
        ({"captur": {}}, r"environments\.dev: unknown key\(s\) captur; allowed keys: .*capture"),
        ({"monitoring": {"backend": "clarify"}}, r"monitoring\.backend: 'clarify' is not allowed; allowed values: open, sagemaker"),
        ({"review": {"backend": "mturk"}}, r"review\.backend: 'mturk' is not allowed; allowed values: open, a2i"),
        (
            {"region": "cn-north-1"},
            r"review\.enabled: the open review back end needs Cognito and CloudFront, which CloudFormation does not offer in cn-north-1",
        ),
        ({"app_name": "awsloop"}, r"app_name: names the reviewers' sign-in domain .* 'awsloop-dev' contains aws: choose another app_name"),
        ({"review": {"mfa": "sms"}}, r"review\.mfa: 'sms' is not allowed; allowed values: required, optional, off"),
        ({"monitoring": {"explainability": {"sample_rows": 5}}}, r"monitoring\.explainability\.sample_rows: must be a whole number from 10 to 5000, got 5"),
        ({"monitoring": {"explainability": {"ndcg_threshold": 1.5}}}, r"monitoring\.explainability\.ndcg_threshold: must be a number from 0\.0 to 1\.0, got 1\.5"),
        (
            {"model": {**BYO, "framework": "sklearn", "framework_version": "1.2-1"}, "monitoring": {"data_quality": {"dataset_s3_uri": "s3://bucket/b.csv"}, "explainability": {"enabled": True, "dataset_s3_uri": "s3://bucket/t.csv"}}, "retraining": {"enabled": False}},
            r"monitoring\.explainability\.enabled: the open back end explains XGBoost models \(exact TreeSHAP\) and model\.framework is sklearn",
        ),
        ({"review": {"rule": "random"}}, r"review\.rule: 'random' is not allowed; allowed values: band, outcome"),
        ({"review": {"template": "shap"}}, r"review\.template: 'shap' is not allowed; allowed values: low_confidence, outcome_review"),
        ({"review": {"attributions": {"top_k": 31}}}, r"review\.attributions\.top_k: must be a whole number from 1 to 30, got 31"),
        ({"review": {"attributions": {"refresh_seconds": 1}}}, r"review\.attributions\.refresh_seconds: must be a whole number from 10 to 3600, got 1"),
        ({"review": {"attributions": {"images": True}}}, r"review\.attributions: unknown key\(s\) images; allowed keys: enabled, refresh_seconds, top_k"),
        (
            {"model": {**BYO, "framework": "sklearn", "framework_version": "1.2-1"}, "review": {"attributions": {"enabled": True}}},
            r"review\.attributions\.enabled: attributions explain XGBoost models \(TreeSHAP\); model\.framework is sklearn: set it to false",
        ),
        ({"review": {"lower": 0.9, "upper": 0.1}}, r"review\.upper: must be greater than lower \(0\.9\), got 0\.1"),
        ({"review": {"upper": 1.5}}, r"review\.upper: must be a number from 0\.0 to 1\.0, got 1\.5"),
        ({"review": {"enabled": "yes"}}, r"review\.enabled: 'yes' is not allowed; allowed values: true, false"),
        ({"review": {"task_count": 4}}, r"review\.task_count: must be a whole number from 1 to 3, got 4"),
        ({"review": {"task_time_limit_seconds": 10}}, r"review\.task_time_limit_seconds: must be a whole number from 30 to 28800"),
        ({"review": {"rows_per_loop": 0}}, r"review\.rows_per_loop: must be a whole number from 1 to 10"),
        ({"review": {"outcome": 2}}, r"review\.outcome: must be a whole number from 0 to 1, got 2"),
        ({"review": {"workteam_arn": "arn:aws:iam::123456789012:role/x"}}, r"review\.workteam_arn: .* is not valid; must be a private workteam ARN"),
        ({"review": {"task_keywords": ["a", "b", "c", "d", "e", "f"]}}, r"review\.task_keywords: at most 5 names, got 6"),
        # CreateFlowDefinition's patterns (botocore): keywords [A-Za-z0-9]+( [A-Za-z0-9]+)*, 1-30 chars;
        # titles without control characters; descriptions on one line.
        ({"review": {"task_keywords": ["needs_review"]}}, r"review\.task_keywords: 'needs_review' is not valid; each name must be 1-30 letters or digits, words separated by single spaces"),
        ({"review": {"task_keywords": ["x-ray"]}}, r"review\.task_keywords: 'x-ray' is not valid"),
        ({"review": {"task_keywords": ["two  spaces"]}}, r"review\.task_keywords: 'two  spaces' is not valid"),
        ({"review": {"task_keywords": [" lead"]}}, r"review\.task_keywords: ' lead' is not valid"),
        ({"review": {"task_keywords": ["trail "]}}, r"review\.task_keywords: 'trail ' is not valid"),
        ({"review": {"task_keywords": ["a" * 31]}}, r"review\.task_keywords: 'a{31}' is not valid"),
        ({"review": {"task_title": "bell\x07"}}, r"review\.task_title: 'bell\\x07' is not valid; must be 1-128 characters: no control characters but tab and line breaks"),
        ({"review": {"task_title": "escape\x1b[31m"}}, r"review\.task_title: .* is not valid"),
        ({"review": {"task_title": "emoji \U0001f600"}}, r"review\.task_title: .* is not valid; .*nothing beyond U\+FFFD"),
        ({"review": {"task_title": "x" * 129}}, r"review\.task_title: .* is not valid; must be 1-128 characters"),
        ({"review": {"task_description": "two\nlines"}}, r"review\.task_description: .* is not valid; must be 1-255 characters on one line"),
        ({"review": {"task_description": "carriage\rreturn"}}, r"review\.task_description: .* is not valid"),
        ({"region": "cn-north-1", "review": {"backend": "a2i"}, "monitoring": {"data_quality": {"enabled": False}, "explainability": {"enabled": False}}}, r"review\.enabled: Amazon A2I is not offered in cn-north-1; set it to false, or deploy to one of: us-east-1"),
        ({"region": "us-gov-west-1", "monitoring": {"backend": "sagemaker"}}, r"monitoring\.data_quality\.enabled: CloudFormation has no Model Monitor resources in us-gov-west-1; set it to false"),
        (
            {"region": "us-gov-west-1", "review": {"enabled": False}, "monitoring": {"backend": "sagemaker", "data_quality": {"enabled": False}}},
            r"monitoring\.explainability\.enabled: CloudFormation has no Model Monitor resources in us-gov-west-1",
        ),
        ({"monitoring": {"explainability": {"agg_method": "max"}}}, r"explainability\.agg_method: 'max' is not allowed; allowed values: mean_abs, median, mean_sq"),
        ({"monitoring": {"explainability": {"shap_baseline": [1, 2]}}}, r"explainability\.shap_baseline: must be a list of 30 numbers \(one per model\.feature_names\), got \[1, 2\]"),
        ({"monitoring": {"explainability": {"shadow_instance_type": "ml.t3.nano"}}}, r"explainability\.shadow_instance_type: 'ml\.t3\.nano' is not a SageMaker endpoint instance type"),
        ({"monitoring": {"explainability": {"schedule": "cron(0 * ? * * *)", "max_runtime_seconds": 7200}}}, r"explainability\.max_runtime_seconds: 7200 exceeds the schedule's period of 3600"),
        ({"model": {"content_type": "application/json"}, "monitoring": SAGEMAKER}, r"explainability\.enabled: Clarify explains text/csv or application/jsonlines models, model\.content_type is 'application/json'; set it to false"),
        ({"model": {"content_type": "application/jsonlines"}, "monitoring": SAGEMAKER}, r"explainability\.enabled: model\.score_path is required for a JSON Lines model"),
        ({"model": {"content_type": "application/jsonlines", "score_path": "score", "features_path": "data[0]"}, "monitoring": SAGEMAKER}, r"explainability\.enabled: model\.features_path 'data\[0\]' must be a dotted path"),
        (
            {"model": BYO, "monitoring": {**SAGEMAKER, "data_quality": {"enabled": False}}},
            r"explainability\.dataset_s3_uri: required with your own model \(model\.artifact_s3_uri\): Clarify's baseline job reads the dataset",
        ),
        (
            {"model": BYO, "monitoring": {**SAGEMAKER, "data_quality": {"enabled": False}, "explainability": {"dataset_s3_uri": "s3://datasets/train.csv"}}},
            r"explainability\.shap_baseline: required with your own model",
        ),
        ({"monitoring": {"network": {"subnet_ids": ["subnet-0123abcd"]}}}, r"monitoring\.network\.subnet_ids: give both subnet_ids and security_group_ids"),
        ({"monitoring": {"network": {"subnet_ids": ["vpc-0123abcd"], "security_group_ids": ["sg-0123abcd"]}}}, r"network\.subnet_ids: 'vpc-0123abcd' is not valid; each name must be a subnet ID"),
        ({"monitoring": {"data_quality": {"record_preprocessor_s3_uri": "preprocessor.py"}}}, r"data_quality\.record_preprocessor_s3_uri: 'preprocessor\.py' is not valid; must be an s3://bucket/key URI"),
        ({"monitoring": {"data_quality": {"schedule": "rate(1 hour)"}}}, r"data_quality\.schedule: 'rate\(1 hour\)' is not allowed; allowed values: cron\(0 \* \? \* \* \*\)"),
        ({"monitoring": {"data_quality": {"max_runtime_seconds": 7200}}}, r"data_quality\.max_runtime_seconds: 7200 exceeds the schedule's period of 3600 seconds"),
        (
            {"monitoring": {"explainability": {"baseline_max_runtime_seconds": 3600}}},
            r"explainability\.baseline_max_runtime_seconds: 3600 is longer than a deployment can wait for the baseline job \(at most 2700 seconds",
        ),
        ({"monitoring": {"data_quality": {"dataset_has_header": False}}}, r"data_quality\.dataset_has_header: the analyzer names a headerless dataset's columns _c0, _c1"),
        ({"model": {"feature_names": ["probability", *[f"f{i}" for i in range(29)]]}}, r"model\.feature_names: 'probability' names the model's output column"),
        ({"monitoring": {"data_quality": {"instance_type": "ml.m5.huge"}}}, r"data_quality\.instance_type: 'ml\.m5\.huge' is not a SageMaker processing instance type"),
        ({"monitoring": {"data_quality": {"baseline_statistics_s3_uri": "s3://my-bucket/statistics.json"}}}, r"give both baseline_statistics_s3_uri and baseline_constraints_s3_uri, or neither"),
        (
            {"model": BYO, "monitoring": {"data_quality": {"enabled": False}, "explainability": {"enabled": False}}},
            r"retraining\.training_data_s3_uri: required with your own model .*or set enabled to false",
        ),
        (
            {"model": {"image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/m:1"}},
            r"retraining\.training_image_uri: required when model\.image_uri names your own serving image",
        ),
        ({"retraining": {"violation_check_types": ["drift"]}}, r"retraining\.violation_check_types: 'drift' is not allowed; allowed values: data_type_check, .*feature_attribution_drift_check"),
        ({"retraining": {"schedule": "every monday"}}, r"retraining\.schedule: 'every monday' is not valid; must be an EventBridge rate\(\.\.\.\) or cron\(\.\.\.\) expression"),
        ({"retraining": {"deployment": "linear"}}, r"retraining\.deployment: 'linear' is not allowed; allowed values: all_at_once, canary"),
        ({"retraining": {"objective_goal": "max"}}, r"retraining\.objective_goal: 'max' is not allowed; allowed values: minimize, maximize"),
        ({"retraining": {"instance_type": "ml.m5.huge"}}, r"retraining\.instance_type: 'ml\.m5\.huge' is not a SageMaker training instance type"),
        ({"retraining": {"transform_instance_type": "ml.t3.nano"}}, r"retraining\.transform_instance_type: 'ml\.t3\.nano' is not a SageMaker batch transform instance type"),
        (
            {"model": {"content_type": "application/jsonlines", "score_path": "score", "features_path": "features"}},
            r"retraining\.enabled: retraining reads and scores CSV training data \(label first\), and model\.content_type is 'application/jsonlines': set retraining\.enabled to false",
        ),
        ({"retraining": {"hyperparameters": {"eta": ["0.2"]}}}, r"retraining\.hyperparameters\.eta: must be a string or number of 1-256 characters"),
        ({"retraining": {"hyperparameters": {}}}, r"retraining\.hyperparameters: must be a mapping of 1-100 names to values, got \{\}"),
        ({"retraining": {"label_threshold": 0}}, r"retraining\.label_threshold: must be a whole number from 1 to 10000000, got 0"),
        ({"retraining": {"bake_minutes": 61}}, r"retraining\.bake_minutes: must be a whole number from 0 to 60, got 61"),
        ({"retraining": {"manual_approvals": True}}, r"retraining: unknown key\(s\) manual_approvals; allowed keys: .*manual_approval"),
        ({"removal_policy": "delete"}, r"removal_policy: 'delete' is not allowed; allowed values: destroy, retain"),
        ({"serving": {"endpoint": False}}, r"environments\.dev\.serving\.endpoint: false deploys no real-time endpoint, and batch\.enabled is false: nothing would serve"),
        ({"serving": {"endpoint": "no"}}, r"serving\.endpoint: 'no' is not allowed; allowed values: true, false"),
        (
            {"serving": {"endpoint": False}, "batch": {"enabled": True}, "monitoring": {"backend": "sagemaker", "explainability": {"enabled": False}}},
            r"monitoring\.data_quality\.enabled: Model Monitor and Clarify schedules watch an endpoint, and serving\.endpoint is false \(batch only\)",
        ),
        ({"batch": {"content_type": "application/json"}}, r"batch\.content_type: 'application/json' is not allowed; allowed values: text/csv \(the nightly batch splits input files into lines of CSV"),
        ({"batch": {"schedule": "rate(1 day)"}}, r"batch\.schedule: 'rate\(1 day\)' is not valid; must be an EventBridge Scheduler cron\(minutes hours"),
        ({"batch": {"schedule": "cron(0 2 * * * *)"}}, r"batch\.schedule: 'cron\(0 2 \* \* \* \*\)': exactly one of day-of-month and day-of-week must be '\?'"),
        ({"batch": {"timezone": "Paris"}}, r"batch\.timezone: 'Paris' is not an IANA time zone name"),
        ({"batch": {"input_prefix": "/batch/input"}}, r"batch\.input_prefix: '/batch/input' is not valid; must be an S3 key prefix ending with /"),
        ({"batch": {"input_prefix": "batch/"}}, r"batch\.input_prefix: 'batch/' overlaps 'batch/runs/', where each run writes its files"),
        ({"batch": {"instance_type": "ml.t2.medium"}}, r"batch\.instance_type: 'ml\.t2\.medium' is not a SageMaker batch transform instance type"),
        ({"batch": {"instance_count": 0}}, r"batch\.instance_count: must be a whole number from 1 to 100, got 0"),
        ({"batch": {"max_payload_mb": 101}}, r"batch\.max_payload_mb: must be a whole number from 1 to 100, got 101"),
        ({"batch": {"overdue_hours": 1}}, r"batch\.overdue_hours: must be a whole number from 2 to 168, got 1"),
        (
            {"batch": {"enabled": True}, "retraining": {"enabled": False}, "model": {"content_type": "application/json"}},
            r"batch\.enabled: the nightly batch sends text/csv lines to the model, and model\.content_type is 'application/json'",
        ),
        ({"app_name": "My_App"}, r"app_name: 'My_App' is not valid; must be 1-20 lower-case letters"),
        ({"account": "1234"}, r"account: '1234' is not valid; must be a 12-digit AWS account ID"),
        ({"region": "mars-1"}, r"region: 'mars-1' is not valid; must be an AWS region name"),
        ({"endpoint": {"name": "-bad-"}}, r"endpoint\.name: '-bad-' is not valid; must be 1-63 letters, digits or hyphens"),
        ({"endpoint": {"name": "x" * 64}}, r"endpoint\.name: 'x+' is not valid"),
        ({"endpoint": {"instance_type": "m5.xlarge"}}, r"endpoint\.instance_type: 'm5.xlarge' is not valid; must be of the form ml\.<family>\.<size>"),
        ({"endpoint": {"instance_type": "ml.m5.huge"}}, r"endpoint\.instance_type: 'ml.m5.huge' is not a SageMaker endpoint instance type"),
        ({"endpoint": {"instance_count": 0}}, r"endpoint\.instance_count: must be a whole number from 1 to 100, got 0"),
        ({"endpoint": {"variant_name": "all traffic"}}, r"endpoint\.variant_name: 'all traffic' is not valid"),
        ({"model": {"framework": "tensorflow"}}, r"model\.framework: 'tensorflow' is not allowed; allowed values: xgboost, sklearn"),
        ({"model": {"framework_version": "9.9-9"}}, r"model\.framework_version: '9.9-9' is not allowed; allowed values: .*3\.2-0"),
        ({"model": {"content_type": "text/plain"}}, r"model\.content_type: 'text/plain' is not allowed; allowed values: text/csv, application/json, application/jsonlines"),
        ({"model": {"artifact_s3_uri": "https://bucket/model.tar.gz", "feature_names": ["a"]}}, r"model\.artifact_s3_uri: 'https://bucket/model.tar.gz' is not valid; must be an s3://bucket/key URI"),
        ({"model": {"artifact_s3_uri": "s3://bucket/model.tar.gz"}}, r"model\.feature_names: required when artifact_s3_uri names your own model"),
        ({"model": {"image_uri": "docker.io/me/model:1"}}, r"model\.image_uri: 'docker.io/me/model:1' is not valid; must be an ECR image URI"),
        (
            {"model": {"image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/m:1", "framework": "xgboost"}},
            r"model\.image_uri: give either image_uri or framework/framework_version, not both",
        ),
        ({"model": {"feature_names": ["a", "b"]}}, r"model\.feature_names: the bundled model takes 30 features, got 2"),
        ({"model": {"feature_names": []}}, r"model\.feature_names: must be a non-empty list of names"),
        ({"model": {"feature_names": ["mean radius"] * 30}}, r"model\.feature_names: 'mean radius' is not valid; each name must be a letter or _"),
        ({"model": {"label_names": ["yes", "yes"]}}, r"model\.label_names: names must be unique; repeated: yes"),
        ({"model": "xgboost"}, r"environments\.dev\.model: must be a mapping of keys to values, got 'xgboost'"),
    ],
)
def test_bad_value_names_the_key_and_what_is_allowed(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_environment("dev", raw)


def test_flow_definition_text_the_api_accepts_is_kept() -> None:
    review = parse_environment("dev", {"review": {
        "task_keywords": ["breast cancer", "x" * 30, "Review 2"], "task_title": "Tab\there, line\nbreak, \u00e9t\u00e9",
        "task_description": "One line, \u00fcnicode and punctuation: (ok)!",
    }}).review
    assert review.task_keywords == ("breast cancer", "x" * 30, "Review 2")
    assert review.task_title.startswith("Tab\there") and review.task_description.endswith("(ok)!")


def test_unknown_environment_lists_the_known_ones() -> None:
    context = {"environments": {"dev": {}, "prod": {}}, "env": "staging"}
    with pytest.raises(ConfigError, match=r"env: 'staging' is not an environment in cdk.json; allowed values: dev, prod"):
        app_config.load(context.get)


def test_nvme_instance_types_are_recognised() -> None:
    for instance_type in ("ml.m5d.xlarge", "ml.g4dn.xlarge", "ml.g5.2xlarge", "ml.p4d.24xlarge", "ml.c5d.large"):
        assert not parse_environment("dev", {"endpoint": {"instance_type": instance_type}}).endpoint.volume_kms_allowed
    for instance_type in ("ml.m5.xlarge", "ml.c5.large", "ml.t2.medium", "ml.inf1.xlarge"):
        assert parse_environment("dev", {"endpoint": {"instance_type": instance_type}}).endpoint.volume_kms_allowed


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", {"captur": {}, "capture": {"sampling_percentage": 140}, "review": {"rule": "random", "task_keywords": ["a_b", "a_b"]}})
    assert sorted(str(error.value).splitlines()) == [  # each bad value once, however often it is repeated
        "environments.dev.capture.sampling_percentage: must be a whole number from 0 to 100, got 140",
        "environments.dev.review.rule: 'random' is not allowed; allowed values: band, outcome",
        "environments.dev.review.task_keywords: 'a_b' is not valid; each name must be 1-30 letters or digits, words separated by single spaces (no _, - or leading/trailing spaces)",
        "environments.dev: unknown key(s) captur; allowed keys: account, app_name, batch, capture, endpoint, model, monitoring, region, removal_policy, retraining, review, serving",
    ]


def test_configuration_cannot_change_after_it_is_read() -> None:
    config = parse_environment("dev", {})
    with pytest.raises(ValueError, match="frozen"):
        config.review.enabled = False  # type: ignore[misc]
    assert config.environment == "dev" and config.prefix == "mlloop-dev"


def test_model_quality_refuses_a_model_that_is_not_a_binary_classifier() -> None:
    three = {"model": {"label_names": ["low", "middle", "high"]}, "review": {"enabled": False}}
    with pytest.raises(ConfigError, match=r"monitoring\.model_quality\.enabled: model quality covers binary classifiers and model\.label_names has 3 labels; set it to false"):
        parse_environment("dev", three)
    assert not parse_environment("dev", {**three, "monitoring": {"model_quality": {"enabled": False}}}).monitoring.model_quality.enabled
