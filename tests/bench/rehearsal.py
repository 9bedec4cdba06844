"""Benchmark: the default 24-hour rehearsal (``make rehearse``), wall time and peak memory (``make bench``).

Measured: ``python -m local.rehearse --hours 24`` as ``make rehearse`` runs it (dev, the default
traffic, simulated reviewers), in a process of its own, its wall time and its peak resident memory
(the child's ``ru_maxrss``).

Floor, in the same run and the same way (a process of its own): what every rehearsal pays before
the loop does anything, and what the day's traffic costs by itself: the app synthesised for dev and
what its templates declare created in moto (``Cloud.from_app`` and ``start``), the day's requests
built and each scored by the bundled model with XGBoost, one request at a time (as the endpoint
stand-in scores them), without capture, monitors, review or retraining. The ratio says what the
loop itself adds over that.

Targets (issue 23): the rehearsal within 5 minutes on a 2-core machine and within 2 GB of memory;
the ratio to the floor is reported, not judged (the loop's work grows with its traffic, the floor's
mostly does not).

    python -m tests.bench.rehearsal [--hours 24] [--out build/bench/rehearsal]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.bench import verdict

ROOT = Path(__file__).resolve().parents[2]
TARGET_SECONDS = 300.0
TARGET_MEMORY_MB = 2048.0

FLOOR = """
import sys, tempfile
from pathlib import Path
import numpy as np, xgboost as xgb
from local.rehearse.clock import SimulatedClock
from local.rehearse.cloud import Cloud
from local.rehearse import traffic
from stacks.shared import default_model
from lambdas.shared.explain.tree import TreeExplainer

hours = float(sys.argv[1])
with SimulatedClock():
    cloud = Cloud.from_app("dev", Path(tempfile.mkdtemp(prefix="bench-floor-")))
    cloud.start()
    requests = traffic.default("dev", hours)
    with default_model.MODEL_ARTIFACT.open("rb") as artefact:
        booster = TreeExplainer.from_artifact(artefact, "bundled").booster
    for request in requests:
        booster.predict(xgb.DMatrix(np.array([[float(v) for v in request.body().split(",")]])))
    print(f"floor: {len(requests)} requests scored")
"""


def _environment() -> dict[str, str]:
    path = os.pathsep.join((str(ROOT / "node_modules" / ".bin"), str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")))
    return {**os.environ, "PATH": path, "AWS_EC2_METADATA_DISABLED": "true"}


def measured(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak memory MB, last output line) of ``argv`` run in a process of its own.

    Each runs alone in a fresh interpreter, one after the other, so RUSAGE_CHILDREN's maximum after
    a run is that run's peak when it is the largest so far; a fork per run keeps them apart."""
    read, write = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: run the command, then report its own children's peak
        os.close(read)
        done = subprocess.run(argv, cwd=ROOT, env=_environment(), capture_output=True, text=True)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        tail = (done.stdout.strip().splitlines() or [""])[-1]
        os.write(write, f"{done.returncode}\n{peak}\n{tail}\n{done.stderr[-3000:]}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        output = pipe.read()
    os.waitpid(pid, 0)
    seconds = time.perf_counter() - start
    code, peak, tail, *error = output.split("\n", 3)
    if int(code) != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({code}):\n{''.join(error)}")
    return seconds, float(peak), tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("build/bench/rehearsal"))
    args = parser.parse_args(argv)
    python = str(ROOT / ".venv" / "bin" / "python")
    floor_seconds, floor_memory, floor_tail = measured([python, "-c", FLOOR, str(args.hours)])
    seconds, memory, tail = measured([python, "-m", "local.rehearse", "--hours", str(args.hours), "--out", str(args.out)])
    print(f"rehearsal of dev, {args.hours} simulated hours, default traffic, simulated reviewers:")
    print(f"  floor (synthesis, the templates' resources in moto, the traffic scored alone): {floor_seconds:6.1f} s  peak {floor_memory:6.0f} MB   ({floor_tail})")
    print(f"  rehearsal:                                                                     {seconds:6.1f} s  peak {memory:6.0f} MB")
    print(f"  ratio rehearsal / floor: time {seconds / floor_seconds:.2f}, memory {memory / floor_memory:.2f}")
    print(f"  targets: at most {TARGET_SECONDS:.0f} s and {TARGET_MEMORY_MB:.0f} MB   ({tail})")
    failures = []
    if seconds > TARGET_SECONDS:
        failures.append(f"the {args.hours} h rehearsal took {seconds:.0f} s (target {TARGET_SECONDS:.0f} s)")
    if memory > TARGET_MEMORY_MB:
        failures.append(f"the {args.hours} h rehearsal peaked at {memory:.0f} MB (target {TARGET_MEMORY_MB:.0f} MB)")
    return verdict(failures)


if __name__ == "__main__":
    sys.exit(main())
