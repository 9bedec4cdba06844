"""What the Lambda functions run: the same third-party code as the tests, pinned in both places,
built for the Lambda platform, and within Lambda's size limits."""

from __future__ import annotations

import re
import struct

import pytest

from stacks.shared import aws_facts
from stacks.shared.functions import EXPLAIN_LAYER, EXPLAIN_LAYER_PLATFORM, LAMBDAS, LAYER, LAYER_PLATFORM, LAYER_PYTHON
from tests.conftest import ROOT

EXPLAIN_REQUIREMENTS = ROOT / "lambdas" / "shared" / "explain" / "requirements.txt"
ELF_MACHINE_AARCH64 = 183  # e_machine of an ELF file built for arm64 (Lambda's ARM_64)


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].split("--hash")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.split("[")[0].lower()] = version.strip()
    return pins


def _size(folder) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _wheel_tags(folder) -> dict[str, list[str]]:
    return {
        wheel.parent.name: [line.split(": ", 1)[1] for line in wheel.read_text().splitlines() if line.startswith("Tag: ")]
        for wheel in (folder / "python").glob("*.dist-info/WHEEL")
    }


def test_runtime_dependencies_match_between_layers_and_tests() -> None:
    layer, explain = _pins(LAMBDAS / "requirements.txt"), _pins(EXPLAIN_REQUIREMENTS)
    dev = {name: version for f in ("requirements.txt", "requirements-tools.txt", "requirements-dev.txt") for name, version in _pins(ROOT / f).items()}
    for name in ("aws-lambda-powertools", "orjson"):
        assert layer[name] == dev[name], name
    assert explain == {"numpy": dev["numpy"], "scipy": dev["scipy"], "xgboost-cpu": dev["xgboost-cpu"]}


def test_the_explain_layer_is_pinned_by_hash() -> None:
    lines = [line for line in EXPLAIN_REQUIREMENTS.read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) == 3 and all(re.search(r"==\S+ --hash=sha256:[0-9a-f]{64}$", line) for line in lines)


@pytest.mark.parametrize(("folder", "platform"), [(LAYER, LAYER_PLATFORM), (EXPLAIN_LAYER, EXPLAIN_LAYER_PLATFORM)])
def test_layers_hold_wheels_for_the_lambda_platform(folder, platform: str) -> None:
    tags = _wheel_tags(folder)
    assert tags, f"{folder} has no packages: run `make layer`"
    python = "cp" + LAYER_PYTHON.replace(".", "")
    glibc = tuple(int(n) for n in re.search(r"manylinux_?(\d+)_(\d+)", platform.replace("2014", "_2_17")).groups())
    for package, package_tags in tags.items():
        for tag in package_tags:
            interpreter, _, arch = tag.split("-")
            assert interpreter in ("py3", python), (package, tag)
            if arch != "any":
                assert arch.endswith("_aarch64"), (package, tag)
                needed = tuple(int(n) for n in re.search(r"manylinux_?(\d+)_(\d+)", arch.replace("2014", "_2_17")).groups())
                assert needed <= glibc, (package, tag)


def test_the_explain_layers_native_code_is_built_for_arm64() -> None:
    libraries = [path for path in (EXPLAIN_LAYER / "python").rglob("*.so*") if path.is_file()]
    assert any(path.name == "libxgboost.so" for path in libraries) and len(libraries) > 20
    for library in libraries:
        header = library.read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and struct.unpack("<H", header[18:20])[0] == ELF_MACHINE_AARCH64, library


def test_the_functions_with_both_layers_fit_lambdas_unzipped_limit() -> None:
    # The human-loop starter, the attribution monitor and the capture filter (numpy for the sketch) carry both.
    code = sum(path.stat().st_size for path in LAMBDAS.rglob("*.py"))
    total = code + _size(LAYER) + _size(EXPLAIN_LAYER)
    assert total < aws_facts.LAMBDA_UNZIPPED_MAX_BYTES * 0.8, f"{total / 1e6:.1f} MB"  # room for dependency updates
    assert not list((EXPLAIN_LAYER / "python").rglob("tests")) and not (EXPLAIN_LAYER / "python" / "bin").exists()
