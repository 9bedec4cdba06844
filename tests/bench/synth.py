"""Benchmark: ``cdk synth`` of the app against an empty CDK app's, side by side (``make bench``).

Floor: an app that is only ``App().synth()``, run by the same CLI (``node_modules/.bin/cdk``) with
the same Python (the venv's, as ``cdk.json`` runs the app). App: ``cdk --context env=dev synth
--quiet`` as ``make synth`` runs it, all three cdk-nag rule packs on (``app.py`` always registers
them). Both warm: one untimed run each first, so the file cache holds node_modules, the venv and
the layers and each output folder holds its assets, as on a second ``make synth``. Then the two
alternate ``--runs`` times (a busy machine slows both alike) and their medians are compared.

The floor keeps aws-cdk-lib's defaults, so it builds the built-in CloudFormation validation's
engine (about a second); the app's ``cdk synth`` leaves that validation to the tests (``app.py``).

Target (issue 14): the app's median at most 2x the floor's.

    python -m tests.bench.synth [--runs 5] [--out build/bench/synth]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench import verdict

ROOT = Path(__file__).resolve().parents[2]
TARGET_RATIO = 2.0
EMPTY_APP = "from aws_cdk import App\n\nApp().synth()\n"
NO_STACKS = "This app contains no stacks"


def _environment() -> dict[str, str]:
    # As the Makefile runs the CLI: its own Node and CDK first on PATH, no instance-metadata probe.
    path = os.pathsep.join((str(ROOT / "node_modules" / ".bin"), str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")))
    return {**os.environ, "PATH": path, "AWS_EC2_METADATA_DISABLED": "true"}


@dataclass(frozen=True)
class Synth:
    argv: list[str]
    cwd: Path
    # The CLI synthesises the empty app, then says it has no stack to select and exits with 1.
    expected_error: str | None = None

    def timed(self) -> float:
        start = time.perf_counter()
        done = subprocess.run(self.argv, cwd=self.cwd, env=_environment(), capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0 and done.stderr.strip() != self.expected_error:
            raise SystemExit(f"{' '.join(self.argv)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return seconds


def synths(out: Path) -> dict[str, Synth]:
    """The floor (in a folder of its own, with the app's Python) and the app (as `make synth`)."""
    python = ROOT / json.loads((ROOT / "cdk.json").read_text())["app"].split()[0]
    floor = out / "empty"
    floor.mkdir(parents=True, exist_ok=True)
    (floor / "app.py").write_text(EMPTY_APP)
    cdk = str(ROOT / "node_modules" / ".bin" / "cdk")
    return {
        "empty app": Synth([cdk, "--app", f"{python} app.py", "synth", "--quiet", "-o", "cdk.out"], floor, NO_STACKS),
        "app": Synth([cdk, "--context", "env=dev", "synth", "--quiet", "-o", str(out / "app.out")], ROOT),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("build/bench/synth"))
    args = parser.parse_args(argv)
    runs = synths(args.out.resolve())
    for synth in runs.values():
        synth.timed()  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.runs):
        for name, synth in runs.items():
            seconds[name].append(synth.timed())
    floor, app = (statistics.median(seconds[name]) for name in runs)
    print(f"cdk synth --quiet, warm, {args.runs} alternated runs each (medians; all runs in brackets):")
    for name, times in seconds.items():
        print(f"  {name:10} {statistics.median(times):5.1f} s   [{', '.join(f'{t:.1f}' for t in times)}]")
    print(f"ratio app / empty app: {app / floor:.2f}   target <= {TARGET_RATIO:.0f}")
    failures = []
    if app > TARGET_RATIO * floor:
        failures.append(f"the app's synth takes {app / floor:.2f}x an empty app's (target {TARGET_RATIO:.0f}x)")
    return verdict(failures)


if __name__ == "__main__":
    sys.exit(main())
