"""Alerts SNS refused: kept in the bucket, counted, and sent again once SNS answers.

An SNS outage (or throttling, or a topic policy gone wrong) must not hide a failure from the
person it was meant for. When :func:`clean_zone.alerts.publish` cannot send an alert, the
notifier keeps it with :func:`keep`, as one JSON document per alert under
``<state_prefix>alerts/undelivered/`` in the clean-zone bucket (subject, message, attributes,
the topic, when it was due and why it was refused). There it is:

* visible: ``scripts/dev status`` counts them, the fault suite's census counts them, and each
  is a readable document in the bucket;
* sent again: the ``clean_zone_alert_redelivery`` DAG calls :func:`redeliver` every
  ``clean_zone_alert_redelivery_minutes``; each alert goes out with a first line saying when it
  was due and that it was delayed, and its document is deleted only after SNS took it. While
  SNS still refuses, the rest wait for the next run, oldest first.

If the bucket cannot take the document either, the alert's whole text is in the task log
(``publish`` logs it), which is the last place left.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clean_zone.alerts import Publishable, publish
from clean_zone.clock import now_iso
from clean_zone.config import Settings
from clean_zone.storage import ObjectStore

log = logging.getLogger(__name__)

FOLDER = "alerts/undelivered/"
DELAYED_ATTRIBUTE = "delayed"


def folder(settings: Settings) -> str:
    return f"{settings.state_prefix}{FOLDER}"


@dataclass(frozen=True)
class KeptAlert:
    """An alert as kept in the bucket, publishable again with a line saying it is late."""

    subject_text: str
    message_text: str
    attribute_values: dict[str, dict[str, str]]
    due_at: str

    def subject(self) -> str:
        return self.subject_text

    def message(self) -> str:
        return (
            f"(Delayed: this alert was due at {self.due_at}, when SNS refused it; it is sent now "
            "that SNS answers again.)\n\n" + self.message_text
        )

    def attributes(self) -> dict[str, dict[str, str]]:
        return {**self.attribute_values, DELAYED_ATTRIBUTE: {"DataType": "String", "StringValue": "true"}}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> KeptAlert:
        return cls(
            subject_text=str(document["subject"]),
            message_text=str(document["message"]),
            attribute_values=dict(document.get("attributes") or {}),
            due_at=str(document.get("due_at", "unknown")),
        )


def keep(store: ObjectStore, settings: Settings, alert: Publishable) -> str:
    """Keep an alert SNS refused; return the document's key. Raises what the bucket raises."""
    message = alert.message()
    digest = hashlib.sha256(message.encode()).hexdigest()[:16]
    # Time first, so a listing is oldest first and redelivery keeps the order alerts were due in.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    key = f"{folder(settings)}{stamp}-{digest}.json"
    document = {
        "subject": alert.subject(),
        "message": message,
        "attributes": alert.attributes(),
        "topic_arn": settings.failure_topic_arn,
        "due_at": now_iso(),
        "why": "SNS refused the publish (the task log has the error)",
    }
    store.put_json(key, document)
    log.error("the alert SNS refused is kept at %s; it is sent again when SNS answers", store.url(key))
    return key


def pending(store: ObjectStore, settings: Settings) -> list[str]:
    """Keys of the alerts waiting to be sent again, oldest first."""
    return [item.key for item in store.list_keys(folder(settings)) if item.key.endswith(".json")]


@dataclass(frozen=True)
class Redelivery:
    sent: int
    waiting: int  # still refused (or not tried after a refusal), left for the next run

    def __str__(self) -> str:
        return f"{self.sent} kept alert(s) sent again, {self.waiting} still waiting"


def redeliver(store: ObjectStore, settings: Settings, sns_client: Any) -> Redelivery:
    """Send the kept alerts again, oldest first; stop at the first refusal (SNS is still down)."""
    keys = pending(store, settings)
    for index, key in enumerate(keys):
        # To the topic configured now: if the topic itself was wrong, fixing the setting is the cure.
        alert = KeptAlert.from_document(store.get_json(key))
        if publish(sns_client, settings.failure_topic_arn, alert) is None:
            return Redelivery(sent=index, waiting=len(keys) - index)
        store.delete(key)
    return Redelivery(sent=len(keys), waiting=0)
