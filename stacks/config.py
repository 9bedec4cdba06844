"""Typed, validated configuration: the only code that reads CDK context.

``cdk.json`` holds one entry per environment under ``environments``; ``-c env=NAME`` picks one
(default ``dev``). Every key is optional and falls back to the defaults below. A bad value stops
synth with a ``ConfigError`` that names the key and what is allowed; an unknown key is an error
too, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lambdas.capture_filter import selection
from lambdas.shared import baseline as baseline_dataset
from stacks import aws_facts, default_model

DEFAULT_ENVIRONMENT = "dev"

_APP_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d")
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+")
_IMAGE_URI = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_INFERENCE_CONTENT_TYPES = ("text/csv", "application/json", "application/jsonlines")
_REMOVAL_POLICIES = ("destroy", "retain")
_JMESPATH = re.compile(r"\S{1,200}")
_SUBNET = re.compile(r"subnet-[0-9a-f]{8,17}")
_SECURITY_GROUP = re.compile(r"sg-[0-9a-f]{8,17}")
_INSTANCE_TYPE = re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9]+")
# Clarify's SHAP aggregation methods (analysis configuration, methods.shap.agg_method).
_SHAP_AGG_METHODS = ("mean_abs", "median", "mean_sq")
# The longest a deploy-time baseline job may run: CloudFormation waits an hour for the custom
# resource, less the waiting provider's 5-minute answer margin (stacks/waiting_provider.py) and 10
# minutes to start the job's instances, download its data and upload and publish its files.
BASELINE_MAX_RUNTIME = aws_facts.CUSTOM_RESOURCE_MAX_TIMEOUT_SECONDS - 15 * 60


class ConfigError(ValueError):
    """A configuration value that cannot be deployed; the message names the key."""


T = TypeVar("T")


class _Section:
    """Reads one mapping of configuration, remembering which keys were used."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: must be a mapping of keys to values, got {raw!r}")
        self._raw = raw
        self._path = path
        self._known: list[str] = []

    def _take(self, key: str, default: Any) -> tuple[str, Any]:
        self._known.append(key)
        return f"{self._path}.{key}", self._raw.get(key, default)

    def string(
        self,
        key: str,
        default: str | None,
        *,
        pattern: re.Pattern[str] | None = None,
        allowed: tuple[str, ...] | None = None,
        rule: str = "",
    ) -> str | None:
        path, value = self._take(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{path}: must be a string, got {value!r}")
        if allowed is not None and value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not allowed; allowed values: {', '.join(allowed)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise ConfigError(f"{path}: {value!r} is not valid; must be {rule or pattern.pattern}")
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        path, value = self._take(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{path}: must be a whole number from {low} to {high}, got {value!r}")
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        path, value = self._take(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ConfigError(f"{path}: must be a number from {low} to {high}, got {value!r}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        path, value = self._take(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: {value!r} is not allowed; allowed values: true, false")
        return value

    def names(
        self,
        key: str,
        default: tuple[str, ...],
        *,
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
        allowed_from: tuple[str, ...] | None = None,
        allow_empty: bool = False,
    ) -> tuple[str, ...]:
        path, value = self._take(key, default)
        if not isinstance(value, (list, tuple)) or not (value or allow_empty):
            raise ConfigError(f"{path}: must be a non-empty list of names, got {value!r}")
        for item in value:
            if allowed_from is not None and item not in allowed_from:
                raise ConfigError(f"{path}: {item!r} is not allowed; allowed values: {', '.join(allowed_from)}")
            if pattern is not None and (not isinstance(item, str) or not pattern.fullmatch(item)):
                raise ConfigError(f"{path}: {item!r} is not valid; each name must be {rule}")
        if len(set(value)) != len(value):
            duplicates = sorted({v for v in value if value.count(v) > 1})
            raise ConfigError(f"{path}: names must be unique; repeated: {', '.join(duplicates)}")
        return tuple(value)

    def numbers(self, key: str, *, length: int, what: str) -> tuple[float, ...] | None:
        path, value = self._take(key, None)
        if value is None:
            return None
        if (
            not isinstance(value, (list, tuple))
            or len(value) != length
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise ConfigError(f"{path}: must be a list of {length} numbers ({what}), got {value!r}")
        return tuple(float(v) for v in value)

    def section(self, key: str, parse: Callable[[_Section], T]) -> T:
        path, value = self._take(key, {})
        return parse(_Section(value, path))

    def has(self, key: str) -> bool:
        return key in self._raw

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self._path}.{key}: {message}")

    def done(self) -> None:
        unknown = sorted(set(self._raw) - set(self._known))
        if unknown:
            raise ConfigError(
                f"{self._path}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(sorted(self._known))}"
            )


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """What the endpoint serves. No ``artifact_s3_uri`` means the bundled breast-cancer model."""

    artifact_s3_uri: str | None
    framework: str
    framework_version: str
    image_uri: str | None
    content_type: str
    feature_names: tuple[str, ...]
    label_names: tuple[str, ...]
    score_path: str | None  # JSON output: JMESPath to the probability; None: the output is the probability
    features_path: str  # JSON input: JMESPath to the feature list

    @property
    def is_bundled(self) -> bool:
        return self.artifact_s3_uri is None


@dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    name: str
    instance_type: str
    instance_count: int
    variant_name: str

    @property
    def volume_kms_allowed(self) -> bool:
        return not aws_facts.has_local_instance_storage(self.instance_type)


@dataclass(frozen=True, kw_only=True)
class CaptureConfig:
    sampling_percentage: int


# Worker templates in a2i_templates/: seed 000's review of unsure predictions, and seed 002's review
# of predicted outcomes with the attributions that drove them.
REVIEW_TEMPLATES = ("low_confidence", "outcome_review")
_TASK_DESCRIPTIONS = {
    "low_confidence": "The model was unsure about these records. Check each prediction and give the correct label.",
    "outcome_review": "Check each predicted outcome against the features that drove it, and give the correct label.",
}


@dataclass(frozen=True, kw_only=True)
class AttributionsConfig:
    """Per-record SHAP values in review tasks, from the model the endpoint serves (seed 002)."""

    enabled: bool
    top_k: int  # features drawn per record, largest |SHAP value| first
    refresh_seconds: int  # how often the starter asks the endpoint which model it serves


@dataclass(frozen=True, kw_only=True)
class ReviewConfig:
    """Amazon A2I human review of captured predictions (seeds 000 and 002)."""

    enabled: bool
    workteam_arn: str | None
    template: str
    attributions: AttributionsConfig
    rule: str
    lower: float
    upper: float
    outcome: int
    rows_per_loop: int
    max_loops_per_day: int
    task_title: str
    task_description: str
    task_count: int
    task_availability_seconds: int
    task_time_limit_seconds: int
    task_keywords: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class MonitorJobConfig:
    """What every monitor has: a switch, a cadence and the processing cluster its runs use."""

    enabled: bool
    schedule: str
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_runtime_seconds: int
    baseline_max_runtime_seconds: int  # the deploy-time baseline job: it must end within BASELINE_MAX_RUNTIME


@dataclass(frozen=True, kw_only=True)
class DataQualityConfig(MonitorJobConfig):
    """Model Monitor data-quality schedule and its baseline (seeds 000, 001, 004)."""

    dataset_s3_uri: str | None  # None: the bundled model's baseline dataset (lambdas/shared/baseline.py)
    dataset_has_header: bool  # always true: the header names the analyzer's columns and metrics
    baseline_statistics_s3_uri: str | None  # both set: use these files, run no baseline job
    baseline_constraints_s3_uri: str | None
    drift_threshold: float  # alarm when a feature's baseline drift distance exceeds it
    record_preprocessor_s3_uri: str | None  # seed 001's optional scripts
    post_analytics_processor_s3_uri: str | None

    @property
    def computes_baseline(self) -> bool:
        return self.baseline_statistics_s3_uri is None


@dataclass(frozen=True, kw_only=True)
class ExplainabilityConfig(MonitorJobConfig):
    """SageMaker Clarify feature-attribution monitor and its SHAP baseline (seeds 002, 003, 004)."""

    dataset_s3_uri: str | None  # None: the bundled model's training data (CSV, label first, no header)
    label_path: str  # JSON Lines dataset: JMESPath to the label
    shap_baseline: tuple[float, ...] | None  # None: the mean of the bundled training features
    num_samples: int
    agg_method: str
    use_logit: bool
    shadow_instance_type: str
    shadow_instance_count: int


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """Where monitoring and baseline jobs run: SageMaker's network (no subnets) or your VPC."""

    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]

    @property
    def in_vpc(self) -> bool:
        return bool(self.subnet_ids)


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    data_quality: DataQualityConfig
    explainability: ExplainabilityConfig
    network: NetworkConfig

    @property
    def any_enabled(self) -> bool:
        return self.data_quality.enabled or self.explainability.enabled


@dataclass(frozen=True, kw_only=True)
class RetrainingConfig:
    """EventBridge -> Step Functions retraining on the original data plus the reviewers' labels (seed 004)."""

    enabled: bool
    training_data_s3_uri: str | None  # None: the bundled model's training CSV (label first, no header)
    training_image_uri: str | None  # None: the SDK's training image for model.framework/framework_version
    hyperparameters: Mapping[str, str]
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_runtime_seconds: int
    transform_instance_type: str  # the batch transform that scores the training set for the new baseline
    validation_percentage: int  # of records, chosen by a hash of each record, so stable across runs
    objective_metric: str  # a FinalMetricDataList name, e.g. validation:logloss
    objective_goal: str  # minimize | maximize
    tolerance: float  # promote if the new metric is worse by at most this much
    label_threshold: int  # new labels since the last training that start a run
    drift_alarms: bool  # a drift alarm entering ALARM starts a run
    violation_check_types: tuple[str, ...]  # Monitoring Run Ended violations that start a run
    schedule: str | None  # an EventBridge rate()/cron() that starts a run, or None
    cooldown_hours: int  # drift triggers within this long of the last run's start are recorded, not run
    manual_approval: bool
    approval_timeout_hours: int
    deployment: str  # all_at_once | canary
    canary_percentage: int
    bake_minutes: int  # blue/green: watch the rollback alarms this long before the old fleet goes
    timeout_hours: int  # the whole execution


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    environment: str
    app_name: str
    account: str | None
    region: str | None
    removal_policy: str
    model: ModelConfig
    endpoint: EndpointConfig
    capture: CaptureConfig
    review: ReviewConfig
    monitoring: MonitoringConfig
    retraining: RetrainingConfig

    @property
    def retain_data(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def prefix(self) -> str:
        """``<app_name>-<env>``: the start of every stack, schedule, job and function name."""
        return f"{self.app_name}-{self.environment}"

    def stack_name(self, part: str) -> str:
        return f"{self.prefix}-{part}"

    @property
    def served_model_parameter(self) -> str:
        """SSM parameter holding the ModelDataUrl the serving stack deploys (retraining's Promote writes it)."""
        return f"/{self.app_name}/{self.environment}/serving/model-data-url"


def _parse_model(s: _Section) -> ModelConfig:
    artifact = s.string("artifact_s3_uri", None, pattern=_S3_URI, rule="an s3://bucket/key URI")
    image_uri = s.string("image_uri", None, pattern=_IMAGE_URI, rule="an ECR image URI with a tag or digest")
    if image_uri is not None and (s.has("framework") or s.has("framework_version")):
        raise s.error("image_uri", "give either image_uri or framework/framework_version, not both")
    framework = s.string("framework", default_model.FRAMEWORK, allowed=_supported_frameworks())
    versions = _framework_versions(framework)
    framework_version = s.string("framework_version", default_model.FRAMEWORK_VERSION, allowed=versions)
    content_type = s.string("content_type", default_model.CONTENT_TYPE, allowed=_INFERENCE_CONTENT_TYPES)
    name_rule = "a letter or _ then letters, digits or _ (at most 63), usable in metric names and JMESPath"
    if artifact is None:
        features = s.names("feature_names", default_model.FEATURE_NAMES, pattern=_IDENTIFIER, rule=name_rule)
        if features != default_model.FEATURE_NAMES and len(features) != len(default_model.FEATURE_NAMES):
            raise s.error(
                "feature_names",
                f"the bundled model takes {len(default_model.FEATURE_NAMES)} features, got {len(features)}",
            )
    else:
        if not s.has("feature_names"):
            raise s.error("feature_names", "required when artifact_s3_uri names your own model")
        features = s.names("feature_names", (), pattern=_IDENTIFIER, rule=name_rule)
    if baseline_dataset.OUTPUT_COLUMN in features:
        raise s.error("feature_names", f"{baseline_dataset.OUTPUT_COLUMN!r} names the model's output column in the data-quality baseline; rename that feature")
    labels = s.names("label_names", default_model.LABEL_NAMES, pattern=re.compile(r"\S.{0,62}"), rule="1-63 characters")
    score_path = s.string("score_path", None, pattern=_JMESPATH, rule="a JMESPath expression")
    features_path = s.string("features_path", "features", pattern=_JMESPATH, rule="a JMESPath expression")
    s.done()
    return ModelConfig(
        artifact_s3_uri=artifact,
        framework=framework,
        framework_version=framework_version,
        image_uri=image_uri,
        content_type=content_type,
        feature_names=features,
        label_names=labels,
        score_path=score_path,
        features_path=features_path,
    )


def _parse_endpoint(s: _Section, default_name: str) -> EndpointConfig:
    name = s.string(
        "name",
        default_name,
        pattern=aws_facts.SAGEMAKER_NAME_PATTERN,
        rule="1-63 letters, digits or hyphens, starting and ending with a letter or digit",
    )
    instance_types = aws_facts.endpoint_instance_types()
    instance_type = s.string("instance_type", "ml.m5.xlarge", pattern=re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9]+"), rule="of the form ml.<family>.<size>")
    if instance_type not in instance_types:
        raise s.error("instance_type", f"{instance_type!r} is not a SageMaker endpoint instance type (see ProductionVariantInstanceType)")
    endpoint = EndpointConfig(
        name=name,
        instance_type=instance_type,
        instance_count=s.integer("instance_count", 1, low=1, high=100),
        variant_name=s.string("variant_name", "AllTraffic", pattern=aws_facts.SAGEMAKER_NAME_PATTERN, rule="1-63 letters, digits or hyphens"),
    )
    s.done()
    return endpoint


def _parse_capture(s: _Section) -> CaptureConfig:
    capture = CaptureConfig(sampling_percentage=s.integer("sampling_percentage", 100, low=0, high=100))
    s.done()
    return capture


def _parse_attributions(s: _Section, model: ModelConfig) -> AttributionsConfig:
    features = len(model.feature_names)
    # Exact attributions need an XGBoost model; with your own container, turn them on if it serves one.
    enabled = s.boolean("enabled", model.framework == "xgboost" and model.image_uri is None)
    if enabled and model.image_uri is None and model.framework != "xgboost":
        raise s.error("enabled", f"attributions explain XGBoost models (TreeSHAP); model.framework is {model.framework}: set it to false")
    attributions = AttributionsConfig(
        enabled=enabled,
        top_k=s.integer("top_k", min(10, features), low=1, high=features),
        refresh_seconds=s.integer("refresh_seconds", 60, low=10, high=3_600),
    )
    s.done()
    return attributions


def _parse_review(s: _Section, model: ModelConfig) -> ReviewConfig:
    labels = model.label_names
    workteam = s.string(
        "workteam_arn",
        None,
        pattern=aws_facts.WORKTEAM_ARN_PATTERN,
        rule="a private workteam ARN, arn:<partition>:sagemaker:<region>:<account>:workteam/private-crowd/<name>",
    )
    template = s.string("template", "low_confidence", allowed=REVIEW_TEMPLATES)
    rule = s.string("rule", "band", allowed=selection.RULES)
    lower = s.number("lower", 0.1, low=0.0, high=1.0)
    upper = s.number("upper", 0.9, low=0.0, high=1.0)
    if not lower < upper:
        raise s.error("upper", f"must be greater than lower ({lower}), got {upper}")
    outcome = s.integer("outcome", 0, low=0, high=len(labels) - 1)
    review = ReviewConfig(
        enabled=s.boolean("enabled", True),
        workteam_arn=workteam,
        template=template,
        attributions=s.section("attributions", lambda a: _parse_attributions(a, model)),
        rule=rule,
        lower=lower,
        upper=upper,
        outcome=outcome,
        rows_per_loop=s.integer("rows_per_loop", 3, low=1, high=aws_facts.MAX_ROWS_PER_LOOP),
        max_loops_per_day=s.integer("max_loops_per_day", 200, low=1, high=100_000),
        task_title=s.string(
            "task_title",
            "Review a model prediction",
            pattern=aws_facts.TASK_TITLE_PATTERN,
            rule="1-128 characters: no control characters but tab and line breaks, nothing beyond U+FFFD (such as emoji)",
        ),
        task_description=s.string(
            "task_description",
            _TASK_DESCRIPTIONS[template],
            pattern=aws_facts.TASK_DESCRIPTION_PATTERN,
            rule="1-255 characters on one line (no line breaks)",
        ),
        task_count=s.integer("task_count", 1, low=1, high=3),
        task_availability_seconds=s.integer("task_availability_seconds", 86_400, low=60, high=864_000),
        task_time_limit_seconds=s.integer("task_time_limit_seconds", 3_600, low=30, high=28_800),
        task_keywords=s.names(
            "task_keywords",
            ("review", "classification"),
            pattern=aws_facts.TASK_KEYWORD_PATTERN,
            rule="1-30 letters or digits, words separated by single spaces (no _, - or leading/trailing spaces)",
        ),
    )
    if len(review.task_keywords) > aws_facts.TASK_KEYWORDS_MAX:
        raise s.error("task_keywords", f"at most {aws_facts.TASK_KEYWORDS_MAX} keywords, got {len(review.task_keywords)}")
    s.done()
    return review


def _monitor_job(s: _Section, default_schedule: str) -> dict[str, Any]:
    """The fields of ``MonitorJobConfig``; ``max_runtime_seconds`` must fit the cadence."""
    cadences = tuple(aws_facts.MONITORING_CADENCES)
    schedule = s.string("schedule", default_schedule, allowed=cadences)
    instance_type = s.string("instance_type", "ml.m5.xlarge", pattern=_INSTANCE_TYPE, rule="of the form ml.<family>.<size>")
    if instance_type not in aws_facts.processing_instance_types():
        raise s.error("instance_type", f"{instance_type!r} is not a SageMaker processing instance type (see ProcessingInstanceType)")
    period = aws_facts.MONITORING_CADENCES[schedule]
    max_runtime = s.integer("max_runtime_seconds", min(3_600, period), low=60, high=aws_facts.MONITORING_MAX_RUNTIME)
    if max_runtime > period:
        raise s.error("max_runtime_seconds", f"{max_runtime} exceeds the schedule's period of {period} seconds ({schedule}); a run must end before the next starts")
    baseline_runtime = s.integer("baseline_max_runtime_seconds", min(max_runtime, BASELINE_MAX_RUNTIME), low=60, high=aws_facts.MONITORING_MAX_RUNTIME)
    if baseline_runtime > BASELINE_MAX_RUNTIME:
        raise s.error(
            "baseline_max_runtime_seconds",
            f"{baseline_runtime} is longer than a deployment can wait for the baseline job (at most {BASELINE_MAX_RUNTIME} seconds: "
            "CloudFormation waits an hour for a custom resource); for a longer baseline, compute it yourself and give its files",
        )
    return {
        "enabled": s.boolean("enabled", True),
        "schedule": schedule,
        "instance_type": instance_type,
        "instance_count": s.integer("instance_count", 1, low=1, high=100),
        "volume_size_gb": s.integer("volume_size_gb", 20, low=1, high=16_384),
        "max_runtime_seconds": max_runtime,
        "baseline_max_runtime_seconds": baseline_runtime,
    }


def _s3_uri(s: _Section, key: str) -> str | None:
    return s.string(key, None, pattern=_S3_URI, rule="an s3://bucket/key URI")


def _header_required(s: _Section) -> bool:
    if not s.boolean("dataset_has_header", True):
        raise s.error(
            "dataset_has_header",
            "the analyzer names a headerless dataset's columns _c0, _c1, ..., so no drift alarm "
            f"(feature_baseline_drift_<feature>) could fire; add a header row: {baseline_dataset.OUTPUT_COLUMN},<model.feature_names>",
        )
    return True


def _parse_data_quality(s: _Section, bundled: bool) -> DataQualityConfig:
    job = _monitor_job(s, "cron(0 * ? * * *)")
    dataset = _s3_uri(s, "dataset_s3_uri")
    statistics = _s3_uri(s, "baseline_statistics_s3_uri")
    constraints = _s3_uri(s, "baseline_constraints_s3_uri")
    if (statistics is None) != (constraints is None):
        raise s.error("baseline_statistics_s3_uri", "give both baseline_statistics_s3_uri and baseline_constraints_s3_uri, or neither")
    if job["enabled"] and dataset is None and statistics is None and not bundled:
        raise s.error(
            "dataset_s3_uri",
            "required with your own model (model.artifact_s3_uri): the baseline is computed from it; "
            "or give baseline_statistics_s3_uri and baseline_constraints_s3_uri, or set enabled to false",
        )
    config = DataQualityConfig(
        **job,
        dataset_s3_uri=dataset,
        dataset_has_header=_header_required(s),
        baseline_statistics_s3_uri=statistics,
        baseline_constraints_s3_uri=constraints,
        drift_threshold=s.number("drift_threshold", 0.1, low=0.0, high=1.0),
        record_preprocessor_s3_uri=_s3_uri(s, "record_preprocessor_s3_uri"),
        post_analytics_processor_s3_uri=_s3_uri(s, "post_analytics_processor_s3_uri"),
    )
    s.done()
    return config


def _parse_explainability(s: _Section, model: ModelConfig) -> ExplainabilityConfig:
    job = _monitor_job(s, "cron(0 0 ? * * *)")
    dataset = _s3_uri(s, "dataset_s3_uri")
    baseline = s.numbers("shap_baseline", length=len(model.feature_names), what="one per model.feature_names")
    if job["enabled"] and not model.is_bundled:
        for key, value in (("dataset_s3_uri", dataset), ("shap_baseline", baseline)):
            if value is None:
                raise s.error(
                    key,
                    "required with your own model (model.artifact_s3_uri): Clarify's baseline job reads the dataset, and SHAP "
                    "needs a background record (e.g. the mean of your training features); or set enabled to false",
                )
    if job["enabled"] and model.content_type not in ("text/csv", "application/jsonlines"):
        raise s.error("enabled", f"Clarify explains text/csv or application/jsonlines models, model.content_type is {model.content_type!r}; set it to false")
    if job["enabled"] and model.content_type == "application/jsonlines":
        if model.score_path is None:
            raise s.error("enabled", "model.score_path is required for a JSON Lines model: it locates the score Clarify explains")
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", model.features_path):
            raise s.error("enabled", f"model.features_path {model.features_path!r} must be a dotted path of names (a.b.c) for Clarify to build requests")
    shadow_type = s.string("shadow_instance_type", "ml.m5.xlarge", pattern=_INSTANCE_TYPE, rule="of the form ml.<family>.<size>")
    if shadow_type not in aws_facts.endpoint_instance_types():
        raise s.error("shadow_instance_type", f"{shadow_type!r} is not a SageMaker endpoint instance type (see ProductionVariantInstanceType)")
    config = ExplainabilityConfig(
        **job,
        dataset_s3_uri=dataset,
        label_path=s.string("label_path", "label", pattern=_JMESPATH, rule="a JMESPath expression"),
        shap_baseline=baseline,
        num_samples=s.integer("num_samples", 100, low=1, high=100_000),
        agg_method=s.string("agg_method", "mean_abs", allowed=_SHAP_AGG_METHODS),
        use_logit=s.boolean("use_logit", False),
        shadow_instance_type=shadow_type,
        shadow_instance_count=s.integer("shadow_instance_count", 1, low=1, high=10),
    )
    s.done()
    return config


def _parse_network(s: _Section) -> NetworkConfig:
    subnets = s.names("subnet_ids", (), pattern=_SUBNET, rule="a subnet ID, subnet-<hex>", allow_empty=True)
    groups = s.names("security_group_ids", (), pattern=_SECURITY_GROUP, rule="a security group ID, sg-<hex>", allow_empty=True)
    if bool(subnets) != bool(groups):
        raise s.error("subnet_ids", "give both subnet_ids and security_group_ids (a VPC for monitoring jobs), or neither")
    if len(subnets) > 16 or len(groups) > 5:
        raise s.error("subnet_ids", f"at most 16 subnets and 5 security groups (VpcConfig), got {len(subnets)} and {len(groups)}")
    s.done()
    return NetworkConfig(subnet_ids=subnets, security_group_ids=groups)


def _parse_monitoring(s: _Section, model: ModelConfig) -> MonitoringConfig:
    monitoring = MonitoringConfig(
        data_quality=s.section("data_quality", lambda d: _parse_data_quality(d, model.is_bundled)),
        explainability=s.section("explainability", lambda e: _parse_explainability(e, model)),
        network=s.section("network", _parse_network),
    )
    s.done()
    return monitoring


def _parse_retraining(s: _Section, model: ModelConfig) -> RetrainingConfig:
    data = _s3_uri(s, "training_data_s3_uri")
    image = s.string("training_image_uri", None, pattern=_IMAGE_URI, rule="an ECR image URI with a tag or digest")
    enabled = s.boolean("enabled", True)
    if enabled and not model.is_bundled and data is None:
        raise s.error("training_data_s3_uri", "required with your own model (model.artifact_s3_uri): retraining adds the labels to it; or set enabled to false")
    if enabled and model.image_uri is not None and image is None:
        raise s.error("training_image_uri", "required when model.image_uri names your own serving image; or set enabled to false")
    if enabled and model.content_type != "text/csv":
        raise s.error(
            "enabled",
            f"retraining reads and scores CSV training data (label first), and model.content_type is {model.content_type!r}: "
            "set retraining.enabled to false, or serve a text/csv model",
        )
    path, raw_parameters = s._take("hyperparameters", dict(default_model.HYPERPARAMETERS))
    if not isinstance(raw_parameters, Mapping) or not raw_parameters or len(raw_parameters) > 100:
        raise ConfigError(f"{path}: must be a mapping of 1-100 hyperparameter names to values, got {raw_parameters!r}")
    hyperparameters = {}
    for name, value in raw_parameters.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not re.fullmatch(r"[^\s]{1,256}", str(value)):
            raise ConfigError(f"{path}.{name}: must be a string or number of 1-256 characters, got {value!r}")
        hyperparameters[str(name)] = str(value)
    instance_type = s.string("instance_type", "ml.m5.xlarge", pattern=_INSTANCE_TYPE, rule="of the form ml.<family>.<size>")
    if instance_type not in aws_facts.training_instance_types():
        raise s.error("instance_type", f"{instance_type!r} is not a SageMaker training instance type (see TrainingInstanceType)")
    transform_type = s.string("transform_instance_type", "ml.m5.xlarge", pattern=_INSTANCE_TYPE, rule="of the form ml.<family>.<size>")
    if transform_type not in aws_facts.transform_instance_types():
        raise s.error("transform_instance_type", f"{transform_type!r} is not a SageMaker batch transform instance type (see TransformInstanceType)")
    schedule = s.string("schedule", None, pattern=aws_facts.EVENTBRIDGE_SCHEDULE_PATTERN, rule="an EventBridge rate(...) or cron(...) expression")
    check_types = s.names("violation_check_types", ("baseline_drift_check",), allowed_from=aws_facts.VIOLATION_CHECK_TYPES, allow_empty=True)
    deployment = s.string("deployment", "all_at_once", allowed=("all_at_once", "canary"))
    config = RetrainingConfig(
        enabled=enabled,
        training_data_s3_uri=data,
        training_image_uri=image,
        hyperparameters=hyperparameters,
        instance_type=instance_type,
        instance_count=s.integer("instance_count", 1, low=1, high=100),
        volume_size_gb=s.integer("volume_size_gb", 30, low=1, high=16_384),
        max_runtime_seconds=s.integer("max_runtime_seconds", 3_600, low=60, high=aws_facts.TRAINING_MAX_RUNTIME),
        transform_instance_type=transform_type,
        validation_percentage=s.integer("validation_percentage", 20, low=1, high=50),
        objective_metric=s.string("objective_metric", "validation:logloss", pattern=re.compile(r".+"), rule="a metric name the training job reports"),
        objective_goal=s.string("objective_goal", "minimize", allowed=("minimize", "maximize")),
        tolerance=s.number("tolerance", 0.01, low=0.0, high=1e9),
        label_threshold=s.integer("label_threshold", 50, low=1, high=10_000_000),
        drift_alarms=s.boolean("drift_alarms", True),
        violation_check_types=check_types,
        schedule=schedule,
        cooldown_hours=s.integer("cooldown_hours", 24, low=0, high=24 * 30),
        manual_approval=s.boolean("manual_approval", False),
        approval_timeout_hours=s.integer("approval_timeout_hours", 24, low=1, high=24 * 7),
        deployment=deployment,
        canary_percentage=s.integer("canary_percentage", 10, low=1, high=99),
        bake_minutes=s.integer("bake_minutes", 10, low=0, high=60),
        timeout_hours=s.integer("timeout_hours", 12, low=1, high=24 * 7),
    )
    s.done()
    return config


def parse_environment(environment: str, raw: Any) -> AppConfig:
    """Build the configuration of one environment from its ``cdk.json`` entry."""
    s = _Section(raw, f"environments.{environment}")
    app_name = s.string("app_name", "mlloop", pattern=_APP_NAME, rule="1-20 lower-case letters, digits or hyphens, starting with a letter")
    model = s.section("model", _parse_model)
    config = AppConfig(
        environment=environment,
        app_name=app_name,
        account=s.string("account", None, pattern=_ACCOUNT, rule="a 12-digit AWS account ID"),
        region=s.string("region", None, pattern=_REGION, rule="an AWS region name such as eu-west-1"),
        removal_policy=s.string("removal_policy", "retain", allowed=_REMOVAL_POLICIES),
        model=model,
        endpoint=s.section("endpoint", lambda e: _parse_endpoint(e, f"{app_name}-{environment}")),
        capture=s.section("capture", _parse_capture),
        review=s.section("review", lambda r: _parse_review(r, model)),
        monitoring=s.section("monitoring", lambda m: _parse_monitoring(m, model)),
        retraining=s.section("retraining", lambda r: _parse_retraining(r, model)),
    )
    s.done()
    if config.region is not None and config.region.startswith(aws_facts.MODEL_MONITOR_UNAVAILABLE_REGION_PREFIXES):
        for monitor in ("data_quality", "explainability"):
            if getattr(config.monitoring, monitor).enabled:
                raise ConfigError(
                    f"environments.{environment}.monitoring.{monitor}.enabled: CloudFormation has no Model Monitor resources "
                    f"in {config.region}; set it to false"
                )
    if config.review.enabled and config.region is not None and config.region not in aws_facts.A2I_REGIONS:
        raise ConfigError(
            f"environments.{environment}.review.enabled: Amazon A2I is not offered in {config.region}; set it to false, "
            f"or deploy to one of: {', '.join(aws_facts.A2I_REGIONS)}"
        )
    return config


def load(context: Callable[[str], Any]) -> AppConfig:
    """Read ``environments`` and ``env`` through ``context`` (``app.node.try_get_context``)."""
    environments = context("environments") or {}
    environment = context("env") or DEFAULT_ENVIRONMENT
    if not isinstance(environments, Mapping) or environment not in environments:
        known = ", ".join(sorted(environments)) if isinstance(environments, Mapping) else "none"
        raise ConfigError(f"env: {environment!r} is not an environment in cdk.json; allowed values: {known}")
    if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", environment):
        raise ConfigError(f"env: {environment!r} is not valid; must be 1-10 lower-case letters or digits")
    return parse_environment(environment, environments[environment])


def _supported_frameworks() -> tuple[str, ...]:
    # Frameworks whose containers read a model artefact and take CSV / JSON rows.
    return ("xgboost", "sklearn")


def _framework_versions(framework: str) -> tuple[str, ...]:
    from stacks import images  # imports the SageMaker SDK, which only this check and images need

    return images.framework_versions(framework)
