"""Where every dropped file ended: the count behind the fault suite's table.

One listing per place (not a request per file), then each dropped file is looked up by its key:

* in exactly one terminal place (processed, rejected, quarantine, duplicates): counted there;
* still in ``landing/`` or ``processing/`` (alone, or beside its terminal place while a move is
  half done): *waiting* (to be picked up, in flight, or to be resumed);
* nowhere: *lost*, unless the partner withdrew it (deleted it before its claim): *withdrawn*;
* in two terminal places at once: *misplaced*.

*Duplicated outputs* counts processed files whose normalised output has more versions than the
partner uploaded versions of the file: the bucket is versioned, so a file processed twice leaves
two versions of its output.
Alerts are read from the alerts inbox (the SQS queue subscribed to the failure topic), as a
person's inbox receives them, and matched to files by key. *Alerts delayed* counts those that
arrived late, sent again after SNS refused them (``clean_zone.undelivered_alerts``); *alerts
kept* those still waiting in the bucket for SNS to answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clean_zone import undelivered_alerts
from clean_zone.alerts import parse_sns_envelope
from clean_zone.config import Settings
from clean_zone.keys import OUTPUT_SUFFIX, Place, place_key, too_long_key
from clean_zone_tools.faults.workload import Outcome, WorkFile

WAITING = "waiting"
LOST = "lost"
MISPLACED = "misplaced"
WITHDRAWN = "withdrawn"
WATCHER_DAG = "clean_zone_landing_watcher"


@dataclass
class Census:
    files_in: int = 0
    places: Counter[str] = field(default_factory=Counter)
    wrong_place: list[str] = field(default_factory=list)  # ended somewhere other than expected
    duplicated_outputs: int = 0
    alerts_expected: int = 0
    alerts_sent: int = 0  # alert messages in the inbox
    files_alerted: int = 0  # distinct dropped files named by those alerts
    alerts_delayed: int = 0  # of the alerts in the inbox, those sent again after SNS refused them
    alerts_kept: int = 0  # refused by SNS and still waiting in the bucket to be sent again
    watcher_alerts: int = 0  # alerts from the landing watcher (an outage it could not see through)
    where: dict[str, str] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        """Nothing is left to happen on its own: every file terminal, lost or misplaced."""
        return self.places[WAITING] == 0

    def row(self) -> dict[str, Any]:
        return {
            "files in": self.files_in,
            "processed": self.places[Place.PROCESSED.value],
            "rejected": self.places[Place.REJECTED.value],
            "quarantined": self.places[Place.QUARANTINE.value],
            "duplicates": self.places[Place.DUPLICATES.value],
            "withdrawn": self.places[WITHDRAWN],
            "still waiting": self.places[WAITING],
            "lost": self.places[LOST],
            "misplaced": self.places[MISPLACED] + len(self.wrong_place),
            "duplicated outputs": self.duplicated_outputs,
            "alerts expected / sent": f"{self.alerts_expected} / {self.files_alerted}",
            "alerts delayed / still kept": f"{self.alerts_delayed} / {self.alerts_kept}",
        }


def _list_keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def _output_versions(s3: Any, bucket: str, prefix: str) -> Counter[str]:
    versions: Counter[str] = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Versions", []):
            if item["Key"].endswith(OUTPUT_SUFFIX):
                versions[item["Key"]] += 1
    return versions


def read_alerts(sqs: Any, queue_url: str, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drain the inbox into ``seen`` (alerts are consumed, as a person reads them)."""
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return seen
        for message in messages:
            seen.append(parse_sns_envelope(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _locate(settings: Settings, item: WorkFile, listed: dict[str, set[str]]) -> str:
    found = []
    for place, keys in listed.items():
        key = (
            settings.landing_prefix + item.rel
            if place == "landing"
            else place_key(settings, Place(place), item.rel)
        )
        if key in keys:
            found.append(place)
    rejected = place_key(settings, Place.REJECTED, "")
    if (
        not found
        and rejected + too_long_key(settings.landing_prefix + item.rel) in listed[Place.REJECTED.value]
    ):
        found.append(Place.REJECTED.value)
    terminal = [place for place in found if place not in ("landing", Place.PROCESSING.value)]
    if not found:
        return WITHDRAWN if item.withdrawn else LOST
    if len(terminal) > 1:
        return MISPLACED
    if len(found) > len(terminal):
        # Still in landing/ or processing/: not picked up, in flight (a move is a copy, then a
        # delete), or waiting to be resumed. The suite waits; what stays there is "still waiting".
        return WAITING
    return terminal[0]


def take(
    s3: Any, settings: Settings, files: Iterable[WorkFile], alerts: list[dict[str, Any]], alerts_expected: int
) -> Census:
    files = list(files)
    bucket = settings.bucket
    listed = {
        place: _list_keys(s3, bucket, prefix)
        for place, prefix in (
            ("landing", settings.landing_prefix),
            *((place.value, place_key(settings, place, "")) for place in Place),
        )
    }
    versions = _output_versions(s3, bucket, place_key(settings, Place.PROCESSED, ""))
    census = Census(
        files_in=len(files),
        alerts_expected=alerts_expected,
        alerts_sent=len(alerts),
        alerts_delayed=sum(
            1 for alert in alerts if alert.get("attributes", {}).get(undelivered_alerts.DELAYED_ATTRIBUTE)
        ),
        alerts_kept=len(_list_keys(s3, bucket, undelivered_alerts.folder(settings))),
    )
    alert_text = "\n".join(f"{alert.get('subject')}\n{alert.get('message')}" for alert in alerts)
    census.watcher_alerts = sum(1 for alert in alerts if WATCHER_DAG in str(alert.get("subject")))
    for item in files:
        where = _locate(settings, item, listed)
        census.places[where] += 1
        census.where[item.rel] = where
        if (
            where in {outcome.value for outcome in Outcome}
            and where != item.expected.value
            and not item.withdrawn
        ):
            census.wrong_place.append(f"{item.rel!r}: expected {item.expected.value}, found {where}")
        if where == Place.PROCESSED.value:
            output = place_key(settings, Place.PROCESSED, item.rel) + OUTPUT_SUFFIX
            if versions[output] > item.uploads:
                census.duplicated_outputs += 1
        if item.rel in alert_text:
            census.files_alerted += 1
    return census
