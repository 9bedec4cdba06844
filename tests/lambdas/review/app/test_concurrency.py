"""50 reviewers at once on 1,000 tasks of three reviewers each, through the API handler over moto.

Each simulated reviewer is a thread that asks for the next task, answers it and asks again until
nothing is left for them. Moto stands in for DynamoDB with its documented per-item atomicity
(``local.item_atomicity``); the app's own conditions do the rest. Checked: every task answered
exactly ``reviewers_per_task`` times by different reviewers, no claim handed out twice, no answer
lost, one output.json and one completion event per task. The figures are printed (``-s``) and
written to build/review-app-concurrency.json.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from lambdas.review.app import api
from local import review_local as local
from lambdas.review.app.tasks import DONE, Tasks
from lambdas.shared import aws
from tests.conftest import ROOT
from tests.lambdas.review.app.conftest import ENV, agree_all, call, task_input

REVIEWERS = 50
TASKS = 1_000
PER_TASK = 3
TIME_LIMIT_SECONDS = 2400


class NoMetrics:
    """Powertools' metrics are per invocation; threads in one process would mix them up."""

    def add_metric(self, *args, **kwargs) -> None:
        pass


class CountingDynamoDB:
    """The DynamoDB client, counting the conditional writes that lost a race."""

    def __init__(self, client) -> None:
        self._client = client
        self.conflicts = 0
        self._lock = threading.Lock()

    def update_item(self, **kwargs):
        try:
            return self._client.update_item(**kwargs)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                with self._lock:
                    self.conflicts += 1
            raise

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_fifty_reviewers_answer_a_thousand_tasks_exactly_as_often_as_asked(world, monkeypatch) -> None:
    dynamodb = CountingDynamoDB(aws.client("dynamodb"))
    tasks = Tasks(dynamodb, ENV["TASKS_TABLE"], int(ENV["LEASE_SECONDS"]))
    monkeypatch.setattr(api, "tasks", lambda: tasks)
    monkeypatch.setattr(api, "metrics", NoMetrics())
    content = task_input()
    for i in range(TASKS):
        tasks.put(f"task-{i:04d}", content, PER_TASK, 86_400)

    claims: dict[str, list[str]] = defaultdict(list)  # reviewer -> tasks handed to them
    refused: Counter[int] = Counter()
    deadline = time.monotonic() + TIME_LIMIT_SECONDS
    start = threading.Barrier(REVIEWERS)

    def reviewer(number: int) -> None:
        sub = f"reviewer-{number:02d}"
        start.wait()  # all at once
        while time.monotonic() < deadline:
            status, body = call("POST /api/tasks/next", sub=sub, threads=True)
            assert status == 200, body
            if body["task"] is None:
                return
            task_id = body["task"]["taskId"]
            claims[sub].append(task_id)
            status, body = call("POST /api/tasks/{taskId}/answers", sub=sub, task_id=task_id, body={"answers": agree_all()}, threads=True)
            if status != 200:
                refused[status] += 1
        raise TimeoutError(f"{sub} still working after {TIME_LIMIT_SECONDS} s")

    began = time.monotonic()
    with local.item_atomicity(), ThreadPoolExecutor(REVIEWERS) as pool:
        for future in [pool.submit(reviewer, n) for n in range(REVIEWERS)]:
            future.result()
    elapsed = time.monotonic() - began

    handed = [task for held in claims.values() for task in held]
    assert not refused, refused  # every claimed task could be answered: no slot was handed out twice
    assert all(len(held) == len(set(held)) for held in claims.values())  # nobody got a task twice
    per_task = Counter(handed)
    assert len(per_task) == TASKS and set(per_task.values()) == {PER_TASK}
    items = {t.task_id: t for t in (tasks.get(f"task-{i:04d}") for i in range(TASKS))}
    for task_id, task in items.items():
        assert task.status == DONE, task_id
        holders = {sub for sub, held in claims.items() if task_id in held}
        assert set(task.answers) == holders and len(holders) == PER_TASK  # no answer lost
    outputs = world.outputs()
    assert len(outputs) == TASKS
    events = world.events()
    assert len(events) == TASKS and len({e["detail"]["humanLoopName"] for e in events}) == TASKS  # one each
    sample = json.loads(world.s3.get_object(Bucket=ENV["REVIEW_BUCKET"], Key=outputs[0])["Body"].read())
    assert len(sample["humanAnswers"]) == PER_TASK

    figures = {
        "reviewers": REVIEWERS, "tasks": TASKS, "reviewersPerTask": PER_TASK, "seconds": round(elapsed, 1),
        "claims": len(handed), "answers": sum(len(t.answers) for t in items.values()), "conflicts": dynamodb.conflicts,
        "completionEvents": len(events), "outputs": len(outputs),
        "busiestReviewer": max(len(h) for h in claims.values()), "quietestReviewer": min(len(h) for h in claims.values()),
    }
    print("\nconcurrency:", json.dumps(figures))
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "review-app-concurrency.json").write_text(json.dumps(figures, indent=1) + "\n")
    assert elapsed < TIME_LIMIT_SECONDS
