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

import liquid
import pytest

from lambdas.human_loop_starter.attributions import OFF, explain_rows, unavailable
from lambdas.human_loop_starter.explain import TreeExplainer
from lambdas.human_loop_starter.starter import StarterSettings, feature_names, task_input
from lambdas.shared.review_group import ReviewGroup
from stacks import default_model
from stacks.config import REVIEW_TEMPLATES
from stacks.human_task import template_text
from tests.conftest import ROOT

ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SETTINGS = StarterSettings("arn", "p", default_model.LABEL_NAMES, default_model.FEATURE_NAMES, "dlq", "deferred")
TOP_K = 10
# Records the starter would send with each template: seed 000's unsure ones, seed 002's negative outcomes.
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
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({barsVisibleAtFirst, sections, inputs});
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


def render(template: str, task: dict) -> str:
    html = liquid.Template(template_text(template)).render(task={"input": task})
    return re.sub(r'<script src="https://assets\.crowd\.aws/[^"]+"></script>', "", html)


@pytest.fixture(scope="module", params=REVIEW_TEMPLATES)
def page(request, tmp_path_factory) -> tuple[str, dict, dict]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    template = request.param
    task = realistic_task(template)
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
    probe = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"').replace("&amp;", "&"))
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
    # Seed 002's reviewers see the attributions at once; the unsure-record reviewers open them.
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


def test_templates_are_whole_documents_within_the_task_ui_limit() -> None:
    for template in REVIEW_TEMPLATES:
        text = template_text(template)
        assert "[[include" not in text and len(text) <= 128_000
