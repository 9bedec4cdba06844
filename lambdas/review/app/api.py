"""Lambda: the reviewers' app API (HTTP API, payload format 2.0, JWT authorizer on every route).

Contract for the stack (issue 16; names as in /work/notes/design-15-16.md):

Handler ``lambdas.review.app.api.handler``; routes (all behind the JWT authorizer on the user pool,
audience = the app client id; the page and the API share one origin, CloudFront ``/api/*``):
  GET  /api/tasks                      counts: {"waiting": n} (open tasks a reviewer could take now)
  POST /api/tasks/next                 claim the next task: {"task": {...}} or {"task": null}; a
                                       reviewer holds one task at a time: the one they hold, if any
  GET  /api/tasks/{taskId}             a task the caller holds
  POST /api/tasks/{taskId}/renew       extend the caller's lease (never past the task's availability;
                                       at most once per third of a lease: 429 sooner)
  POST /api/tasks/{taskId}/release     give the task back (skip)
  POST /api/tasks/{taskId}/answers     submit {"answers": {"row-0-verdict": ..., ...}}
The reviewer is ``requestContext.authorizer.jwt.claims`` (``sub``, ``cognito:groups``): 401 without
claims, 403 outside REVIEWERS_GROUP, 409 for a task the caller does not hold (or whose lease
expired, or whose availability ended), 400 naming the field for a bad answer or a body it cannot
read.

Environment of the API function:
  TASKS_TABLE          the tasks table (below)
  REVIEW_BUCKET        where output.json goes (the review bucket)
  OUTPUT_PREFIX        A2I's output prefix in it (stacks/review/a2i.py A2I_OUTPUT_PREFIX, "a2i-output")
  EVENT_SOURCE         "<app_name>.review"; detail-type "Review Task Completed" (COMPLETED_DETAIL_TYPE)
  EVENT_BUS_NAME       the bus review_results' rule listens on ("default" when unset)
  REVIEWERS_GROUP      the Cognito group whose members may review
  LEASE_SECONDS        review.task_time_limit_seconds
  LABEL_NAMES          JSON list, model.label_names (answers are checked against it)
  REVIEW_TEMPLATE      review.template ("low_confidence" | "outcome_review"): the task's layout
Optional: POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE as for every function.
Permissions: dynamodb GetItem, UpdateItem, Query (table and its index); s3 PutObject on
``<OUTPUT_PREFIX>/*`` of the review bucket (KMS key: GenerateDataKey); events PutEvents on the bus.

The starter (``lambdas.review.starter.handler.handler``) with REVIEW_BACKEND=open: env
``REVIEW_BACKEND`` ("open" | "a2i"), ``TASKS_TABLE``, ``REVIEWERS_PER_TASK`` (review.task_count),
``TASK_AVAILABILITY_SECONDS`` (review.task_availability_seconds); FLOW_DEFINITION_ARN is then not
needed. Permission: dynamodb PutItem on the table (instead of sagemaker:StartHumanLoop).

Completion retry ``lambdas.review.app.api.sweep_handler``: a schedule (every 5 minutes)
finishes tasks whose last answer landed but whose completion did not (a crash); same environment as
the API function; permissions: dynamodb Query + UpdateItem, s3 PutObject, events PutEvents.

Tasks table (DynamoDB, on demand, KMS, point-in-time recovery):
  partition key  taskId   (S)   the loop name the starter computes (ReviewGroup.loop_name)
  TTL attribute  deleteAfter (N)  epoch seconds: expiresAt (created + review.task_availability_seconds)
                 + tasks.RETENTION_SECONDS; the sweep ends an expired task as a failed loop first
  GSI "byStatus": partition key  status (S) ("open" | "answered" | "done" | "expiring" | "expired"),
                  sort key       createdAt (S, ISO 8601 UTC), projection ALL
Deployment also needs: python-liquid and its dependencies for the API function
(lambdas/review/app/requirements.txt, a layer like the starter's) and a2i_templates/ next to the
``lambdas`` package in the function's code (the task is rendered from the same partials as A2I's);
the page (lambdas/review/app/site/ plus a2i_templates/partials/*.css served at /partials/) with a
``config.json`` next to index.html: {"domain": "https://<prefix>.auth.<region>.amazoncognito.com",
"clientId": "...", "redirectUri": "https://<distribution>/", "scopes": "openid"}; CSP
``default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' <domain>;
frame-ancestors 'none'`` (app.js sets the attribution bars' widths through CSSOM, so no inline style).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.review.app import completion
from lambdas.review.app.answers import BadAnswer, checked
from lambdas.review.app.render import task_html
from lambdas.review.app.tasks import ANSWERED, Reviewer, Task, TaskError, Tasks
from lambdas.shared import aws
from lambdas.shared.consumer import Environment, from_environment, logger, metrics

# A task ID is a loop name: ^[a-z0-9](-*[a-z0-9])*$, at most 63 characters (lambdas/shared/review_group.py).
_TASK_ID = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


@dataclass(frozen=True)
class ApiSettings:
    reviewers_group: str
    label_names: tuple[str, ...]
    template: str
    lease_seconds: int


@from_environment
def completion_settings(env: Environment) -> completion.CompletionSettings:
    return completion.CompletionSettings(
        review_bucket=env["REVIEW_BUCKET"],
        output_prefix=env["OUTPUT_PREFIX"],
        event_source=env["EVENT_SOURCE"],
        event_bus=env.get("EVENT_BUS_NAME", "default"),
    )


@from_environment
def tasks(env: Environment) -> Tasks:
    return Tasks(aws.client("dynamodb"), env["TASKS_TABLE"], env.integer("LEASE_SECONDS"))


@from_environment
def settings(env: Environment) -> ApiSettings:
    return ApiSettings(
        reviewers_group=env["REVIEWERS_GROUP"],
        label_names=env.names("LABEL_NAMES"),
        template=env["REVIEW_TEMPLATE"],
        lease_seconds=env.integer("LEASE_SECONDS"),
    )


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": _HEADERS, "body": json.dumps(body)}


def groups(claims: dict[str, Any]) -> set[str]:
    """``cognito:groups``: a list in the token. The HTTP API's JWT authorizer passes array claims on
    as one string, ``"[reviewers admins]"`` (names separated by spaces, which Cognito group names
    cannot contain); a JSON list (``'["reviewers"]'``) is read as JSON. Names are taken whole: a
    group called ``ops,reviewers`` is that group, never ``reviewers``. Anything else is no group."""
    value = claims.get("cognito:groups")
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    if not isinstance(value, str):
        return set()
    text = value.strip()
    if text.startswith('["'):
        try:
            parsed = json.loads(text)
        except ValueError:
            return set()
        return {v for v in parsed if isinstance(v, str)} if isinstance(parsed, list) else set()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "[" in text or "]" in text:  # not one list: take nothing from it
        return set()
    return set(text.split())


def reviewer(event: dict[str, Any], config: ApiSettings) -> Reviewer:
    """The caller, from the authorizer's verified claims only (never from the request body)."""
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims")
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise Refused(401, "sign in first")
    if config.reviewers_group not in groups(claims):
        raise Refused(403, f"you are not in the {config.reviewers_group} group")
    return Reviewer(sub=claims["sub"], issuer=str(claims.get("iss", "")))


def _body(event: dict[str, Any]) -> Any:
    """The request's JSON body; ``BadAnswer`` (400) naming what is wrong with one it cannot read."""
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):  # the HTTP API base64-encodes bodies of non-text content types
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except binascii.Error:
            raise BadAnswer("body", "is not valid base64") from None
        except UnicodeDecodeError:
            raise BadAnswer("body", "is not UTF-8 text") from None
    try:
        return json.loads(raw) if raw else {}
    except RecursionError:
        raise BadAnswer("body", "is JSON nested too deeply") from None
    except ValueError:
        raise BadAnswer("body", "is not JSON") from None


def presented(task: Task, caller: Reviewer, config: ApiSettings) -> dict[str, Any]:
    """What the page needs: the rendered task, its rows' answer names, and the caller's lease."""
    return {
        "taskId": task.task_id,
        "leaseExpiresAt": task.lease_expires_at(caller),
        "leaseSeconds": config.lease_seconds,
        "rows": [row["key"] for row in task.input_content["rows"]],
        "html": task_html(config.template, task.input_content),
    }


def _task_id(event: dict[str, Any]) -> str:
    task_id = (event.get("pathParameters") or {}).get("taskId", "")
    if not _TASK_ID.match(task_id):
        raise Refused(404, "no such task")
    return task_id


def count(event: dict[str, Any], caller: Reviewer, config: ApiSettings) -> dict[str, Any]:
    return {"waiting": tasks().waiting()}


def claim_next(event: dict[str, Any], caller: Reviewer, config: ApiSettings) -> dict[str, Any]:
    task = tasks().claim(caller)
    if task is None:
        return {"task": None, "waiting": tasks().waiting()}
    metrics.add_metric("ReviewTasksClaimed", MetricUnit.Count, 1)
    return {"task": presented(task, caller, config)}


def show(event: dict[str, Any], caller: Reviewer, config: ApiSettings) -> dict[str, Any]:
    task, _ = tasks().held(_task_id(event), caller)
    return {"task": presented(task, caller, config)}


def renew(event: dict[str, Any], caller: Reviewer, config: ApiSettings) -> dict[str, Any]:
    task = tasks().renew(_task_id(event), caller)
    return {"taskId": task.task_id, "leaseExpiresAt": task.lease_expires_at(caller)}


def release(event: dict[str, Any], caller: Reviewer, config: ApiSettings) -> dict[str, Any]:
    task_id = _task_id(event)
    tasks().release(task_id, caller)
    metrics.add_metric("ReviewTasksReleased", MetricUnit.Count, 1)
    return {"taskId": task_id, "released": True}


def answer(event: dict[str, Any], caller: Reviewer, config: ApiSettings) -> dict[str, Any]:
    task_id = _task_id(event)
    body = _body(event)
    table = tasks()
    held, _ = table.held(task_id, caller)
    content = checked(body.get("answers") if isinstance(body, dict) else None, held.input_content, config.label_names)
    task = table.submit(task_id, caller, content, read=held)
    metrics.add_metric("ReviewAnswersSubmitted", MetricUnit.Count, 1)
    completed = False
    if task.status == ANSWERED:
        try:
            completed = completion.complete(table, aws.client("s3"), aws.client("events"), task, completion_settings())
        except Exception:  # the answer is saved; the sweep finishes the completion
            logger.exception("completion failed after the last answer; the sweep retries it", extra={"taskId": task_id})
    return {"taskId": task_id, "submitted": True, "completed": completed}


ROUTES: dict[str, Callable[[dict[str, Any], Reviewer, ApiSettings], dict[str, Any]]] = {
    "GET /api/tasks": count,
    "POST /api/tasks/next": claim_next,
    "GET /api/tasks/{taskId}": show,
    "POST /api/tasks/{taskId}/renew": renew,
    "POST /api/tasks/{taskId}/release": release,
    "POST /api/tasks/{taskId}/answers": answer,
}


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return respond(event)


def respond(event: dict[str, Any]) -> dict[str, Any]:
    """The response to one HTTP API event (the handler without Powertools' per-invocation wrapping)."""
    route = ROUTES.get(event.get("routeKey", ""))
    config = settings()
    try:
        caller = reviewer(event, config)
        if route is None:
            raise Refused(404, "no such route")
        return _response(200, route(event, caller, config))
    except Refused as refused:
        return _response(refused.status, {"message": str(refused)})
    except BadAnswer as bad:
        return _response(400, {"message": str(bad), "field": bad.field})
    except TaskError as error:
        return _response(error.status, {"message": str(error)})


@logger.inject_lambda_context
@metrics.log_metrics
def sweep_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """On a schedule: finishes the completions a crash interrupted (completion.py)."""
    announced, failed = completion.sweep(tasks(), aws.client("s3"), aws.client("events"), completion_settings())
    for task_id, error in failed:
        logger.error("completion failed; the next sweep tries again", extra={"taskId": task_id, "error": f"{type(error).__name__}: {error}"})
    logger.info("answered tasks swept", extra={"announced": announced, "failed": len(failed)})
    metrics.add_metric("ReviewTasksCompleted", MetricUnit.Count, announced)
    metrics.add_metric("ReviewCompletionsFailed", MetricUnit.Count, len(failed))
    if failed:
        raise RuntimeError(f"{len(failed)} answered task(s) could not be completed; they stay answered for the next sweep")
    return {"announced": announced}
