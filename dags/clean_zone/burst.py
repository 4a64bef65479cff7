"""Micro-batches: files that land together, processed by one run in a few chunk tasks.

Plain Python (no Airflow); the DAG ``clean_zone_file_burst`` and the trigger
DAGs call it through :mod:`clean_zone.airflow_glue.burst_tasks`.

* :func:`group` cuts the waiting files (oldest first) into bursts: each takes
  the oldest file not yet taken and every later one that landed within
  ``window_seconds`` of it, up to ``max_files``. Every group is started at
  once, so files beyond N go to a following run without a new upload. A group
  of one file runs the single-file pipeline (the reference's shape).
* :func:`process_file` is one file's whole way through a burst: claim (its own
  ledger record, exactly once), extension check, one read of the bytes that
  validates and normalises together, the failure generator retried in
  process with the retry policy's delays, the outputs, the terminal place. It
  never raises for one file's trouble: it returns an :class:`Outcome`, so the
  other files of its chunk go on. A file whose retries run out stays in
  ``processing/``; clearing the chunk's task resumes it, and the files already
  in a terminal place are only reported again.
* :class:`Digest` is the run's one alert: every bad file, its class and where
  it went, with the severity of the worst.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from clean_zone import processing
from clean_zone.backoff import Retrier, decide
from clean_zone.extensions import FileKind, check_file
from clean_zone.failures import DataQualityError, FailureClass, InvalidFileError, PipelineError, classify
from clean_zone.keys import Place, place_key, reason_key
from clean_zone.lifecycle import Claim, ClaimOutcome, Lifecycle

# Where a file of a burst ended that a person must hear about, and how each is classed.
_WAITING_PLACES = {Place.PROCESSING.value, "landing"}
_BAD_PLACES = {Place.REJECTED.value, Place.QUARANTINE.value, *_WAITING_PLACES}
_PARTNER_CLASSES = {FailureClass.DATA_QUALITY.value, FailureClass.INVALID_INPUT.value}


@dataclass(frozen=True)
class Arrival:
    """A file waiting in landing/, as a trigger saw it."""

    bucket: str
    key: str
    etag: str | None
    landed: str | None  # ISO 8601 upload (or event) time
    marker: str | None = None  # what tells this upload from another of the same key (default: landed)
    version_id: str | None = None  # the event's version: that upload is processed, not a later one

    @property
    def upload_marker(self) -> str | None:
        return self.marker or self.landed

    def to_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = {"key": self.key, "etag": self.etag}
        if self.version_id:
            conf["version_id"] = self.version_id
        return conf


def _seconds(stamp: str | None) -> float:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else 0.0
    except ValueError:
        return 0.0


def group(arrivals: Iterable[Arrival], max_files: int, window_seconds: float) -> list[list[Arrival]]:
    """Bursts of at most ``max_files``, each within ``window_seconds`` of its first, oldest first."""
    ordered = sorted(arrivals, key=lambda a: (_seconds(a.landed), a.key))
    groups: list[list[Arrival]] = []
    for arrival in ordered:
        current = groups[-1] if groups else None
        if (
            current is not None
            and len(current) < max_files
            and current[0].bucket == arrival.bucket
            and _seconds(arrival.landed) - _seconds(current[0].landed) <= window_seconds
        ):
            current.append(arrival)
        else:
            groups.append([arrival])
    return groups


def burst_run_id(files: Sequence[Arrival]) -> str:
    """One run id per set of uploads: a trigger seeing the same burst twice cannot start it twice."""
    text = "\n".join(f"{a.bucket}/{a.key}@{a.etag}@{a.upload_marker}" for a in files)
    stamp = "".join(ch for ch in (files[0].landed or "")[:19] if ch.isdigit() or ch == "T")
    return f"burst__{stamp}__{len(files)}__{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def chunked[T](items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def claimant(run_id: str, key: str) -> str:
    """The ledger's owner of one file of a burst run: the run, and the file (each has its own record)."""
    return f"{run_id}#{key}"


@dataclass(frozen=True)
class Outcome:
    """Where one file of a burst ended, and why."""

    key: str
    place: str  # a Place value, "landing" (never claimed), or taken / gone / ignored (not ours)
    reason: str
    failure_class: str | None = None
    location: str | None = None
    detail: str = ""

    @property
    def bad(self) -> bool:
        return self.place in _BAD_PLACES

    @property
    def waiting(self) -> bool:
        """Not in a terminal place: retries ran out; it is resumed by clearing its chunk."""
        return self.place in _WAITING_PLACES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


def with_retries[T](
    attempt: Callable[[int], T], retriers: Sequence[Retrier], sleep: Callable[[float], None] = time.sleep
) -> T:
    """Call ``attempt(n)`` (n from 1) until it succeeds or the retriers say stop (then re-raise).

    The same decision, and the same delays, as the retry policy gives a failed task.
    """
    number = 1
    while True:
        try:
            return attempt(number)
        except Exception as error:
            decision = decide(retriers, error, number)
            if not decision.retry:
                raise
            sleep(decision.delay_seconds or 0.0)
            number += 1


def _failed(key: str, place: Place, error: PipelineError) -> Outcome:
    return Outcome(key, place.value, error.reason, error.failure_class.value, error.location, str(error))


def _already_done(lifecycle: Lifecycle, claim: Claim, place: Place, where: str) -> Outcome:
    """A file a previous try of this chunk finished: report it as it ended."""
    location = lifecycle.store.url(where)
    if place is Place.PROCESSED:
        return Outcome(claim.key, place.value, "processed", location=location)
    sidecar = reason_key(lifecycle.settings, place, claim.relative_key)
    reason = lifecycle.store.get_json(sidecar) if lifecycle.store.head(sidecar) else {}
    return Outcome(
        claim.key,
        place.value,
        str(reason.get("reason", place.value)),
        reason.get("failure_class"),
        location,
        str(reason.get("detail", "")),
    )


def process_file(
    lifecycle: Lifecycle,
    arrival: Arrival,
    run_id: str,
    generate: Callable[[str, int], float],
    retriers: Sequence[Retrier],
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """One file of a burst, start to end; see the module docstring. ``generate(label, attempt)``
    is one try of the failure generator."""
    key = arrival.key
    owner = claimant(run_id, key)
    claim: Claim | None = None
    try:
        outcome, claim = lifecycle.claim(key, owner, etag=arrival.etag)
        if outcome is ClaimOutcome.KEY_TOO_LONG and claim is not None:
            return Outcome(
                key, Place.REJECTED.value, "key_too_long", FailureClass.INVALID_INPUT.value, claim.location
            )
        if outcome is ClaimOutcome.DUPLICATE:
            return Outcome(key, Place.DUPLICATES.value, "duplicate")
        if claim is None:
            return Outcome(key, outcome.value, outcome.value)
        place, where = lifecycle.locate(claim.relative_key)
        if place is not None and place is not Place.PROCESSING:
            return _already_done(lifecycle, claim, place, where)
        return _process_claimed(lifecycle, claim, generate, retriers, sleep)
    except Exception as error:  # one file's bug or outage must not stop the others of its chunk
        return _waiting(lifecycle, key, claim, error)


def _waiting(lifecycle: Lifecycle, key: str, claim: Claim | None, error: Exception) -> Outcome:
    """The file stays where it is (processing/ once claimed, else landing/), to be resumed."""
    place, where = "landing", key
    if claim is not None:
        place, where = (
            Place.PROCESSING.value,
            place_key(lifecycle.settings, Place.PROCESSING, claim.relative_key),
        )
    reason = getattr(error, "reason", type(error).__name__)
    return Outcome(key, place, reason, classify(error).value, lifecycle.store.url(where), str(error))


def _process_claimed(
    lifecycle: Lifecycle,
    claim: Claim,
    generate: Callable[[str, int], float],
    retriers: Sequence[Retrier],
    sleep: Callable[[float], None],
) -> Outcome:
    checked = check_file(claim.bucket, claim.key, claim.size)
    if not checked.kind.is_csv:
        error = InvalidFileError(
            f"invalid file extension {checked.extension or '(none)'!r}: only .csv and .csv.gz are processed",
            reason="invalid_extension",
        )
        return _failed(claim.key, Place.REJECTED, lifecycle.fail_into(claim, Place.REJECTED, error))

    def run_generator(_stats: Any) -> dict[str, Any]:
        # After the one read that validated and normalised, before anything is written: a file
        # whose retries run out leaves no output behind and waits in processing/.
        result = with_retries(
            lambda attempt: generate(f"{claim.run_id}|{claim.key}", attempt), retriers, sleep
        )
        return {"failure_generator_result": result}

    source = place_key(lifecycle.settings, Place.PROCESSING, claim.relative_key)
    try:
        processing.write_outputs(
            lifecycle.store,
            lifecycle.store.iter_chunks(source),
            place_key(lifecycle.settings, Place.PROCESSED, claim.relative_key),
            gzipped=checked.kind is FileKind.CSV_GZIP,
            fields={"source": f"s3://{claim.bucket}/{claim.key}", "run_id": claim.run_id},
            before_upload=run_generator,
            max_inflated_bytes=lifecycle.settings.max_inflated_bytes,
        )
    except DataQualityError as error:
        return _failed(claim.key, Place.QUARANTINE, lifecycle.fail_into(claim, Place.QUARANTINE, error))
    location = lifecycle.finish(claim, Place.PROCESSED)
    return Outcome(claim.key, Place.PROCESSED.value, "processed", location=location)


@dataclass(frozen=True)
class Digest:
    """One alert for a burst run's bad files (the same interface as :class:`clean_zone.alerts.Alert`)."""

    dag_id: str
    run_id: str
    files: int  # how many files the run handled
    bad: tuple[Outcome, ...]
    log_url: str

    @property
    def severity(self) -> str:
        partner_only = all(o.failure_class in _PARTNER_CLASSES for o in self.bad)
        return "warning" if partner_only else "critical"

    def subject(self) -> str:
        waiting = sum(o.waiting for o in self.bad)
        text = (
            f"[{self.severity.upper()}] {len(self.bad)} of {self.files} files need attention: {self.dag_id}"
        )
        if waiting:
            text += f" ({waiting} waiting)"
        return text[:100]

    def message(self) -> str:
        lines = [
            f"Burst run {self.run_id} of {self.dag_id}:",
            f"{len(self.bad)} of {self.files} files need attention.",
            f"Log: {self.log_url}",
            "",
            "file | class | reason | now at",
        ]
        lines += [
            f"{o.key} | {o.failure_class or '-'} | {o.reason} | {o.location or o.place}" for o in self.bad
        ]
        lines += [
            "",
            "What to do: files in quarantine/ or rejected/ need a corrected file from the partner (they "
            "were not retried). Files waiting in processing/ kept failing through every retry: once the "
            "service is healthy, clear the failed chunk task (process_chunk) to resume them; files already "
            "finished are not redone.",
            "",
            "Details (JSON):",
            json.dumps([o.to_dict() for o in self.bad], sort_keys=True)[:200_000],
        ]
        return "\n".join(lines)

    def attributes(self) -> dict[str, dict[str, str]]:
        classes = sorted({o.failure_class or "unknown" for o in self.bad})
        values = {
            "severity": self.severity,
            "failure_class": ",".join(classes),
            "dag_id": self.dag_id,
            "task_id": "digest",
        }
        return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}
