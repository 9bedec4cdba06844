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
from stacks.shared.default_model import BASELINE_CSV, FEATURE_NAMES, captures
from tests.conftest import ROOT
from tests.lambdas.monitoring.test_drift_evaluate import SHIFTS, shift

ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'

# The fixtures test_drift_evaluate.py builds its periods from.
from tests.lambdas.monitoring.test_drift_evaluate import baseline, baseline_table, held_out, model  # noqa: E402,F401


def capture_line(row: list[float], index: int) -> str:
    """One invocation (score, then features) as data capture writes it for the bundled (text/csv)
    model: the sample capture files' writer."""
    return captures.capture_line(row[1:], row[0], event_id=f"evt-{index:06d}", inference_time=f"2026-11-22T10:{index % 60:02d}:00Z")


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
        [sys.executable, "-m", "local.drift_report", *map(str, args)], cwd=ROOT, capture_output=True, text=True, check=False
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
    levels = []
    for line in lines:
        found = re.fullmatch(
            r"\w+: baseline_drift_check: distance 0\.\d{4} > threshold 0\.1 and KS critical value 0\.\d{4} at alpha ([\d.e-]+) "
            r"\(455 baseline, 114 current values\)",
            line,
        )
        assert found, line
        levels.append(float(found.group(1)))
    # Holm's steps: the three shifted features pass at 0.003 / 31, / 30 and / 29 (in some order)
    assert sorted(levels) == pytest.approx([0.003 / 31, 0.003 / 30, 0.003 / 29], rel=1e-2)
    assert "3 violation(s) in 3 feature(s)" in summary and "drift test: family-wise 0.3 % over 31 columns, Holm" in summary
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    assert sorted(v["feature_name"] for v in violations) == sorted(SHIFTS)
    assert all("(family-wise 0.3 % over 31 columns, Holm; p = " in v["description"] for v in violations)
    statistics = json.loads((out / "statistics.json").read_text())
    assert statistics["open_monitor"]["drift_test"] == {
        "test": "two-sample Kolmogorov-Smirnov (asymptotic), Holm's step-down over the columns compared",
        "family_wise_alpha": 0.003,
        "columns_compared": 31,
        "comparison_threshold": 0.1,
        "rule": "family-wise 0.3 % over 31 columns, Holm",
    }
    assert [f["name"] for f in statistics["features"]] == ["probability", *FEATURE_NAMES]

    html = (out / "report.html").read_text()
    page = parsed(html)
    assert page.tags.count("svg") == 1 + len(FEATURE_NAMES)
    assert "<dt>Drift test</dt><dd>two-sample Kolmogorov-Smirnov per column, family-wise 0.3 % over 31 columns, Holm: " in html
    assert "flags any column at most 0.3 % of the time; a drift also needs a distance above 0.1</dd>" in html
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


def rendered(table: np.ndarray, blank: tuple[str, int] | None = None) -> tuple[str, object, dict]:
    """(report page, evaluation, baseline statistics) of ``table`` as one sketch file."""
    documents = baseline_documents(BASELINE_CSV.read_text())
    baseline = load(documents["statistics.json"], documents["constraints.json"])
    rows = [(r[0], r[1:]) for r in table.tolist()]
    if blank is not None:  # a missing value in column ``name`` of the first ``count`` rows
        name, count = blank
        index = FEATURE_NAMES.index(name)
        rows = [(o, [*f[:index], None, *f[index + 1 :]]) if i < count else (o, f) for i, (o, f) in enumerate(rows)]
    evaluation = evaluate(baseline, [("s.json", dumps(profile(baseline.layout, rows)))])
    page = report.render(evaluation, documents["statistics.json"], report.Period(environment="dev", window="w", sketch_files=1))
    parsed(page)
    return page, evaluation, documents["statistics.json"]


def card(page: str, name: str) -> str:
    found = re.search(rf'<section class="feature[^"]*"><h3>{name}</h3>(.*?)</section>', page, re.S)
    assert found, name
    return found.group(1)


def test_the_violations_table_gives_each_features_distance_largest_first(shifted) -> None:
    page, evaluation, _ = rendered(shifted, blank=("mean_radius", 20))
    table = re.search(r"<h2>Violations</h2>.*?<table>(.*?)</table>", page, re.S).group(1)
    assert "<th>Feature</th><th>Check</th><th>Distance</th><th>Description</th>" in table
    rows = re.findall(r"<tr><td>(\w+)</td><td>(\w+)</td><td>([-0-9.]+)</td>", table)
    distances = {d.name: d.distance for d in evaluation.drift}
    assert [(name, check) for name, check, _ in rows] == [
        ("smoothness_error", "baseline_drift_check"), ("worst_area", "baseline_drift_check"),
        ("mean_texture", "baseline_drift_check"), ("mean_radius", "completeness_check"),
    ]  # fmt: skip
    assert [float(shown) for _, _, shown in rows] == [round(distances[name], 4) for name, _, _ in rows]


def test_a_card_gives_mean_min_max_and_the_values_beyond_the_baselines_range_on_an_axis_of_that_range(held_out) -> None:
    # Three values at 100 times (the reviewer's case): no violation, but now visible; the axis stays
    # the baseline's range, so the curves are not squeezed against its left edge.
    table = held_out.copy()
    index = 1 + FEATURE_NAMES.index("mean_area")
    table[:3, index] *= 100
    page, evaluation, baseline_statistics = rendered(table)
    base = {f["name"]: f["numerical_statistics"] for f in baseline_statistics["features"]}["mean_area"]
    now = {f["name"]: f["numerical_statistics"] for f in evaluation.statistics["features"]}["mean_area"]
    area = card(page, "mean_area")
    def shown(value: float) -> str:
        return f"{value:.4g}"

    expected = "; ".join(f"{what} {shown(base[what])} &#8594; {shown(now[what])}" for what in ("mean", "min", "max"))
    assert f'<p class="stats">{expected}</p>' in area
    above = int((table[:, index] > base["max"]).sum())
    below = int((table[:, index] < base["min"]).sum())
    assert above == 3 and f"{above + below} of 114 values outside the baseline&#x27;s range" in area.replace("'", "&#x27;")
    assert f"{below} below, 3 above" in area
    ticks = re.findall(rf'y="{report.HEIGHT - report.BOTTOM + report.FONT_UNITS + 2}" text-anchor="(?:start|end)" class="tick">([^<]+)</text>', area)
    assert ticks == [shown(base["min"]), shown(base["max"])]  # the value axis's ends: not 4.486e+04
    xs = [float(x) for points in re.findall(r'points="([^"]+)"', area) for x in re.findall(r"([\d.]+),", points)]
    assert min(xs) >= report.LEFT and max(xs) <= report.WIDTH - report.RIGHT
    assert "All 114 values within the baseline" in card(page, "mean_texture")


def test_a_period_too_small_to_judge_says_so_instead_of_no_drift(tmp_path: Path, held_out) -> None:  # noqa: F811
    page, evaluation, _ = rendered(held_out[:3])
    assert evaluation.too_few == "too few rows to judge: 3 rows, at least 6 needed"
    assert "No violations." not in page and "no drift" not in page
    assert "Drift: too few rows to judge: 3 rows, at least 6 needed." in page
    assert "too few values to judge: 3 values, at least 6 needed" in card(page, "worst_area")
    # 6 rows can show drift (the critical value at Holm's first level, 0.003 / 31, is below 1): judged as usual
    page, evaluation, _ = rendered(held_out[:6])
    assert evaluation.too_few is None and "too few" not in page
    path = write_captures(tmp_path, held_out[:3], parts=1)[0]
    result = run_cli(path, "--out", tmp_path / "out")
    assert result.returncode == 0 and "no violations (drift: too few rows to judge: 3 rows, at least 6 needed)" in result.stdout


def test_plot_text_is_at_least_11_px_on_the_narrowest_card() -> None:
    css = report.CSS
    card_min = int(re.search(r"\.features\{[^}]*minmax\((\d+)px", css).group(1))
    padding = int(re.search(r"\.feature\{[^}]*padding:(\d+)px", css).group(1))
    border = max(int(b) for b in re.findall(r"\.feature[.\w]*\{[^}]*border:(\d+)px", css))
    scale = (card_min - 2 * padding - 2 * border) / report.WIDTH  # CSS px per SVG user unit (the SVG is the card's width)
    for kind in ("tick", "legend", "gap"):
        size = int(re.search(rf"\.{kind}\{{font-size:(\d+)px", css).group(1))
        assert size * scale >= 11, (kind, size * scale)


def test_period_statistics_carry_model_monitors_equal_width_buckets_and_the_sketch_bins(shifted) -> None:
    _, evaluation, _ = rendered(shifted)
    for feature, column in zip(evaluation.statistics["features"], shifted.T, strict=True):
        buckets = feature["numerical_statistics"]["distribution"]["kll"]["buckets"]
        widths = [b["upper_bound"] - b["lower_bound"] for b in buckets]
        assert len(buckets) == 10 and widths[0] > 0 and widths == pytest.approx([widths[0]] * 10, rel=1e-9)
        assert (buckets[0]["lower_bound"], buckets[-1]["upper_bound"]) == (column.min(), column.max())
        assert sum(b["count"] for b in buckets) == sum(b["count"] for b in feature["open_monitor"]["bins"]) == len(column)


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
        (["{tmp}/nope.jsonl", "--out", "{tmp}/o"], "CAPTURE {tmp}/nope.jsonl: no such file or folder"),
        (["{tmp}/empty", "--out", "{tmp}/o"], "CAPTURE {tmp}/empty: a folder with no .jsonl file in it or below it"),
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
    (tmp_path / "empty" / "2026").mkdir(parents=True)
    fill = {"tmp": tmp_path, "capture": capture}
    result = run_cli(*(a.format(**fill) for a in argv))
    assert result.returncode == 2, result.stdout
    assert message.format(**fill) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_make_drift_report_without_capture_reads_the_sample_shifted_file(tmp_path: Path) -> None:
    made = subprocess.run(
        ["make", "--no-print-directory", "-s", "drift-report", f"OUT={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    assert "env dev: 1 capture file(s), 114 rows profiled, 0 rejected" in made.stdout and "3 violation(s) in 3 feature(s)" in made.stdout
    violations = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())["violations"]
    assert sorted(v["feature_name"] for v in violations) == sorted(captures.SHIFTS)


def test_a_folder_of_capture_files_is_every_jsonl_below_it(tmp_path: Path) -> None:
    """What ``aws s3 cp --recursive`` leaves: the capture prefix's <variant>/yyyy/mm/dd/hh/ folders."""
    hours = [tmp_path / "capture" / "AllTraffic" / "2026" / "11" / "22" / hour for hour in ("10", "11")]
    lines = (captures.SAMPLES_DIR / captures.SHIFTED).read_text().splitlines(keepends=True)
    for number, hour in enumerate(hours):
        hour.mkdir(parents=True)
        (hour / "part.jsonl").write_text("".join(lines[number::2]))
    result = run_cli(tmp_path / "capture", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "env dev: 2 capture file(s), 114 rows profiled, 0 rejected" in result.stdout and "3 violation(s) in 3 feature(s)" in result.stdout
