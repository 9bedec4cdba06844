"""`lambdas/` holds only what is deployed: no module under it imports `stacks` (the CDK app, which is
not in the Lambda package's layers) or `local` (the tools that run on a user's machine), at the top of
a file or inside a function. The local tools (drift report, review preview, the local reviewers' app,
quality report, preflight) live in `local/`."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

FORBIDDEN = ("stacks", "local")


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_nothing_under_lambdas_imports_the_cdk_app_or_the_local_tools() -> None:
    modules = sorted((ROOT / "lambdas").rglob("*.py"))
    assert len(modules) > 50  # the walk found the package
    offenders = {str(path.relative_to(ROOT)): sorted(imported_packages(path) & set(FORBIDDEN)) for path in modules}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from stacks.shared.config import load\n    import local.drift_report\n")
    assert imported_packages(module) == {"stacks", "local"}
