"""Micro-batches: files that land together, processed by one run in a few chunk tasks.

Plain Python (no Airflow); the DAG ``clean_zone_file_burst`` and the trigger
DAGs call it through :mod:`clean_zone.airflow_glue.burst_tasks`.

* :func:`group` cuts the waiting files (oldest first) into bursts: each takes
  the oldest file not yet taken and every later one that landed within
  ``window_seconds`` of it, up to ``max_files``. Every group is started at
  once, so files beyond N go to a following run without a new upload. A group
  of one file runs the single-file pipeline (the reference's shape).
* :func:`process_files` takes a chunk's files to their places. One try of a
  file (:func:`attempt_file`) is its whole way: claim (its own ledger record,
  exactly once), extension check, one read of the bytes that validates and
  normalises together, the failure generator, the outputs, the terminal place.
  A file whose generator fails, or that meets an S3 outage, is set aside for
  the retry policy's delay (the attempt numbers, delays and give-up of a failed
  task) while the chunk goes on with its other files; once due (oldest due
  first) it is tried again under the claim it kept (or
  claimed again, if the outage met the claim). The chunk sleeps only when nothing
  else is left, until the earliest due time: one file's backoff never holds the
  others. No file's trouble raises: each ends as an :class:`Outcome`, in the
  chunk's order. A file whose retries run out waits where its claim holds it
  (its landing key, claimed in place, or ``processing/``: see :mod:`clean_zone.lifecycle`);
  clearing the chunk's task resumes it, and the files already in a terminal
  place are only reported again.
  An outage is different from one file's flakiness: it is the endpoint's, and
  every file would meet it. Once :data:`OUTAGE_STREAK` tries in a row meet an
  S3 error, the chunk starts no new file and only retries the ones set aside,
  each at its due time; the first try that gets through resumes the chunk.
  If a retried file runs out of retries on the outage, every file not yet in
  its place waits with it (where its claim holds it, else ``landing/``):
  the digest pages one retry budget after the outage began, instead of after
  every file has spent its own slow retries on a dead endpoint.
* :class:`Digest` is the run's one alert: every bad file, its class and where
  it went, with the severity of the worst.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from clean_zone import processing
from clean_zone.backoff import Retrier, decide
from clean_zone.extensions import FileKind, check_file
from clean_zone.failure_generator import SimulatedOutage
from clean_zone.failures import DataQualityError, FailureClass, InvalidFileError, PipelineError, classify
from clean_zone.keys import Place, output_keys, place_key, reason_key
from clean_zone.lifecycle import Claim, ClaimOutcome, Lifecycle
from clean_zone.storage import ObjectMissing

# Where a file of a burst ended that a person must hear about, and how each is classed.
_WAITING_PLACES = {Place.PROCESSING.value, "landing"}
_BAD_PLACES = {Place.REJECTED.value, Place.QUARANTINE.value, *_WAITING_PLACES}
_PARTNER_CLASSES = {FailureClass.DATA_QUALITY.value, FailureClass.INVALID_INPUT.value}
# Tries in a row that met an S3 error before the chunk takes it for an outage (one is a blip).
OUTAGE_STREAK = 2


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
    place: str  # a Place value, "landing" (unclaimed, or claimed in place), or taken / gone / ignored
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


@dataclass(frozen=True)
class RetryLater:
    """A file the policy retries (its generator failed, or S3 did): set aside, not slept on."""

    delay_seconds: float
    attempt: int  # the number of its next attempt
    # Kept, not claimed again: a re-claim reads the landing key, where a newer upload may be by then.
    # None: the claim itself failed, and the next attempt claims.
    claim: Claim | None
    outage: bool = False  # S3 (or another endpoint) failed, not the file's own failure generator


def process_files(
    lifecycle: Lifecycle,
    arrivals: Sequence[Arrival],
    run_id: str,
    generate: Callable[[str, int], float],
    retriers: Sequence[Retrier],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[Outcome]:
    """Every file of a chunk to its place, interleaved (see the module docstring); outcomes in order.

    ``generate(label, attempt)`` is one try of the failure generator.
    """
    outcomes: dict[int, Outcome] = {}
    # (due time, position in the chunk, retry): the earliest due first, then the chunk's order.
    due: list[tuple[float, int, RetryLater]] = []
    streak = 0  # tries in a row that met an outage
    gave_up: Outcome | None = None  # a retried file ran out of retries on an outage

    def try_one(index: int, retry: RetryLater | None = None) -> None:
        nonlocal streak, gave_up
        outage = streak >= OUTAGE_STREAK
        result = attempt_file(
            lifecycle,
            arrivals[index],
            run_id,
            generate,
            retriers,
            attempt=retry.attempt if retry else 1,
            claim=retry.claim if retry else None,
        )
        if isinstance(result, RetryLater):
            heapq.heappush(due, (clock() + result.delay_seconds, index, result))
            streak = streak + 1 if result.outage else 0
            return
        outcomes[index] = result
        met_outage = result.waiting and _outage_class(result.failure_class, result.reason)
        if outage and met_outage:
            gave_up = result
        streak = streak + 1 if met_outage else 0

    new_files = iter(range(len(arrivals)))
    while gave_up is None:
        if due and due[0][0] <= clock():  # a due retry goes before the next new file
            _, earlier, retry = heapq.heappop(due)
            try_one(earlier, retry)
            continue
        if streak < OUTAGE_STREAK or not due:  # in an outage a new file only probes when no retry can
            index = next(new_files, None)
            if index is not None:
                try_one(index)
                continue
        if not due:
            break
        sleep(max(0.0, due[0][0] - clock()))  # nothing else to do: wait for the earliest due retry
    if gave_up is not None:
        for _, index, retry in due:
            outcomes[index] = _held(lifecycle, arrivals[index].key, retry.claim, gave_up)
        for index in new_files:
            outcomes[index] = _held(lifecycle, arrivals[index].key, None, gave_up)
    return [outcomes[index] for index in range(len(arrivals))]


def process_file(
    lifecycle: Lifecycle,
    arrival: Arrival,
    run_id: str,
    generate: Callable[[str, int], float],
    retriers: Sequence[Retrier],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """One file alone, start to end, its retries included (the large-file benchmark's way)."""
    return process_files(lifecycle, [arrival], run_id, generate, retriers, sleep, clock)[0]


def attempt_file(
    lifecycle: Lifecycle,
    arrival: Arrival,
    run_id: str,
    generate: Callable[[str, int], float],
    retriers: Sequence[Retrier],
    attempt: int = 1,
    claim: Claim | None = None,
) -> Outcome | RetryLater:
    """One try of one file: its :class:`Outcome`, or when to try again (``claim``: the one it kept)."""
    key = arrival.key
    try:
        if claim is None:
            outcome, claim = lifecycle.claim(key, claimant(run_id, key), etag=arrival.etag)
            if outcome is ClaimOutcome.KEY_TOO_LONG and claim is not None:
                return Outcome(
                    key,
                    Place.REJECTED.value,
                    "key_too_long",
                    FailureClass.INVALID_INPUT.value,
                    claim.location,
                )
            if outcome is ClaimOutcome.DUPLICATE:
                return Outcome(key, Place.DUPLICATES.value, "duplicate")
            if claim is None:
                return Outcome(key, outcome.value, outcome.value)
            if outcome is ClaimOutcome.RESUMED and (ended := _ended_already(lifecycle, claim)):
                return ended  # a cleared chunk: the file had ended already
        elif attempt > 1:  # a retry after an outage: the attempt before may have got further than it knew
            if ended := _ended_already(lifecycle, claim):
                return ended
            if _outputs_written_by(lifecycle, claim):  # only the move was left: do not write them twice
                location = lifecycle.finish(claim, Place.PROCESSED)
                return Outcome(claim.key, Place.PROCESSED.value, "processed", location=location)
        return _process_claimed(lifecycle, claim, generate, attempt)
    except Exception as error:  # one file's bug or outage must not stop the others of its chunk
        # The generator's failures and outages are retried with the same policy; a bug is not.
        decision = decide(retriers, error, attempt)
        if decision.retry:
            outage = _outage_class(classify(error), getattr(error, "reason", None))
            return RetryLater(decision.delay_seconds or 0.0, attempt + 1, claim, outage)
        return _waiting(lifecycle, key, claim, error)


def _ended_already(lifecycle: Lifecycle, claim: Claim) -> Outcome | None:
    """The outcome of a file an earlier try took to a terminal place; None while it waits for one."""
    ended = lifecycle.ended(claim)
    return None if ended is None else _already_done(lifecycle, claim, *ended)


def _outage_class(failure_class: str | None, reason: str | None) -> bool:
    """An endpoint's failure that every file would meet (the failure generator's is one file's)."""
    return failure_class == FailureClass.ENDPOINT.value and reason != SimulatedOutage.REASON


def _outputs_written_by(lifecycle: Lifecycle, claim: Claim) -> bool:
    """Whether this claim's outputs are in processed/ already (their summary, written last, names it)."""
    _, summary_key = output_keys(place_key(lifecycle.settings, Place.PROCESSED, claim.relative_key))
    try:
        return lifecycle.store.get_json(summary_key).get("run_id") == claim.run_id
    except ObjectMissing:
        return False


def _waiting(lifecycle: Lifecycle, key: str, claim: Claim | None, error: Exception) -> Outcome:
    """The file stays where it is (where its claim holds it, else landing/), to be resumed."""
    place, where = _waiting_place(lifecycle, key, claim)
    reason = getattr(error, "reason", type(error).__name__)
    return Outcome(key, place, reason, classify(error).value, where, str(error))


def _held(lifecycle: Lifecycle, key: str, claim: Claim | None, outage: Outcome) -> Outcome:
    """A file that waits with the one whose retries an outage used up (not tried against it again)."""
    place, where = _waiting_place(lifecycle, key, claim)
    detail = f"not tried again: S3 was still failing when {outage.key} ran out of retries ({outage.detail})"
    return Outcome(key, place, outage.reason, outage.failure_class, where, detail)


def _waiting_place(lifecycle: Lifecycle, key: str, claim: Claim | None) -> tuple[str, str]:
    if claim is None or claim.in_place:
        return "landing", lifecycle.store.url(key)
    return Place.PROCESSING.value, lifecycle.store.url(lifecycle.held_key(claim))


def _process_claimed(
    lifecycle: Lifecycle,
    claim: Claim,
    generate: Callable[[str, int], float],
    attempt: int,
) -> Outcome:
    checked = check_file(claim.bucket, claim.key, claim.size)
    if not checked.kind.is_csv:
        error = InvalidFileError(
            f"invalid file extension {checked.extension or '(none)'!r}: only .csv and .csv.gz are processed",
            reason="invalid_extension",
        )
        return _failed(claim.key, Place.REJECTED, lifecycle.fail_into(claim, Place.REJECTED, error))

    def run_generator(_stats: Any) -> dict[str, Any]:
        # After the one read that validated and normalised, before anything is written: a failure
        # leaves no output behind, and attempt_file sets the file aside or lets it wait, as the
        # retry policy says (the same decision as for an outage).
        return {"failure_generator_result": generate(f"{claim.run_id}|{claim.key}", attempt)}

    try:
        processing.write_outputs(
            lifecycle.store,
            lifecycle.store.iter_chunks(lifecycle.held_key(claim), version_id=claim.version_id),
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
            "were not retried). Files waiting (claimed, in landing/ or processing/) kept failing through "
            "every retry: once the service is healthy, clear the failed chunk task (process_chunk) to "
            "resume them; files already finished are not redone.",
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
