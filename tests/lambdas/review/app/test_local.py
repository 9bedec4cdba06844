"""The local server (make review-local): one origin, the authorizer's checks, and PKCE sign-in."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import socket
import urllib.error
import urllib.parse
import urllib.request

import pytest

from local import review_local as local
from tests.lambdas.review.app.test_api import ROUTES


def request(url: str, method: str = "GET", token: str | None = None, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=body, method=method, headers=headers), timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def server(mocked_aws, monkeypatch):
    for name in local.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)  # start() sets them; monkeypatch restores them after
        monkeypatch.setenv(name, "")
    running = local.start(tasks=2)
    yield running
    running.stop()


def path_of(route: str) -> tuple[str, str]:
    method, path = route.split(" ", 1)
    return method, path.replace("{taskId}", "some-task")


@pytest.mark.parametrize(("route", "task_id"), ROUTES)
def test_every_api_route_answers_401_without_a_valid_token(server, route, task_id) -> None:
    method, path = path_of(route)
    url = server.url.rstrip("/") + path
    issuer = server.issuer
    other = local.LocalIssuer(issuer.issuer)  # the same issuer name, another key
    head, body, signature = issuer.token("alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "mallory"}).encode()).rstrip(b"=").decode()
    bad_tokens = {
        "none": None,
        "not a JWT": "abc",
        "another key": other.token("alice"),
        "unknown kid": issuer.token("alice", kid="other"),
        "wrong issuer": issuer.token("alice", issuer="https://cognito-idp.eu-west-1.amazonaws.com/other"),
        "wrong client": issuer.token("alice", audience="another-client"),
        "expired": issuer.token("alice", expires_in=-5),
        "claims changed after signing": f"{head}.{forged}.{signature}",
        "an ID token (no scope)": issuer.token("alice", use="id"),
    }
    for why, token in bad_tokens.items():
        status, headers, _ = request(url, method, token, b"{}" if method == "POST" else None)
        assert status == 401, why
    assert request(url, method, issuer.token("alice", groups=()), b"{}" if method == "POST" else None)[0] == 403


def test_the_page_and_its_files_are_served_with_the_security_headers(server) -> None:
    for path in ("", "app.js", "app.css", "partials/record.css", "partials/attributions.css", "config.json", "favicon.svg"):
        status, headers, body = request(server.url + path)
        assert status == 200, path
        assert headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'")
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    for path in ("../local.py", "partials/answers.liquid.html", "site/app.js", "nothing"):
        assert request(server.url + path)[0] == 404, path
    config = json.loads(request(server.url + "config.json")[2])
    assert config == {"domain": f"{server.url}local-login", "clientId": local.CLIENT_ID, "redirectUri": server.url, "scopes": "openid"}


def pkce_code(server, challenge: str) -> str:
    query = urllib.parse.urlencode({"response_type": "code", "client_id": local.CLIENT_ID, "redirect_uri": server.url, "state": "s1",
                                    "code_challenge": challenge, "code_challenge_method": "S256", "scope": "openid"})
    status, headers, _ = request(f"{server.url}local-login/oauth2/authorize?{query}")
    assert status == 302
    location = urllib.parse.urlsplit(headers["Location"])
    found = urllib.parse.parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == server.url and found["state"] == ["s1"]
    return found["code"][0]


def exchange(server, code: str, verifier: str) -> tuple[int, dict]:
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "client_id": local.CLIENT_ID, "code": code, "redirect_uri": server.url,
                                   "code_verifier": verifier}).encode()
    status, _, body = request(f"{server.url}local-login/oauth2/token", "POST", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    return status, json.loads(body)


def test_sign_in_is_the_authorization_code_flow_with_pkce(server) -> None:
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert exchange(server, pkce_code(server, challenge), "w" * 50)[0] == 400  # wrong verifier
    code = pkce_code(server, challenge)
    status, tokens = exchange(server, code, verifier)
    assert status == 200 and tokens["token_type"] == "Bearer"
    assert exchange(server, code, verifier)[0] == 400  # a code works once
    status, _, body = request(server.url + "api/tasks", token=tokens["access_token"])
    assert (status, json.loads(body)) == (200, {"waiting": 2})
    plain = urllib.parse.urlencode({"response_type": "code", "client_id": local.CLIENT_ID, "redirect_uri": server.url, "state": "s"})
    assert request(f"{server.url}local-login/oauth2/authorize?{plain}")[0] == 400  # no PKCE, no code


def port_of(server) -> int:
    return urllib.parse.urlsplit(server.url).port


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}@evil.example/",  # user info: the host is evil.example
    "http://127.0.0.1:{port}:x@evil.example/",
    "http://user:pw@127.0.0.1:{port}/",
    "http://127.0.0.1:{port}.evil.example/",
    "http://127.0.0.1:{port}\\@evil.example/",
    "https://127.0.0.1:{port}/",
    "http://127.0.0.1:{port}0/",
    "http://127.0.0.1/",
    "//evil.example/",
    "http://evil.example/?http://127.0.0.1:{port}/",
    "javascript:alert(1)//127.0.0.1:{port}/",
])
def test_sign_out_returns_only_to_this_origin(server, target) -> None:
    logout_uri = target.format(port=port_of(server))
    status, headers, _ = request(f"{server.url}local-login/logout?" + urllib.parse.urlencode({"logout_uri": logout_uri}))
    assert (status, headers["Location"]) == (302, "/")


def test_sign_out_returns_to_the_page(server) -> None:
    for target in (server.url, f"{server.url}?signed-out=1"):
        status, headers, _ = request(f"{server.url}local-login/logout?" + urllib.parse.urlencode({"logout_uri": target}))
        assert (status, headers["Location"]) == (302, target)


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "127.0.0.1", "127.0.0.1:1", "localhost", "127.0.0.1:{port}.attacker.example"])
def test_requests_for_another_host_are_refused(server, host) -> None:
    """A page on another name that resolves to 127.0.0.1 (DNS rebinding) sends its own Host."""
    token = server.issuer.token("alice")
    for path in ("", "config.json", "api/tasks"):
        status, headers, body = request(server.url + path, token=token, headers={"Host": host.format(port=port_of(server))})
        assert status == 400 and b"unknown Host" in body, path
        assert headers["Connection"] == "close"


def test_requests_for_this_server_by_either_name_are_answered(server) -> None:
    for host in (f"127.0.0.1:{port_of(server)}", f"localhost:{port_of(server)}", f"LOCALHOST:{port_of(server)}"):
        assert request(server.url, headers={"Host": host})[0] == 200


def raw_exchange(server, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection:
        connection.sendall(head)
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk
        return answer


@pytest.mark.parametrize(("length", "status"), [("abc", 400), ("-5", 400), ("1e3", 400), ("٣", 400), (str(10 * 1024 * 1024 + 1), 413)])  # over the HTTP API's 10 MB
def test_a_content_length_that_is_not_a_byte_count_gets_an_answer(server, length, status) -> None:
    host = f"127.0.0.1:{port_of(server)}"
    answer = raw_exchange(server, f"POST /api/tasks/next HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\r\n".encode())
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
    assert b"Content-Length" in answer.split(b"\r\n\r\n", 1)[1] or status == 413


def test_a_body_that_is_not_text_reaches_the_api_base64_encoded_as_from_the_http_api(server) -> None:
    token = server.issuer.token("alice")
    task_id = json.loads(request(f"{server.url}api/tasks/next", "POST", token, b"{}")[2])["task"]["taskId"]
    status, _, body = request(f"{server.url}api/tasks/{task_id}/answers", "POST", token, b"\xff\xfe{}", {"Content-Type": "application/octet-stream"})
    assert (status, json.loads(body)) == (400, {"message": "body: is not UTF-8 text", "field": "body"})


def bundled_probabilities() -> list[tuple[float, int]]:
    """Every bundled test record's probability and prediction, from the bundled model."""
    import csv

    from lambdas.shared.explain.tree import TreeExplainer
    from stacks.shared import default_model

    explainer = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "test")
    with default_model.TEST_CSV.open() as stream:
        records = [record[1:] for record in csv.reader(stream)]
    return [(round(r.probability, 6), int(r.probability >= 0.5)) for r in explainer.explain(records)]


def all_tasks() -> list:
    from lambdas.review.app.tasks import Task
    from lambdas.shared import aws

    items = aws.client("dynamodb").scan(TableName=local.ENVIRONMENT["TASKS_TABLE"])["Items"]
    return [Task.from_item(item) for item in items if not item["taskId"]["S"].startswith("#")]


@pytest.fixture
def local_env(mocked_aws, monkeypatch):
    for name in local.ENVIRONMENT:
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("REVIEW_LOCAL_QUIET", "1")


def test_the_tasks_are_the_records_the_environments_selection_rule_picks(local_env) -> None:
    """dev's rule (band 0.1-0.9, three rows a task), shown with the template's neutral instructions."""
    review = local.review_settings("dev")
    assert (review.rule.rule, review.rule.lower, review.rule.upper, review.rows_per_loop) == ("band", 0.1, 0.9, 3)
    running = local.start(review=review)
    try:
        rows = [row for task in all_tasks() for row in task.input_content["rows"]]
        expected = [p for p, _ in bundled_probabilities() if 0.1 < p < 0.9]
        assert 0 < len(expected) < 114 and sorted(r["probability"] for r in rows) == sorted(expected)
        assert running.selected == len(expected) and running.tasks == len(all_tasks()) == -(-len(expected) // 3)
        from lambdas.review.app.render import task_html

        assert "Check the model's prediction for each record below." in task_html(review.template, all_tasks()[0].input_content)
    finally:
        running.stop()


def test_an_outcome_rule_makes_tasks_of_that_predicted_label_only(local_env) -> None:
    from lambdas.capture.selection import SelectionRule

    review = dataclasses.replace(local.review_settings("dev"), rule=SelectionRule(rule="outcome", outcome=1), rows_per_loop=5)
    running = local.start(review=review)
    try:
        rows = [row for task in all_tasks() for row in task.input_content["rows"]]
        assert len(rows) == sum(prediction == 1 for _, prediction in bundled_probabilities())
        assert {row["prediction"] for row in rows} == {1} and max(len(t.input_content["rows"]) for t in all_tasks()) == 5
    finally:
        running.stop()


def test_an_environment_without_review_or_with_its_own_model_is_refused(local_env) -> None:
    from stacks.shared.config import ConfigError

    with pytest.raises(ConfigError, match="review.enabled false"):
        local.review_settings("churn")
    with pytest.raises(ConfigError, match="is not an environment"):
        local.review_settings("nosuch")


def test_what_the_app_and_review_results_write_is_copied_to_the_out_folder(server, tmp_path) -> None:
    assert local.arguments([]).out == local.DEFAULT_OUT == local.Path("review-local")
    assert local.arguments(["--out", str(tmp_path)]).out == tmp_path
    outputs = local.Outputs(tmp_path, {**local.ENVIRONMENT}, ("malignant", "benign"))
    token = server.issuer.token("alice")
    task = json.loads(request(f"{server.url}api/tasks/next", "POST", token, b"{}")[2])["task"]
    answers = {f"{key}-verdict": "agree" for key in task["rows"]}
    assert request(f"{server.url}api/tasks/{task['taskId']}/answers", "POST", token, json.dumps({"answers": answers}).encode())[0] == 200
    said: list[str] = []
    written = local.report(outputs, server.events.take(), said.append)
    files = sorted(str(path.relative_to(tmp_path)) for path in written)
    loop = task["taskId"]
    [output] = [f for f in files if f.endswith(f"{loop}/output.json")]
    assert output.startswith("review-bucket/a2i-output/reviewers-app/")
    assert f"review-bucket/loop-reports/{loop}.json" in files and f"local-labels/training-rows/{loop}.csv" in files
    assert any(f.startswith("local-labels/ground-truth/") and f.endswith(f"{loop}.jsonl") for f in files)
    assert json.loads((tmp_path / output).read_text())["humanLoopName"] == loop
    assert json.loads((tmp_path / f"review-bucket/loop-reports/{loop}.json").read_text())["status"] == "Completed"
    assert said[0].startswith(f"Review Task Completed (Completed): {loop} -> s3://review-bucket/a2i-output/")
    assert any(line.endswith(output) for line in said)
    assert local.report(outputs, server.events.take(), said.append) == []  # the Labels Available event; nothing new to copy
