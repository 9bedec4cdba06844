"""The low-confidence worker template, rendered by a Liquid engine with what the starter sends and
opened in headless Chromium: every record shows its values and has its own named inputs.

A2I loads crowd-html-elements.js from assets.crowd.aws; this machine has no network, so the page
is checked with the script removed (the crowd elements then render as plain containers, and the
native inputs the answers come from are unchanged). A screenshot is kept in build/test-artifacts/.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import liquid
import pytest

from lambdas.human_loop_starter.starter import StarterSettings, task_input
from lambdas.shared.review_group import ReviewGroup
from stacks import default_model
from stacks.human_task import template_text
from tests.conftest import ROOT

ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Measures the rendered page and writes the result into the DOM, which --dump-dom then prints.
PROBE = """
<script>
window.addEventListener("load", () => {
  const seen = [...document.querySelectorAll("input")].map(i => {
    const box = i.getBoundingClientRect();
    return {name: i.name, type: i.type, value: i.value, visible: box.width > 0 && box.height > 0};
  });
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script>
"""


def realistic_rows() -> list[dict]:
    with default_model.TEST_CSV.open() as stream:
        records = list(csv.reader(stream))[:3]
    return [
        {"recordId": f"inf-{i}", "eventId": f"evt-{i}", "inferenceId": f"inf-{i}", "rowIndex": 0,
         "features": record[1:], "probability": p, "prediction": int(p >= 0.5)}
        for i, (record, p) in enumerate(zip(records, (0.42, 0.67, 0.18)))
    ]


def rendered_page() -> tuple[str, dict]:
    settings = StarterSettings("arn", "p", default_model.LABEL_NAMES, default_model.FEATURE_NAMES, "dlq", "deferred")
    task = task_input(ReviewGroup("s3://capture/x.jsonl", tuple(realistic_rows())), settings)
    html = liquid.Template(template_text("low_confidence")).render(task={"input": task})
    html = re.sub(r'<script src="https://assets\.crowd\.aws/[^"]+"></script>', "", html)
    return html + PROBE, task


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self._current: str | None = None
        self.probe = ""
        self._in_probe = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._current = attrs.get("id")
            self.sections[self._current] = []
        if tag == "pre" and attrs.get("id") == "probe":
            self._in_probe = True

    def handle_endtag(self, tag):
        if tag == "section":
            self._current = None
        if tag == "pre":
            self._in_probe = False

    def handle_data(self, data):
        if self._in_probe:
            self.probe += data
        elif self._current and data.strip():
            self.sections[self._current].append(data.strip())


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[_Text, dict]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    html, task = rendered_page()
    folder = tmp_path_factory.mktemp("template")
    path = folder / "task.html"
    path.write_text(html)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={folder / 'profile'}", "--window-size=1100,2600"]
    dom = subprocess.run([*flags, "--virtual-time-budget=2000", "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "low_confidence_task.png"
    subprocess.run([*flags, f"--screenshot={shot}", path.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000
    parsed = _Text()
    parsed.feed(dom)
    return parsed, task


def test_every_record_shows_its_features_prediction_and_probability(page) -> None:
    parsed, task = page
    assert list(parsed.sections) == ["row-0", "row-1", "row-2"]
    for row in task["rows"]:
        text = parsed.sections[row["key"]]
        names = text[text.index("Value") + 1:][0::2][:30]
        values = text[text.index("Value") + 1:][1::2][:30]
        assert names == list(default_model.FEATURE_NAMES)
        assert values == [str(f["value"]) for f in row["features"]]
        assert row["predictionName"] in text and str(row["probability"]) in text


def test_every_record_has_its_own_uniquely_named_visible_inputs(page) -> None:
    parsed, task = page
    inputs = json.loads(parsed.probe)
    assert inputs and all(i["visible"] for i in inputs)
    by_row: dict[str, set[str]] = {}
    for item in inputs:
        by_row.setdefault(item["name"].split("-")[0] + "-" + item["name"].split("-")[1], set()).add(item["name"])
    assert sorted(by_row) == ["row-0", "row-1", "row-2"]
    for key, names in by_row.items():
        assert names == {f"{key}-verdict", f"{key}-label", f"{key}-reason"}
    labels = [i["value"] for i in inputs if i["name"] == "row-0-label"]
    assert labels == ["0", "1"]  # one choice per configured label
    verdicts = [i["value"] for i in inputs if i["name"] == "row-1-verdict"]
    assert verdicts == ["agree", "disagree"]
