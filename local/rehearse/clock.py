"""Simulated time for a rehearsal: every ``datetime.now``, ``time.time`` and ``time.gmtime`` in this
process (our handlers, Powertools, moto's own timestamps) reads the rehearsal's clock.

The handlers read the wall clock, not their events, for what depends on the day or the hour: the
review budget's day, the label windows, the watchdog's "overdue", the retraining lock's age, moto's
LastModified and execution start times. Patching each call site would miss some; time-machine
(pinned in requirements-dev.txt) replaces the C-level clock functions once, so every caller, ours
or a library's, sees the same simulated instant. The clock does not tick by itself (``tick=False``):
it stands still while a handler runs and moves only when the rehearsal moves it, so every run
sees the same simulated times. ``time.monotonic`` and ``time.perf_counter`` are left alone (time-machine does not
patch them): waits and timeouts inside moto and our own progress timings measure real time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from types import TracebackType

import time_machine

UTC = dt.UTC
# A fixed start, so two rehearsals of the same traffic write the same timeline (a Monday, 01:00 UTC):
# the daily runs judge the previous UTC day shortly after midnight (model quality at 00:20), so a
# 24-hour run from 01:00 ends after the runs over its own first day; from 00:00 it would end first.
DEFAULT_START = dt.datetime(2026, 11, 23, 1, tzinfo=UTC)


class ClockError(ValueError):
    """The rehearsal asked the clock to go back in time."""


class SimulatedClock:
    """The process's clock pinned to ``start`` while active; ``advance_to`` moves it forwards only."""

    def __init__(self, start: dt.datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ClockError(f"the simulated start must be timezone-aware (UTC), got {start.isoformat()}")
        self._now = start.astimezone(UTC)
        self._travel: time_machine.travel | None = None
        self._coordinates: time_machine.Coordinates | None = None

    @property
    def now(self) -> dt.datetime:
        return self._now

    @property
    def active(self) -> bool:
        return self._coordinates is not None

    def start(self) -> SimulatedClock:
        if self._coordinates is None:
            self._travel = time_machine.travel(self._now, tick=False)
            self._coordinates = self._travel.start()
        return self

    def stop(self) -> None:
        if self._travel is not None:
            self._travel.stop()
        self._travel = self._coordinates = None

    def advance_to(self, when: dt.datetime) -> dt.datetime:
        """Move the clock to ``when`` (not earlier than now: time in a rehearsal only goes forwards)."""
        if when.tzinfo is None:
            raise ClockError(f"simulated times are timezone-aware (UTC), got {when.isoformat()}")
        when = when.astimezone(UTC)
        if when < self._now:
            raise ClockError(f"the clock is at {self._now.isoformat()} and cannot go back to {when.isoformat()}")
        self._now = when
        if self._coordinates is not None:
            self._coordinates.move_to(when)
        return when

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        return self.advance_to(self._now + delta)

    def __enter__(self) -> SimulatedClock:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def instant_waits() -> Iterator[None]:
    """What waits for the clock to move returns at once while the clock stands still.

    - Step Functions ``Wait`` states (the retraining's endpoint poll): moto's interpreter waits on a
      real event, then checks ``time.time()`` to see whether the wait is over; with the clock
      standing still it never is, and it would wait again for ever. The rehearsal does not model how
      long an endpoint update takes, so a Wait ends at once;
    - SQS long polls (``WaitTimeSeconds``, e.g. the review budget's nightly redrive): moto polls until
      ``time.time()`` passes the wait, which it never does here. Nothing can arrive in a queue while
      its only caller waits (one process, one call at a time), so the poll answers at once with what
      the queue holds, as a short poll does."""
    from moto.sqs.models import SQSBackend
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    wait, receive = WaitFunction._wait_interval, SQSBackend.receive_message

    def short_poll(self: SQSBackend, queue_name: str, count: int, wait_seconds_timeout: int, *args: object, **kwargs: object) -> object:
        return receive(self, queue_name, count, 0, *args, **kwargs)

    WaitFunction._wait_interval = lambda self, env, wait_seconds: None
    SQSBackend.receive_message = short_poll
    try:
        yield
    finally:
        WaitFunction._wait_interval, SQSBackend.receive_message = wait, receive


def hour_starts(start: dt.datetime, hours: int) -> list[dt.datetime]:
    """The start of each simulated hour of a rehearsal of ``hours`` hours."""
    return [start + dt.timedelta(hours=hour) for hour in range(hours)]
