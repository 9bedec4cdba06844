"""Benchmark: what per-record attributions add to review, against the path without them (``make bench``).

Floor (the filter-only path): ``capture_filter`` on a capture file of the bundled model's test
records, every record selected, grouped 3 per loop, and each group turned into the task input the
starter sends (``task_input`` with attributions off). Attributions: the same groups explained by the
bundled model (``explain_rows``, as the starter runs it). Both in one process after a warm-up,
interleaved, the median of N. Reported: time per record of each, their ratio, and the time to explain a
3-record loop against one StartHumanLoop round trip.

StartHumanLoop is not called here (no AWS); the round trip is ASSUMED to be 50 ms: an HTTPS call
from Lambda to a regional AWS API, TLS connection reused, typically 20-150 ms. The target takes
the low end, so a loop's attributions must cost less than the fastest plausible call.

Cold start: a fresh interpreter that finds only the packages the function has (the runtime's boto3,
its two layers, its code: the dev environment's scikit-learn and pandas, which XGBoost would
import, are hidden) imports what the starter imports anyway, then XGBoost (with numpy and scipy),
and loads the bundled artefact; five times. Lambda's layers carry no .pyc files and /opt is
read-only, so Python compiles every module at each cold start: the bench does the same (an empty
bytecode cache each run) and also reports the warm-cache figure. Target: XGBoost import plus model
load under 3 s, measured locally (this machine, x86_64, CPython 3.11; not Lambda's arm64).

    python -m tests.bench.attributions [--records 3000] [--runs 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from lambdas.capture.events import CaptureObject
from lambdas.capture.filtering import FilterSettings, filter_capture_object
from lambdas.capture.records import ParseOptions
from lambdas.capture.selection import SelectionRule
from lambdas.review.starter.attributions import explain_rows
from lambdas.review.starter.starter import StarterSettings, feature_names, task_input
from lambdas.shared.explain.tree import TreeExplainer
from lambdas.shared.review_group import ReviewGroup
from stacks.shared import default_model
from stacks.shared.functions import EXPLAIN_LAYER, LAYER
from tests.bench import verdict
from tests.bench.capture_filter import _LocalS3

ASSUMED_START_HUMAN_LOOP_SECONDS = 0.050
COLD_START_TARGET_SECONDS = 3.0
ROWS_PER_LOOP = 3
SETTINGS = StarterSettings("arn", "p", default_model.LABEL_NAMES, default_model.FEATURE_NAMES, "dlq", "deferred")


def capture_file(path: Path, records: int, explainer: TreeExplainer) -> Path:
    """One request per line, CSV in and out, as the endpoint's data capture writes them."""
    with default_model.TEST_CSV.open() as stream:
        rows = [record[1:] for record in csv.reader(stream)]
    probabilities = [r.probability for r in explainer.explain(rows)]
    with path.open("w") as out:
        for index in range(records):
            row, probability = rows[index % len(rows)], probabilities[index % len(rows)]
            out.write(json.dumps({
                "captureData": {
                    "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": ",".join(row), "encoding": "CSV"},
                    "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": repr(probability), "encoding": "CSV"},
                },
                "eventMetadata": {"eventId": f"evt-{index:09d}", "inferenceTime": "2026-11-22T10:00:00Z"},
                "eventVersion": "0",
            }) + "\n")
    return path


class _CollectingSqs:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_message_batch(self, QueueUrl: str, Entries: list) -> dict:  # noqa: N803
        self.bodies.extend(e["MessageBody"] for e in Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def filter_only(path: Path) -> tuple[float, list[ReviewGroup]]:
    """Seconds for capture file -> review groups -> task inputs, attributions off."""
    settings = FilterSettings(
        options=ParseOptions(), rule=SelectionRule(rule="band", lower=0.0, upper=1.0), rows_per_loop=ROWS_PER_LOOP,
        review_queue_url="sink", report_bucket="reports",
    )
    sqs = _CollectingSqs()
    start = time.perf_counter()
    filter_capture_object(_LocalS3(path), sqs, CaptureObject("bucket", "key"), settings)
    groups = [ReviewGroup.from_body(body) for body in sqs.bodies]
    for group in groups:
        task_input(group, SETTINGS)
    return time.perf_counter() - start, groups


def attributions(groups: list[ReviewGroup], explainer: TreeExplainer) -> tuple[float, list[float]]:
    """Seconds to explain every group, and each group's own time."""
    per_group = []
    names = lambda count: feature_names(SETTINGS, count)  # noqa: E731
    start = time.perf_counter()
    for group in groups:
        began = time.perf_counter()
        explain_rows(lambda: explainer, group.rows, names, 10)
        per_group.append(time.perf_counter() - began)
    return time.perf_counter() - start, per_group


# Python packages a Lambda function has besides the standard library: the runtime's boto3 and what
# boto3 needs (https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html), its layers, its code.
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")
COLD = """
import sys, time
absent = set({absent!r})

class OnlyWhatLambdaHas:
    # The dev environment also has scikit-learn, pandas and pyarrow, which XGBoost imports when it
    # finds them (seconds); the function's layers do not have them, so here they are not found either.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, OnlyWhatLambdaHas())
began = time.perf_counter()
import lambdas.shared.explain.deployed_model  # boto3 and the starter's own modules: loaded with attributions off too
start = time.perf_counter()
from lambdas.shared.explain.tree import TreeExplainer  # numpy, scipy, xgboost
imported = time.perf_counter()
TreeExplainer.from_artifact(open({artifact!r}, "rb"), "bundled")
print(start - began, imported - start, time.perf_counter() - imported)
"""


def absent_from_lambda() -> list[str]:
    """Top-level packages of this environment that the function does not have."""
    present = set(LAMBDA_RUNTIME_PACKAGES)
    for layer in (LAYER, EXPLAIN_LAYER):
        present |= {p.name.split(".")[0] for p in (layer / "python").iterdir()}
    site_packages = Path(sysconfig.get_paths()["purelib"])
    installed = {p.name.split(".")[0].split("-")[0] for p in site_packages.iterdir() if not p.name.endswith((".dist-info", ".pth"))}
    return sorted(installed - present)


def cold_start(empty_bytecode_cache: bool) -> tuple[float, float, float]:
    """(seconds to import what the starter imports anyway, to import XGBoost, to load the model) in a
    fresh interpreter that finds only what the function has."""
    code = COLD.format(absent=absent_from_lambda(), artifact=str(default_model.MODEL_ARTIFACT))
    with tempfile.TemporaryDirectory() as cache:
        env = {"PYTHONPYCACHEPREFIX": cache, "PYTHONDONTWRITEBYTECODE": "1"} if empty_bytecode_cache else {}
        output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, **env}).stdout
    baseline, imported, loaded = (float(v) for v in output.split())
    return baseline, imported, loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    explainer = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "bundled")
    path = capture_file(args.out / f"capture-bundled-{args.records}.jsonl", args.records, explainer)

    filter_only(path)  # warm-up: imports, caches
    floors, explained, loops = [], [], []
    for _ in range(args.runs):
        seconds, groups = filter_only(path)
        floors.append(seconds)
        seconds, per_group = attributions(groups, explainer)
        explained.append(seconds)
        loops.extend(t for t, g in zip(per_group, groups) if len(g.rows) == ROWS_PER_LOOP)
    records = sum(len(g.rows) for g in groups)
    floor, added = statistics.median(floors) / records, statistics.median(explained) / records
    loop_median, loop_p99 = statistics.median(loops), statistics.quantiles(loops, n=100)[98]
    print(f"{records:,} records in {len(groups):,} loops of {ROWS_PER_LOOP}; median of {args.runs} runs")
    print(f"filter-only path:   {floor * 1e6:8.1f} us per record")
    print(f"attributions add:   {added * 1e6:8.1f} us per record   ratio to the filter-only path: {added / floor:.1f}x")
    print(
        f"3-record loop:      {loop_median * 1e3:8.2f} ms median, {loop_p99 * 1e3:.2f} ms p99   "
        f"vs assumed StartHumanLoop round trip {ASSUMED_START_HUMAN_LOOP_SECONDS * 1e3:.0f} ms: "
        f"{loop_median / ASSUMED_START_HUMAN_LOOP_SECONDS:.3f} of it (median; p99 shows a busy machine's pauses)"
    )
    failures = []
    if loop_median >= ASSUMED_START_HUMAN_LOOP_SECONDS:
        failures.append(f"a 3-record loop's attributions take {loop_median * 1e3:.1f} ms, not less than one StartHumanLoop round trip")

    for empty, label in ((True, "no bytecode cache (as in Lambda)"), (False, "warm bytecode cache")):
        runs = [cold_start(empty) for _ in range(args.runs)]
        totals = [imported + loaded for _, imported, loaded in runs]
        print(
            f"XGBoost import + model load, {label:32}: median {statistics.median(totals):.2f} s, max {max(totals):.2f} s "
            f"(load {statistics.median(r[2] for r in runs) * 1e3:.1f} ms; before it, boto3 and the starter: "
            f"{statistics.median(r[0] for r in runs):.2f} s)" + (f"   target < {COLD_START_TARGET_SECONDS:.0f} s" if empty else "")
        )
        if empty and statistics.median(totals) >= COLD_START_TARGET_SECONDS:  # the median: one slow run on a busy machine is noise
            failures.append(f"import plus model load took {statistics.median(totals):.2f} s (median of {args.runs})")
    return verdict(failures)


if __name__ == "__main__":
    sys.exit(main())
