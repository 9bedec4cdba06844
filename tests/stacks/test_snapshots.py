"""One reviewed snapshot per stack. Update deliberately: ``pytest --snapshot-update``, then read the diff."""

from __future__ import annotations

import json
import re

import pytest

ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def normalised(template: dict) -> dict:
    """The template with asset hashes (which change with every dependency bump) replaced."""
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True)))


@pytest.mark.parametrize("stack", ["storage", "serving", "review", "monitoring", "retraining", "operations"])
def test_stack_snapshot(dev_app, snapshot, stack: str) -> None:
    assert normalised(dev_app.template_json(stack)) == snapshot


def test_synthesising_twice_gives_the_same_templates(dev_app, tmp_path) -> None:
    from tests.conftest import build_app

    again = build_app(tmp_path)
    for stack in ("storage", "serving", "review", "monitoring", "retraining", "operations"):
        assert again.template_json(stack) == dev_app.template_json(stack)
