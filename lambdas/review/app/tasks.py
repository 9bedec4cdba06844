"""Review tasks in DynamoDB: one item per review group, claimed by reviewers under a lease.

A task has ``reviewersPerTask`` slots (``slot0``, ``slot1``, ...; A2I's task count). A reviewer
claims a task by taking a slot that is free, or whose holder's lease has expired, in one
conditional update; the same update adds them to the task's ``seen`` set, which the condition
also checks, so a reviewer never gets a task twice (nor one they answered or skipped). A slot
stays with its answer once answered. Every change is a conditional update on the one item, which
DynamoDB applies atomically, so two reviewers can never hold one slot and an answer is never
lost: the submit that answers the last slot also sets the task's status to ``answered`` (its
condition checks the other slots are answered; if another answer landed meanwhile, it re-reads
and tries again).

One task at a time per reviewer: each reviewer has a holding marker (an item keyed
``#holding#<sub>``, which no task ID can be) naming the task they last claimed. A claim first
reads it: a reviewer who still holds that task gets it back. Otherwise the claim takes the
marker's claim lock (a conditional update on the marker's version, so of two claims of one
reviewer at once only one goes on; the other waits for it and returns its task), claims a slot
as above, and writes the task into the marker as it releases the lock. A lock whose claim died
frees itself after ``CLAIM_LOCK_SECONDS``. A lease never outlives the task's
availability (it ends at ``expiresAt`` at the latest), nothing is done under a lease after
``expiresAt``, and a lease is renewed at most every third of its length. Renewals are not
audited, so a task item only grows by what its reviewers do once each (claim, release, submit).

Item (attribute: type, meaning):
  taskId S (key), status S ("open" | "answered" | "done" | "expiring" | "expired"), createdAt S (ISO 8601 UTC),
  expiresAt N (epoch seconds: created + task_availability_seconds; no claim, renewal or answer
  after it, and the sweep then ends the task as a failed loop, as A2I ends a loop nobody answered
  in time: "expiring" first, so no answer can land any more, then the event, then "expired"),
  deleteAfter N (the table's TTL: expiresAt + RETENTION_SECONDS, so the audit trail outlives the task), reviewersPerTask N, inputContent S (JSON: what A2I calls the
  loop's input, ``starter.task_input``), slot<i> M {holder S, state S ("held" | "answered"),
  leaseExpiresAt N, claimedAt S, renewedAt N}, seen SS (subs), answers M {<sub>: {answerContent S (JSON),
  acceptanceTime S, submissionTime S, workerId S, issuer S}}, answerCount N,
  audit L [{action S (claim | release | submit | complete | expire), who S, at S}],
  outputS3Uri S, publishingUntil N, completedAt S (completion.py).
Holding marker (one per reviewer who ever claimed): taskId S ("#holding#<sub>"), heldTask S,
  claimedAt N, version N (every claim lock adds one), claiming S and claimingUntil N (the claim
  lock, while a claim is under way), deleteAfter N (TTL).
Index ``byStatus``: status (partition) + createdAt (sort): open tasks oldest first, the
answered ones whose completion is pending, and the expiring ones whose announcement is.
Markers have no status, so the index never holds them.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
import threading
import time
from decimal import Decimal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

STATUS_INDEX = "byStatus"
OPEN, ANSWERED, DONE, EXPIRING, EXPIRED = "open", "answered", "done", "expiring", "expired"
# The key of a reviewer's holding marker: "#" is in no task ID (a loop name, api._TASK_ID).
HOLDING = "#holding#"
# A lease is renewed at most once per this fraction of its length (the page renews at a third).
RENEW_EVERY = 3
# How long a claim may hold its reviewer's claim lock: longer than the API function may run
# (stacks/review/app.py: 10 s), so a live claim never loses it, and one that died frees it soon.
CLAIM_LOCK_SECONDS = 30
# How long a claim waits for another claim of the same reviewer's (under way) to finish.
CLAIM_WAIT_SECONDS = 5.0
# How long a finished or expired task (and its audit trail) stays in the table before DynamoDB's TTL deletes it.
RETENTION_SECONDS = 30 * 86_400
HELD = "held"
MAX_REVIEWERS_PER_TASK = 3  # review.task_count's limit (A2I's): slot0..slot2
_SUBMIT_TRIES = 5  # another reviewer's answer landing between our read and our write: read again
_PAGE = 100
POOL_SECONDS = 5

_serialise = TypeSerializer().serialize
_deserialiser = TypeDeserializer()


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TaskError(Exception):
    """A request the task's state refuses; ``status`` is the HTTP status the API answers with."""

    status = 400


class NotFound(TaskError):
    status = 404


class Conflict(TaskError):
    """The caller does not hold the task (another reviewer does, the lease expired, it is answered)."""

    status = 409


class TooSoon(TaskError):
    """A renewal sooner than a third of the lease after the last one."""

    status = 429


@dataclass(frozen=True)
class Reviewer:
    sub: str
    issuer: str = ""


@dataclass
class Task:
    task_id: str
    status: str
    created_at: str
    expires_at: int
    reviewers_per_task: int
    input_content: dict[str, Any]
    slots: dict[int, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    audit: list[dict[str, Any]] = field(default_factory=list)
    output_uri: str | None = None
    publishing_until: int = 0
    completed_at: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Task:
        plain = {name: _deserialiser.deserialize(value) for name, value in item.items()}
        count = int(plain["reviewersPerTask"])
        return cls(
            task_id=plain["taskId"],
            status=plain["status"],
            created_at=plain["createdAt"],
            expires_at=int(plain["expiresAt"]),
            reviewers_per_task=count,
            input_content=json.loads(plain["inputContent"]),
            slots={i: _plain_numbers(plain[f"slot{i}"]) for i in range(count) if f"slot{i}" in plain},
            answers={sub: dict(answer) for sub, answer in (plain.get("answers") or {}).items()},
            seen=frozenset(plain.get("seen") or ()),
            audit=[_plain_numbers(entry) for entry in plain.get("audit") or []],
            output_uri=plain.get("outputS3Uri"),
            publishing_until=int(plain.get("publishingUntil", 0)),
            completed_at=plain.get("completedAt"),
        )

    def slot_of(self, reviewer: Reviewer) -> int | None:
        """The slot the reviewer holds now (answered slots are not held)."""
        return next((i for i, s in self.slots.items() if s.get("holder") == reviewer.sub and s.get("state") == HELD), None)

    def lease_expires_at(self, reviewer: Reviewer) -> int | None:
        slot = self.slot_of(reviewer)
        return None if slot is None else int(self.slots[slot]["leaseExpiresAt"])


def _plain_numbers(value: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB numbers arrive as Decimal; the app's are whole numbers."""
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in value.items()}


def _values(**values: Any) -> dict[str, Any]:
    return {f":{name}": _serialise(value) for name, value in values.items()}


def _audit(action: str, who: str, now: float) -> dict[str, Any]:
    return {"L": [_serialise({"action": action, "who": who, "at": iso(now)})]}


class Tasks:
    """The tasks table. ``clock`` gives epoch seconds (tests move it to expire leases)."""

    def __init__(self, dynamodb: Any, table: str, lease_seconds: int = 3600, clock: Callable[[], float] = time.time) -> None:
        self._db = dynamodb
        self._table = table
        self._lease = lease_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pool: list[dict[str, Any]] = []  # open tasks read lately (claim)
        self._pool_read_at = 0.0

    # -- the starter ---------------------------------------------------------------------------

    def put(self, task_id: str, input_content: dict[str, Any], reviewers_per_task: int, availability_seconds: int) -> bool:
        """Creates the task; False when it exists already (a replayed review group: nothing changes)."""
        now = self._clock()
        item = {
            "taskId": task_id,
            "status": OPEN,
            "createdAt": iso(now),
            "expiresAt": int(now) + availability_seconds,
            "deleteAfter": int(now) + availability_seconds + RETENTION_SECONDS,
            "reviewersPerTask": reviewers_per_task,
            "inputContent": json.dumps(input_content, separators=(",", ":")),
            "answers": {},
            "answerCount": 0,
            "audit": [],
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item={name: _serialise(value) for name, value in item.items()},
                ConditionExpression="attribute_not_exists(taskId)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- reading -------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        item = self._db.get_item(TableName=self._table, Key={"taskId": {"S": task_id}}, ConsistentRead=True).get("Item")
        if item is None:
            raise NotFound(f"no task {task_id}")
        return Task.from_item(item)

    def _by_status(self, status: str, **query: Any) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _values(status=status),
            **query,
        }
        if "ExpressionAttributeValues" in query:
            arguments["ExpressionAttributeValues"] = {**_values(status=status), **query["ExpressionAttributeValues"]}
        while True:
            page = self._db.query(**arguments)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def waiting(self) -> int:
        """Open tasks that have not expired and that a reviewer could claim now: a slot of theirs
        is free, or its holder's lease has run out (a task everyone's holding does not wait)."""
        free = " OR ".join(
            f"(reviewersPerTask > :i{i} AND (attribute_not_exists(slot{i}) OR (slot{i}.#state = :held AND slot{i}.leaseExpiresAt < :now)))"
            for i in range(MAX_REVIEWERS_PER_TASK)
        )
        pages = self._by_status(OPEN, Select="COUNT", FilterExpression=f"expiresAt > :now AND ({free})",
                                ExpressionAttributeNames={"#status": "status", "#state": "state"},
                                ExpressionAttributeValues=_values(now=int(self._clock()), held=HELD, **{f"i{i}": i for i in range(MAX_REVIEWERS_PER_TASK)}))
        return sum(page["Count"] for page in pages)

    def expired(self) -> Iterator[Task]:
        """Open tasks past their availability (nobody may claim them, and the sweep ends them), and
        those whose ending was interrupted after they stopped taking answers (``expiring``)."""
        pages = self._by_status(OPEN, FilterExpression="expiresAt <= :now", ExpressionAttributeValues=_values(now=int(self._clock())))
        for page in pages:
            for item in page["Items"]:
                yield Task.from_item(item)
        for page in self._by_status(EXPIRING):
            for item in page["Items"]:
                yield Task.from_item(item)

    def answered(self) -> Iterator[Task]:
        """Tasks whose answers are all in and whose completion has not finished."""
        for page in self._by_status(ANSWERED):
            for item in page["Items"]:
                yield Task.from_item(item)

    # -- a reviewer's actions ------------------------------------------------------------------

    def claim(self, reviewer: Reviewer) -> Task | None:
        """The task the reviewer holds, if they hold one (a reviewer holds one task at a time);
        else one of the oldest open tasks they have not seen, with a slot free (or whose lease expired).

        Candidates read recently (``POOL_SECONDS``) by this container are tried first, so a busy
        container does not query the index for every claim; a candidate that turns out taken is
        dropped. Only a fresh query that finds nothing for the reviewer means there is nothing."""
        waited_until = time.monotonic() + CLAIM_WAIT_SECONDS
        while True:
            held, marker = self._holding(reviewer)
            if held is not None:
                return held
            now = int(self._clock())
            if marker is not None and int(marker.get("claimingUntil", {"N": "0"})["N"]) >= now:
                # Another claim of this reviewer's is under way: its task is the answer.
                if time.monotonic() > waited_until:
                    raise Conflict("another request of yours is claiming a task: ask for the next task again in a moment")
                time.sleep(0.05)
                continue
            token = secrets.token_hex(8)
            if not self._lock_claims(reviewer, marker, token, now):
                if time.monotonic() > waited_until:
                    raise Conflict("your other requests kept changing your claim: ask for the next task again in a moment")
                continue  # another claim of this reviewer's locked or changed the marker first: read it again
            task = None
            try:
                task = self._claim_new(reviewer, now)
            finally:
                self._unlock_claims(reviewer, token, task, now)
            return task

    def _holding(self, reviewer: Reviewer) -> tuple[Task | None, dict[str, Any] | None]:
        """The task the reviewer's marker names if they still hold it, and the marker as read."""
        marker = self._db.get_item(TableName=self._table, Key=_holding_key(reviewer), ConsistentRead=True).get("Item")
        if marker is None or "heldTask" not in marker:
            return None, marker
        try:
            task, _ = self.held(marker["heldTask"]["S"], reviewer)
        except TaskError:  # answered, released, lease run out, expired, deleted: the marker is stale
            return None, marker
        return task, marker

    def _lock_claims(self, reviewer: Reviewer, marker: dict[str, Any] | None, token: str, now: int) -> bool:
        """Takes the reviewer's claim lock if the marker is as read and not locked; False if not."""
        if marker is None:
            condition, values = "attribute_not_exists(taskId)", {}
        else:
            version = "version = :version" if "version" in marker else "attribute_not_exists(version)"
            condition = f"{version} AND (attribute_not_exists(claimingUntil) OR claimingUntil < :now)"
            values = {**({":version": marker["version"]} if "version" in marker else {}), **_values(now=now)}
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_holding_key(reviewer),
                UpdateExpression="SET claiming = :token, claimingUntil = :until, deleteAfter = :forget ADD version :one",
                ConditionExpression=condition,
                ExpressionAttributeValues={**_values(token=token, until=now + CLAIM_LOCK_SECONDS, forget=now + RETENTION_SECONDS, one=1), **values},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _unlock_claims(self, reviewer: Reviewer, token: str, task: Task | None, now: int) -> None:
        """Releases the claim lock, naming the task claimed (if any) as the one the reviewer holds."""
        update = "REMOVE claiming, claimingUntil"
        values = _values(token=token)
        if task is not None:
            update = "SET heldTask = :task, claimedAt = :now " + update
            values.update(_values(task=task.task_id, now=now))
        try:
            self._db.update_item(TableName=self._table, Key=_holding_key(reviewer), UpdateExpression=update,
                                 ConditionExpression="claiming = :token", ExpressionAttributeValues=values)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # The lock was not ours any more (this claim outlived CLAIM_LOCK_SECONDS): nothing to release.

    def _claim_new(self, reviewer: Reviewer, now: int) -> Task | None:
        with self._lock:
            pool = list(self._pool) if now - self._pool_read_at < POOL_SECONDS else []
        claimed = self._claim_from(pool, reviewer, now)
        if claimed is not None:
            return claimed
        for page in self._open_candidates(reviewer, now):
            with self._lock:
                self._pool, self._pool_read_at = page, now
            claimed = self._claim_from(page, reviewer, now)
            if claimed is not None:
                return claimed
        return None

    def _open_candidates(self, reviewer: Reviewer, now: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of open tasks the reviewer has not seen, oldest first: only what choosing a slot
        needs (the whole task comes back with the claim that wins)."""
        slots = [f"slot{i}" for i in range(MAX_REVIEWERS_PER_TASK)]
        pages = self._by_status(OPEN, Limit=_PAGE, FilterExpression="expiresAt > :now AND NOT contains(seen, :sub)",
                                ProjectionExpression=", ".join(["taskId", "reviewersPerTask", "seen", "expiresAt", *slots]),
                                ExpressionAttributeValues=_values(now=now, sub=reviewer.sub))
        for page in pages:
            yield [{name: _deserialiser.deserialize(value) for name, value in item.items()} for item in page["Items"]]

    def _claim_from(self, candidates: list[dict[str, Any]], reviewer: Reviewer, now: int) -> Task | None:
        # Reviewers who ask at once try the oldest tasks in different orders, so they do not all
        # race for the same slot.
        for task in random.sample(candidates, len(candidates)):
            if reviewer.sub in (task.get("seen") or ()):
                continue
            for slot in range(int(task["reviewersPerTask"])):
                current = task.get(f"slot{slot}")
                if current is not None and not (current.get("state") == HELD and int(current["leaseExpiresAt"]) < now):
                    continue
                claimed = self._claim_slot(task["taskId"], slot, reviewer, now, int(task["expiresAt"]))
                if claimed is not None:
                    now_seen = {"taskId": claimed.task_id, "reviewersPerTask": claimed.reviewers_per_task, "seen": set(claimed.seen),
                                "expiresAt": claimed.expires_at, **{f"slot{i}": value for i, value in claimed.slots.items()}}
                    with self._lock:  # the task as this claim left it, for the next one
                        self._pool = [now_seen if t["taskId"] == claimed.task_id else t for t in self._pool]
                    return claimed
            with self._lock:  # taken by others since it was read
                self._pool = [t for t in self._pool if t["taskId"] != task["taskId"]]
        return None

    def _claim_slot(self, task_id: str, slot: int, reviewer: Reviewer, now: int, expires_at: int) -> Task | None:
        until = min(now + self._lease, expires_at)  # a lease never outlives the task's availability
        lease = {"holder": reviewer.sub, "state": HELD, "leaseExpiresAt": until, "claimedAt": iso(now), "renewedAt": now}
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key={"taskId": {"S": task_id}},
                UpdateExpression="SET #slot = :lease, audit = list_append(audit, :entry) ADD seen :me",
                ConditionExpression="#status = :open AND expiresAt > :now AND NOT contains(seen, :sub) AND "
                "(attribute_not_exists(#slot) OR (#slot.#state = :held AND #slot.leaseExpiresAt < :now))",
                ExpressionAttributeNames={"#slot": f"slot{slot}", "#status": "status", "#state": "state"},
                ExpressionAttributeValues={**_values(lease=lease, open=OPEN, now=now, sub=reviewer.sub, held=HELD),
                                           ":me": {"SS": [reviewer.sub]}, ":entry": _audit("claim", reviewer.sub, now)},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None  # another reviewer took it first, or it changed: try the next
            raise
        return Task.from_item(response["Attributes"])

    def held(self, task_id: str, reviewer: Reviewer) -> tuple[Task, int]:
        """The task and the caller's slot; Conflict when the caller does not hold it now."""
        task = self.get(task_id)
        slot = task.slot_of(reviewer)
        if task.status != OPEN or slot is None:
            raise Conflict(f"you do not hold task {task_id}: it was released, answered, or another reviewer has it")
        now = int(self._clock())
        if task.expires_at <= now:
            raise Conflict(f"task {task_id} is no longer available (its time for review ended): ask for the next task")
        if int(task.slots[slot]["leaseExpiresAt"]) < now:
            raise Conflict(f"your lease on task {task_id} expired: ask for the next task")
        return task, slot

    def _holder_update(self, task_id: str, slot: int, reviewer: Reviewer, update: str, values: dict[str, Any], extra_condition: str = "",
                       names: dict[str, str] | None = None) -> Task:
        """An update that only the slot's current holder, within the lease and the task's availability, can make."""
        condition = ("#status = :open AND expiresAt > :now AND #slot.holder = :sub AND #slot.#state = :held AND #slot.leaseExpiresAt >= :now"
                     + extra_condition)
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key={"taskId": {"S": task_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#slot": f"slot{slot}", "#status": "status", "#state": "state", **(names or {})},
                ExpressionAttributeValues={**_values(open=OPEN, sub=reviewer.sub, held=HELD, now=int(self._clock())), **values},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise _StateChanged from None
            raise
        return Task.from_item(response["Attributes"])

    def renew(self, task_id: str, reviewer: Reviewer) -> Task:
        """Extends the caller's lease to a full lease from now, but never past the task's availability.
        At most once per third of a lease (``TooSoon``, 429, sooner); renewals are not audited."""
        task, slot = self.held(task_id, reviewer)
        now = int(self._clock())
        every = max(1, self._lease // RENEW_EVERY)
        renewed_at = task.slots[slot].get("renewedAt")
        if renewed_at is not None and now - int(renewed_at) < every:
            raise TooSoon(f"your lease on task {task_id} was renewed {now - int(renewed_at)} s ago: it can be renewed once every {every} s")
        until = min(now + self._lease, task.expires_at)
        try:
            return self._holder_update(task_id, slot, reviewer, "SET #slot.leaseExpiresAt = :until, #slot.renewedAt = :now",
                                       _values(until=until, latest=now - every),
                                       " AND (attribute_not_exists(#slot.renewedAt) OR #slot.renewedAt <= :latest)")
        except _StateChanged:
            self.held(task_id, reviewer)  # Conflict when the lease was lost meanwhile
            raise TooSoon(f"your lease on task {task_id} was renewed meanwhile: it can be renewed once every {every} s") from None

    def release(self, task_id: str, reviewer: Reviewer) -> None:
        """Gives the caller's slot back (another reviewer can take it; this one will not see the task again)."""
        task, slot = self.held(task_id, reviewer)
        try:
            self._holder_update(task_id, slot, reviewer, "REMOVE #slot SET audit = list_append(audit, :entry)",
                                {":entry": _audit("release", reviewer.sub, self._clock())})
        except _StateChanged:
            raise Conflict(f"you no longer hold task {task_id}") from None

    def submit(self, task_id: str, reviewer: Reviewer, answer_content: dict[str, Any], read: Task | None = None) -> Task:
        """Records the caller's answer in their slot; the last answer also sets the status to answered.
        ``read``: the task as the caller read it just before (saves reading it again)."""
        for attempt in range(_SUBMIT_TRIES):
            if attempt == 0 and read is not None and read.task_id == task_id:
                task, slot = read, read.slot_of(reviewer)
                if slot is None:
                    raise Conflict(f"you do not hold task {task_id}")
            else:
                task, slot = self.held(task_id, reviewer)
            others = [i for i in range(task.reviewers_per_task) if i != slot]
            last = all(task.slots.get(i, {}).get("state") == "answered" for i in others)
            now = self._clock()
            answer = {
                "answerContent": json.dumps(answer_content, separators=(",", ":")),
                "acceptanceTime": task.slots[slot]["claimedAt"],
                "submissionTime": iso(now),
                "workerId": reviewer.sub,
                "issuer": reviewer.issuer,
            }
            sets = "#slot.#state = :answered, answers.#me = :answer, audit = list_append(audit, :entry)"
            names = {"#me": reviewer.sub}
            if last:  # answered slots stay answered, so no condition on the others is needed
                sets, extra = "#status = :all_answered, " + sets, ""
            else:  # still not the last when written: some other slot is not answered
                names.update({f"#o{i}": f"slot{i}" for i in others})
                extra = " AND (" + " OR ".join(f"attribute_not_exists(#o{i}) OR #o{i}.#state <> :answered" for i in others) + ")"
            update = f"SET {sets} ADD answerCount :one"
            values = {**_values(answered="answered", answer=answer, one=1), ":entry": _audit("submit", reviewer.sub, now)}
            if last:
                values.update(_values(all_answered=ANSWERED))
            try:
                return self._holder_update(task_id, slot, reviewer, update, values, extra, names)
            except _StateChanged:
                continue  # the lease ran out (held() says so next) or another answer landed: read again
        raise Conflict(f"task {task_id} kept changing while your answer was saved: submit again")

    # -- completion (completion.py) ------------------------------------------------------------

    def start_publishing(self, task_id: str, output_uri: str | None, hold_seconds: int, *, status: str = ANSWERED) -> bool:
        """One completer at a time may announce the task: True for the one that may (for
        ``hold_seconds``). ``status``: the task's state being announced (answered, or expiring)."""
        now = int(self._clock())
        values = _values(until=now + hold_seconds, status=status, now=now, **({"uri": output_uri} if output_uri else {}))
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"taskId": {"S": task_id}},
                UpdateExpression="SET publishingUntil = :until" + (", outputS3Uri = :uri" if output_uri else ""),
                ConditionExpression="#status = :status AND (attribute_not_exists(publishingUntil) OR publishingUntil < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def begin_expiry(self, task_id: str, hold_seconds: int) -> Task | None:
        """An open task past its availability stops taking answers (``expiring``), and the caller
        may announce its end for ``hold_seconds``: the task as it is now (its answers final), or
        None when it is not open and past its availability any more (its last answer landed first)."""
        now = int(self._clock())
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key={"taskId": {"S": task_id}},
                UpdateExpression="SET #status = :expiring, publishingUntil = :until",
                ConditionExpression="#status = :open AND expiresAt <= :now",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_values(expiring=EXPIRING, until=now + hold_seconds, open=OPEN, now=now),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return Task.from_item(response["Attributes"])

    def mark_expired(self, task_id: str) -> None:
        now = self._clock()
        self._db.update_item(
            TableName=self._table,
            Key={"taskId": {"S": task_id}},
            UpdateExpression="SET #status = :expired, completedAt = :at, audit = list_append(audit, :entry) REMOVE publishingUntil",
            ConditionExpression="#status = :expiring",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={**_values(expired=EXPIRED, at=iso(now), expiring=EXPIRING), ":entry": _audit("expire", "app", now)},
        )

    def mark_done(self, task_id: str) -> None:
        now = self._clock()
        self._db.update_item(
            TableName=self._table,
            Key={"taskId": {"S": task_id}},
            UpdateExpression="SET #status = :done, completedAt = :at, audit = list_append(audit, :entry) REMOVE publishingUntil",
            ConditionExpression="#status = :answered",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={**_values(done=DONE, at=iso(now), answered=ANSWERED), ":entry": _audit("complete", "app", now)},
        )


class _StateChanged(Exception):
    """A holder's conditional update failed: the caller decides what that means."""


def _holding_key(reviewer: Reviewer) -> dict[str, Any]:
    return {"taskId": {"S": HOLDING + reviewer.sub}}
