"""The retraining functions' settings, read from the environment the stack sets."""

from __future__ import annotations

import json

import pytest

from lambdas.retraining import handler

TRIGGERS = {
    "STATE_TABLE": "state", "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:m", "LABELS_BUCKET": "labels",
    "LABEL_THRESHOLD": "5", "CHECK_TYPES": '["baseline_drift_check"]', "COOLDOWN_HOURS": "24", "EVENT_SOURCES": json.dumps({"monitoring": "mlloop.monitoring"}),
}  # fmt: skip


@pytest.fixture
def environment(monkeypatch):
    def set_(**variables: str) -> None:
        for name, value in {**TRIGGERS, **variables}.items():
            monkeypatch.setenv(name, value)
        handler.trigger_settings.cache_clear()

    yield set_
    handler.trigger_settings.cache_clear()


def test_the_trigger_settings_read_the_drift_and_quality_switches(environment) -> None:
    environment(DRIFT_CONSECUTIVE_PERIODS="3", QUALITY_VIOLATIONS="false")
    settings = handler.trigger_settings()
    assert (settings.drift_consecutive_periods, settings.quality_violations) == (3, False)


def test_without_the_switches_the_trigger_settings_keep_their_defaults(environment, monkeypatch) -> None:
    monkeypatch.delenv("DRIFT_CONSECUTIVE_PERIODS", raising=False)
    monkeypatch.delenv("QUALITY_VIOLATIONS", raising=False)
    environment()
    settings = handler.trigger_settings()
    assert (settings.drift_consecutive_periods, settings.quality_violations) == (2, True)
