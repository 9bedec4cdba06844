"""A task whose answers are all in becomes A2I's output.json and one completion event.

Steps, each safe to repeat: (1) write ``output.json`` in A2I's output format under the A2I output
prefix, at a key derived from the task (its creation time and id, A2I's own layout), so a retry
overwrites it; (2) take the task's publishing hold (a conditional update: one completer at a time
may announce it, for ``PUBLISH_HOLD_SECONDS``); (3) put the "Review Task Completed" event, shaped
like A2I's "SageMaker A2I HumanLoop Status Change" so review_results reads it unchanged; (4) mark
the task done (conditional on its still being answered). A crash before (4) leaves the task
answered; the next completion (the API's next submit of it, or ``sweep_handler`` on its schedule)
runs the steps again: the same output.json, and one event. The one window left is a crash between
PutEvents returning and (4): the retry announces the task again, and review_results, which names
everything it writes after the loop, overwrites what it wrote.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from lambdas.review.app.tasks import ANSWERED, EXPIRING, OPEN, Task, Tasks

COMPLETED_DETAIL_TYPE = "Review Task Completed"
# Every humanLoopStatus this module puts on a "Review Task Completed" event: complete() announces
# "Completed", expire() "Failed". The stack's rule to review_results matches exactly these
# (stacks/review/pipeline.py), so no announced task is dropped on its way to the loop report.
ANNOUNCED_STATUSES = ("Completed", "Failed")
# Where A2I writes: <prefix>/<flow definition name>/YYYY/MM/DD/hh/mm/ss/<loop name>/output.json.
FLOW_NAME = "reviewers-app"
# Longer than a completion takes (an S3 put and an event), shorter than the sweep's period.
PUBLISH_HOLD_SECONDS = 120


@dataclass(frozen=True)
class CompletionSettings:
    review_bucket: str
    output_prefix: str
    event_source: str
    event_bus: str


def output_key(settings: CompletionSettings, task: Task) -> str:
    created = dt.datetime.fromisoformat(task.created_at.replace("Z", "+00:00"))
    return f"{settings.output_prefix}/{FLOW_NAME}/{created:%Y/%m/%d/%H/%M/%S}/{task.task_id}/output.json"


def _seconds_between(start: str, end: str) -> int:
    parse = lambda stamp: dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # noqa: E731
    return max(0, round((parse(end) - parse(start)).total_seconds()))


def output_document(task: Task) -> dict[str, Any]:
    """A2I's output.json for a custom task with a private (Cognito) workforce, answers in submission order."""
    answers = sorted(task.answers.values(), key=lambda a: (a["submissionTime"], a["workerId"]))
    return {
        "humanLoopName": task.task_id,
        "inputContent": task.input_content,
        "humanAnswers": [
            {
                "acceptanceTime": a["acceptanceTime"],
                "answerContent": json.loads(a["answerContent"]),
                "submissionTime": a["submissionTime"],
                "timeSpentInSeconds": _seconds_between(a["acceptanceTime"], a["submissionTime"]),
                "workerId": a["workerId"],
                "workerMetadata": {"identityData": {"identityProviderType": "Cognito", "issuer": a.get("issuer", ""), "sub": a["workerId"]}},
            }
            for a in answers
        ],
    }


def complete(tasks: Tasks, s3: Any, events: Any, task: Task, settings: CompletionSettings) -> bool:
    """Runs the steps for an answered task; True when this call announced it."""
    if task.status != ANSWERED:
        return False
    key = output_key(settings, task)
    s3.put_object(Bucket=settings.review_bucket, Key=key, Body=json.dumps(output_document(task), indent=1).encode(), ContentType="application/json")
    uri = f"s3://{settings.review_bucket}/{key}"
    if not tasks.start_publishing(task.task_id, uri, PUBLISH_HOLD_SECONDS):
        return False  # another completer holds it, or it is done already
    detail = {"humanLoopName": task.task_id, "humanLoopStatus": "Completed", "humanLoopOutput": {"outputS3Uri": uri}, "creationTime": task.created_at}
    _announce(events, task, detail, settings)
    tasks.mark_done(task.task_id)
    return True


def expire(tasks: Tasks, events: Any, task: Task, settings: CompletionSettings) -> bool:
    """Ends an open task nobody finished within its availability as A2I ends such a loop: a
    "Failed" status change with the reason (review_results records it in the loop's report), so a
    review group never disappears unreported. True when this call announced it.

    The task stops taking answers first (``expiring``, a conditional write): an answer that lands
    before it makes the task answered and the write fails (no Failed event: the task completes);
    one after it is refused (409). So a task is announced once, as Completed or as Failed. A
    crash after that write leaves the task expiring, and the sweep announces it (again, after the
    publishing hold, if the crash came after the event)."""
    if task.status == OPEN:
        ending = tasks.begin_expiry(task.task_id, PUBLISH_HOLD_SECONDS)
    elif task.status == EXPIRING and tasks.start_publishing(task.task_id, None, PUBLISH_HOLD_SECONDS, status=EXPIRING):
        ending = task  # as the sweep read it: an expiring task's answers no longer change
    else:
        ending = None
    if ending is None:
        return False
    answered = len(ending.answers)
    reason = (
        f"the task expired: {answered} of {ending.reviewers_per_task} reviewer(s) answered within its availability "
        f"(review.task_availability_seconds), until {iso_time(ending.expires_at)}"
    )
    detail = {"humanLoopName": ending.task_id, "humanLoopStatus": "Failed", "failureReason": reason, "creationTime": ending.created_at}
    _announce(events, ending, detail, settings)
    tasks.mark_expired(ending.task_id)
    return True


def iso_time(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _announce(events: Any, task: Task, detail: dict[str, Any], settings: CompletionSettings) -> None:
    response = events.put_events(
        Entries=[{"Source": settings.event_source, "DetailType": COMPLETED_DETAIL_TYPE, "Detail": json.dumps(detail), "EventBusName": settings.event_bus}]
    )
    if response.get("FailedEntryCount"):
        entry = response["Entries"][0]
        raise RuntimeError(f"PutEvents refused the {detail['humanLoopStatus']} event of {task.task_id}: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}")


def sweep(tasks: Tasks, s3: Any, events: Any, settings: CompletionSettings) -> tuple[int, list[tuple[str, Exception]]]:
    """Completes every answered task (a crashed completion) and ends every expired one: how many it
    announced, and the tasks it could not finish with why (they stay as they were for the next sweep)."""
    announced, failed = 0, []
    for task in tasks.answered():
        try:
            announced += complete(tasks, s3, events, task, settings)
        except Exception as error:  # one task's fault must not hold up the others
            failed.append((task.task_id, error))
    for task in tasks.expired():
        try:
            announced += expire(tasks, events, task, settings)
        except Exception as error:
            failed.append((task.task_id, error))
    return announced, failed

