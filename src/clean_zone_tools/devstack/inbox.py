"""The failure alerts as the inbox queue (SQS, subscribed to the SNS failure topic) holds them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clean_zone.alerts import parse_sns_envelope


@dataclass(frozen=True)
class InboxMessage:
    """One alert as the inbox queue holds it."""

    subject: str | None
    message: str
    attributes: dict[str, Any]
    timestamp: str | None

    @classmethod
    def from_sqs_body(cls, body: str) -> InboxMessage:
        """An SNS envelope (the usual delivery) or, with raw delivery, the message itself."""
        try:
            envelope = json.loads(body)
        except ValueError:
            envelope = None
        if not (isinstance(envelope, dict) and "Message" in envelope):
            return cls(None, body, {}, None)
        alert = parse_sns_envelope(body)
        return cls(alert["subject"], str(alert["message"]), alert["attributes"], envelope.get("Timestamp"))

    def as_text(self, number: int) -> str:
        lines = [f"[{number}] {self.subject or '(no subject)'}"]
        if self.timestamp:
            lines.append(f"    sent {self.timestamp}")
        if self.attributes:
            lines.append("    " + ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items())))
        lines.append("")
        lines.extend(f"    {line}".rstrip() for line in self.message.splitlines())
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "message": self.message, "attributes": self.attributes,
                "timestamp": self.timestamp}


def receive_all(sqs: Any, queue_url: str, wait: float) -> Iterator[dict[str, Any]]:
    """Every message now in the queue; if there is none, wait up to ``wait`` s for some."""
    deadline = time.monotonic() + wait
    received_any = False
    while True:
        remaining = deadline - time.monotonic()
        poll = 0 if received_any or remaining <= 0 else min(20, max(1, int(remaining)))
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=poll,
            # Hidden while this command runs, so the loop does not see a message twice.
            VisibilityTimeout=60, MessageAttributeNames=["All"],
        ).get("Messages", [])
        if messages:
            received_any = True
            yield from messages
        elif received_any or time.monotonic() >= deadline:
            return


def settle(sqs: Any, queue_url: str, messages: list[dict[str, Any]], *, keep: bool) -> None:
    """Delete the received messages, or (``keep``) make them visible again at once."""
    handles = [message["ReceiptHandle"] for message in messages]
    for start in range(0, len(handles), 10):
        batch = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + 10])]
        if keep:
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url, Entries=[{**entry, "VisibilityTimeout": 0} for entry in batch]
            )
        else:
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=batch)
