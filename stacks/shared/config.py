"""Typed, validated configuration: the only code that reads CDK context.

``cdk.json`` holds one entry per environment under ``environments``; ``-c env=NAME`` picks one
(default ``dev``). Every key is optional and falls back to the defaults below. Each section is a
pydantic model, frozen and strictly typed, that forbids unknown keys, so a typo cannot silently
fall back to a default. A bad value stops synth with a ``ConfigError`` that names the key and what
is allowed.

The models also give the JSON Schema of one environment, ``stacks/shared/config.schema.json``, which
editors use to check and complete ``cdk.json`` (README, "Configuration"). After changing a model,
regenerate it: ``.venv/bin/python -m stacks.shared.config --schema > stacks/shared/config.schema.json``.
"""

import json
import re
import sys
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, WithJsonSchema
from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError, PydanticKnownError, core_schema

from lambdas.capture import selection
from lambdas.shared import baseline as baseline_dataset
from stacks.shared import aws_facts, default_model

DEFAULT_ENVIRONMENT = "dev"
# The repository's cdk.json, which the tools on a user's machine read (cdk synth reads it through its context).
CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
SCHEMA_COMMAND = ".venv/bin/python -m stacks.shared.config --schema > stacks/shared/config.schema.json"

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
_HYPERPARAMETER_VALUE = re.compile(r"\S{1,256}")
# Clarify's SHAP aggregation methods (analysis configuration, methods.shap.agg_method).
_SHAP_AGG_METHODS = ("mean_abs", "median", "mean_sq")
# The longest a deploy-time baseline job may run: CloudFormation waits an hour for the custom
# resource, less the waiting provider's 5-minute answer margin (stacks/shared/waiting_provider.py) and 10
# minutes to start the job's instances, download its data and upload and publish its files.
BASELINE_MAX_RUNTIME = aws_facts.CUSTOM_RESOURCE_MAX_TIMEOUT_SECONDS - 15 * 60
# Where each nightly batch run writes its files in the datasets bucket: batch/runs/<run id>/ holds
# manifest.json, input/, output/, capture/, rejected.jsonl, report.json and report.html.
BATCH_RUNS_PREFIX = "batch/runs/"

# Worker templates in a2i_templates/: seed 000's review of unsure predictions, and seed 002's review
# of predicted outcomes with the attributions that drove them.
REVIEW_TEMPLATES = ("low_confidence", "outcome_review")
_TASK_DESCRIPTIONS = {
    # Neutral: a task may hold audit rows (review.audit_percentage), chosen at random, and a reviewer
    # is never told which, nor misled that the model was unsure of them.
    "low_confidence": "Check each prediction against the record; where it is wrong, give the correct label.",
    "outcome_review": "Check each predicted outcome against the features that drove it; where it is wrong, give the correct label.",
}


def _supported_frameworks() -> tuple[str, ...]:
    # Frameworks whose containers read a model artefact and take CSV / JSON rows.
    return ("xgboost", "sklearn")


class ConfigError(ValueError):
    """A configuration value that cannot be deployed; the message names the key."""


def _invalid(message: str, key: str | None = None) -> PydanticCustomError:
    """One of our own checks failed: the whole message, and the key below the section that checks."""
    return PydanticCustomError("config", message, {"at": key})


class _Matches:
    """A string that ``pattern`` (Python ``re``) matches whole; ``rule`` says what that is in words.

    pydantic's ``pattern`` constraint searches rather than matching whole, so the check is ours. The
    schema carries the pattern anchored, for editors, and the rule as ``patternErrorMessage`` (VS Code).
    """

    def __init__(self, pattern: re.Pattern[str], rule: str) -> None:
        self.pattern = pattern
        self.rule = rule

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], core_schema.CoreSchema]) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, value: str) -> str:
        if not self.pattern.fullmatch(value):
            raise PydanticKnownError("string_pattern_mismatch", {"pattern": self.pattern.pattern})
        return value

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: Callable[[Any], dict]) -> dict:
        # ECMA-262 regular expressions have no \Z: $ (without the m flag) ends the input there too.
        anchored = "^(?:" + self.pattern.pattern.replace(r"\Z", "$") + ")$"
        return {**handler(schema), "pattern": anchored, "patternErrorMessage": f"must be {self.rule}"}


class _OneOf:
    """A value from a list botocore's SageMaker service model holds (instance types), read when needed."""

    def __init__(self, values: Callable[[], tuple[str, ...]], what: str) -> None:
        self.values = values
        self.what = what

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], core_schema.CoreSchema]) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, value: str) -> str:
        if value not in self.values():
            raise _invalid(f"{value!r} is not a SageMaker {self.what}")
        return value

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: Callable[[Any], dict]) -> dict:
        return {**handler(schema), "enum": list(self.values())}


class _Unique:
    """A list whose items all differ."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], core_schema.CoreSchema]) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    @staticmethod
    def _check(value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            repeated = sorted({v for v in value if value.count(v) > 1})
            raise _invalid(f"names must be unique; repeated: {', '.join(repeated)}")
        return value

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: Callable[[Any], dict]) -> dict:
        return {**handler(schema), "uniqueItems": True}


def _hyperparameter_text(value: Any) -> str:
    # A training job takes every hyperparameter as a string; a JSON number is written as one.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not _HYPERPARAMETER_VALUE.fullmatch(str(value)):
        raise _invalid(f"must be a string or number of 1-256 characters, got {value!r}")
    return str(value)


def _names(pattern: re.Pattern[str], rule: str) -> Any:
    """A list of unique names, each matching ``pattern``; lists arrive from JSON, kept as tuples."""
    return Annotated[tuple[Annotated[str, _Matches(pattern, rule)], ...], Field(strict=False), _Unique()]


_S3Uri = Annotated[str, _Matches(_S3_URI, "an s3://bucket/key URI")]
_ImageUri = Annotated[str, _Matches(_IMAGE_URI, "an ECR image URI with a tag or digest")]
_JMESPath = Annotated[str, _Matches(_JMESPATH, "a JMESPath expression")]
_SageMakerName = Annotated[
    str, _Matches(aws_facts.SAGEMAKER_NAME_PATTERN, "1-63 letters, digits or hyphens, starting and ending with a letter or digit")
]
_InstanceTypeForm = _Matches(_INSTANCE_TYPE, "of the form ml.<family>.<size>")
_EndpointInstanceType = Annotated[
    str, _InstanceTypeForm, _OneOf(aws_facts.endpoint_instance_types, "endpoint instance type (see ProductionVariantInstanceType)")
]
_ProcessingInstanceType = Annotated[
    str, _InstanceTypeForm, _OneOf(aws_facts.processing_instance_types, "processing instance type (see ProcessingInstanceType)")
]
_TrainingInstanceType = Annotated[
    str, _InstanceTypeForm, _OneOf(aws_facts.training_instance_types, "training instance type (see TrainingInstanceType)")
]
_TransformInstanceType = Annotated[
    str, _InstanceTypeForm, _OneOf(aws_facts.transform_instance_types, "batch transform instance type (see TransformInstanceType)")
]
_HyperparameterValue = Annotated[
    str,
    BeforeValidator(_hyperparameter_text),
    WithJsonSchema({"type": ["string", "number"], "pattern": f"^{_HYPERPARAMETER_VALUE.pattern}$"}),
]


def _section() -> Any:
    """A section left out of cdk.json is validated as {}, so defaults that follow other keys apply to it too."""
    return Field(default_factory=dict, validate_default=True)


def _parsed(info: ValidationInfo) -> dict[str, Any]:
    """What ``AppConfig`` validated before the section being validated: ``environment``, ``app_name``, ``model``."""
    return info.context if isinstance(info.context, dict) else {}


def _without_default(schema: dict) -> None:
    schema.pop("default", None)


def _derived(default: Any, description: str, **constraints: Any) -> Any:
    """A field whose default follows other keys (a validator sets it): the schema says how, with no value."""
    return Field(default, description=description, json_schema_extra=_without_default, **constraints)


class _Section(BaseModel):
    """One mapping of configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class ModelConfig(_Section):
    """What the endpoint serves. No ``artifact_s3_uri`` means the bundled breast-cancer model."""

    artifact_s3_uri: _S3Uri | None = None
    framework: Literal[_supported_frameworks()] = default_model.FRAMEWORK
    framework_version: str = Field(default_model.FRAMEWORK_VERSION, description="a version the SageMaker SDK has an inference image for")
    image_uri: _ImageUri | None = Field(None, description="your own serving image; give it instead of framework/framework_version")
    content_type: Literal[_INFERENCE_CONTENT_TYPES] = default_model.CONTENT_TYPE
    feature_names: _names(
        _IDENTIFIER, "a letter or _ then letters, digits or _ (at most 63), usable in metric names and JMESPath"
    ) = Field(default_model.FEATURE_NAMES, min_length=1, description="in column order; required with artifact_s3_uri")
    label_names: _names(re.compile(r"\S.{0,62}"), "1-63 characters") = Field(default_model.LABEL_NAMES, min_length=1)
    score_path: _JMESPath | None = Field(None, description="JSON output: JMESPath to the probability; none: the output is the probability")
    features_path: _JMESPath = Field("features", description="JSON input: JMESPath to the feature list")

    @property
    def is_bundled(self) -> bool:
        return self.artifact_s3_uri is None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.image_uri is not None and {"framework", "framework_version"} & self.model_fields_set:
            raise _invalid("give either image_uri or framework/framework_version, not both", "image_uri")
        versions = _framework_versions(self.framework)
        if self.framework_version not in versions:
            raise _invalid(f"{self.framework_version!r} is not allowed; allowed values: {', '.join(versions)}", "framework_version")
        bundled = default_model.FEATURE_NAMES
        if self.is_bundled and self.feature_names != bundled and len(self.feature_names) != len(bundled):
            raise _invalid(f"the bundled model takes {len(bundled)} features, got {len(self.feature_names)}", "feature_names")
        if not self.is_bundled and "feature_names" not in self.model_fields_set:
            raise _invalid("required when artifact_s3_uri names your own model", "feature_names")
        if baseline_dataset.OUTPUT_COLUMN in self.feature_names:
            raise _invalid(
                f"{baseline_dataset.OUTPUT_COLUMN!r} names the model's output column in the data-quality baseline; rename that feature",
                "feature_names",
            )
        return self


class EndpointConfig(_Section):
    name: _SageMakerName = _derived("", "default: <app_name>-<environment>")
    instance_type: _EndpointInstanceType = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1, le=100)
    variant_name: _SageMakerName = "AllTraffic"

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any, info: ValidationInfo) -> Any:
        parsed = _parsed(info)
        if isinstance(data, Mapping) and "name" not in data and "app_name" in parsed:
            return {**data, "name": f"{parsed['app_name']}-{parsed['environment']}"}
        return data

    @property
    def volume_kms_allowed(self) -> bool:
        return not aws_facts.has_local_instance_storage(self.instance_type)


class CaptureConfig(_Section):
    sampling_percentage: int = Field(100, ge=0, le=100)


class AttributionsConfig(_Section):
    """Per-record SHAP values in review tasks, from the model the endpoint serves (seed 002)."""

    # Exact attributions need an XGBoost model; with your own container, turn them on if it serves one.
    enabled: bool = _derived(False, "default: true for an XGBoost model served by the SDK's image (TreeSHAP)")
    top_k: int = _derived(10, "features drawn per record, largest |SHAP value| first; default 10, at most model.feature_names", ge=1)
    refresh_seconds: int = Field(60, ge=10, le=3_600, description="how often the starter asks the endpoint which model it serves")

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_model(cls, data: Any, info: ValidationInfo) -> Any:
        model = _parsed(info).get("model")
        if not isinstance(data, Mapping) or model is None:
            return data
        return {"enabled": model.framework == "xgboost" and model.image_uri is None, "top_k": min(10, len(model.feature_names)), **data}

    @model_validator(mode="after")
    def _fits_model(self, info: ValidationInfo) -> Self:
        model = _parsed(info).get("model")
        if model is None:
            return self
        if self.enabled and model.image_uri is None and model.framework != "xgboost":
            raise _invalid(f"attributions explain XGBoost models (TreeSHAP); model.framework is {model.framework}: set it to false", "enabled")
        if self.top_k > len(model.feature_names):
            raise _invalid(f"must be a whole number from 1 to {len(model.feature_names)}, got {self.top_k}", "top_k")
        return self


class ReviewConfig(_Section):
    """Human review of captured predictions (seeds 000 and 002): the app's own reviewers' app, or Amazon A2I."""

    enabled: bool = True
    backend: Literal["open", "a2i"] = Field(
        "open",
        description="open: the app's own reviewers' web app (Cognito, HTTP API, DynamoDB), on any account; "
        "a2i: Amazon A2I flow definitions and a private workteam (closed to new customers since 2026-07-30)",
    )
    mfa: Literal["required", "optional", "off"] = Field(
        "required", description="open back end: reviewers' multi-factor authentication (TOTP) in the Cognito user pool"
    )
    workteam_arn: Annotated[
        str,
        _Matches(aws_facts.WORKTEAM_ARN_PATTERN, "a private workteam ARN, arn:<partition>:sagemaker:<region>:<account>:workteam/private-crowd/<name>"),
    ] | None = None
    template: Literal[REVIEW_TEMPLATES] = "low_confidence"
    attributions: AttributionsConfig = _section()
    rule: Literal[selection.RULES] = "band"
    lower: float = Field(0.1, ge=0.0, le=1.0)
    upper: float = Field(0.9, ge=0.0, le=1.0)
    outcome: int = Field(0, ge=0, description="the label index the outcome rule reviews: 0 to the number of model.label_names less one")
    rows_per_loop: int = Field(3, ge=1, le=aws_facts.MAX_ROWS_PER_LOOP)
    max_loops_per_day: int = Field(200, ge=1, le=100_000)
    audit_percentage: float = Field(
        2.0,
        ge=0.0,
        le=100.0,
        description="share of the captured predictions the rule does not select that go to review too, chosen at random: "
        "the audit sample that makes model-quality figures unbiased (0: none)",
    )
    task_title: Annotated[
        str,
        _Matches(aws_facts.TASK_TITLE_PATTERN, "1-128 characters: no control characters but tab and line breaks, nothing beyond U+FFFD (such as emoji)"),
    ] = "Review a model prediction"
    task_description: Annotated[str, _Matches(aws_facts.TASK_DESCRIPTION_PATTERN, "1-255 characters on one line (no line breaks)")] = Field(
        default_factory=lambda data: _TASK_DESCRIPTIONS.get(data.get("template"), ""),
        description="default: the chosen template's description",
    )
    task_count: int = Field(1, ge=1, le=3)
    task_availability_seconds: int = Field(86_400, ge=60, le=864_000)
    task_time_limit_seconds: int = Field(3_600, ge=30, le=28_800)
    task_keywords: _names(
        aws_facts.TASK_KEYWORD_PATTERN, "1-30 letters or digits, words separated by single spaces (no _, - or leading/trailing spaces)"
    ) = Field(("review", "classification"), min_length=1, max_length=aws_facts.TASK_KEYWORDS_MAX)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if not self.lower < self.upper:
            raise _invalid(f"must be greater than lower ({self.lower}), got {self.upper}", "upper")
        model = _parsed(info).get("model")
        if model is not None and self.outcome > len(model.label_names) - 1:
            raise _invalid(f"must be a whole number from 0 to {len(model.label_names) - 1}, got {self.outcome}", "outcome")
        return self


class MonitorJobConfig(_Section):
    """What every monitor has: a switch, a cadence and the processing cluster its runs use."""

    enabled: bool = True
    schedule: Literal[tuple(aws_facts.MONITORING_CADENCES)]
    instance_type: _ProcessingInstanceType = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1, le=100)
    volume_size_gb: int = Field(20, ge=1, le=16_384)
    max_runtime_seconds: int = Field(
        default_factory=lambda data: min(3_600, aws_facts.MONITORING_CADENCES.get(data.get("schedule"), 3_600)),
        ge=60,
        le=aws_facts.MONITORING_MAX_RUNTIME,
        description="at most the schedule's period; default: the period, at most an hour",
    )
    baseline_max_runtime_seconds: int = Field(
        default_factory=lambda data: min(data.get("max_runtime_seconds", BASELINE_MAX_RUNTIME), BASELINE_MAX_RUNTIME),
        ge=60,
        le=aws_facts.MONITORING_MAX_RUNTIME,
        description=f"the deploy-time baseline job: it must end within {BASELINE_MAX_RUNTIME} seconds; default: max_runtime_seconds, at most that",
    )

    @model_validator(mode="after")
    def _fits_cadence(self) -> Self:
        period = aws_facts.MONITORING_CADENCES[self.schedule]
        if self.max_runtime_seconds > period:
            raise _invalid(
                f"{self.max_runtime_seconds} exceeds the schedule's period of {period} seconds ({self.schedule}); a run must end before the next starts",
                "max_runtime_seconds",
            )
        if self.baseline_max_runtime_seconds > BASELINE_MAX_RUNTIME:
            raise _invalid(
                f"{self.baseline_max_runtime_seconds} is longer than a deployment can wait for the baseline job (at most {BASELINE_MAX_RUNTIME} seconds: "
                "CloudFormation waits an hour for a custom resource); for a longer baseline, compute it yourself and give its files",
                "baseline_max_runtime_seconds",
            )
        return self


class DataQualityConfig(MonitorJobConfig):
    """Model Monitor data-quality schedule and its baseline (seeds 000, 001, 004)."""

    schedule: Literal[tuple(aws_facts.MONITORING_CADENCES)] = "cron(0 * ? * * *)"
    dataset_s3_uri: _S3Uri | None = Field(None, description="none: the bundled model's baseline dataset (lambdas/shared/baseline.py)")
    dataset_has_header: bool = Field(True, description="must be true: the header names the analyzer's columns and metrics")
    baseline_statistics_s3_uri: _S3Uri | None = Field(None, description="both given: use these files, run no baseline job")
    baseline_constraints_s3_uri: _S3Uri | None = None
    drift_threshold: float = Field(0.1, ge=0.0, le=1.0, description="alarm when a feature's baseline drift distance exceeds it")
    record_preprocessor_s3_uri: _S3Uri | None = None
    post_analytics_processor_s3_uri: _S3Uri | None = None

    @property
    def computes_baseline(self) -> bool:
        return self.baseline_statistics_s3_uri is None

    @model_validator(mode="after")
    def _has_baseline(self, info: ValidationInfo) -> Self:
        if (self.baseline_statistics_s3_uri is None) != (self.baseline_constraints_s3_uri is None):
            raise _invalid("give both baseline_statistics_s3_uri and baseline_constraints_s3_uri, or neither", "baseline_statistics_s3_uri")
        model = _parsed(info).get("model")
        if self.enabled and self.dataset_s3_uri is None and self.computes_baseline and model is not None and not model.is_bundled:
            raise _invalid(
                "required with your own model (model.artifact_s3_uri): the baseline is computed from it; "
                "or give baseline_statistics_s3_uri and baseline_constraints_s3_uri, or set enabled to false",
                "dataset_s3_uri",
            )
        if not self.dataset_has_header:
            raise _invalid(
                "the analyzer names a headerless dataset's columns _c0, _c1, ..., so no drift alarm "
                f"(feature_baseline_drift_<feature>) could fire; add a header row: {baseline_dataset.OUTPUT_COLUMN},<model.feature_names>",
                "dataset_has_header",
            )
        return self


class ExplainabilityConfig(MonitorJobConfig):
    """SageMaker Clarify feature-attribution monitor and its SHAP baseline (seeds 002, 003, 004)."""

    schedule: Literal[tuple(aws_facts.MONITORING_CADENCES)] = "cron(0 0 ? * * *)"
    dataset_s3_uri: _S3Uri | None = Field(None, description="none: the bundled model's training data (CSV, label first, no header)")
    label_path: _JMESPath = Field("label", description="JSON Lines dataset: JMESPath to the label")
    shap_baseline: Annotated[tuple[float, ...], Field(strict=False)] | None = Field(
        None, description="one number per model.feature_names; none: the mean of the bundled training features"
    )
    num_samples: int = Field(100, ge=1, le=100_000)
    agg_method: Literal[_SHAP_AGG_METHODS] = "mean_abs"
    use_logit: bool = False
    shadow_instance_type: _EndpointInstanceType = "ml.m5.xlarge"
    shadow_instance_count: int = Field(1, ge=1, le=10)
    sample_rows: int = Field(
        500, ge=10, le=5_000, description="open back end: captured rows kept per period (a uniform sample) and explained with TreeSHAP"
    )
    ndcg_threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="open back end: a violation when the period's attribution ranking's nDCG against the baseline's is below it (Clarify's 0.90)"
    )

    @field_validator("shap_baseline", mode="before")
    @classmethod
    def _one_per_feature(cls, value: Any, info: ValidationInfo) -> Any:
        model = _parsed(info).get("model")
        length = len(model.feature_names) if model is not None else None
        numbers = isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if value is not None and not (numbers and length in (None, len(value))):
            raise _invalid(f"must be a list of {length} numbers (one per model.feature_names), got {value!r}")
        return value if value is None else tuple(float(v) for v in value)

    @model_validator(mode="after")
    def _explains_model(self, info: ValidationInfo) -> Self:
        model = _parsed(info).get("model")
        if not self.enabled or model is None:
            return self
        if _parsed(info).get("monitoring_backend") == "open":
            if not model.is_bundled and self.dataset_s3_uri is None:
                raise _invalid(
                    "required with your own model (model.artifact_s3_uri): the baseline's attributions are the mean |SHAP| of these "
                    "rows (CSV, label first, no header); or set enabled to false",
                    "dataset_s3_uri",
                )
            return self
        if not model.is_bundled:
            for key, value in (("dataset_s3_uri", self.dataset_s3_uri), ("shap_baseline", self.shap_baseline)):
                if value is None:
                    raise _invalid(
                        "required with your own model (model.artifact_s3_uri): Clarify's baseline job reads the dataset, and SHAP "
                        "needs a background record (e.g. the mean of your training features); or set enabled to false",
                        key,
                    )
        if model.content_type not in ("text/csv", "application/jsonlines"):
            raise _invalid(f"Clarify explains text/csv or application/jsonlines models, model.content_type is {model.content_type!r}; set it to false", "enabled")
        if model.content_type == "application/jsonlines":
            if model.score_path is None:
                raise _invalid("model.score_path is required for a JSON Lines model: it locates the score Clarify explains", "enabled")
            if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", model.features_path):
                raise _invalid(f"model.features_path {model.features_path!r} must be a dotted path of names (a.b.c) for Clarify to build requests", "enabled")
        return self


class ModelQualityConfig(_Section):
    """Model quality from the reviewers' (and uploaded) labels, and estimated from the scores where
    labels are missing: the app's own monitor, with either monitoring back end (binary classifiers)."""

    enabled: bool = True
    schedule: Literal[tuple(aws_facts.MONITORING_CADENCES)] = Field("cron(0 0 ? * * *)", description="how often a period is evaluated (default daily)")
    label_window_hours: int = Field(
        48, ge=0, le=24 * 30, description="labels that arrive up to this long after a period ends are joined with its predictions (a later run re-evaluates it)"
    )
    dataset_s3_uri: _S3Uri | None = Field(
        None,
        description="the model's scores on its labelled test set (CSV with a header row label,probability): the constraints are its figures; "
        "none: the bundled model's test set, or with your own model no constraints (figures, no violations)",
    )
    tolerance: float = Field(
        0.05, ge=0.0, le=1.0, description="a violation when a figure is below its test-set value less this, beyond its 95 % interval"
    )
    estimate: bool = Field(True, description="estimate quality from the scores where labels are missing (confidence-based, as NannyML's CBPE)")

    @model_validator(mode="after")
    def _binary_model(self, info: ValidationInfo) -> Self:
        model = _parsed(info).get("model")
        if not self.enabled or model is None:
            return self
        if len(model.label_names) != 2:
            raise _invalid(
                f"model quality covers binary classifiers and model.label_names has {len(model.label_names)} labels; set it to false",
                "enabled",
            )
        return self


class NetworkConfig(_Section):
    """Where monitoring and baseline jobs run: SageMaker's network (no subnets) or your VPC."""

    # At most 16 subnets and 5 security groups (VpcConfig).
    subnet_ids: _names(_SUBNET, "a subnet ID, subnet-<hex>") = Field((), max_length=16)
    security_group_ids: _names(_SECURITY_GROUP, "a security group ID, sg-<hex>") = Field((), max_length=5)

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise _invalid("give both subnet_ids and security_group_ids (a VPC for monitoring jobs), or neither", "subnet_ids")
        return self

    @property
    def in_vpc(self) -> bool:
        return bool(self.subnet_ids)


_JOB_KEYS = frozenset({"instance_type", "instance_count", "volume_size_gb", "max_runtime_seconds", "baseline_max_runtime_seconds"})
_SAGEMAKER_ONLY_KEYS = {
    "data_quality": _JOB_KEYS | {"record_preprocessor_s3_uri", "post_analytics_processor_s3_uri"},
    "explainability": _JOB_KEYS | {"label_path", "num_samples", "agg_method", "use_logit", "shadow_instance_type", "shadow_instance_count", "shap_baseline"},
}


class MonitoringConfig(_Section):
    backend: Literal["open", "sagemaker"] = Field(
        "open",
        description="open: the app's own monitors (Lambda, S3, EventBridge Scheduler), on any account; "
        "sagemaker: Model Monitor and Clarify schedules (closed to new customers since 2026-07-30)",
    )
    data_quality: DataQualityConfig = _section()
    explainability: ExplainabilityConfig = _section()
    model_quality: ModelQualityConfig = _section()
    network: NetworkConfig = _section()

    @property
    def any_enabled(self) -> bool:
        """Whether the monitoring stack is deployed: model quality alone needs it too (its monitor is the app's own with either back end)."""
        return self.data_quality.enabled or self.explainability.enabled or self.model_quality.enabled

    @model_validator(mode="before")
    @classmethod
    def _open_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        # The open back end explains with XGBoost's exact TreeSHAP: on by default only for an XGBoost
        # model the SDK's image serves (as review.attributions); with your own image, say it is XGBoost.
        model = _parsed(info).get("model")
        if isinstance(data, Mapping):
            _parsed(info)["monitoring_backend"] = data.get("backend", "open")  # the monitors' checks depend on it
        if not isinstance(data, Mapping) or model is None or data.get("backend", "open") != "open":
            return data
        explainability = data.get("explainability", {})
        if not isinstance(explainability, Mapping):
            return data
        return {**data, "explainability": {"enabled": model.framework == "xgboost" and model.image_uri is None, **explainability}}

    @model_validator(mode="after")
    def _fits_backend(self, info: ValidationInfo) -> Self:
        model = _parsed(info).get("model")
        if self.backend == "open" and self.explainability.enabled and model is not None and model.framework != "xgboost":
            raise _invalid(
                f"the open back end explains XGBoost models (exact TreeSHAP) and model.framework is {model.framework}: "
                "set explainability.enabled to false, or backend to sagemaker (Clarify's KernelSHAP)",
                "explainability.enabled",
            )
        if self.backend == "open":
            # Keys only Model Monitor's and Clarify's jobs read: set with the open back end, they would do nothing.
            for section, keys in _SAGEMAKER_ONLY_KEYS.items():
                given = sorted(getattr(self, section).model_fields_set & keys)
                if given:
                    raise _invalid(
                        f"{', '.join(given)}: only the sagemaker back end runs processing jobs that use them; remove them, or set backend to sagemaker",
                        section,
                    )
            if self.network.model_fields_set:
                raise _invalid("monitoring jobs run in a VPC only with the sagemaker back end; remove it, or set backend to sagemaker", "network")
        return self


class RetrainingConfig(_Section):
    """EventBridge -> Step Functions retraining on the original data plus the reviewers' labels (seed 004)."""

    enabled: bool = True
    training_data_s3_uri: _S3Uri | None = Field(None, description="none: the bundled model's training CSV (label first, no header)")
    training_image_uri: _ImageUri | None = Field(None, description="none: the SDK's training image for model.framework/framework_version")
    hyperparameters: Mapping[str, _HyperparameterValue] = Field(default_model.HYPERPARAMETERS, min_length=1, max_length=100)
    instance_type: _TrainingInstanceType = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1, le=100)
    volume_size_gb: int = Field(30, ge=1, le=16_384)
    max_runtime_seconds: int = Field(3_600, ge=60, le=aws_facts.TRAINING_MAX_RUNTIME)
    transform_instance_type: _TransformInstanceType = Field(
        "ml.m5.xlarge", description="the batch transforms: both models on the evaluation rows (two at once), then the new model on the training set"
    )
    validation_percentage: int = Field(20, ge=1, le=50, description="of records, chosen by a hash of each record, so stable across runs")
    test_data_s3_uri: _S3Uri | None = Field(
        None,
        description="your model's labelled test set (CSV, label first, no header, the model's features): it judges every candidate "
        "against the serving model beside the held-out labels; none: the bundled model's test.csv, or with your own model the "
        "validation split of the training data",
    )
    holdout_percentage: int = Field(
        20, ge=1, le=50, description="of reviewed labels, chosen by a hash of each record: they never train a model and judge every candidate against the serving model"
    )
    objective_metric: Annotated[str, _Matches(re.compile(r".+"), "a metric name the training job reports")] = Field(
        "validation:logloss", description="a FinalMetricDataList name, e.g. validation:logloss"
    )
    objective_goal: Literal["minimize", "maximize"] = "minimize"
    tolerance: float = Field(0.01, ge=0.0, le=1e9, description="promote if the new metric is worse by at most this much")
    label_threshold: int = Field(50, ge=1, le=10_000_000, description="new labels since the last training that start a run")
    drift_alarms: bool = Field(True, description="a drift alarm entering ALARM starts a run")
    drift_consecutive_periods: int = Field(
        2, ge=1, le=24, description="drift starts a run only when the same feature drifted in this many consecutive periods"
    )
    quality_violations: bool = Field(True, description="a model-quality violation (a figure significantly below its constraint) starts a run")
    violation_check_types: Annotated[tuple[Literal[aws_facts.VIOLATION_CHECK_TYPES], ...], Field(strict=False), _Unique()] = Field(
        ("baseline_drift_check",), description="Monitoring Run Ended violations that start a run"
    )
    schedule: Annotated[str, _Matches(aws_facts.EVENTBRIDGE_SCHEDULE_PATTERN, "an EventBridge rate(...) or cron(...) expression")] | None = Field(
        None, description="an EventBridge rate()/cron() that starts a run"
    )
    cooldown_hours: int = Field(24, ge=0, le=24 * 30, description="drift triggers within this long of the last run's start are recorded, not run")
    manual_approval: bool = False
    approval_timeout_hours: int = Field(24, ge=1, le=24 * 7)
    deployment: Literal["all_at_once", "canary"] = "all_at_once"
    canary_percentage: int = Field(10, ge=1, le=99)
    bake_minutes: int = Field(10, ge=0, le=60, description="blue/green: watch the rollback alarms this long before the old fleet goes")
    timeout_hours: int = Field(12, ge=1, le=24 * 7, description="the whole execution")

    @model_validator(mode="after")
    def _fits_model(self, info: ValidationInfo) -> Self:
        model = _parsed(info).get("model")
        if not self.enabled or model is None:
            return self
        if not model.is_bundled and self.training_data_s3_uri is None:
            raise _invalid("required with your own model (model.artifact_s3_uri): retraining adds the labels to it; or set enabled to false", "training_data_s3_uri")
        if model.image_uri is not None and self.training_image_uri is None:
            raise _invalid("required when model.image_uri names your own serving image; or set enabled to false", "training_image_uri")
        if model.content_type != "text/csv":
            raise _invalid(
                f"retraining reads and scores CSV training data (label first), and model.content_type is {model.content_type!r}: "
                "set retraining.enabled to false, or serve a text/csv model",
                "enabled",
            )
        return self


class ServingConfig(_Section):
    """How the model serves: a real-time endpoint, or only the nightly batch (``batch``)."""

    endpoint: bool = Field(True, description="false: no real-time endpoint (no idle instance cost); the model serves only the nightly batch (batch.enabled)")


class BatchConfig(_Section):
    """The nightly batch (seed 002): EventBridge Scheduler -> Step Functions -> a batch transform of the
    CSV files dropped under ``input_prefix`` of the datasets bucket, then the same review loop as captures."""

    enabled: bool = False
    schedule: Annotated[
        str,
        _Matches(aws_facts.SCHEDULER_CRON_PATTERN, "an EventBridge Scheduler cron(minutes hours day-of-month month day-of-week year) expression"),
    ] = Field("cron(0 2 * * ? *)", description="when the run starts, in timezone; default 02:00 every day")
    timezone: str = Field("UTC", description="an IANA time zone name (Europe/Paris, America/New_York...) the schedule is read in")
    input_prefix: Annotated[
        str, _Matches(re.compile(r"[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/"), "an S3 key prefix ending with / (no leading /)")
    ] = Field("batch/input/", description="where input files are dropped in the datasets bucket: CSV, one row per line, no header, the model's features in order")
    content_type: str = Field("text/csv", json_schema_extra={"enum": list(aws_facts.BATCH_CONTENT_TYPES)}, description="of the input files")
    instance_type: _TransformInstanceType = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1, le=aws_facts.TRANSFORM_MAX_INSTANCE_COUNT)
    max_payload_mb: int = Field(6, ge=1, le=aws_facts.TRANSFORM_MAX_PAYLOAD_MB, description="the largest mini-batch of lines sent to the model at once")
    overdue_hours: int = Field(
        26, ge=2, le=aws_facts.ALARM_MAX_EVALUATION_SECONDS // 3_600, description="alarm when no run has ended well for this long (a day and two hours by default)"
    )

    @field_validator("content_type")
    @classmethod
    def _supported_content_type(cls, value: str) -> str:
        if value not in aws_facts.BATCH_CONTENT_TYPES:
            raise _invalid(
                f"{value!r} is not allowed; allowed values: {', '.join(aws_facts.BATCH_CONTENT_TYPES)} "
                "(the nightly batch splits input files into lines of CSV for now)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import available_timezones  # the IANA database Scheduler reads time zones from

        if len(value) > aws_facts.SCHEDULER_TIMEZONE_MAX or value not in available_timezones():
            raise _invalid(f"{value!r} is not an IANA time zone name such as UTC, Europe/Paris or America/New_York")
        return value

    @model_validator(mode="after")
    def _runs(self, info: ValidationInfo) -> Self:
        minutes, hours, day_of_month, month, day_of_week, year = aws_facts.SCHEDULER_CRON_PATTERN.fullmatch(self.schedule).groups()
        if (day_of_month == "?") == (day_of_week == "?"):
            raise _invalid(f"{self.schedule!r}: exactly one of day-of-month and day-of-week must be '?', as in cron(0 2 * * ? *)", "schedule")
        if self.input_prefix.startswith(BATCH_RUNS_PREFIX) or BATCH_RUNS_PREFIX.startswith(self.input_prefix):
            raise _invalid(f"{self.input_prefix!r} overlaps {BATCH_RUNS_PREFIX!r}, where each run writes its files; choose another prefix", "input_prefix")
        model = _parsed(info).get("model")
        if self.enabled and model is not None and model.content_type != self.content_type:
            raise _invalid(
                f"the nightly batch sends {self.content_type} lines to the model, and model.content_type is {model.content_type!r}: "
                "set batch.enabled to false, or serve a text/csv model",
                "enabled",
            )
        return self


class AppConfig(_Section):
    """One environment of cdk.json (context.environments.<name>): every key optional."""

    app_name: Annotated[str, _Matches(_APP_NAME, "1-20 lower-case letters, digits or hyphens, starting with a letter")] = "mlloop"
    account: Annotated[str, _Matches(_ACCOUNT, "a 12-digit AWS account ID")] | None = None
    region: Annotated[str, _Matches(_REGION, "an AWS region name such as eu-west-1")] | None = None
    removal_policy: Literal[_REMOVAL_POLICIES] = "retain"
    # Declared before the sections whose defaults and checks follow it (fields validate in order).
    model: ModelConfig = _section()
    endpoint: EndpointConfig = _section()
    capture: CaptureConfig = _section()
    review: ReviewConfig = _section()
    monitoring: MonitoringConfig = _section()
    retraining: RetrainingConfig = _section()
    serving: ServingConfig = _section()
    batch: BatchConfig = _section()
    _environment: str = PrivateAttr()

    @field_validator("endpoint", "review", "monitoring", "retraining", "batch", mode="wrap")
    @classmethod
    def _after_model(cls, value: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> Any:
        _parsed(info).update(info.data)  # the sections below read app_name and model from the context
        return handler(value)

    def model_post_init(self, context: Any, /) -> None:
        if not isinstance(context, dict) or "environment" not in context:
            raise TypeError("build an AppConfig with parse_environment(environment, raw)")
        self._environment = context["environment"]

    @model_validator(mode="after")
    def _something_serves(self) -> Self:
        if not self.serving.endpoint and not self.batch.enabled:
            raise _invalid("false deploys no real-time endpoint, and batch.enabled is false: nothing would serve the model; set batch.enabled to true, or endpoint to true", "serving.endpoint")
        if not self.serving.endpoint and self.monitoring.backend == "sagemaker":
            for monitor in ("data_quality", "explainability"):
                if getattr(self.monitoring, monitor).enabled:
                    raise _invalid(
                        "Model Monitor and Clarify schedules watch an endpoint, and serving.endpoint is false (batch only): "
                        "set it to false, or monitoring.backend to open",
                        f"monitoring.{monitor}.enabled",
                    )
        if not self.serving.endpoint:
            # The open data-quality monitor reads the sketches the nightly run's finish step writes; these two
            # read the endpoint's capture files (and the attribution monitor asks the endpoint for its model).
            for monitor in ("explainability", "model_quality"):
                if getattr(self.monitoring, monitor).enabled:
                    raise _invalid(
                        f"the {monitor.replace('_', '-')} monitor reads the real-time endpoint's capture, and serving.endpoint is false "
                        "(batch only): the nightly batch's predictions are not read by it yet; set it to false",
                        f"monitoring.{monitor}.enabled",
                    )
        return self

    @model_validator(mode="after")
    def _offered_in_region(self) -> Self:
        sagemaker_monitors = self.monitoring.backend == "sagemaker"
        if sagemaker_monitors and self.region is not None and self.region.startswith(aws_facts.MODEL_MONITOR_UNAVAILABLE_REGION_PREFIXES):
            for monitor in ("data_quality", "explainability"):
                if getattr(self.monitoring, monitor).enabled:
                    raise _invalid(f"CloudFormation has no Model Monitor resources in {self.region}; set it to false", f"monitoring.{monitor}.enabled")
        open_review = self.review.enabled and self.review.backend == "open"
        if open_review and self.region is not None and self.region.startswith(aws_facts.OPEN_REVIEW_UNAVAILABLE_REGION_PREFIXES):
            raise _invalid(
                f"the open review back end needs Cognito and CloudFront, which CloudFormation does not offer in {self.region}; "
                "set it to false, or set review.backend to a2i",
                "review.enabled",
            )
        reserved = [word for word in aws_facts.COGNITO_DOMAIN_RESERVED_WORDS if word in self.prefix]
        if open_review and reserved:
            raise _invalid(
                f"names the reviewers' sign-in domain (<app_name>-<env>-<account>), and Cognito refuses a domain containing "
                f"{', '.join(aws_facts.COGNITO_DOMAIN_RESERVED_WORDS)}; {self.prefix!r} contains {', '.join(reserved)}: choose another app_name",
                "app_name",
            )
        if self.review.enabled and self.review.backend == "a2i" and self.region is not None and self.region not in aws_facts.A2I_REGIONS:
            raise _invalid(
                f"Amazon A2I is not offered in {self.region}; set it to false, or deploy to one of: {', '.join(aws_facts.A2I_REGIONS)}",
                "review.enabled",
            )
        return self

    @property
    def environment(self) -> str:
        return self._environment

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


def parse_environment(environment: str, raw: Any) -> AppConfig:
    """Build the configuration of one environment from its ``cdk.json`` entry."""
    try:
        return AppConfig.model_validate(raw, context={"environment": environment})
    except ValidationError as error:
        raise ConfigError("\n".join(_messages(error, f"environments.{environment}"))) from None


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


def load_environment(environment: str) -> AppConfig:
    """``environment`` of the repository's cdk.json, checked as ``cdk synth -c env=<environment>`` checks
    it: the way in for the commands that run on a user's machine (drift report, review preview,
    the local reviewers' app, preflight)."""
    context = json.loads(CDK_JSON.read_text())["context"]
    return load({"environments": context.get("environments"), "env": environment}.get)


def _messages(error: ValidationError, prefix: str) -> list[str]:
    """pydantic's errors as ``<key path>: <what is wrong and what is allowed>``, read from the schema."""
    schema = environment_schema()
    messages: list[str | tuple] = []
    unknown: dict[tuple, list[str]] = {}  # unknown keys, one message per section
    for problem in error.errors(include_url=False):
        loc = problem["loc"]
        if _follows_another(problem):
            continue
        if problem["type"] == "extra_forbidden":
            if loc[:-1] not in unknown:
                messages.append(loc[:-1])
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        keys = [str(part) for part in loc if not isinstance(part, int)]  # an item's message quotes it
        if problem["type"] == "config":
            at = (problem.get("ctx") or {}).get("at")
            messages.append(".".join([prefix, *keys, *([at] if at else [])]) + ": " + problem["msg"])
        else:
            messages.append(".".join([prefix, *keys]) + ": " + _what_is_allowed(schema, loc, problem))
    for index, section in enumerate(messages):
        if isinstance(section, tuple):
            allowed = sorted(_schema_at(schema, section)["properties"])
            messages[index] = ".".join([prefix, *section]) + f": unknown key(s) {', '.join(unknown[section])}; allowed keys: {', '.join(allowed)}"
    return list(dict.fromkeys(messages))  # each once: the same bad name may be in a list many times


def _follows_another(problem: Any) -> bool:
    """An error reported only because another one was: the other one says what to fix."""
    if problem["type"] == "default_factory_not_called":  # a default that follows a key whose value is bad
        return True
    # A list's length after its bad items were dropped.
    ctx = problem.get("ctx") or {}
    return problem["type"] in ("too_short", "too_long") and ctx.get("actual_length") != len(problem["input"])


def _resolve(schema: dict, node: dict) -> dict:
    while True:
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in node:  # an optional value: the kind that is not null
            node = next(option for option in node["anyOf"] if option.get("type") != "null")
        else:
            return node


def _schema_at(schema: dict, loc: tuple) -> dict:
    node = schema
    for part in loc:
        node = _resolve(schema, node)
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, node.get("additionalProperties", {}))
    return _resolve(schema, node)


def _what_is_allowed(schema: dict, loc: tuple, problem: dict) -> str:
    node = _schema_at(schema, loc)
    value = problem["input"]
    if loc and isinstance(loc[-1], int):  # one item of a list
        if "enum" in node:
            return f"{value!r} is not allowed; allowed values: {', '.join(map(str, node['enum']))}"
        rule = node.get("patternErrorMessage", "must be text").removeprefix("must be ")
        return f"{value!r} is not valid; each name must be {rule}"
    kind = node.get("type")
    if problem["type"] == "string_pattern_mismatch":
        return f"{value!r} is not valid; {node['patternErrorMessage']}"
    if "enum" in node:
        return f"{value!r} is not allowed; allowed values: {', '.join(map(str, node['enum']))}"
    if kind == "boolean":
        return f"{value!r} is not allowed; allowed values: true, false"
    if kind in ("integer", "number"):
        what = "a whole number" if kind == "integer" else "a number"
        low, high = node.get("minimum"), node.get("maximum")
        if kind == "number":
            low, high = (None if v is None else float(v) for v in (low, high))
        bounds = f" from {low} to {high}" if high is not None else f" of at least {low}" if low is not None else ""
        return f"must be {what}{bounds}, got {value!r}"
    if kind == "string":
        return f"must be a string, got {value!r}"
    if kind == "array":
        if problem["type"] == "too_long":
            return f"at most {node['maxItems']} names, got {len(value)}"
        return f"must be a {'non-empty ' if node.get('minItems') else ''}list of names, got {value!r}"
    if kind == "object" and "properties" in node:
        return f"must be a mapping of keys to values, got {value!r}"
    if kind == "object":
        return f"must be a mapping of {node.get('minProperties', 0)}-{node.get('maxProperties')} names to values, got {value!r}"
    return problem["msg"]


@cache
def environment_schema() -> dict:
    """The JSON Schema of one environment, as committed in ``stacks/shared/config.schema.json`` (do not change it)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **AppConfig.model_json_schema()}


def _framework_versions(framework: str) -> tuple[str, ...]:
    from stacks.shared import images  # the image tables: read only when a framework is checked

    return images.framework_versions(framework)


def schema_text() -> str:
    """``stacks/shared/config.schema.json`` as the models generate it."""
    return json.dumps(environment_schema(), indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--schema"]:
        sys.exit(f"usage: {SCHEMA_COMMAND}")
    sys.stdout.write(schema_text())
