"""End to end, offline: headless Chromium on the local server (the real API handler over moto).

Sign in (the authorization-code flow with PKCE against the local stand-in for managed login), see
the waiting tasks, claim one, answer its three rows and submit it with the keyboard alone; then
output.json in A2I's format, review_results on it, and its labels and training rows. Screenshots
at 1280 and 390 px wide are kept in build/review-app-screenshots/. Hostile values in a task are
shown as text and never run; the page keeps within a 390-px-wide screen.
"""

from __future__ import annotations

import csv
import io
import json

import boto3
import pytest

from local import review_local as local
from lambdas.review.app.tasks import DONE, Tasks
from lambdas.review.results.results import LoopEvent, ResultsSettings, record_loop
from lambdas.shared import aws
from stacks.shared import default_model
from tests.conftest import ROOT
from tests.lambdas.aws_env import REGION
from tests.lambdas.review.app.browser import Browser

SCREENSHOTS = ROOT / "build" / "review-app-screenshots"
LABELS_BUCKET = "labels"


@pytest.fixture
def server(mocked_aws, monkeypatch):
    for name in local.ENVIRONMENT:
        monkeypatch.setenv(name, "")  # start() sets them; monkeypatch puts back what was there
    monkeypatch.setenv("REVIEW_LOCAL_QUIET", "1")
    running = local.start(tasks=3)
    yield running
    running.stop()


@pytest.fixture
def browser(tmp_path):
    opened = Browser(tmp_path / "profile", 1280, 900)
    yield opened
    opened.close()


def signed_in(browser: Browser, url: str) -> str:
    browser.goto(url)
    return browser.wait_for("!document.getElementById('next').disabled && !document.getElementById('next').hidden && document.getElementById('waiting').textContent", 60)


def tab_to(browser: Browser, condition: str, limit: int = 80) -> None:
    """Tab until the focused element meets ``condition`` (``e`` is document.activeElement)."""
    for _ in range(limit):
        if browser.js(f"(e => !!({condition}))(document.activeElement)"):
            return
        browser.press("Tab")
    raise AssertionError(f"never reached by Tab: {condition}; focus on {browser.js('document.activeElement.outerHTML.slice(0, 200)')}")


def choose(browser: Browser, name: str, value: str) -> None:
    """Into a radio group by Tab, then to the value with the arrow keys (or Space on the first)."""
    tab_to(browser, f"e.name === '{name}'")
    values = browser.js(f"[...document.getElementsByName('{name}')].map(i => i.value)")
    if values.index(value) == 0:
        browser.press(" ")
    else:
        browser.press("ArrowRight", values.index(value))
    assert browser.js(f"document.querySelector('input[name=\"{name}\"]:checked').value") == value


def test_a_reviewer_signs_in_claims_answers_and_submits_with_the_keyboard(server, browser) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert signed_in(browser, server.url) == "3 tasks wait for review."
    assert browser.js("document.getElementById('who').textContent") == f"Signed in as {local.LOCAL_REVIEWER}"

    tab_to(browser, "e.id === 'next'")
    browser.press("Enter")
    browser.wait_for("!document.getElementById('task').hidden && document.activeElement.id === 'task-title'")
    task_id = browser.js("document.getElementById('task-id').textContent")
    # The claimed task no longer waits for anyone.
    browser.wait_for("document.getElementById('waiting').textContent === '2 tasks wait for review.'")
    shown = browser.js("""[...document.querySelectorAll('section.record')].map(s => ({
        id: s.id, prediction: Number(/\\((\\d)\\)/.exec(s.querySelector('.prediction').textContent)[1]),
        features: s.querySelectorAll('table.features tr').length - 1,
        bars: [...s.querySelectorAll('.bar')].map(b => b.getBoundingClientRect().width)}))""")
    assert [s["id"] for s in shown] == ["row-0", "row-1", "row-2"]
    assert all(s["features"] == len(default_model.FEATURE_NAMES) for s in shown)
    # The attribution bars are drawn (widths from the API's data attributes, under the page's CSP).
    browser.js("document.querySelectorAll('details').forEach(d => d.open = true)")
    widths = browser.js("[...document.querySelectorAll('section.record')].map(s => [...s.querySelectorAll('.bar')].map(b => b.getBoundingClientRect().width))")
    assert all(len(w) == 10 and max(w) > 50 and all(x > 0 for x in w) for w in widths)
    browser.js("document.querySelectorAll('details').forEach(d => d.open = false); document.getElementById('task-title').focus()")

    # Row 0: agree; row 1: disagree, the other label, and why; row 2: agree. Agreeing keeps the
    # model's label: the label choice appears (and is required) only once Disagree is chosen.
    wanted = {0: ("agree", shown[0]["prediction"], ""), 1: ("disagree", 1 - shown[1]["prediction"], "the texture is irregular"),
              2: ("agree", shown[2]["prediction"], "")}
    label_shown = "(name => !document.getElementsByName(name)[0].closest('fieldset').hidden && !document.getElementsByName(name)[0].disabled)"
    assert [browser.js(f"{label_shown}('row-{row}-label')") for row in range(3)] == [False, False, False]
    for row, (verdict, label, reason) in wanted.items():
        choose(browser, f"row-{row}-verdict", verdict)
        assert browser.js(f"{label_shown}('row-{row}-label')") is (verdict == "disagree")
        if verdict == "disagree":
            choose(browser, f"row-{row}-label", str(label))
        if reason:
            tab_to(browser, f"e.name === 'row-{row}-reason'")
            browser.type_text(reason)
    browser.js("window.scrollTo(0, 0)")
    browser.screenshot(SCREENSHOTS / "task-1280.png")
    tab_to(browser, "e.id === 'submit'")
    browser.press("Enter")
    assert browser.wait_for("document.getElementById('task').hidden && document.getElementById('status').textContent") == "Thank you: your answers are saved."
    browser.wait_for("document.getElementById('waiting').textContent === '2 tasks wait for review.'")
    assert browser.js("document.activeElement.id") == "next"
    assert browser.console == []  # no script error, no CSP violation

    # The task is done: one output.json in A2I's format, one completion event.
    table = Tasks(aws.client("dynamodb"), local.ENVIRONMENT["TASKS_TABLE"])
    task = table.get(task_id)
    assert task.status == DONE and list(task.answers) == [local.LOCAL_REVIEWER]
    [event] = server.events.take()
    assert event["detail"]["humanLoopName"] == task_id and event["detail"]["humanLoopStatus"] == "Completed"
    bucket, key = aws.split_s3_uri(event["detail"]["humanLoopOutput"]["outputS3Uri"])
    document = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    [answer] = document["humanAnswers"]
    assert answer["workerId"] == local.LOCAL_REVIEWER and answer["answerContent"]["row-1-reason"] == "the texture is irregular"
    assert answer["answerContent"]["row-1-verdict"] == {"agree": False, "disagree": True}

    # review_results, unchanged, turns it into labels and training rows.
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=LABELS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    result = record_loop(aws.client("s3"), aws.client("events"), LoopEvent.from_event(event),
                         ResultsSettings(LABELS_BUCKET, bucket, default_model.LABEL_NAMES, "default", "app.review"))
    assert (result.labelled, result.unused) == (3, 0)
    rows = list(csv.reader(io.StringIO(aws.client("s3").get_object(Bucket=LABELS_BUCKET, Key=result.training_key)["Body"].read().decode())))
    assert [int(r[0]) for r in rows] == [wanted[i][1] for i in range(3)]
    assert [r[1:] for r in rows] == [[str(f["value"]) for f in row["features"]] for row in document["inputContent"]["rows"]]

    # On a phone: the next task fits a 390-px-wide screen, every input in reach.
    browser.resize(390, 844)
    browser.press("Enter")  # focus is on "Next task"
    browser.wait_for("!document.getElementById('task').hidden")
    browser.js("window.scrollTo(0, 0)")
    browser.screenshot(SCREENSHOTS / "task-390.png")
    browser.js("document.querySelectorAll('details').forEach(d => d.open = true)")
    layout = browser.js("""({page: document.documentElement.scrollWidth,
        inputs: [...document.querySelectorAll('#task input, #task button')].map(i => { const r = i.getBoundingClientRect(); return [r.left, r.right]; })})""")
    assert layout["page"] <= 390
    assert layout["inputs"] and all(left >= 0 and right <= 390 for left, right in layout["inputs"])
    browser.js("document.querySelectorAll('details').forEach(d => d.open = false)")
    # Skip gives it back.
    tab_to(browser, "e.id === 'release'")
    browser.press("Enter")
    assert browser.wait_for("document.getElementById('task').hidden && document.getElementById('status').textContent") == "Task skipped: another reviewer can take it."
    assert browser.console == []
    assert (SCREENSHOTS / "task-1280.png").stat().st_size > 20_000 and (SCREENSHOTS / "task-390.png").stat().st_size > 20_000


HOSTILE_ID = "<script>window.hostileRan = (window.hostileRan || []).concat('recordId')</script>"
HOSTILE_VALUE = "<img src=x onerror=\"window.hostileRan = (window.hostileRan || []).concat('feature')\">"


def test_hostile_values_in_a_task_are_shown_as_text_and_never_run(mocked_aws, monkeypatch, browser) -> None:
    for name in local.ENVIRONMENT:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("REVIEW_LOCAL_QUIET", "1")
    running = local.start(tasks=0)
    try:
        rows = [{"key": f"row-{i}", "recordId": HOSTILE_ID if i == 0 else f"r{i}", "eventId": f"e{i}", "inferenceId": HOSTILE_ID, "rowIndex": 0,
                 "probability": 0.5, "prediction": 0, "predictionName": HOSTILE_VALUE,
                 "features": [{"name": HOSTILE_VALUE, "value": HOSTILE_VALUE}, {"name": "b", "value": 2}],
                 "explanation": {"status": "unavailable", "reason": HOSTILE_VALUE}} for i in range(3)]
        content = {"captureObject": "s3://x/y", "labels": [{"value": 0, "name": HOSTILE_VALUE}, {"value": 1, "name": "benign"}], "rows": rows}
        Tasks(aws.client("dynamodb"), local.ENVIRONMENT["TASKS_TABLE"]).put("hostile-task", content, 1, 3600)
        assert signed_in(browser, running.url) == "1 task waits for review."
        browser.js("document.getElementById('next').click()")
        browser.wait_for("!document.getElementById('task').hidden")
        browser.js("document.querySelectorAll('details').forEach(d => d.open = true)")
        probe = browser.js("""({ran: window.hostileRan || [],
            injected: document.querySelectorAll('#task-body img, #task-body script, #task-body svg').length,
            recordId: document.querySelector('section.record h3 small').textContent,
            feature: document.querySelector('table.features td.value').textContent,
            reason: document.querySelector('p.no-attributions').textContent})""")
        assert probe["ran"] == [] and probe["injected"] == 0
        assert probe["recordId"] == f"({HOSTILE_ID})" and probe["feature"] == HOSTILE_VALUE and HOSTILE_VALUE in probe["reason"]
        assert browser.console == []
    finally:
        running.stop()


def test_a_reload_resumes_the_held_task_and_a_lost_lease_is_said_plainly(server, browser) -> None:
    signed_in(browser, server.url)
    browser.js("document.getElementById('next').click()")
    browser.wait_for("!document.getElementById('task').hidden")
    task_id = browser.js("document.getElementById('task-id').textContent")
    browser.goto(server.url)  # a reload: the lease is still the reviewer's
    assert browser.wait_for("!document.getElementById('task').hidden && document.getElementById('task-id').textContent") == task_id
    # The lease runs out (as if the reviewer had left the page for longer than the lease).
    aws.client("dynamodb").update_item(TableName=local.ENVIRONMENT["TASKS_TABLE"], Key={"taskId": {"S": task_id}},
                                       UpdateExpression="SET slot0.leaseExpiresAt = :past", ExpressionAttributeValues={":past": {"N": "0"}})
    browser.js("""for (const name of ['row-0', 'row-1', 'row-2']) {
        document.querySelector(`input[name="${name}-verdict"][value="agree"]`).checked = true; }""")
    browser.js("document.getElementById('submit').click()")
    message = browser.wait_for("document.getElementById('task').hidden && document.getElementById('status').textContent")
    assert "expired" in message and browser.js("document.getElementById('status').className") == "error"
    assert Tasks(aws.client("dynamodb"), local.ENVIRONMENT["TASKS_TABLE"]).get(task_id).answers == {}


def test_a_refused_answer_is_shown_next_to_its_field_in_view(server, browser) -> None:
    """The server refuses a record's answer (disagreeing with the model but choosing its label):
    the reason appears next to that record's label choice, scrolled into view and focused, not only
    in the status line at the top of a long page; correcting it clears it, and the task is saved."""
    browser.resize(1280, 800)
    signed_in(browser, server.url)
    browser.js("document.getElementById('next').click()")
    browser.wait_for("!document.getElementById('task').hidden")
    predicted = browser.js("[...document.querySelectorAll('section.record')].map(s => /\\((\\d)\\)/.exec(s.querySelector('.prediction').textContent)[1])")
    browser.js("""(predicted => ['row-0', 'row-1', 'row-2'].forEach((key, i) => {
        const verdict = document.querySelector(`input[name="${key}-verdict"][value="${key === 'row-2' ? 'disagree' : 'agree'}"]`);
        verdict.click();
        if (key === 'row-2') document.querySelector(`input[name="${key}-label"][value="${predicted[i]}"]`).click();
    }))(%s)""" % json.dumps(predicted))
    browser.js("window.scrollTo(0, 0); document.getElementById('submit').click()")
    error = browser.wait_for("""(e => e && {text: e.textContent, after: e.previousElementSibling.className, id: e.id, role: e.getAttribute('role'),
        top: e.getBoundingClientRect().top, bottom: e.getBoundingClientRect().bottom, height: innerHeight})(document.querySelector('.field-error'))""")
    assert error["text"].startswith("Record 3: you disagreed with the model but chose the label it predicted")
    assert error["after"] == "label-choice" and error["id"] == "row-2-label-error" and error["role"] == "alert"
    assert 0 <= error["top"] and error["bottom"] <= error["height"]  # where the reviewer is looking
    focused = browser.js("({name: document.activeElement.name, invalid: document.activeElement.getAttribute('aria-invalid'), "
                         "described: document.activeElement.getAttribute('aria-describedby')})")
    assert focused == {"name": "row-2-label", "invalid": "true", "described": "row-2-label-error"}
    assert browser.js("document.getElementById('status').textContent") == f"Your answers were not saved. {error['text']}"
    browser.js(f"document.querySelector('input[name=\"row-2-label\"][value=\"{1 - int(predicted[2])}\"]').click()")
    assert browser.js("document.querySelectorAll('.field-error').length") == 0
    browser.js("document.getElementById('submit').click()")
    assert browser.wait_for("document.getElementById('task').hidden && document.getElementById('status').textContent") == "Thank you: your answers are saved."
    assert browser.console == ["network: Failed to load resource: the server responded with a status of 400 (Bad Request)"]  # the refusal itself


def test_numbers_and_feature_names_never_break_mid_token_on_a_phone(server, browser) -> None:
    """At 390 px the attribution and feature tables wrap a name only after an underscore and never
    split a number (a split number reads as two values)."""
    browser.resize(390, 844)
    signed_in(browser, server.url)
    browser.js("document.getElementById('next').click()")
    browser.wait_for("!document.getElementById('task').hidden")
    browser.js("document.querySelectorAll('details').forEach(d => d.open = true)")
    breaks = browser.js("""[...document.querySelectorAll('#task-body td.value, #task-body td.signed, #task-body td.feature, #task-body td.name')].flatMap(cell => {
        // Each character's line (its box's top), through every text node of the cell.
        const chars = [];
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (let i = 0; i < node.data.length; i++) {
                const range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
                const rects = range.getClientRects();
                if (rects.length) chars.push([node.data[i], Math.round(rects[0].top)]);
            }
        }
        const text = chars.map(c => c[0]).join('');
        return chars.slice(1).flatMap(([c, top], i) => top > chars[i][1] && !(cell.matches('.feature, .name') && /[_\\s]/.test(chars[i][0]))
            ? [`${cell.className}: ${text.slice(0, i + 1)}|${text.slice(i + 1)}`] : []);
    })""")
    cells = browser.js("document.querySelectorAll('#task-body td.value, #task-body td.feature').length")
    assert cells > 60 and breaks == []
    assert browser.js("document.documentElement.scrollWidth") <= 390
    wrapped = browser.js("[...document.querySelectorAll('#task-body td.feature, #task-body td.name')].filter(c => c.getClientRects()[0].height > 30).length")
    assert wrapped > 0  # long names do wrap (after an underscore) rather than widen the table
