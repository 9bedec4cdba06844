"""Which capture objects an event names: EventBridge ``Object Created`` or an S3 notification."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class CaptureObject:
    bucket: str
    key: str
    # S3 notifications URL-encode keys ("a b" -> "a+b"). SageMaker's capture keys never need
    # encoding, so the decoded key is tried only if the key as given does not exist.
    alternative_key: str | None = None
    # When S3 says it was created (the event's time), UTC; None if the event has no readable time.
    time: dt.datetime | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def capture_objects(event: Any) -> list[CaptureObject]:
    """The objects an event says were created. ``[]`` for S3's ``s3:TestEvent``.

    Raises ValueError for anything else: the caller parks the message with that reason.
    """
    if not isinstance(event, dict):
        raise ValueError(f"event is a JSON {type(event).__name__}, not an object")
    if event.get("Event") == "s3:TestEvent":  # sent once when a bucket notification is set up
        return []
    if event.get("source") == "aws.s3":
        if event.get("detail-type") != "Object Created":
            raise ValueError(f"S3 event of type {event.get('detail-type')!r}, not 'Object Created'")
        detail = event.get("detail") or {}
        bucket, key = (detail.get("bucket") or {}).get("name"), (detail.get("object") or {}).get("key")
        return [_object(bucket, key, time=event.get("time"))]
    if isinstance(event.get("Records"), list):
        objects = []
        for record in event["Records"]:
            if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
                raise ValueError(f"S3 notification {record.get('eventName')!r} is not ObjectCreated")
            s3 = record.get("s3") or {}
            objects.append(
                _object((s3.get("bucket") or {}).get("name"), (s3.get("object") or {}).get("key"), encoded=True, time=record.get("eventTime"))
            )
        return objects
    raise ValueError("not an S3 event: no source 'aws.s3' and no Records")


def _object(bucket: Any, key: Any, *, encoded: bool = False, time: Any = None) -> CaptureObject:
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise ValueError("S3 event without bucket name or object key")
    when = _time(time)
    if encoded:
        decoded = unquote_plus(key)
        return CaptureObject(bucket, decoded, time=when)
    decoded = unquote_plus(key)
    return CaptureObject(bucket, key, alternative_key=decoded if decoded != key else None, time=when)


def _time(value: Any) -> dt.datetime | None:
    """An event's ISO 8601 time as UTC; None when absent or unreadable (only profiling's hour uses it,
    and only for a key without Model Monitor's yyyy/mm/dd/hh part)."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
