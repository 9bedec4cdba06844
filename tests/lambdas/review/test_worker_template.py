"""Both worker templates, rendered by a Liquid engine with what the starter sends for real test-set
records (and their attributions from the bundled model), opened in headless Chromium: every record
shows its values and prediction, has its attribution bars, and has its own named inputs.

A2I loads crowd-html-elements.js from assets.crowd.aws; this machine has no network, so the page
is checked with the script removed (the crowd elements then render as plain containers, and the
native inputs the answers come from are unchanged). Screenshots are kept in build/test-artifacts/.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from html import unescape

import liquid
import pytest

from lambdas.review.starter.attributions import OFF, explain_rows, unavailable
from lambdas.review.starter.starter import StarterSettings, feature_names, task_input
from lambdas.shared.explain.tree import TreeExplainer
from lambdas.shared.review_group import ReviewGroup
from stacks.shared import default_model
from stacks.shared.config import REVIEW_TEMPLATES
from stacks.review.a2i import template_text
from tests.conftest import ROOT

ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SETTINGS = StarterSettings("arn", "p", default_model.LABEL_NAMES, default_model.FEATURE_NAMES, "dlq", "deferred")
TOP_K = 10
# Records the starter would send with each template: seed 000's band of uncertain scores, seed 002's negative outcomes.
PICK = {"low_confidence": lambda p: 0.1 < p < 0.9, "outcome_review": lambda p: p < 0.5}
# Runs after load: notes what a reviewer sees first, opens every <details>, then measures the page
# and writes the result into the DOM, which --dump-dom prints.
PROBE = """
<script>
window.addEventListener("load", () => {
  const box = e => e.getBoundingClientRect();
  // checkVisibility: false inside a closed <details>, whose content still has a layout box.
  const barsVisibleAtFirst = [...document.querySelectorAll(".bar")].filter(b => b.checkVisibility()).length;
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const sections = [...document.querySelectorAll("section.record")].map(s => ({
    id: s.id,
    label: s.querySelector(".predicted-label").textContent.trim(),
    probability: s.querySelector(".probability").textContent.trim(),
    features: [...s.querySelectorAll("table.features tr")].slice(1).map(tr => [...tr.querySelectorAll("td")].map(td => td.textContent.trim())),
    bars: [...s.querySelectorAll("tr.bar-row")].map(tr => {
      const bar = tr.querySelector(".bar"), right = box(tr.querySelector("td.side.right"));
      return {
        feature: tr.querySelector(".feature").textContent.trim(), value: tr.querySelector(".value").textContent.trim(),
        signed: tr.querySelector(".signed").textContent.trim(), axis: right.left, cell: right.width,
        direction: bar ? (bar.classList.contains("positive") ? "positive" : "negative") : "none",
        width: bar ? box(bar).width : 0, left: bar ? box(bar).left : 0, right: bar ? box(bar).right : 0,
        colour: bar ? getComputedStyle(bar).backgroundColor : null,
      };
    }),
  }));
  const inputs = [...document.querySelectorAll("input")].map(i => ({name: i.name, type: i.type, value: i.value, visible: i.checkVisibility() && box(i).width > 0}));
  const recordIds = [...document.querySelectorAll("section.record h3 small")].map(s => s.textContent.trim());
  const reasons = [...document.querySelectorAll("p.no-attributions")].map(p => p.textContent.trim());
  const injected = {ran: window.hostileRan || [], title: document.title, elements: document.querySelectorAll("section.record img, section.record svg, section.record script").length};
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({barsVisibleAtFirst, sections, inputs, recordIds, reasons, injected});
  document.body.appendChild(out);
});
</script>
"""


def realistic_task(template: str) -> dict:
    """Three test-set records the template's rule would pick, as the starter sends them."""
    explainer = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "mlloop-dev-run-7")
    with default_model.TEST_CSV.open() as stream:
        records = [record[1:] for record in csv.reader(stream)]
    picked = [(f, r) for f, r in zip(records, explainer.explain(records)) if PICK[template](r.probability)][:3]
    rows = tuple(
        {"recordId": f"inf-{i}", "eventId": f"evt-{i}", "inferenceId": f"inf-{i}", "rowIndex": 0, "features": features,
         "probability": result.probability, "prediction": int(result.probability >= 0.5)}
        for i, (features, result) in enumerate(picked)
    )
    explanations = explain_rows(lambda: explainer, rows, lambda count: feature_names(SETTINGS, count), TOP_K)
    return task_input(ReviewGroup("s3://capture/x.jsonl", rows), SETTINGS, explanations)


# Values a caller controls (the inference ID, captured feature text) and text that quotes them: each
# would run script if the template rendered it as HTML. A2I escapes by default; the templates also
# escape every output explicitly, and python-liquid (which does not autoescape) shows that they do.
HOSTILE_RECORD_ID = "<script>window.hostileRan = (window.hostileRan || []).concat('recordId'); document.title = 'pwned';</script>"
HOSTILE_FEATURE = "<img src=x onerror=\"window.hostileRan = (window.hostileRan || []).concat('feature')\">"
HOSTILE_REASON = "feature 1 is '<svg onload=\"window.hostileRan = (window.hostileRan || []).concat('reason')\">', not a number"


def with_hostile_values(task: dict) -> dict:
    """Row 0 carries a hostile inference ID and feature value (in its table and its top bar)."""
    first = task["rows"][0]
    first["recordId"] = HOSTILE_RECORD_ID
    top = first["explanation"]["top"][0]
    top["value"] = HOSTILE_FEATURE
    next(f for f in first["features"] if f["name"] == top["feature"])["value"] = HOSTILE_FEATURE
    return task


def render(template: str, task: dict) -> str:
    html = liquid.Template(template_text(template)).render(task={"input": task})
    return re.sub(r'<script src="https://assets\.crowd\.aws/[^"]+"></script>', "", html)


@pytest.fixture(scope="module", params=REVIEW_TEMPLATES)
def page(request, tmp_path_factory) -> tuple[str, dict, dict]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    template = request.param
    task = with_hostile_values(realistic_task(template))
    folder = tmp_path_factory.mktemp(template)
    path = folder / "task.html"
    path.write_text(render(template, task) + PROBE)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={folder / 'profile'}", "--window-size=1100,3000"]
    dom = subprocess.run([*flags, "--virtual-time-budget=2000", "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{template}_task.png"
    subprocess.run([*flags, "--virtual-time-budget=2000", f"--screenshot={shot}", path.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000
    probe = json.loads(unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    return template, task, probe


def test_every_record_shows_its_features_prediction_and_probability(page) -> None:
    _, task, probe = page
    assert [s["id"] for s in probe["sections"]] == ["row-0", "row-1", "row-2"]
    for row, section in zip(task["rows"], probe["sections"]):
        assert section["features"] == [[f["name"], str(f["value"])] for f in row["features"]]
        assert len(section["features"]) == 30
        assert (section["label"], section["probability"]) == (row["predictionName"], str(row["probability"]))


def test_every_record_has_its_bars_sorted_coloured_by_sign_and_drawn_to_scale(page) -> None:
    template, task, probe = page
    colours = {"positive": "rgb(255, 0, 81)", "negative": "rgb(0, 139, 251)"}
    for row, section in zip(task["rows"], probe["sections"]):
        top = row["explanation"]["top"]
        bars = section["bars"]
        assert [(b["feature"], b["value"], b["signed"]) for b in bars] == [(t["feature"], str(t["value"]), t["signed"]) for t in top]
        assert len(bars) == TOP_K
        for bar, item in zip(bars, top):
            assert bar["direction"] == item["direction"] and bar["colour"] == colours[bar["direction"]]
            if bar["direction"] == "positive":  # right of the axis, to the right
                assert bar["left"] >= bar["axis"] - 0.5
            else:
                assert bar["right"] <= bar["axis"] + 0.5
            # Width in pixels is the share of the largest bar, within a pixel's rounding.
            assert abs(bar["width"] - bar["cell"] * item["widthPercent"] / 100) <= 1.0
        widths = [b["width"] for b in bars]
        assert widths[0] == max(widths) and all(a >= b - 0.5 for a, b in zip(widths, widths[1:]))
    assert {b["direction"] for s in probe["sections"] for b in s["bars"]} == {"positive", "negative"}
    # Seed 002's reviewers see the attributions at once; low_confidence's reviewers open them.
    assert probe["barsVisibleAtFirst"] == (3 * TOP_K if template == "outcome_review" else 0)


def test_every_record_has_its_own_uniquely_named_visible_inputs(page) -> None:
    _, _, probe = page
    inputs = probe["inputs"]
    assert inputs and all(i["visible"] for i in inputs)
    by_row: dict[str, set[str]] = {}
    for item in inputs:
        by_row.setdefault(item["name"].rsplit("-", 1)[0], set()).add(item["name"])
    assert sorted(by_row) == ["row-0", "row-1", "row-2"]
    for key, names in by_row.items():
        assert names == {f"{key}-verdict", f"{key}-label", f"{key}-reason"}
    assert [i["value"] for i in inputs if i["name"] == "row-0-label"] == ["0", "1"]  # one choice per label
    assert [i["value"] for i in inputs if i["name"] == "row-1-verdict"] == ["agree", "disagree"]


@pytest.mark.parametrize("template", REVIEW_TEMPLATES)
def test_without_attributions_the_task_says_why_and_keeps_its_answers(template: str) -> None:
    task = realistic_task(template)
    reason = "model mlloop-dev-run-2 is not an XGBoost model the app can read: xgboost-model is a Python pickle"
    task["rows"][0]["explanation"] = unavailable(reason)
    task["rows"][1]["explanation"] = OFF
    html = render(template, task)
    first, second, third = (html[html.index(f'id="row-{i}"'):] for i in range(3))
    assert f"No attributions for this record: {reason}. Judge it from its feature values." in first[: first.index('id="row-1"')]
    assert 'class="bar ' not in second[: second.index('id="row-2"')]
    if template == "outcome_review":
        assert "Attributions are turned off for this review." in second[: second.index('id="row-2"')]
    assert third.count('class="bar ') == TOP_K
    for i in range(3):
        assert all(f'name="row-{i}-{answer}"' in html for answer in ("verdict", "label", "reason"))


@pytest.mark.parametrize("template", REVIEW_TEMPLATES)
def test_a_task_holding_an_audit_row_shows_no_trace_of_how_its_rows_were_chosen(template: str) -> None:
    """A reviewer is never told a record is an audit, nor that the model was unsure of it: the rows'
    selectedBy and inclusionProbability (a value no record holds) are in the task's input, not on the page."""
    task = realistic_task(template)
    for row, (selected, probability) in zip(task["rows"], [("rule", 0.51234567), ("audit", 0.00012345), ("audit", 0.00012345)]):
        row.update(selectedBy=selected, inclusionProbability=probability)
    html = render(template, task).lower()
    assert all(f'id="row-{i}"' in html for i in range(3))
    assert not [trace for trace in ("audit", "inclusion", "selectedby", "0.51234567", "0.00012345", "unsure") if trace in html]


def test_templates_are_whole_documents_within_the_task_ui_limit() -> None:
    for template in REVIEW_TEMPLATES:
        text = template_text(template)
        assert "[[include" not in text and len(text) <= 128_000


def test_hostile_values_are_shown_as_text_and_never_run(page) -> None:
    """Chromium ran the page: no injected script or handler ran, no element was injected, and the
    reviewer sees the caller's text literally (the other tests compare every feature value too)."""
    _, task, probe = page
    assert probe["injected"] == {"ran": [], "title": "", "elements": 0}
    assert probe["recordIds"][0] == f"({HOSTILE_RECORD_ID})"
    assert HOSTILE_FEATURE in [value for _, value in probe["sections"][0]["features"]]
    assert probe["sections"][0]["bars"][0]["value"] == HOSTILE_FEATURE


@pytest.mark.parametrize("template", REVIEW_TEMPLATES)
def test_every_output_is_escaped_or_forced_to_a_number(template: str) -> None:
    """A2I escapes by default; explicit filters keep the templates safe under any renderer, and keep
    numbers written into style attributes numbers."""
    outputs = re.findall(r"\{\{(.*?)\}\}", template_text(template))
    assert outputs and all(o.strip().endswith(("| escape", "| plus: 0")) for o in outputs)
    task = realistic_task(template)
    task["rows"][1]["explanation"] = unavailable(HOSTILE_REASON)
    task["rows"][0]["explanation"]["top"][0]["widthPercent"] = "50%; background: url(https://attacker.example/x)"
    html = render(template, task)
    assert "<svg" not in html and "&lt;svg onload=&quot;window.hostileRan" in html
    assert "attacker.example" not in html and 'style="width: 0%"' in html
