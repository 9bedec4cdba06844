"""The explain layer's asset hash comes from what it is built from, not from its ~170 MB of files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from stacks.shared import functions


def _layer_key(tmp_path: Path, name: str) -> str:
    stack = Stack(App(outdir=str(tmp_path / name)), "Layers")
    functions.explain_layer(stack)
    [layer] = Template.from_stack(stack).find_resources("AWS::Lambda::LayerVersion").values()
    return layer["Properties"]["Content"]["S3Key"]


@pytest.fixture
def layer_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A small stand-in for build/explain-layer and a copy of its requirements."""
    folder = tmp_path / "explain-layer"
    (folder / "python").mkdir(parents=True)
    (folder / "python" / "module.py").write_text("VALUE = 1\n")
    requirements = tmp_path / "requirements.txt"
    shutil.copyfile(functions.EXPLAIN_REQUIREMENTS, requirements)
    monkeypatch.setattr(functions, "EXPLAIN_LAYER", folder)
    monkeypatch.setattr(functions, "EXPLAIN_REQUIREMENTS", requirements)
    return folder, requirements


def test_the_layers_files_are_not_fingerprinted(tmp_path: Path, layer_inputs: tuple[Path, Path]) -> None:
    folder, _ = layer_inputs
    before = _layer_key(tmp_path, "before")
    (folder / "python" / "module.py").write_text("VALUE = 2\n")
    assert _layer_key(tmp_path, "after") == before


def test_changed_requirements_change_the_asset_hash(tmp_path: Path, layer_inputs: tuple[Path, Path]) -> None:
    _, requirements = layer_inputs
    before = _layer_key(tmp_path, "before")
    requirements.write_text(requirements.read_text().replace("xgboost-cpu==", "xgboost-cpu==9"))
    assert _layer_key(tmp_path, "after") != before


def test_a_stack_has_one_explain_layer_whoever_asks_for_it() -> None:
    from constructs import Construct

    stack = Stack(App(), "Layers")
    first = functions.explain_layer(Construct(stack, "Starter"))
    assert functions.explain_layer(Construct(stack, "CaptureFilter")) is first is functions.explain_layer(stack)
    assert len(Template.from_stack(stack).find_resources("AWS::Lambda::LayerVersion")) == 1


def test_the_recipe_in_the_hash_is_the_explain_layers() -> None:
    recipe = functions._recipe("build/.explain-layer.built")
    assert recipe.startswith("build/.explain-layer.built:") and "--require-hashes" in recipe and "manylinux_2_28_aarch64" in recipe
