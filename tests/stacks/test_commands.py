"""What the Makefile's commands rely on: a configuration error is one message, not a traceback; a
synthesis leaves only its own templates in cdk.out/; `make help` lists every command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from stacks.shared import cloud_assembly

ROOT = Path(__file__).resolve().parents[2]


def test_a_configuration_error_is_one_message_naming_the_key(tmp_path: Path) -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    context["environments"]["dev"] = {**context["environments"]["dev"], "capture": {"sampling_percentage": 140}}
    path = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"  # the pinned Node, as the Makefile runs it
    env = {**os.environ, "PATH": path, "CDK_CONTEXT_JSON": json.dumps({**context, "env": "dev"}), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("configuration error: environments.dev.capture.sampling_percentage: ")
    assert "from 0 to 100, got 140" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))


def test_prune_keeps_only_the_templates_the_manifest_names(tmp_path: Path) -> None:
    manifest = {
        "artifacts": {
            "Storage": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "Storage.template.json"}},
            "Tree": {"type": "cdk:tree", "properties": {"file": "tree.json"}},
        }
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    for name in ("Storage.template.json", "Review.template.json", "tree.json"):
        (tmp_path / name).write_text("{}")
    assert cloud_assembly.prune(tmp_path) == ["Storage.template.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Storage.template.json", "manifest.json", "tree.json"]


def test_make_help_lists_every_command_with_what_it_needs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY: (.+)$", makefile, re.M).group(1).split()) - {"setup", "layer"}
    result = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    listed = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert set(listed) == phony
    for target, line in listed.items():
        assert re.search(r"\((no account|AWS credentials)[^)]*\)", line), f"{target}: says nothing of what it needs"
