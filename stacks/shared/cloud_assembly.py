"""The cloud assembly `make synth` leaves in cdk.out/: only the templates of this synthesis.

``cdk synth`` writes the chosen environment's templates but leaves those of stacks an earlier
synthesis wrote (another ``ENV`` that deploys more stacks), which a reader of ``cdk.out/`` would take
for part of this one. Pruning after the synthesis, not before it, keeps the last good templates
when a synthesis fails (a configuration error, say).

    python -m stacks.shared.cloud_assembly prune cdk.out
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def templates(assembly: Path) -> set[str]:
    """The template files the assembly's manifest names (one per stack)."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    return {
        artifact["properties"]["templateFile"]
        for artifact in manifest.get("artifacts", {}).values()
        if artifact.get("type") == "aws:cloudformation:stack"
    }


def prune(assembly: Path) -> list[str]:
    """Delete ``*.template.json`` files the manifest does not name; the names of those kept."""
    kept = templates(assembly)
    for stale in assembly.glob("*.template.json"):
        if stale.name not in kept:
            stale.unlink()
    return sorted(kept)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "prune":
        print("usage: python -m stacks.shared.cloud_assembly prune <cdk.out>", file=sys.stderr)
        return 2
    kept = prune(Path(argv[1]))
    print(f"Templates written to {argv[1]}/: {', '.join(kept)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
