"""Failure alerts: what a person reads at 3 AM, and how it reaches SNS.

An :class:`Alert` is built from plain values (no Airflow), formatted into an
SNS subject (at most 100 characters, as SNS requires), a plain-text message
that an email subscriber can act on, and message attributes (severity,
failure class, DAG id, task id) that subscribers can filter on. The message
ends with the facts as JSON, like the reference state machine's message, for
machines. :func:`publish` never raises: an SNS outage is logged and must not
hide the task's own failure.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import quote

from clean_zone.failures import FailureClass
from clean_zone.keys import display_key

log = logging.getLogger(__name__)

SUBJECT_LIMIT = 100
# SNS refuses messages over 256 KiB; an exception's text can be any size (the full text is in the log).
ERROR_TEXT_LIMIT = 4000


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters; see the log]"


_GUIDANCE = {
    FailureClass.DATA_QUALITY: (
        "The file's content is not acceptable. It was quarantined with a reason file beside it; "
        "ask the partner for a corrected file. It was not retried: retrying cannot fix data."
    ),
    FailureClass.INVALID_INPUT: (
        "The file is not a kind this pipeline processes. It was moved to the rejected prefix with a "
        "reason file; if it should be processed, fix its name or extension and drop it again."
    ),
    FailureClass.ENDPOINT: (
        "An AWS endpoint or a downstream service kept failing through every retry. Check the service's "
        "health, then clear the failed task in the Airflow UI to resume from this point; the file "
        "waits, claimed, at the last S3 address above (where it landed, or the processing prefix)."
    ),
    FailureClass.DEPENDENCY: (
        "Something this step needs did not arrive within its retries. Check the upstream delivery, then "
        "clear the failed task to resume."
    ),
    FailureClass.CODE: (
        "This looks like a bug (not retried). Read the log, fix the code, then clear the failed task "
        "to resume; the file waits, claimed, at the last S3 address above."
    ),
}


# Reasons whose own words say more than their failure class (the ``reason`` of a PipelineError).
_REASON_TITLE = {
    "gone": "file withdrawn",
    "superseded": "file replaced by a newer upload",
}
_REASON_GUIDANCE = {
    "gone": (
        "The file was deleted after the pipeline claimed it (the partner withdrew it, or the endpoint "
        "lost it), so nothing was written for it and no reason file was left behind. Nothing to do "
        "unless it should have been processed: then ask the partner to upload it again."
    ),
    "superseded": (
        "A newer upload replaced the file before it could be read; the newer upload is processed by its "
        "own run. Nothing to do unless the earlier content mattered: then ask for it again."
    ),
}


def _s3_url(url: str | None) -> str:
    """An s3:// URL with its key quoted when spaces at its ends would be invisible."""
    if not url:
        return "unknown"
    bucket, _, key = url.removeprefix("s3://").partition("/")
    shown = display_key(key)
    return url if shown == key else f"s3://{bucket}/{shown}"


@dataclass(frozen=True)
class Alert:
    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    max_tries: int  # total tries allowed, the first included
    failure_class: FailureClass
    error_type: str
    error: str
    log_url: str
    s3_object: str | None = None  # where the file came from
    s3_location: str | None = None  # where it is now, if it moved
    reason: str | None = None  # the error's short reason code (``gone``, ``invalid_extension``...)

    @property
    def severity(self) -> str:
        # Data problems need a partner's action; the rest need ours now.
        return (
            "warning"
            if self.failure_class in {FailureClass.DATA_QUALITY, FailureClass.INVALID_INPUT}
            else "critical"
        )

    @property
    def retried(self) -> bool:
        """Whether this task could be tried again (a data problem, or a task with one try, is not)."""
        return self.failure_class.retryable and self.max_tries > 1

    def subject(self) -> str:
        title = _REASON_TITLE.get(self.reason or "", f"{self.failure_class} failure")
        text = f"[{self.severity.upper()}] {title}: {self.dag_id}.{self.task_id}"
        # SNS subjects must be printable ASCII on one line.
        text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
        return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 3] + "..."

    def message(self) -> str:
        lines = [
            f"Airflow task failed: {self.dag_id}.{self.task_id}",
            "",
            f"Run:           {self.run_id}",
            f"Try:           {f'{self.try_number} of {self.max_tries}' if self.retried else 'not retried'}",
            f"Failure class: {self.failure_class} "
            f"({'retried with backoff' if self.retried else 'not retried'})",
            f"S3 object:     {_s3_url(self.s3_object)}",
        ]
        if self.s3_location and self.s3_location != self.s3_object:
            lines.append(f"Now at:        {_s3_url(self.s3_location)}")
        lines += [
            f"Error:         {self.error_type}: {_clip(self.error, ERROR_TEXT_LIMIT)}",
            f"Log:           {self.log_url}",
            "",
            f"What to do: {_REASON_GUIDANCE.get(self.reason or '', _GUIDANCE[self.failure_class])}",
            "",
            "Details (JSON):",
            json.dumps(self.to_dict(), sort_keys=True),
        ]
        return "\n".join(lines)

    def attributes(self) -> dict[str, dict[str, str]]:
        values = {
            "severity": self.severity,
            "failure_class": self.failure_class.value,
            "dag_id": self.dag_id,
            "task_id": self.task_id,
        }
        return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error"] = _clip(self.error, ERROR_TEXT_LIMIT)
        data["failure_class"] = self.failure_class.value
        data["severity"] = self.severity
        return data


class Publishable(Protocol):
    """What :func:`publish` needs: an :class:`Alert`, or a burst run's digest (``clean_zone.burst``)."""

    def subject(self) -> str: ...

    def message(self) -> str: ...

    def attributes(self) -> dict[str, dict[str, str]]: ...


def task_log_url(
    base_url: str, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
) -> str:
    """The task-instance log page in Airflow 3's UI (the same path MWAA's UI serves)."""
    mapped = f"/mapped/{map_index}" if map_index >= 0 else ""
    return (
        f"{base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
        f"/tasks/{quote(task_id)}{mapped}?try_number={try_number}"
    )


def publish(sns_client: Any, topic_arn: str, alert: Publishable) -> str | None:
    """Publish ``alert``; return the message id, or None (logged) if SNS failed."""
    try:
        response = sns_client.publish(
            TopicArn=topic_arn,
            Subject=alert.subject(),
            Message=alert.message(),
            MessageAttributes=alert.attributes(),
        )
    except Exception:
        # An SNS outage must never crash the callback or mask the task's own failure.
        log.exception(
            "could not publish the failure alert to %s; the alert was:\n%s", topic_arn, alert.message()
        )
        return None
    return str(response.get("MessageId"))


def parse_sns_envelope(body: str) -> dict[str, Any]:
    """An SNS notification as an SQS subscriber receives it: subject, message, attributes."""
    envelope = json.loads(body)
    return {
        "subject": envelope.get("Subject"),
        "message": envelope.get("Message", ""),
        "attributes": {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()},
    }
