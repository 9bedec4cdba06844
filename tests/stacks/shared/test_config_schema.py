"""The committed JSON Schema is what the configuration models generate, and it checks cdk.json as synth does."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from stacks.shared import config as app_config
from tests.conftest import ROOT
from stacks.shared.config import ConfigError, parse_environment

SCHEMAS = Path(app_config.__file__).resolve().parent
ENVIRONMENT_SCHEMA = SCHEMAS / "config.schema.json"
CDK_SCHEMA = SCHEMAS / "cdk.schema.json"  # the file editors are pointed at (README, "Configuration")
CDK_JSON = ROOT / "cdk.json"


def test_committed_schema_is_what_the_models_generate() -> None:
    committed = ENVIRONMENT_SCHEMA.read_text(encoding="utf-8")
    assert committed == app_config.schema_text(), f"stacks/shared/config.schema.json is stale: regenerate it with {app_config.SCHEMA_COMMAND}"


@pytest.fixture(scope="module")
def editor() -> jsonschema.protocols.Validator:
    """What an editor does with cdk.json: the wrapper schema, resolving its $ref to the committed file."""
    registry = Registry().with_resource("config.schema.json", Resource.from_contents(json.loads(ENVIRONMENT_SCHEMA.read_text(encoding="utf-8"))))
    schema = json.loads(CDK_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, registry=registry)


def _in_cdk_json(environment: dict) -> dict:
    return {"app": "python app.py", "context": {"environments": {"dev": environment}}}


def test_cdk_json_passes_the_editor_schema(editor: jsonschema.protocols.Validator) -> None:
    cdk_json = json.loads(CDK_JSON.read_text(encoding="utf-8"))
    assert cdk_json["context"]["environments"]
    editor.validate(cdk_json)


@pytest.mark.parametrize(
    "environment",
    [
        {"retraining": {"hyperparameters": {"eta": 0.3, "num_round": 10, "objective": "binary:logistic"}, "schedule": "rate(1 day)"}},
        {"monitoring": {"backend": "sagemaker", "explainability": {"shap_baseline": [0.5] * 30, "agg_method": "median"}, "network": {"subnet_ids": ["subnet-0123abcd"], "security_group_ids": ["sg-0123abcd"]}}},
        {"review": {"task_keywords": ["breast cancer", "Review 2"], "task_title": "Tab\there, line\nbreak, \u00e9t\u00e9", "workteam_arn": None}},
        {
            "model": {"artifact_s3_uri": "s3://bucket/model.tar.gz", "feature_names": ["a", "b"], "content_type": "application/jsonlines", "score_path": "score"},
            "monitoring": {"data_quality": {"enabled": False}, "explainability": {"enabled": False}},
            "retraining": {"enabled": False},
        },
    ],
)
def test_editor_schema_accepts_what_synth_accepts(editor: jsonschema.protocols.Validator, environment: dict) -> None:
    parse_environment("dev", environment)
    editor.validate(_in_cdk_json(environment))


@pytest.mark.parametrize(
    "environment",
    [
        {"captur": {}},
        {"capture": {"sampling_percentage": 140}},
        {"capture": {"sampling_percentage": "50"}},
        {"review": {"rule": "random"}},
        {"review": {"enabled": "yes"}},
        {"review": {"task_keywords": ["needs_review"]}},
        {"review": {"task_keywords": ["a", "b", "c", "d", "e", "f"]}},
        {"review": {"task_description": "two\nlines"}},
        {"review": {"task_title": "emoji \U0001f600"}},
        {"endpoint": {"instance_type": "ml.m5.huge"}},
        {"model": {"label_names": ["yes", "yes"]}},
        {"monitoring": {"data_quality": {"schedule": "rate(1 hour)"}}},
        {"retraining": {"hyperparameters": {"eta": ["0.2"]}}},
        {"retraining": {"violation_check_types": ["drift"]}},
    ],
)
def test_editor_schema_flags_what_synth_rejects(editor: jsonschema.protocols.Validator, environment: dict) -> None:
    with pytest.raises(ConfigError):
        parse_environment("dev", environment)
    assert list(editor.iter_errors(_in_cdk_json(environment)))


def test_editor_schema_flags_a_bad_environment_name(editor: jsonschema.protocols.Validator) -> None:
    assert list(editor.iter_errors({"context": {"environments": {"Staging": {}}}}))
