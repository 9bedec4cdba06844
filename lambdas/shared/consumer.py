"""One SQS consumer for every queue-fed Lambda of the loop: a handler module is its settings and its
record function; this module does the rest the same way for all of them.

- Powertools: one ``logger`` and one ``metrics`` (service and namespace from the function's
  ``POWERTOOLS_*`` variables), the Lambda context in every log line, metrics flushed per invocation.
- Settings are read from the environment once per execution environment, before the first record:
  a variable that is missing or malformed fails the invocation with its name (every record goes
  back to its queue) instead of being blamed on the records.
- Each record goes to the record function; partial batch responses (``ReportBatchItemFailures``)
  retry only the records that failed. A FIFO queue's batch stops at its first failure, so no
  record is processed ahead of one that failed before it.
- A record the function cannot process for a reason no retry can fix is parked on the function's
  dead-letter queue with the reason (its body unchanged, ready for an SQS redrive once the cause is
  fixed) and is not reported as a failure. What counts as such is decided here, once: see ``is_unfixable``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError

from lambdas.shared import aws

if TYPE_CHECKING:
    from functools import _lru_cache_wrapper

S = TypeVar("S")
T = TypeVar("T")

logger = Logger()
metrics = Metrics()

# A FIFO dead-letter queue (content-based deduplication) needs a message group for what is parked.
PARKED_GROUP = "parked"


class Unfixable(Exception):
    """A record that can never be processed as it is: parked with this message as its reason."""


class SettingsError(Exception):
    """The function's environment is wrong: a deployment fault, never a record's (so never parked)."""


# What a retry cannot fix: the record function's own verdict (``Unfixable``) and errors raised by
# what a record holds: ValueError (the modules' invalid-input errors, JSONDecodeError,
# UnicodeDecodeError, a number that does not parse), TypeError and KeyError (a field of the wrong type
# or missing). Anything else (ClientError with throttling or a denial, timeouts and OSError, the
# modules' RuntimeError for a partly refused batch send) may pass on a later try: SQS redelivers it.
UNFIXABLE = (Unfixable, ValueError, TypeError, KeyError)


def is_unfixable(error: Exception) -> bool:
    # botocore's endpoint and region errors are ValueErrors, but they say the client is wrong, not the record.
    return isinstance(error, UNFIXABLE) and not isinstance(error, (BotoCoreError, SettingsError))


class Environment:
    """The function's environment variables, read by name and type: a missing variable, or one that
    does not hold what its reader asks for, raises ``SettingsError`` naming it."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self._variables = variables

    def __getitem__(self, name: str) -> str:
        try:
            return self._variables[name]
        except KeyError:
            raise SettingsError(f"environment variable {name} is not set (the stack sets it on the function)") from None

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._variables.get(name, default)

    def integer(self, name: str, default: int | None = None) -> int:
        return self._parse(name, int, "a whole number", default)

    def number(self, name: str, default: float | None = None) -> float:
        return self._parse(name, float, "a number", default)

    def json_value(self, name: str) -> Any:
        return self._parse(name, json.loads, "JSON")

    def flag(self, name: str, default: bool) -> bool:
        """"true" or "false" (any case); ``default`` when unset or empty."""
        text = (self.get(name) or str(default)).strip().lower()
        if text not in ("true", "false"):
            raise SettingsError(f"environment variable {name} is {text!r}, not true or false")
        return text == "true"

    def names(self, name: str) -> tuple[str, ...]:
        """A JSON list of strings (label names, feature names, check types)."""
        value = self.json_value(name)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise SettingsError(f"environment variable {name} is {self[name]!r}, not a JSON list of strings")
        return tuple(value)

    def _parse(self, name: str, parse: Callable[[str], T], what: str, default: T | None = None) -> T:
        if default is not None and name not in self._variables:
            return default
        text = self[name]
        try:
            return parse(text)
        except ValueError:
            raise SettingsError(f"environment variable {name} is {text!r}, not {what}") from None


# Every settings reader made by ``from_environment``, so that one call clears them all: the local
# rehearsal runs every function of the app in one process, each with its own environment.
_READERS: list[_lru_cache_wrapper[Any]] = []


def clear_settings() -> None:
    """Forget every settings value read so far: the next call of each reader reads the environment again."""
    for reader in _READERS:
        reader.cache_clear()


def from_environment(read: Callable[[Environment], S]) -> _lru_cache_wrapper[S]:
    """``read`` made a cached function of no arguments: the environment is read on the first call only.

    A value that does not parse (``int("ten")``, JSON that is not) fails with the reader's name and
    the error, as a ``SettingsError``; ``cache_clear()`` reads it again (tests change the environment).
    """

    @cache
    def settings() -> S:
        try:
            return read(Environment(os.environ))
        except SettingsError:
            raise
        except (ValueError, TypeError, KeyError) as error:
            raise SettingsError(f"{read.__module__}.{read.__qualname__}: the environment holds a value it cannot use: {type(error).__name__}: {error}") from error

    _READERS.append(settings)
    return settings


def dead_letter_queue_url() -> str:
    # Read where it is used, not cached: parking is rare, and tests give each case its own queue.
    return Environment(os.environ)["DEAD_LETTER_QUEUE_URL"]


class SqsConsumer(Generic[S]):
    """The Lambda handler of one queue: ``record(record, settings, context)`` for each record."""

    def __init__(
        self,
        *,
        source: str,
        settings: Callable[[], S],
        record: Callable[[SQSRecord, S, Any], None],
        parked_metric: str,
        fifo: bool = False,
    ) -> None:
        self.source = source  # the parked message's "source" attribute
        self.settings = settings
        self.record = record
        self.parked_metric = parked_metric
        self.fifo = fifo
        # Powertools' FIFO processor fails every record after the first failure, so SQS redelivers
        # them in their order; the plain one goes on with the batch.
        self.processor = SqsFifoPartialProcessor() if fifo else BatchProcessor(event_type=EventType.SQS)
        self.handler = logger.inject_lambda_context(metrics.log_metrics(self._handle))

    def _handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.settings(), dead_letter_queue_url()  # a wrong environment fails here, before any record is touched
        return process_partial_response(event=event, record_handler=self._process, processor=self.processor, context=context)

    def _process(self, record: SQSRecord, lambda_context: Any = None) -> None:
        # Powertools passes the Lambda context to a record handler with a parameter of this name.
        try:
            self.record(record, self.settings(), lambda_context)
        except Exception as error:
            if not is_unfixable(error):
                raise  # the record fails alone (its FIFO followers with it) and SQS retries it
            # A bare Unfixable is the whole reason; any other error's name is part of it (KeyError: 'x').
            self.park(record, str(error) if type(error) is Unfixable else f"{type(error).__name__}: {error}")

    def park(self, record: SQSRecord, reason: str) -> None:
        logger.warning("record parked", extra={"reason": reason, "messageId": record.message_id, "source": self.source})
        metrics.add_metric(self.parked_metric, MetricUnit.Count, 1)
        group = PARKED_GROUP if self.fifo else None
        aws.park(aws.client("sqs"), dead_letter_queue_url(), record.body, reason, self.source, group_id=group)
