"""`make drift-report`: capture files in, statistics, violations and an HTML report out.

The capture files hold the bundled held-out rows (and a copy with three features shifted, built as in
``test_drift_evaluate.py``) as the endpoint's data capture writes them: CSV in, the model's score out.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from lambdas.monitoring.drift import report
from lambdas.monitoring.drift.baseline import baseline_documents, load
from lambdas.monitoring.drift.evaluate import evaluate
from lambdas.monitoring.drift.sketch import dumps, profile
from stacks.shared.default_model import BASELINE_CSV, FEATURE_NAMES
from tests.conftest import ROOT
from tests.lambdas.monitoring.test_drift_evaluate import SHIFTS, shift

ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'

# The fixtures test_drift_evaluate.py builds its periods from.
from tests.lambdas.monitoring.test_drift_evaluate import baseline, baseline_table, held_out, model  # noqa: E402,F401


def capture_line(row: list[float], index: int) -> str:
    """One invocation as data capture writes it for the bundled (text/csv) model."""
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": ",".join(map(repr, row[1:])), "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT", "data": repr(row[0]), "encoding": "CSV"},
            },
            "eventMetadata": {"eventId": f"evt-{index:06d}", "inferenceTime": f"2026-11-22T10:{index % 60:02d}:00Z"},
            "eventVersion": "0",
        }
    )


def write_captures(folder: Path, table: np.ndarray, parts: int = 3) -> list[Path]:
    """The table as ``parts`` capture files (one per capture object, as S3 holds them)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for part, chunk in enumerate(np.array_split(table, parts)):
        path = folder / f"capture-{part}.jsonl"
        path.write_text("".join(capture_line(row, part * 1000 + i) + "\n" for i, row in enumerate(chunk.tolist())))
        paths.append(path)
    return paths


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lambdas.monitoring.drift", *map(str, args)], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def shifted(model, baseline, baseline_table, held_out):  # noqa: F811
    return shift(model, baseline, baseline_table, held_out, rescore=False)


class Page(HTMLParser):
    """Counts what the tests look for; raises nothing on well-formed input (html.parser is lenient:
    the balance of the tags is checked by hand)."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "rect", "line", "polyline", "path", "circle"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.unbalanced: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack.pop() != tag:
            self.unbalanced.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parsed(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    assert not page.unbalanced and not page.stack, (page.unbalanced, page.stack)
    return page


def test_held_out_rows_give_no_violation(tmp_path: Path, held_out) -> None:  # noqa: F811
    captures = write_captures(tmp_path / "captures", held_out)
    out = tmp_path / "out"
    result = run_cli(*captures, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [result.stdout.splitlines()[-1]]  # the summary only
    assert "env dev: 3 capture file(s), 114 rows profiled, 0 rejected" in result.stdout and "no violations" in result.stdout
    assert json.loads((out / "constraint_violations.json").read_text()) == {"violations": []}
    assert json.loads((out / "statistics.json").read_text())["dataset"]["item_count"] == 114
    assert "No violations." in (out / "report.html").read_text()


def test_shifted_features_are_flagged_and_named(tmp_path: Path, shifted) -> None:
    captures = write_captures(tmp_path / "captures", shifted)
    out = tmp_path / "out"
    result = run_cli(*captures, "--out", out, "--env", "dev")
    assert result.returncode == 0, result.stderr
    *lines, summary = result.stdout.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == sorted(SHIFTS)
    for line in lines:
        assert re.fullmatch(
            r"\w+: baseline_drift_check: distance 0\.\d{4} > threshold 0\.1 and KS critical value 0\.\d{4} \(455 baseline, 114 current values\)", line
        ), line
    assert "3 violation(s) in 3 feature(s)" in summary
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    assert sorted(v["feature_name"] for v in violations) == sorted(SHIFTS)
    statistics = json.loads((out / "statistics.json").read_text())
    assert [f["name"] for f in statistics["features"]] == ["probability", *FEATURE_NAMES]

    html = (out / "report.html").read_text()
    page = parsed(html)
    assert page.tags.count("svg") == 1 + len(FEATURE_NAMES)
    assert "script" not in page.tags and not any(name.startswith("on") for name, _ in page.attributes)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html) and "@import" not in html and "url(" not in html
    # drifted features first, in the order of the plots
    plotted = re.findall(r"<h3>(\w+)</h3>", html)
    assert sorted(plotted[:3]) == sorted(SHIFTS) and len(plotted) == 31
    for name in SHIFTS:
        assert re.search(rf"<td>{name}</td><td>baseline_drift_check</td>", html)
    if CHROMIUM:  # a picture for the README and for a human to look at; the checks above do not need it
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "drift_report.png"
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
        subprocess.run([*flags, "--window-size=390,2400", f"--screenshot={shot}", (out / "report.html").as_uri()],
                       capture_output=True, timeout=120, check=True)
        assert shot.stat().st_size > 10_000


def test_hostile_names_and_values_are_escaped(held_out) -> None:  # noqa: F811
    """A baseline whose column name, and a capture whose rejection reason and file name, carry markup."""
    text = BASELINE_CSV.read_text().splitlines()
    header = text[0].split(",")
    header[1] = HOSTILE.replace(",", ";")
    documents = baseline_documents("\n".join([",".join(header), *text[1:]]))
    baseline = load(documents["statistics.json"], documents["constraints.json"])
    rows = [(r[0], [*r[1:2], "<b>text</b>", *r[3:]]) for r in held_out.tolist()]  # text in a numeric column
    evaluation = evaluate(baseline, [("s.json", dumps(profile(baseline.layout, rows)))])
    period = report.Period(
        environment="dev<i>",
        captures=(report.CaptureFile(f"{HOSTILE}.jsonl", 1, 114, 1),),
        rejected_reasons={f"not JSON {HOSTILE}": 1},
    )
    html = report.render(evaluation, documents["statistics.json"], period)
    page = parsed(html)
    assert "script" not in page.tags and "img" not in page.tags and "i" not in page.tags and "b" not in page.tags
    assert HOSTILE not in html and "<b>text</b>" not in html
    assert html.count("&lt;script&gt;") >= 4  # name in the heading, the plot, the table; file; reason
    assert page.tags.count("svg") == 31
    assert any(HOSTILE.replace(",", ";") in t for t in page.text)  # shown as text


def test_make_drift_report_runs_end_to_end(tmp_path: Path, shifted) -> None:
    captures = write_captures(tmp_path / "captures", shifted, parts=2)
    out = tmp_path / "report"
    made = subprocess.run(
        ["make", "--no-print-directory", "-s", "drift-report", f"CAPTURE={' '.join(map(str, captures))}", f"OUT={out}",
         f"BASELINE={BASELINE_CSV}", "ENV=prod"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[-1].startswith("env prod: 2 capture file(s), 114 rows profiled, 0 rejected")
    assert {p.name for p in out.iterdir()} == {"statistics.json", "constraint_violations.json", "report.html"}


def test_bad_lines_are_counted_with_their_reasons(tmp_path: Path, held_out) -> None:  # noqa: F811
    good = [capture_line(row, i) for i, row in enumerate(held_out.tolist())]
    path = tmp_path / "mixed.jsonl"
    only_input = json.loads(good[0])
    del only_input["captureData"]["endpointOutput"]
    path.write_text("\n".join([*good, "{truncated", json.dumps(only_input), ""]) + "\n")
    out = tmp_path / "out"
    result = run_cli(path, "--out", out)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[-1]
    assert "114 rows profiled, 2 rejected (" in summary and "not JSON (truncated or malformed)" in summary
    assert "input-only capture" in summary
    assert "Rejected capture lines" in (out / "report.html").read_text()


@pytest.mark.parametrize("value", ["1e39", "1e155", "1e200", "-1.7e308", str(10**200)])
def test_a_value_beyond_the_float32_range_is_counted_and_the_report_written(tmp_path: Path, held_out, value) -> None:  # noqa: F811
    # from 1.4e154 on, one such value used to end the command with an OverflowError (exit 1)
    lines = [capture_line(row, i) for i, row in enumerate(held_out.tolist())]
    hostile = json.loads(lines[0])
    hostile["captureData"]["endpointInput"]["data"] = ",".join([value, *hostile["captureData"]["endpointInput"]["data"].split(",")[1:]])
    path = tmp_path / "huge.jsonl"
    path.write_text("\n".join([*lines, json.dumps(hostile)]) + "\n")
    out = tmp_path / "out"
    result = run_cli(path, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "mean_radius: data_type_check: " in result.stdout and "1 out of range (beyond the float32 range)" in result.stdout
    assert "115 rows profiled" in result.stdout
    [radius] = [f for f in json.loads((out / "statistics.json").read_text())["features"] if f["name"] == "mean_radius"]
    assert radius["open_monitor"]["num_out_of_range"] == 1
    assert "1 out of range" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "{tmp}/o"], "the following arguments are required: capture"),
        (["{tmp}/nope.jsonl"], "the following arguments are required: --out"),
        (["{tmp}/nope.jsonl", "--out", "{tmp}/o"], "CAPTURE {tmp}/nope.jsonl: no such readable capture file"),
        (["{capture}", "--out", "{tmp}/o", "--env", "staging"], "env: 'staging' is not an environment in cdk.json"),
        (["{capture}", "--out", "{tmp}/o", "--env", "churn"], "copy it down (aws s3 cp s3://amzn-s3-demo-bucket/REPLACE-ME/churn/baseline-with-header.csv"),
        (["{capture}", "--out", "{tmp}/o", "--baseline", "{tmp}/none.csv"], "BASELINE {tmp}/none.csv: cannot read it"),
        (["{capture}", "--out", "{tmp}/o", "--baseline", "{capture}"], "BASELINE {capture}: the baseline header must name every column"),
        (["{capture}", "--out", "{capture}"], "OUT {capture} exists and is not a directory"),
    ],
)
def test_usage_errors_exit_2_with_a_message(tmp_path: Path, argv: list[str], message: str) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_text(capture_line([0.5, *([1.0] * 30)], 0) + "\n")
    fill = {"tmp": tmp_path, "capture": capture}
    result = run_cli(*(a.format(**fill) for a in argv))
    assert result.returncode == 2, result.stdout
    assert message.format(**fill) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_make_drift_report_without_capture_or_out_says_how_to_use_it(tmp_path: Path) -> None:
    for args in ([], [f"CAPTURE={tmp_path}/c.jsonl"], [f"OUT={tmp_path}"]):
        made = subprocess.run(["make", "--no-print-directory", "-s", "drift-report", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        assert made.returncode == 2 and "usage: make drift-report CAPTURE=" in made.stderr, args
