"""The layer and the tests run the same Powertools: one version, pinned in both places."""

from __future__ import annotations

from tests.conftest import ROOT


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.split("[")[0].lower()] = version
    return pins


def test_powertools_version_matches_between_layer_and_tests() -> None:
    layer, dev = _pins(ROOT / "lambdas" / "requirements.txt"), _pins(ROOT / "requirements-dev.txt")
    assert layer["aws-lambda-powertools"] == dev["aws-lambda-powertools"]
