"""The layer and the tests run the same third-party code: one version, pinned in both places."""

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


def test_runtime_dependencies_match_between_layer_and_tests() -> None:
    layer, dev = _pins(ROOT / "lambdas" / "requirements.txt"), _pins(ROOT / "requirements-dev.txt")
    for name in ("aws-lambda-powertools", "orjson"):
        assert layer[name] == dev[name], name
