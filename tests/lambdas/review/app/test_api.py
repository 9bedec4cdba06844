"""The API handler (HTTP API payload 2.0 events, moto): who may do what, and answers checked on the server."""

from __future__ import annotations

import base64
import json

import pytest

from lambdas.review.app.answers import REASON_MAX_CHARS
from lambdas.review.app.render import TEMPLATES
from tests.lambdas.review.app.conftest import ALICE, agree_all, call, row, task_input

ROUTES = [
    ("GET /api/tasks", None), ("POST /api/tasks/next", None), ("GET /api/tasks/{taskId}", "t-1"),
    ("POST /api/tasks/{taskId}/renew", "t-1"), ("POST /api/tasks/{taskId}/release", "t-1"), ("POST /api/tasks/{taskId}/answers", "t-1"),
]


@pytest.mark.parametrize(("route", "task_id"), ROUTES)
def test_no_claims_is_401_and_outside_the_group_is_403_on_every_route(world, route, task_id) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    assert call(route, sub=None, task_id=task_id, body=agree_all())[0] == 401
    assert call(route, groups=None, task_id=task_id, body=agree_all())[0] == 403
    assert call(route, groups="[admins]", task_id=task_id, body=agree_all())[0] == 403
    assert call(route, groups=["admins", "reviewers-not"], task_id=task_id, body=agree_all())[0] == 403
    assert world.tasks.get("t-1").slots == {}  # nothing happened


@pytest.mark.parametrize("groups", ["[reviewers]", "[admins reviewers]", ["reviewers"], "reviewers", "[ reviewers ]", '["admins", "reviewers"]',
                                    "[ops,admins reviewers]"])
def test_groups_as_the_authorizer_passes_them(world, groups) -> None:
    assert call("GET /api/tasks", groups=groups) == (200, {"waiting": 0})


@pytest.mark.parametrize("groups", [
    "[ops,reviewers]", "[reviewers,ops]", "[ops;reviewers]", "[ops|reviewers]", '["ops,reviewers"]', '["ops reviewers"]',  # one group each
    "[x] [reviewers]", "[[reviewers]]", '["reviewers"', "[reviewers-x]", "[Reviewers]", "[]", "", '[]', ["ops,reviewers"], [["reviewers"]],
    {"reviewers": True}, 1,
])
def test_a_group_whose_name_only_contains_reviewers_gives_no_access(world, groups) -> None:
    """Cognito group names may hold punctuation: a name is compared whole, never split on it."""
    world.tasks.put("t-1", task_input(), 1, 3600)
    status, body = call("POST /api/tasks/next", groups=groups)
    assert (status, body) == (403, {"message": "you are not in the reviewers group"})
    assert world.tasks.get("t-1").slots == {}


def test_list_claim_show_renew_answer(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    assert call("GET /api/tasks") == (200, {"waiting": 1})
    status, body = call("POST /api/tasks/next")
    task = body["task"]
    assert status == 200 and task["taskId"] == "t-1" and task["rows"] == ["row-0", "row-1", "row-2"] and task["leaseSeconds"] == 300
    assert 'name="row-2-verdict"' in task["html"]
    assert call("GET /api/tasks/{taskId}", task_id="t-1")[1]["task"]["taskId"] == "t-1"
    assert call("GET /api/tasks") == (200, {"waiting": 0})  # held: it no longer waits
    world.clock.advance(100)  # a third of the lease
    assert call("POST /api/tasks/{taskId}/renew", task_id="t-1")[0] == 200
    assert call("POST /api/tasks/next", sub="bob") == (200, {"task": None, "waiting": 0})
    status, body = call("POST /api/tasks/{taskId}/answers", task_id="t-1", body={"answers": agree_all()})
    assert (status, body) == (200, {"taskId": "t-1", "submitted": True, "completed": True})
    assert call("GET /api/tasks") == (200, {"waiting": 0})


def test_the_reviewer_is_the_tokens_subject_never_the_bodys(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    call("POST /api/tasks/next")
    body = {"answers": agree_all(), "workerId": "mallory", "sub": "mallory"}
    assert call("POST /api/tasks/{taskId}/answers", task_id="t-1", body=body)[0] == 200
    assert list(world.tasks.get("t-1").answers) == ["alice"]


def test_a_task_another_reviewer_holds_or_whose_lease_expired_is_409(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    call("POST /api/tasks/next", sub="bob")
    for route in ("GET /api/tasks/{taskId}", "POST /api/tasks/{taskId}/renew", "POST /api/tasks/{taskId}/release", "POST /api/tasks/{taskId}/answers"):
        assert call(route, task_id="t-1", body={"answers": agree_all()})[0] == 409, route
    world.clock.advance(301)
    status, body = call("POST /api/tasks/{taskId}/answers", sub="bob", task_id="t-1", body={"answers": agree_all()})
    assert status == 409 and "expired" in body["message"]
    assert world.tasks.get("t-1").answers == {}


def test_unknown_tasks_are_404(world) -> None:
    assert call("GET /api/tasks/{taskId}", task_id="no-such-task")[0] == 404
    assert call("GET /api/tasks/{taskId}", task_id="../../etc")[0] == 404


def answered_with(world, changes: dict, remove: tuple = ()) -> tuple[int, dict]:
    world.tasks.put("t-1", task_input(), 1, 3600)
    call("POST /api/tasks/next")
    answers = {k: v for k, v in agree_all().items() if k not in remove}
    answers.update(changes)
    return call("POST /api/tasks/{taskId}/answers", task_id="t-1", body={"answers": answers})


@pytest.mark.parametrize(("changes", "remove", "field"), [
    ({}, ("row-1-verdict",), "row-1-verdict"),  # verdict required
    ({"row-0-verdict": "maybe"}, (), "row-0-verdict"),
    ({"row-2-label": "2"}, (), "row-2-label"),  # outside the label set
    ({"row-2-label": "benign"}, (), "row-2-label"),
    ({"row-0-label": "1"}, (), "row-0-label"),  # agreed with 0 but chose 1 (review_results' rule)
    ({"row-1-verdict": "disagree"}, (), "row-1-label"),  # disagreed but chose the predicted label
    ({"row-0-reason": "x" * (REASON_MAX_CHARS + 1)}, (), "row-0-reason"),
    ({"row-3-verdict": "agree"}, (), "row-3-verdict"),  # a row the task does not have (tampered name)
    ({"recordId": "rec-9"}, (), "recordId"),
    ({"row-0-verdict": True}, (), "row-0-verdict"),
])
def test_bad_answers_are_400_naming_the_field_and_change_nothing(world, changes, remove, field) -> None:
    status, body = answered_with(world, changes, remove)
    assert (status, body["field"]) == (400, field), body
    task = world.tasks.get("t-1")
    assert task.answers == {} and task.slot_of(ALICE) == 0  # still held, nothing stored


def test_body_that_is_not_json_or_has_no_answers_is_400(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    call("POST /api/tasks/next")
    assert call("POST /api/tasks/{taskId}/answers", task_id="t-1", body="{not json")[1]["field"] == "body"
    assert call("POST /api/tasks/{taskId}/answers", task_id="t-1", body={"answer": {}})[1]["field"] == "answers"


@pytest.mark.parametrize(("body", "encoded", "message"), [
    (base64.b64encode(b"\xff\xfe{}").decode(), True, "body: is not UTF-8 text"),  # application/octet-stream, say
    ("%%%", True, "body: is not valid base64"),
    ("[" * 100_000 + "]" * 100_000, False, "body: is JSON nested too deeply"),
    (base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode(), True, "body: is JSON nested too deeply"),
    (base64.b64encode(json.dumps({"answers": agree_all()}).encode()[:-3]).decode(), True, "body: is not JSON"),
])
def test_a_body_the_handler_cannot_decode_is_400_naming_the_problem(world, body, encoded, message) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    call("POST /api/tasks/next")
    assert call("POST /api/tasks/{taskId}/answers", task_id="t-1", body=body, encoded=encoded) == (400, {"message": message, "field": "body"})
    assert world.tasks.get("t-1").answers == {}
    encoded_answers = base64.b64encode(json.dumps({"answers": agree_all()}).encode()).decode()
    assert call("POST /api/tasks/{taskId}/answers", task_id="t-1", body=encoded_answers, encoded=True)[0] == 200  # a good one, base64-encoded


def test_answers_are_stored_as_a2i_stores_radio_groups(world) -> None:
    status, _ = answered_with(world, {"row-1-verdict": "disagree", "row-1-label": "1", "row-1-reason": "<b>irregular</b>"})
    assert status == 200
    content = json.loads(world.tasks.get("t-1").answers["alice"]["answerContent"])
    assert content["row-1-verdict"] == {"agree": False, "disagree": True}
    assert content["row-1-label"] == {"0": False, "1": True}
    assert content["row-1-reason"] == "<b>irregular</b>"


def test_a_disagreement_without_a_label_is_accepted_for_two_labels_as_review_results_accepts_it(world) -> None:
    status, _ = answered_with(world, {"row-0-verdict": "disagree"}, remove=("row-0-label",))
    assert status == 200


def test_the_reason_limit_is_the_templates(world) -> None:
    answers = (TEMPLATES / "partials" / "answers.liquid.html").read_text()
    assert f'maxlength="{REASON_MAX_CHARS}"' in answers


def test_hostile_values_are_escaped_in_the_rendered_task(world) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    content = task_input(1)
    content["rows"] = [{**row(0, features=[hostile, 2]), "recordId": "<script>alert(2)</script>"}]
    world.tasks.put("t-1", content, 1, 3600)
    html = call("POST /api/tasks/next")[1]["task"]["html"]
    assert "<img" not in html and "<script" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_ten_thousand_renewals_through_the_api_leave_the_task_item_under_4_kb(world) -> None:
    """A reviewer's script renewing once a second for 10,000 s: a renewal is taken at most every
    third of the lease (429 sooner, saying so) and none is audited, so the item stays the size it
    had after the claim (under 4 KB here), far from DynamoDB's 400 KB, and the task can still be answered."""
    from tests.lambdas.review.app.test_tasks import item_bytes

    world.tasks.put("t-1", task_input(), 1, 20_000)
    call("POST /api/tasks/next")
    claimed = item_bytes("t-1")
    statuses = []
    for _ in range(10_000):
        world.clock.advance(1)
        statuses.append(call("POST /api/tasks/{taskId}/renew", task_id="t-1", threads=True)[0])
    assert statuses.count(200) == 100 and statuses.count(429) == 9_900  # once per 100 s (a third of the 300-s lease)
    assert item_bytes("t-1") <= claimed + 8 and claimed < 4_000
    status, body = call("POST /api/tasks/{taskId}/renew", task_id="t-1")
    assert status == 429 and body["message"] == "your lease on task t-1 was renewed 0 s ago: it can be renewed once every 100 s"
    assert call("POST /api/tasks/{taskId}/answers", task_id="t-1", body={"answers": agree_all()})[1] == {"taskId": "t-1", "submitted": True, "completed": True}


def test_a_second_claim_while_holding_a_task_returns_the_held_task(world) -> None:
    """One reviewer cannot hoard the open tasks: asking again gives back the task they hold."""
    for i in range(5):
        world.tasks.put(f"t-{i}", task_input(), 1, 3600)
    held = call("POST /api/tasks/next")[1]["task"]
    for _ in range(4):
        status, body = call("POST /api/tasks/next")
        assert status == 200 and body["task"]["taskId"] == held["taskId"] and body["task"]["html"] == held["html"]
    assert call("GET /api/tasks") == (200, {"waiting": 4})  # the other four are still free
    other = call("POST /api/tasks/next", sub="bob")[1]["task"]["taskId"]
    assert other != held["taskId"]
    assert [i for i in range(5) if "alice" in world.tasks.get(f"t-{i}").seen] == [int(held["taskId"][2:])]


def test_the_waiting_count_counts_only_tasks_a_reviewer_could_take_now(world) -> None:
    world.tasks.put("t-1", task_input(), 1, 3600)
    world.tasks.put("t-2", task_input(), 2, 3600)  # two reviewers each
    assert call("GET /api/tasks") == (200, {"waiting": 2})
    taken = call("POST /api/tasks/next")[1]["task"]["taskId"]
    assert call("GET /api/tasks") == (200, {"waiting": 2 if taken == "t-2" else 1})  # t-2 has a second slot
    call("POST /api/tasks/next", sub="bob")
    call("POST /api/tasks/next", sub="carol")
    assert call("GET /api/tasks") == (200, {"waiting": 0})  # three slots, three holders
    world.clock.advance(301)  # every lease ran out
    assert call("GET /api/tasks") == (200, {"waiting": 2})


@pytest.mark.parametrize(("changes", "remove", "field", "message"), [
    ({"row-0-label": "1"}, (), "row-0-label", "Record 1: you agreed with the model's malignant (0) but chose benign (1): choose Disagree if benign is right"),
    ({"row-1-verdict": "disagree"}, (), "row-1-label",
     "Record 2: you disagreed with the model but chose the label it predicted, malignant (0): choose the correct label, or Agree"),
    ({}, ("row-1-verdict",), "row-1-verdict", "Record 2: choose Agree or Disagree"),
    ({"row-2-label": "2"}, (), "row-2-label", "Record 3: choose one of the labels malignant (0), benign (1)"),
    ({"row-0-reason": "x" * 501}, (), "row-0-reason", "Record 1: the reason is 501 characters long; keep it to 500"),
])
def test_a_refused_answer_says_which_record_and_what_to_do_in_plain_words(world, changes, remove, field, message) -> None:
    assert answered_with(world, changes, remove) == (400, {"message": message, "field": field})


def test_agreeing_needs_no_label_and_keeps_the_models(world) -> None:
    """Agree means the prediction: the page sends no label then, and review_results reads the model's."""
    from lambdas.review.results.results import decide

    status, _ = answered_with(world, {}, remove=("row-0-label", "row-1-label", "row-2-label"))
    assert status == 200
    task = world.tasks.get("t-1")
    content = json.loads(task.answers["alice"]["answerContent"])
    assert content["row-0-label"] == {"0": False, "1": False}
    verdicts = decide({"inputContent": task.input_content, "humanAnswers": [{"answerContent": content}]}, 2)
    assert [(v.label, v.problems) for v in verdicts] == [(0, []), (0, []), (0, [])]
