"""S3 event notifications, as they arrive through SQS, turned into pipeline triggers.

Handles both shapes the reference material used:

* S3's own notification (``{"Records": [{"s3": {"bucket": {"name"}, "object": {"key", "eTag"}}}]}``),
  whose keys are URL-encoded (a space arrives as ``+``), and the ``s3:TestEvent``
  S3 sends when a notification configuration is first set (no Records: ignored);
* EventBridge's "Object Created" event (``detail.bucket.name``, ``detail.object.key``),
  whose keys are not encoded.

Messages may come wrapped in an SNS envelope (``{"Type": "Notification", "Message": "..."}``).

The event's version id (``versionId``; EventBridge's ``version-id``) is kept:
the run processes that upload, even if the key was deleted or overwritten
before the run started.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from clean_zone.keys import display_key, is_folder_marker


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    etag: str | None  # without quotes
    event_time: str | None
    version_id: str | None = None  # the upload's version, in a versioned bucket


def _etag(value: Any) -> str | None:
    """An event's ETag as S3's HEAD gives it (no quotes), or None."""
    return (str(value).strip('"') or None) if value else None


def _records(document: dict[str, Any]) -> Iterable[ObjectCreated]:
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        yield from _records(json.loads(document["Message"]))
        return
    for record in document.get("Records") or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        yield ObjectCreated(
            bucket=s3.get("bucket", {}).get("name", ""),
            key=unquote_plus(s3.get("object", {}).get("key", "")),
            etag=_etag(s3.get("object", {}).get("eTag")),
            event_time=record.get("eventTime"),
            version_id=s3.get("object", {}).get("versionId") or None,
        )
    detail = document.get("detail")
    if document.get("detail-type") == "Object Created" and isinstance(detail, dict):
        yield ObjectCreated(
            bucket=detail.get("bucket", {}).get("name", ""),
            key=detail.get("object", {}).get("key", ""),
            # AWS spells it "etag" in EventBridge events; some emulators "eTag".
            etag=_etag(detail.get("object", {}).get("etag") or detail.get("object", {}).get("eTag")),
            event_time=document.get("time"),
            version_id=detail.get("object", {}).get("version-id") or None,
        )


def parse_message_body(body: str) -> list[ObjectCreated]:
    """Objects created, from one SQS message body; [] for test events and anything else."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError):
        return []
    return list(_records(document)) if isinstance(document, dict) else []


def messages_from_asset_events(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The SQS messages an Asset watcher's trigger delivered (``extra`` holds the trigger payload)."""
    messages: list[dict[str, Any]] = []
    for event in events:
        extra = getattr(event, "extra", None) or {}
        payload = extra.get("payload", extra)
        batch = payload.get("message_batch") if isinstance(payload, dict) else None
        messages.extend(m for m in batch or [] if isinstance(m, dict))
    return messages


def objects_created(messages: Iterable[dict[str, Any]], bucket: str, prefix: str) -> list[ObjectCreated]:
    """Unique created objects under ``prefix`` of ``bucket``, folder markers left out, in order."""
    seen: set[tuple[str, str, str | None, str | None]] = set()
    found: list[ObjectCreated] = []
    for message in messages:
        for item in parse_message_body(str(message.get("Body", ""))):
            marker = (item.bucket, item.key, item.etag, item.version_id)
            if item.bucket != bucket or not item.key.startswith(prefix) or is_folder_marker(item.key):
                continue
            if marker not in seen:
                seen.add(marker)
                found.append(item)
    return found


def pipeline_run_id(bucket: str, key: str, upload_marker: str | None) -> str:
    """One file-pipeline run id per upload (``upload_marker``: its time, and its ETag where known).

    A sensor firing twice, or an event delivered twice, cannot start it twice.
    """
    digest = hashlib.sha256(f"{bucket}/{key}@{upload_marker}".encode()).hexdigest()[:16]
    stamp = re.sub(r"[^0-9T]", "", (upload_marker or "")[:19])
    return f"s3__{stamp}__{digest}"


def pipeline_note(key: str) -> str:
    """The note a file-pipeline run shows in the UI: the file it is for (a run id cannot say it)."""
    return f"file: {display_key(key)}"
