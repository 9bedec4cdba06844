"""The reviewers' app on this machine: ``make review-local`` (``python -m local.review_local``).

One origin on 127.0.0.1 serves what CloudFront serves when deployed: the page (``site/``, the
partials' style sheets under ``/partials/``, a ``config.json``) and the API routes under ``/api/``,
handled by the real API handler (``api.handler``) over moto (DynamoDB, S3, EventBridge). In front
of the handler sits what the HTTP API's JWT authorizer does: a bearer token signed by a key the
server trusts (RS256, its ``kid``), the issuer, the audience (``client_id`` of an access token or
``aud`` of an ID token) and the expiry are checked, or the answer is 401; the verified claims reach
the handler as ``requestContext.authorizer.jwt.claims``, array claims flattened to ``"[a b]"`` as
the HTTP API does. Sign-in is a stand-in for Cognito's managed login at ``/local-login``: the
authorization-code flow with PKCE (S256) that ``app.js`` runs against Cognito, signing in at once
as the local reviewer. The tasks are the bundled test records that the environment's selection
rule (``review.rule``, ``lower``/``upper`` or ``outcome`` in cdk.json, ``--env``, default dev) sends
to review, with the code the deployed capture filter uses (``lambdas.capture.selection``),
``review.rows_per_loop`` per task, made into tasks by the starter's own code (``start_review`` with
the open back end) with their attributions from the bundled model. Every completion event is
printed and recorded by ``review_results``' own code, and what the app and review_results write
to S3 (output.json, the loop report, ground truth, training rows) is copied to a folder on disk
(``--out``, default ``review-local/``): ``<out>/<bucket>/<key>``.

The server answers only requests addressed to it (``Host`` 127.0.0.1 or localhost with its port;
400 otherwise, so a page on another name that resolves here cannot use it), and sign-out returns
only to this origin.

Development only: never deployed (it is not a Lambda handler), moto stands in for AWS.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lambdas.review.app.render import STYLESHEETS, TEMPLATES

SITE = Path(__file__).resolve().parents[1] / "lambdas" / "review" / "app" / "site"  # the deployed page
REGION = "eu-west-1"
CLIENT_ID = "local-reviewers-app"
REVIEWERS_GROUP = "reviewers"
LOCAL_REVIEWER = "local-reviewer"
TOKEN_SECONDS = 3600
# The headers CloudFront adds to every response when deployed (stacks/review/app.py's response
# headers policy; its CSP is added in start()), but HSTS, which means nothing on http://127.0.0.1.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
LABELS_BUCKET = "local-labels"  # review_results' labels bucket (ground truth, training rows)
MAX_BODY_BYTES = 10 * 1024 * 1024  # the HTTP API's payload limit
DEFAULT_OUT = Path("review-local")
ENVIRONMENT = {
    "TASKS_TABLE": "review-tasks",
    "REVIEW_BUCKET": "review-bucket",
    "OUTPUT_PREFIX": "a2i-output",
    "EVENT_SOURCE": "mlloop.review",
    "EVENT_BUS_NAME": "default",
    "REVIEWERS_GROUP": REVIEWERS_GROUP,
    "LEASE_SECONDS": "600",
    "REVIEW_TEMPLATE": "low_confidence",
    "POWERTOOLS_SERVICE_NAME": "review-local",
    "POWERTOOLS_METRICS_NAMESPACE": "MlLoopLocal",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


# -- tokens: what the HTTP API's JWT authorizer checks ---------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Unauthorized(Exception):
    pass


class LocalIssuer:
    """Signs tokens as Cognito would (RS256) with a key made at start, and verifies them."""

    def __init__(self, issuer: str, audiences: tuple[str, ...] = (CLIENT_ID,)) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.issuer = issuer
        self.audiences = audiences
        self.kid = secrets.token_hex(8)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, sub: str, groups: tuple[str, ...] = (REVIEWERS_GROUP,), *, use: str = "access", issuer: str | None = None,
              audience: str = CLIENT_ID, expires_in: int = TOKEN_SECONDS, kid: str | None = None) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        claims: dict[str, Any] = {"sub": sub, "iss": issuer or self.issuer, "token_use": use, "iat": now, "auth_time": now, "exp": now + expires_in,
                                  "username": sub, "jti": secrets.token_hex(8)}
        claims.update({"client_id": audience, "scope": "openid"} if use == "access" else {"aud": audience, "email": f"{sub}@example.com"})
        if groups:
            claims["cognito:groups"] = list(groups)
        header = {"alg": "RS256", "kid": kid or self.kid, "typ": "JWT"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def verify(self, token: str) -> dict[str, Any]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, body, signature = token.split(".")
            header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
            self._key.public_key().verify(_unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature):
            raise Unauthorized("not a token signed by the trusted key") from None
        if header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise Unauthorized("not signed by the trusted key")
        if claims.get("iss") != self.issuer:
            raise Unauthorized("wrong issuer")
        if claims.get("aud", claims.get("client_id")) not in self.audiences:
            raise Unauthorized("wrong audience")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            raise Unauthorized("expired")
        if claims.get("nbf", 0) > time.time():
            raise Unauthorized("not valid yet")
        from stacks.review.app import ROUTE_SCOPES  # the deployed routes' authorization scopes

        if not set(str(claims.get("scope", "")).split()) & set(ROUTE_SCOPES):
            raise Unauthorized("not an access token with the routes' scope")
        return claims


def authorizer_claims(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as the HTTP API passes them on: strings, arrays as ``"[a b]"``."""
    return {name: f"[{' '.join(map(str, value))}]" if isinstance(value, list) else str(value) for name, value in claims.items()}


# -- moto --------------------------------------------------------------------------------------

@contextmanager
def item_atomicity() -> Iterator[None]:
    """DynamoDB applies each request (a write with its condition, a read) atomically; moto does not
    lock, so threads could interleave inside one conditional update, and moto's response reads the
    live item after its backend call returns (another thread's write changed it mid-read: "dictionary
    changed size during iteration"). One lock around each whole DynamoDB request gives back the
    guarantee the app relies on (and that DynamoDB documents), no more."""
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]


class EventLog:
    """The events the app puts on EventBridge, as it puts them (moto delivers events to rule
    targets through a JSONPath parser that takes most of a second per event, so no rule is made)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("provide-client-params.events.PutEvents", self._record)
        return client

    def _record(self, params: dict[str, Any], **kwargs: Any) -> None:
        with self._lock:
            self.entries.extend(params.get("Entries") or [])

    def take(self) -> list[dict[str, Any]]:
        """The entries put since the last take, each as EventBridge delivers it: detail parsed."""
        with self._lock:
            entries, self.entries = self.entries, []
        return [{"source": e["Source"], "detail-type": e["DetailType"], "detail": json.loads(e["Detail"]), "bus": e.get("EventBusName")} for e in entries]


def create_resources(environment: dict[str, str]) -> None:
    """The table (key schema and index as the stack's), the budget table, and the review bucket."""
    import boto3

    from lambdas.review.app.tasks import STATUS_INDEX

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=environment["TASKS_TABLE"],
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("taskId", "status", "createdAt")],
        KeySchema=[{"AttributeName": "taskId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": STATUS_INDEX,
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}, {"AttributeName": "createdAt", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )
    dynamodb.update_time_to_live(TableName=environment["TASKS_TABLE"], TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"})
    dynamodb.create_table(TableName="review-budget", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "day", "AttributeType": "S"}], KeySchema=[{"AttributeName": "day", "KeyType": "HASH"}])
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=environment["REVIEW_BUCKET"], CreateBucketConfiguration={"LocationConstraint": REGION})


@dataclass(frozen=True)
class LocalReview:
    """What an environment's configuration (cdk.json) says about review, as the local tasks need it."""

    environment: str
    rule: Any  # lambdas.capture.selection.SelectionRule: the capture filter's rule, as deployed
    rows_per_loop: int
    reviewers_per_task: int
    template: str
    top_k: int | None  # attributions' top_k; None: attributions off
    label_names: tuple[str, ...]

    def describe(self) -> str:
        rule = self.rule
        if rule.rule == "band":
            return f"probability of {self.label_names[-1]} between {rule.lower} and {rule.upper} (review.rule band)"
        return f"predicted {self.label_names[rule.outcome]} (review.rule outcome {rule.outcome})"


def review_settings(environment: str = "dev") -> LocalReview:
    """The review settings of ``environment`` in cdk.json (``ConfigError`` when it has none usable here)."""
    from lambdas.capture.selection import SelectionRule
    from stacks.shared.config import ConfigError, load_environment

    config = load_environment(environment)
    if not config.review.enabled:
        raise ConfigError(f"environment {environment!r} has review.enabled false: choose an environment that reviews")
    if not config.model.is_bundled:
        raise ConfigError(f"environment {environment!r} serves its own model; the local tasks are the bundled model's test records: "
                          "choose an environment with the bundled model (dev)")
    review = config.review
    return LocalReview(
        environment=environment,
        rule=SelectionRule(rule=review.rule, lower=review.lower, upper=review.upper, outcome=review.outcome),
        rows_per_loop=review.rows_per_loop,
        reviewers_per_task=review.task_count,
        template=review.template,
        top_k=review.attributions.top_k if review.attributions.enabled else None,
        label_names=tuple(config.model.label_names),
    )


def bundled_tasks(environment: dict[str, str], review: LocalReview, reviewers_per_task: int | None = None, limit: int | None = None) -> tuple[int, int]:
    """The bundled test records that ``review``'s selection rule picks, as tasks of
    ``review.rows_per_loop`` rows, through the starter's own code: (tasks made, rows selected)."""
    import boto3

    from lambdas.review.app.tasks import Tasks
    from lambdas.review.starter.attributions import explain_rows
    from lambdas.review.starter.starter import DailyBudget, OpenTasks, Outcome, StarterSettings, feature_names, start_review
    from lambdas.shared.explain.tree import TreeExplainer
    from lambdas.shared.review_group import ReviewGroup
    from stacks.shared import default_model

    explainer = TreeExplainer.from_artifact(default_model.MODEL_ARTIFACT.open("rb"), "bundled-model")
    with default_model.TEST_CSV.open() as stream:
        records = [record[1:] for record in csv.reader(stream)]
    scored = explainer.explain(records)
    rows = [
        {"recordId": f"test-{i:03d}", "eventId": f"local-{i:03d}", "inferenceId": f"test-{i:03d}", "rowIndex": 0, "features": features,
         "probability": round(result.probability, 6), "prediction": int(result.probability >= 0.5)}
        for i, (features, result) in enumerate(zip(records, scored))
    ]
    # What the deployed capture filter would send to review (lambdas/capture/selection.py).
    selected = [row for row in rows if review.rule.selects_prediction(row["probability"], row["prediction"])]
    size = review.rows_per_loop
    groups = [ReviewGroup("s3://capture/local/test.jsonl", tuple(selected[i:i + size])) for i in range(0, len(selected), size)][:limit]
    settings = StarterSettings(None, "local", review.label_names, default_model.FEATURE_NAMES, "unused-dlq", "unused-deferred")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sink = OpenTasks(Tasks(dynamodb, environment["TASKS_TABLE"]), reviewers_per_task or review.reviewers_per_task, 86_400)
    budget = DailyBudget(dynamodb, "review-budget", max(1, len(groups)))
    sqs = boto3.client("sqs", region_name=REGION)
    top_k = review.top_k

    def explain(group: ReviewGroup) -> list[dict[str, Any]]:
        return explain_rows(lambda: explainer, group.rows, lambda count: feature_names(settings, count), top_k)

    started = [start_review(None, sqs, budget, group, settings, explain if top_k else None, sink) for group in groups]
    return sum(outcome is Outcome.STARTED for outcome in started), len(selected)


class Outputs:
    """Copies what the app and review_results write to S3 (moto) into a folder the user can open:
    ``<out>/<bucket>/<key>``. Each completion event is first recorded by review_results' own code."""

    def __init__(self, out: Path, environment: dict[str, str], label_names: tuple[str, ...]) -> None:
        from lambdas.review.results.results import ResultsSettings

        self.out = out
        self._buckets = (environment["REVIEW_BUCKET"], LABELS_BUCKET)
        self._results = ResultsSettings(LABELS_BUCKET, environment["REVIEW_BUCKET"], label_names, environment["EVENT_BUS_NAME"], environment["EVENT_SOURCE"])
        self._written: dict[Path, str] = {}

    def record(self, events: list[dict[str, Any]]) -> list[Path]:
        """review_results on each event, then every object new or changed since the last call, on disk."""
        from lambdas.review.results.results import LoopEvent, record_loop
        from lambdas.shared import aws

        for event in events:
            record_loop(aws.client("s3"), aws.client("events"), LoopEvent.from_event(event), self._results)
        written = []
        s3 = aws.client("s3")
        for bucket in self._buckets:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    path = self.out / bucket / item["Key"]
                    if self._written.get(path) == item["ETag"] or not path.resolve().is_relative_to(self.out.resolve()):
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                    self._written[path] = item["ETag"]
                    written.append(path)
        return written


# -- the server ----------------------------------------------------------------------------------

# The API's routes as the HTTP API matches them (their route keys).
_ROUTES = [
    ("GET", re.compile(r"^/api/tasks$"), "GET /api/tasks"),
    ("POST", re.compile(r"^/api/tasks/next$"), "POST /api/tasks/next"),
    ("GET", re.compile(r"^/api/tasks/(?P<taskId>[^/]+)$"), "GET /api/tasks/{taskId}"),
    ("POST", re.compile(r"^/api/tasks/(?P<taskId>[^/]+)/renew$"), "POST /api/tasks/{taskId}/renew"),
    ("POST", re.compile(r"^/api/tasks/(?P<taskId>[^/]+)/release$"), "POST /api/tasks/{taskId}/release"),
    ("POST", re.compile(r"^/api/tasks/(?P<taskId>[^/]+)/answers$"), "POST /api/tasks/{taskId}/answers"),
]


class _Context:
    function_name = "review-local"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:review-local"
    aws_request_id = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class LocalApp:
    """What the request handler needs: the token issuer, the API handler, sign-in codes."""

    issuer: LocalIssuer
    origin: str
    api: Callable[[dict[str, Any], Any], dict[str, Any]]
    csp: str
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    invocation: threading.Lock = field(default_factory=threading.Lock)

    def config(self) -> dict[str, str]:
        return {"domain": f"{self.origin}/local-login", "clientId": CLIENT_ID, "redirectUri": f"{self.origin}/", "scopes": "openid"}

    def hosts(self) -> tuple[str, ...]:
        """The Host headers this server answers: its own address and port, by number or as localhost."""
        port = urllib.parse.urlsplit(self.origin).port
        return (f"127.0.0.1:{port}", f"localhost:{port}")

    def is_own_page(self, target: str) -> bool:
        """Whether sign-out may return to ``target``: this origin exactly (scheme, host and port;
        no user name or password before the host, which would make another host the real one)."""
        try:
            parts, own = urllib.parse.urlsplit(target), urllib.parse.urlsplit(self.origin)
            return (parts.scheme, parts.hostname, parts.port, parts.username, parts.password) == (own.scheme, own.hostname, own.port, None, None) \
                and parts.netloc == own.netloc
        except ValueError:  # a port that is not a number
            return False


_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                  ".json": "application/json", ".png": "image/png", ".svg": "image/svg+xml", ".ico": "image/x-icon"}


class _Handler(BaseHTTPRequestHandler):
    app: LocalApp
    server_version = "review-local"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if os.environ.get("REVIEW_LOCAL_QUIET") != "1":
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, "Content-Security-Policy": self.app.csp, "Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(document).encode(), "application/json", {"Cache-Control": "no-store", **(headers or {})})

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def _refuse(self, status: int, message: str) -> None:
        """An answer to a request the server will not read on: the connection closes after it."""
        self.close_connection = True
        self._send(status, message.encode(), "text/plain; charset=utf-8", {"Connection": "close"})

    def _route(self, method: str) -> None:
        # Only requests addressed to this server: a page on another name that resolves to
        # 127.0.0.1 (DNS rebinding) sends its own Host.
        if self.headers.get("Host", "").lower() not in self.app.hosts():
            return self._refuse(HTTPStatus.BAD_REQUEST, f"unknown Host: this server answers only {' or '.join(self.app.hosts())}")
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isascii() or not declared.isdigit():
            return self._refuse(HTTPStatus.BAD_REQUEST, f"Content-Length {declared[:40]!r} is not a number of bytes")
        length = int(declared)
        if length > MAX_BODY_BYTES:
            return self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body of {length} bytes is over {MAX_BODY_BYTES} (the HTTP API's limit)")
        url = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(length) if length else b""
        if url.path.startswith("/api/"):
            return self._api(method, url.path, body)
        if url.path == "/local-login/oauth2/authorize" and method == "GET":
            return self._authorize(urllib.parse.parse_qs(url.query))
        if url.path == "/local-login/oauth2/token" and method == "POST":
            return self._token(urllib.parse.parse_qs(body.decode(errors="replace")))
        if url.path == "/local-login/logout" and method == "GET":
            target = urllib.parse.parse_qs(url.query).get("logout_uri", ["/"])[0]
            return self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": target if self.app.is_own_page(target) else "/"})
        if method == "GET":
            return self._static(url.path)
        self._json(HTTPStatus.NOT_FOUND, {"message": "Not Found"})

    def _static(self, path: str) -> None:
        if path == "/config.json":
            return self._json(HTTPStatus.OK, self.app.config())
        name = "index.html" if path == "/" else path.lstrip("/")
        if name in STYLESHEETS:
            file = TEMPLATES / name
        elif "/" not in name and (SITE / name).is_file():
            file = SITE / name
        else:
            return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        self._send(HTTPStatus.OK, file.read_bytes(), _CONTENT_TYPES.get(file.suffix, "application/octet-stream"))

    def _authorize(self, query: dict[str, list[str]]) -> None:
        """Cognito's /oauth2/authorize, signing in the local reviewer at once."""
        get = lambda name: (query.get(name) or [""])[0]  # noqa: E731
        if get("client_id") != CLIENT_ID or get("redirect_uri") != self.app.config()["redirectUri"] or get("response_type") != "code":
            return self._send(HTTPStatus.BAD_REQUEST, b"invalid_request", "text/plain")
        if get("code_challenge_method") != "S256" or not get("code_challenge"):
            return self._send(HTTPStatus.BAD_REQUEST, b"PKCE with S256 is required", "text/plain")
        code = secrets.token_urlsafe(24)
        with self.app.lock:
            self.app.codes[code] = {"challenge": get("code_challenge"), "redirect": get("redirect_uri")}
        location = f"{get('redirect_uri')}?{urllib.parse.urlencode({'code': code, 'state': get('state')})}"
        self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": location})

    def _token(self, form: dict[str, list[str]]) -> None:
        """Cognito's /oauth2/token for the authorization-code grant, PKCE verifier checked."""
        get = lambda name: (form.get(name) or [""])[0]  # noqa: E731
        with self.app.lock:
            issued = self.app.codes.pop(get("code"), None)
        verifier = get("code_verifier").encode()
        challenge = _b64(hashlib.sha256(verifier).digest())
        if get("grant_type") != "authorization_code" or issued is None or get("client_id") != CLIENT_ID or get("redirect_uri") != issued["redirect"]:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "invalid_grant"})
        if not secrets.compare_digest(challenge, issued["challenge"]):
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
        self._json(HTTPStatus.OK, {
            "access_token": self.app.issuer.token(LOCAL_REVIEWER),
            "id_token": self.app.issuer.token(LOCAL_REVIEWER, use="id"),
            "token_type": "Bearer",
            "expires_in": TOKEN_SECONDS,
        })

    def _api(self, method: str, path: str, body: bytes) -> None:
        match = next(((key, m) for verb, pattern, key in _ROUTES if verb == method and (m := pattern.match(path))), None)
        if match is None:
            return self._json(HTTPStatus.NOT_FOUND, {"message": "Not Found"})
        authorization = self.headers.get("Authorization", "")
        try:
            if not authorization.startswith("Bearer "):
                raise Unauthorized("no token")
            claims = self.app.issuer.verify(authorization.removeprefix("Bearer ").strip())
        except Unauthorized:
            return self._json(HTTPStatus.UNAUTHORIZED, {"message": "Unauthorized"}, {"WWW-Authenticate": "Bearer"})
        route_key, found = match
        event = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "pathParameters": found.groupdict() or None,
            "requestContext": {"http": {"method": method, "path": path}, "authorizer": {"jwt": {"claims": authorizer_claims(claims), "scopes": None}}},
            "body": None,
            "isBase64Encoded": False,
        }
        if body:  # as the HTTP API passes it: text as it is, anything else base64-encoded
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        with self.app.invocation:  # like one Lambda execution environment: one event at a time
            response = self.app.api(event, _Context())
        self._send(response["statusCode"], response["body"].encode(), response["headers"]["content-type"], {"Cache-Control": "no-store"})


@dataclass
class Running:
    url: str
    issuer: LocalIssuer
    server: ThreadingHTTPServer
    events: EventLog
    review: LocalReview
    tasks: int = 0  # made at start
    selected: int = 0  # bundled test records the selection rule picked

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(port: int = 0, tasks: int | None = None, reviewers_per_task: int | None = None, environment: dict[str, str] | None = None,
          review: LocalReview | None = None) -> Running:
    """Starts the server on 127.0.0.1 (a free port when 0) in a thread, with moto already mocking
    AWS in this process (the caller's ``mock_aws``); returns once it listens. ``review``: the
    environment's review settings (default: dev's); ``tasks``: at most that many tasks."""
    review = review or review_settings()
    env = {**ENVIRONMENT, "LABEL_NAMES": json.dumps(list(review.label_names)), "REVIEW_TEMPLATE": review.template, **(environment or {})}
    os.environ.update(env)
    from lambdas.review.app import api

    for cached in (api.settings, api.completion_settings, api.tasks):
        cached.cache_clear()
    create_resources(env)
    from lambdas.shared import aws

    aws.client("s3").create_bucket(Bucket=LABELS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    events = EventLog()
    events.attach(aws.client("events"))  # the client the API's completion publishes with
    made, selected = bundled_tasks(env, review, reviewers_per_task=reviewers_per_task, limit=tasks) if tasks != 0 else (0, 0)
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    issuer = LocalIssuer(f"{origin}/local-login")
    from stacks.review.app import content_security_policy  # the deployed page's policy; sign-in is on this origin here

    handler = type("Handler", (_Handler,), {"app": LocalApp(issuer, origin, api.handler, content_security_policy(origin))})
    server.RequestHandlerClass = handler
    threading.Thread(target=server.serve_forever, name="review-local", daemon=True).start()
    return Running(f"{origin}/", issuer, server, events, review, made, selected)


def report(outputs: Outputs, events: list[dict[str, Any]], say: Callable[[str], None] = print) -> list[Path]:
    """Records the reviewers' app's completion events (review_results) and says what was written where."""
    from lambdas.review.app.completion import COMPLETED_DETAIL_TYPE

    finished = [event for event in events if event["detail-type"] == COMPLETED_DETAIL_TYPE]
    for event in finished:
        detail = event["detail"]
        output = (detail.get("humanLoopOutput") or {}).get("outputS3Uri")
        say(f"{event['detail-type']} ({detail['humanLoopStatus']}): {detail['humanLoopName']}" + (f" -> {output}" if output else f": {detail.get('failureReason')}"))
    written = outputs.record(finished)
    for path in written:
        say(f"  wrote {path}")
    return written


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The reviewers' app on 127.0.0.1, against moto, with the bundled test records the environment's "
                                     "selection rule picks as tasks")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--env", default="dev", help="the environment in cdk.json whose review settings (rule, rows per task, template) apply (default dev)")
    parser.add_argument("--reviewers-per-task", type=int, default=None, help="default: the environment's review.task_count")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for what the app and review_results write to S3 (output.json, loop reports, labels): <out>/<bucket>/<key> (default {DEFAULT_OUT}/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    options = arguments(argv)
    from stacks.shared.config import ConfigError

    try:
        review = review_settings(options.env)
    except ConfigError as error:
        raise SystemExit(f"review-local: {error}") from None
    for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}.items():
        os.environ[name] = value
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    from moto import mock_aws

    with mock_aws(), item_atomicity():
        running = start(options.port, reviewers_per_task=options.reviewers_per_task, review=review)
        outputs = Outputs(options.out, {**ENVIRONMENT, **{k: os.environ[k] for k in ENVIRONMENT}}, review.label_names)
        options.out.mkdir(parents=True, exist_ok=True)  # there from the start, filled as tasks are answered
        print(f"Reviewers' app: {running.url}  ({running.tasks} tasks of {review.rows_per_loop} records: the {running.selected} bundled test "
              f"records that env {review.environment}'s rule sends to review, {review.describe()}; signed in as {LOCAL_REVIEWER})", flush=True)
        print(f"What the app and review_results write to S3 (once a task is answered) is copied to {options.out.resolve()}/<bucket>/<key>; "
              "Ctrl-C stops.", flush=True)
        try:
            while True:
                time.sleep(1)
                report(outputs, running.events.take(), lambda line: print(line, flush=True))
        except KeyboardInterrupt:
            print("\nstopped", flush=True)
        finally:
            running.stop()


if __name__ == "__main__":
    main()
