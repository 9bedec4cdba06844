"""The local server (make review-local): one origin, the authorizer's checks, and PKCE sign-in."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from lambdas.review.app import local
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
    }
    for why, token in bad_tokens.items():
        status, headers, _ = request(url, method, token, b"{}" if method == "POST" else None)
        assert status == 401, why
    assert request(url, method, issuer.token("alice", use="id"), b"{}" if method == "POST" else None)[0] != 401  # an ID token's aud counts too
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
