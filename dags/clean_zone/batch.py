"""Manifest-driven batches: take a manifest, verify every listed file, then process or quarantine the batch.

The plain-Python half of ``clean_zone_manifest_batch`` (the DAG wires the
steps; the task callables at the end of this module are its thin glue).

Where things are (``<slug>`` is the DAG run id made key-safe)::

    manifests/<name>                          a partner's manifest, waiting
    batches/<batch_id>/<key>                  the files it lists (keys relative to this prefix)
    processing/manifests/<slug>/<name>        the manifest while a run works on it
    processed/batches/<batch_id>/manifest.json
    processed/batches/<batch_id>/summary.json     written last: the batch is complete
    processed/batches/<batch_id>/files/<key>      each source file, with <key>.normalized.csv
                                                  and <key>.summary.json beside it
    quarantine/manifests/<slug>/<name>        a refused manifest, report.json beside it
    quarantine/batches/<batch_id>/<slug>/     a refused batch: manifest.json, report.json, files/<key>
    duplicates/manifests/<batch_id>/<slug>/   a re-uploaded manifest of a batch already taken
    _state/batch-runs/<slug>.json             what a run took, and how it ended
    _state/batches/<batch_id>.json            the batch claim: which run processes it

Exactly once: a batch is claimed with a conditional put (``If-None-Match``)
on ``_state/batches/<batch_id>.json``; a manifest whose batch id another run
has claimed is set aside as a duplicate. A refused batch releases its claim,
so the partner can fix the files and upload the manifest again. Every step is
safe to re-run: a run finds its own record, its own claim, and files wherever
an earlier try left them.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from clean_zone import aws, config, csv_validation, failure_generator, manifest
from clean_zone.config import Settings
from clean_zone.extensions import FileKind, check_file
from clean_zone.failures import DataQualityError, PipelineError
from clean_zone.hashing import ChecksumFormatError, base64_to_hex, hash_chunks, new_hasher
from clean_zone.manifest import FileEntry, Manifest, ManifestError, Problem, Reason
from clean_zone.storage import ObjectInfo, ObjectMissing, ObjectStore

log = logging.getLogger(__name__)

# Spill processed output to disk past this size: constant memory for any file size.
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
# Moves of a batch's files run side by side; S3 copies are independent requests.
MOVE_WORKERS = 8
# An alert names this many problems; the report in S3 names them all.
PROBLEMS_IN_MESSAGE = 20


class Outcome(StrEnum):
    PROCESSED = "processed"
    QUARANTINED = "quarantined"  # the manifest was fine; the files were not
    REFUSED = "refused"  # the manifest itself was bad
    DUPLICATE = "duplicate"  # the batch id was already taken by another run


class FileStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    SIZE_MISMATCH = "size_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"


class BatchRefusedError(DataQualityError):
    """A batch that was quarantined (its files failed verification or processing)."""


class BatchStateError(PipelineError):
    """The batch's own records contradict each other: needs a person (not retried)."""


def now_iso(epoch: float | None = None) -> str:
    moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="seconds")


def run_slug(run_id: str) -> str:
    """A run id as a key segment: readable, and a hash keeps two ids from ever colliding."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-.")[:80]
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


# --- records passed between tasks (XCom) -----------------------------------------------------------
@dataclass(frozen=True)
class TakenManifest:
    """A manifest a run has taken. As XCom, ``bucket``/``key``/``location`` feed the failure alert."""

    bucket: str
    key: str  # where the partner put it
    held_key: str  # where it waits while the run works
    run_id: str
    taken_at: float  # epoch seconds: the late-file window starts here
    outcome: str | None = None
    location: str = ""  # s3:// URL of where it is now
    reason: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TakenManifest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class FileCheck:
    """The verification of one listed file."""

    key: str  # relative to the batch prefix, as listed
    object_key: str
    status: FileStatus
    expected_size: int
    actual_size: int | None = None
    algorithm: str = ""
    expected_checksum: str = ""
    actual_checksum: str | None = None
    method: str = ""  # how the checksum was known: s3_checksum, etag_md5, streamed
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is FileStatus.OK

    def describe(self) -> str:
        if self.status is FileStatus.MISSING:
            return f"missing: {self.key}"
        if self.status is FileStatus.SIZE_MISMATCH:
            return f"size_mismatch: {self.key} (listed {self.expected_size} bytes, found {self.actual_size})"
        if self.status is FileStatus.CHECKSUM_MISMATCH:
            listed, found = self.expected_checksum[:12], (self.actual_checksum or "?")[:12]
            return f"checksum_mismatch: {self.key} ({self.algorithm} listed {listed}..., found {found}...)"
        return f"ok: {self.key}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileCheck:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        values["status"] = FileStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True)
class Arrival:
    """What the late-file wait saw when it stopped."""

    expected: int
    missing: list[str]
    waited_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FileResult:
    """The processing of one verified file."""

    key: str
    source: str
    ok: bool
    reason: str = ""
    detail: str = ""
    rows: int = 0
    bytes: int = 0
    output: str = ""
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# --- where things go ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Every key the batch pipeline reads or writes, from the settings' prefixes."""

    settings: Settings

    def files_prefix(self, batch_id: str) -> str:
        return manifest.batch_prefix(self.settings.batches_prefix, batch_id)

    def object_key(self, batch_id: str, entry: FileEntry) -> str:
        return self.files_prefix(batch_id) + entry.key

    def held_manifest(self, run_id: str, manifest_key: str) -> str:
        name = posixpath.basename(manifest_key)
        return f"{self.settings.processing_prefix}manifests/{run_slug(run_id)}/{name}"

    def run_record(self, run_id: str) -> str:
        return f"{self.settings.state_prefix}batch-runs/{run_slug(run_id)}.json"

    def batch_claim(self, batch_id: str) -> str:
        return f"{self.settings.state_prefix}batches/{batch_id}.json"

    def processed(self, batch_id: str) -> str:
        return f"{self.settings.processed_prefix}batches/{batch_id}/"

    def processed_file(self, batch_id: str, entry: FileEntry) -> str:
        return f"{self.processed(batch_id)}files/{entry.key}"

    def quarantined_batch(self, batch_id: str, run_id: str) -> str:
        return f"{self.settings.quarantine_prefix}batches/{batch_id}/{run_slug(run_id)}/"

    def refused_manifest(self, run_id: str) -> str:
        return f"{self.settings.quarantine_prefix}manifests/{run_slug(run_id)}/"

    def duplicate_manifest(self, batch_id: str, run_id: str) -> str:
        return f"{self.settings.duplicates_prefix}manifests/{batch_id}/{run_slug(run_id)}/"


def is_manifest_candidate(info: ObjectInfo) -> bool:
    """A key under the manifests prefix that could be a manifest (folder markers are not)."""
    return not info.key.endswith("/")


def manifest_pattern(manifests_prefix: str) -> str:
    """The sensor's wildcard: any key under the prefix except folder markers (keys ending in '/').

    Filtering in the pattern rather than in a ``check_fn`` matters: a deferrable
    S3KeySensor whose trigger fires on a folder marker and whose check then
    refuses it re-defers, restarting its own timeout, every poke interval.
    """
    return f"{manifests_prefix}*[!/]"


# --- the operations ---------------------------------------------------------------------------------
class Batches:
    """One bucket's manifest batches. ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        store: ObjectStore,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.settings = settings
        self.layout = Layout(settings)
        self.clock = clock
        self.sleep = sleep

    # --- taking a manifest -------------------------------------------------------------------------
    def run_record(self, run_id: str) -> TakenManifest | None:
        key = self.layout.run_record(run_id)
        if self.store.head(key) is None:
            return None
        return TakenManifest.from_dict(self.store.get_json(key))

    def pending_manifests(self) -> list[ObjectInfo]:
        """Manifests waiting, oldest upload first (key order among equals)."""
        found = [i for i in self.store.list_keys(self.settings.manifests_prefix) if is_manifest_candidate(i)]
        return sorted(found, key=lambda i: (i.last_modified or "", i.key))

    def take_manifest(self, run_id: str) -> TakenManifest | None:
        """This run's manifest: the one it took before (a re-run), or the oldest waiting; None if none."""
        earlier = self.run_record(run_id)
        if earlier is not None:
            if earlier.outcome is None:
                self._ensure_held(earlier)
            log.info("run %s resumes its manifest %s", run_id, earlier.key)
            return earlier
        for info in self.pending_manifests():
            held = self.layout.held_manifest(run_id, info.key)
            taken = TakenManifest(
                self.store.bucket, info.key, held, run_id, self.clock(), location=self.store.url(held)
            )
            # The record first: a retry after a crash mid-move must find what this run took.
            self.store.put_json(self.layout.run_record(run_id), taken.to_dict())
            try:
                self.store.move(info.key, held)
            except ObjectMissing:
                log.info("%s was taken by another run a moment ago; trying the next", info.key)
                continue
            log.info("took manifest %s (held at %s)", info.key, held)
            return taken
        if self.store.head(self.layout.run_record(run_id)) is not None:
            self.store.delete(self.layout.run_record(run_id))
        return None

    def _ensure_held(self, taken: TakenManifest) -> None:
        if self.store.head(taken.held_key) is not None:
            return
        if self.store.head(taken.key) is not None:
            self.store.move(taken.key, taken.held_key)
            return
        raise BatchStateError(
            f"run {taken.run_id} took {taken.key} but it is neither there nor at {taken.held_key}",
            reason="manifest_lost",
        )

    def record_outcome(
        self,
        taken: TakenManifest,
        outcome: Outcome,
        location: str,
        *,
        reason: str | None = None,
        message: str | None = None,
    ) -> TakenManifest:
        done = TakenManifest(
            **{
                **taken.to_dict(),
                "outcome": outcome.value,
                "location": location,
                "reason": reason,
                "message": message,
            }
        )
        self.store.put_json(self.layout.run_record(taken.run_id), done.to_dict())
        return done

    # --- reading it --------------------------------------------------------------------------------
    def read_manifest(self, taken: TakenManifest) -> Manifest:
        """Parse and check the held manifest; a bad one is quarantined and ManifestError raised."""
        info = self.store.head(taken.held_key)
        if info is None:
            message = f"the manifest {taken.key} is not at {taken.held_key}"
            raise BatchStateError(message, reason="manifest_lost")
        try:
            if info.size > manifest.MAX_MANIFEST_BYTES:
                limit = manifest.MAX_MANIFEST_BYTES
                message = f"the manifest is {info.size} bytes; at most {limit} are read"
                raise ManifestError([Problem(Reason.MANIFEST_TOO_LARGE, message)])
            data = self.store.read_bytes(taken.held_key, manifest.MAX_MANIFEST_BYTES)
            return manifest.parse(data, manifest_key=taken.key, batches_prefix=self.settings.batches_prefix)
        except ManifestError as error:
            raise self.refuse_manifest(taken, error) from error

    def refuse_manifest(self, taken: TakenManifest, error: ManifestError) -> ManifestError:
        """Quarantine a bad manifest with a report; return the error, now knowing where it went."""
        prefix = self.layout.refused_manifest(taken.run_id)
        target = prefix + posixpath.basename(taken.key)
        report = {
            "outcome": Outcome.REFUSED.value,
            "manifest_key": taken.key,
            **error.to_dict(),
            "run_id": taken.run_id,
            "at": now_iso(self.clock()),
            "what_to_do": "Fix the manifest (docs/manifests.md) and upload it again under the manifests "
            "prefix. The data files were left where they are.",
        }
        self.store.put_json(prefix + "report.json", report)
        self._move_if_there(taken.held_key, target)
        error.location = self.store.url(prefix)
        self.record_outcome(taken, Outcome.REFUSED, error.location, reason=error.reason, message=str(error))
        return error

    # --- idempotency -------------------------------------------------------------------------------
    def batch_claim(self, batch_id: str) -> dict[str, Any] | None:
        key = self.layout.batch_claim(batch_id)
        return self.store.get_json(key) if self.store.head(key) is not None else None

    def claim_batch(self, taken: TakenManifest, batch: Manifest) -> bool:
        """Claim ``batch`` for this run (conditional put); True if this run owns it."""
        record = {
            "batch_id": batch.batch_id,
            "run_id": taken.run_id,
            "manifest_key": taken.key,
            "state": "processing",
            "claimed_at": now_iso(self.clock()),
        }
        if self.store.put_json(self.layout.batch_claim(batch.batch_id), record, if_absent=True):
            return True
        existing = self.batch_claim(batch.batch_id)
        return existing is not None and existing.get("run_id") == taken.run_id

    def set_aside_duplicate(
        self, taken: TakenManifest, batch: Manifest, claim: dict[str, Any]
    ) -> TakenManifest:
        """A re-uploaded manifest of a batch another run owns: keep it, with a note, and do nothing else."""
        prefix = self.layout.duplicate_manifest(batch.batch_id, taken.run_id)
        note = {
            "outcome": Outcome.DUPLICATE.value,
            "batch_id": batch.batch_id,
            "manifest_key": taken.key,
            "first_run_id": claim.get("run_id"),
            "first_state": claim.get("state"),
            "run_id": taken.run_id,
            "at": now_iso(self.clock()),
        }
        self.store.put_json(prefix + "note.json", note)
        self._move_if_there(taken.held_key, prefix + posixpath.basename(taken.key))
        message = (
            f"batch {batch.batch_id!r} was already taken by run {claim.get('run_id')} "
            f"({claim.get('state')}); this manifest was set aside"
        )
        return self.record_outcome(
            taken, Outcome.DUPLICATE, self.store.url(prefix), reason="duplicate", message=message
        )

    # --- verification ------------------------------------------------------------------------------
    def wait_for_files(self, batch: Manifest, deadline: float, poll_seconds: float) -> Arrival:
        """Wait until every listed file is present or ``deadline`` (epoch s) passes; one LIST per look."""
        prefix = self.layout.files_prefix(batch.batch_id)
        wanted = {prefix + f.key for f in batch.files}
        started = self.clock()
        while True:
            present = {info.key for info in self.store.list_keys(prefix)}
            missing = sorted(wanted - present)
            now = self.clock()
            if not missing or now >= deadline:
                return Arrival(len(wanted), [m[len(prefix) :] for m in missing], round(now - started, 3))
            log.info(
                "%d of %d listed files not there yet (first: %s); waiting up to %.0f s more",
                len(missing),
                len(wanted),
                missing[0],
                deadline - now,
            )
            self.sleep(max(0.0, min(poll_seconds, deadline - now)))

    def verify_file(self, batch_id: str, entry: FileEntry) -> FileCheck:
        """Is the listed file there, with its size and checksum? S3's stored checksum first, else stream."""
        object_key = self.layout.object_key(batch_id, entry)
        base = {
            "key": entry.key,
            "object_key": object_key,
            "expected_size": entry.size,
            "algorithm": entry.algorithm,
            "expected_checksum": entry.checksum,
        }
        info = self.store.head(object_key, with_checksum=True)
        if info is None:
            detail = f"{self.store.url(object_key)} does not exist"
            return FileCheck(status=FileStatus.MISSING, detail=detail, **base)
        if info.size != entry.size:
            return FileCheck(status=FileStatus.SIZE_MISMATCH, actual_size=info.size, **base)
        stored, conclusive, method = _stored_digest(info, entry.algorithm)
        if stored is not None and (stored == entry.checksum or conclusive):
            status = FileStatus.OK if stored == entry.checksum else FileStatus.CHECKSUM_MISMATCH
            return FileCheck(
                status=status, actual_size=info.size, actual_checksum=stored, method=method, **base
            )
        try:
            digest = hash_chunks(self.store.iter_chunks(object_key), entry.algorithm, prefetch=True)
        except ObjectMissing:
            return FileCheck(status=FileStatus.MISSING, detail="deleted while it was being read", **base)
        status = FileStatus.OK if digest.hex == entry.checksum else FileStatus.CHECKSUM_MISMATCH
        if digest.size != entry.size:
            status = FileStatus.SIZE_MISMATCH  # replaced while we read it
        return FileCheck(
            status=status, actual_size=digest.size, actual_checksum=digest.hex, method="streamed", **base
        )

    def quarantine_batch(
        self, taken: TakenManifest, batch: Manifest, problems: list[dict[str, Any]], *, stage: str
    ) -> BatchRefusedError:
        """Move the whole batch (manifest and every file that is there) to quarantine, with a report."""
        prefix = self.layout.quarantined_batch(batch.batch_id, taken.run_id)
        present = self._present(batch)
        moves = []
        for entry in batch.files:
            for source in (
                self.layout.object_key(batch.batch_id, entry),
                self.layout.processed_file(batch.batch_id, entry),
            ):
                if source in present:
                    moves.append((source, f"{prefix}files/{entry.key}"))
                    break
        self._move_all(moves)
        self._remove_outputs(batch, present)
        report = {
            "outcome": Outcome.QUARANTINED.value,
            "stage": stage,
            "batch_id": batch.batch_id,
            "manifest_key": taken.key,
            "files_listed": len(batch.files),
            "files_with_problems": len(problems),
            "problems": problems,
            "files_moved": len(moves),
            "run_id": taken.run_id,
            "at": now_iso(self.clock()),
            "what_to_do": "Deliver the batch again: upload every file under "
            f"{self.layout.files_prefix(batch.batch_id)} and then the manifest.",
        }
        self.store.put_json(prefix + "report.json", report)
        self._move_if_there(taken.held_key, prefix + "manifest.json")
        # Release the claim (if any): a corrected delivery with the same batch id must be able to run.
        claim = self.batch_claim(batch.batch_id)
        if claim is not None and claim.get("run_id") == taken.run_id:
            self.store.delete(self.layout.batch_claim(batch.batch_id))
        listed = "; ".join(p["problem"] for p in problems[:PROBLEMS_IN_MESSAGE])
        hidden = len(problems) - PROBLEMS_IN_MESSAGE
        more = f"; and {hidden} more" if hidden > 0 else ""
        count = f"{len(problems)} of {len(batch.files)} files"
        report_url = self.store.url(prefix + "report.json")
        message = (
            f"batch {batch.batch_id!r} quarantined: {count} failed {stage}: {listed}{more}. "
            f"Report: {report_url}"
        )
        location = self.store.url(prefix)
        error = BatchRefusedError(message, reason=f"{stage}_failed", location=location)
        self.record_outcome(taken, Outcome.QUARANTINED, location, reason=error.reason, message=message)
        return error

    # --- processing --------------------------------------------------------------------------------
    def process_file(
        self, taken: TakenManifest, batch_id: str, entry: FileEntry, attempt_label: str
    ) -> FileResult:
        """Extension check, CSV validation and processing, as the single-file pipeline does them.

        Data problems come back as a failed :class:`FileResult` (the batch then
        decides, and alerts once); endpoint trouble raises and is retried.
        """
        source = self._current_source(batch_id, entry)
        if source is None:
            raise BatchStateError(
                f"{entry.key} of batch {batch_id!r} passed verification but is gone", reason="file_lost"
            )
        result = FileResult(key=entry.key, source=self.store.url(source), ok=False)
        checked = check_file(self.store.bucket, source, entry.size)
        if not checked.kind.is_csv:
            result.reason, result.detail = (
                "invalid_extension",
                (f"extension {checked.extension or '(none)'!r}: only .csv and .csv.gz are processed"),
            )
            return result
        base = self.layout.processed_file(batch_id, entry)
        output_key, summary_key = f"{base}.normalized.csv", f"{base}.summary.json"
        hasher = new_hasher(entry.algorithm)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY) as sink:
            try:
                stats = csv_validation.normalize(
                    _hashed(self.store.iter_chunks(source), hasher),
                    sink,
                    gzipped=checked.kind is FileKind.CSV_GZIP,
                )
            except DataQualityError as error:
                result.reason, result.detail = error.reason, str(error)
                return result
            if hasher.hexdigest() != entry.checksum:
                result.reason = "changed_since_verification"
                result.detail = "the bytes processed do not match the manifest's checksum (file replaced?)"
                return result
            if entry.rows is not None and stats.rows != entry.rows:
                result.reason = "row_count_mismatch"
                result.detail = f"the manifest lists {entry.rows} data rows, the file has {stats.rows}"
                return result
            # The reference's flaky "Process CSV" step; its outage is retried with backoff (retry policy).
            generated = failure_generator.run_once(
                self.settings.failure_rate, self.settings.failure_seed, attempt_label
            )
            sink.seek(0)
            self.store.upload_stream(output_key, sink)
        summary = {
            "batch_id": batch_id,
            "source": self.store.url(self.layout.object_key(batch_id, entry)),
            "output": self.store.url(output_key),
            **stats.to_dict(),  # rows, columns, header, bytes, decoded_bytes, sha256
            "run_id": taken.run_id,
            "failure_generator_result": generated,
            "processed_at": now_iso(self.clock()),
        }
        self.store.put_json(summary_key, summary)
        return FileResult(
            key=entry.key,
            source=result.source,
            ok=True,
            rows=stats.rows,
            bytes=stats.bytes,
            output=self.store.url(output_key),
            summary=self.store.url(summary_key),
        )

    def finish_batch(
        self, taken: TakenManifest, batch: Manifest, results: list[FileResult]
    ) -> dict[str, Any]:
        """All files processed: move sources and manifest to processed/, write the summary last."""
        target = self.layout.processed(batch.batch_id)
        present = self._present(batch)
        moves = [
            (source, self.layout.processed_file(batch.batch_id, entry))
            for entry in batch.files
            if (source := self.layout.object_key(batch.batch_id, entry)) in present
        ]
        self._move_all(moves)
        self._move_if_there(taken.held_key, target + "manifest.json")
        finished = self.clock()
        summary = {
            "batch_id": batch.batch_id,
            "outcome": Outcome.PROCESSED.value,
            "manifest_key": taken.key,
            "manifest": self.store.url(target + "manifest.json"),
            "files": len(results),
            "rows": sum(r.rows for r in results),
            "bytes": sum(r.bytes for r in results),
            "duration_seconds": round(finished - taken.taken_at, 3),
            "started_at": now_iso(taken.taken_at),
            "finished_at": now_iso(finished),
            "run_id": taken.run_id,
            "outputs": [
                {"key": r.key, "output": r.output, "summary": r.summary, "rows": r.rows, "bytes": r.bytes}
                for r in results
            ],
        }
        self.store.put_json(target + "summary.json", summary)
        claim = {
            "batch_id": batch.batch_id,
            "run_id": taken.run_id,
            "manifest_key": taken.key,
            "state": Outcome.PROCESSED.value,
            "finished_at": summary["finished_at"],
            "summary": self.store.url(target + "summary.json"),
        }
        self.store.put_json(self.layout.batch_claim(batch.batch_id), claim)
        self.record_outcome(taken, Outcome.PROCESSED, self.store.url(target))
        return summary

    # --- helpers -----------------------------------------------------------------------------------
    def _current_source(self, batch_id: str, entry: FileEntry) -> str | None:
        """Where a listed file is now: its batch prefix, or processed/ if a finished step moved it."""
        for key in (self.layout.object_key(batch_id, entry), self.layout.processed_file(batch_id, entry)):
            if self.store.head(key) is not None:
                return key
        return None

    def _present(self, batch: Manifest) -> set[str]:
        """Every key now under the batch's prefix and its processed place: two LISTs, not a HEAD per file."""
        return {
            info.key
            for prefix in (self.layout.files_prefix(batch.batch_id), self.layout.processed(batch.batch_id))
            for info in self.store.list_keys(prefix)
        }

    def _remove_outputs(self, batch: Manifest, present: set[str]) -> None:
        # Derived outputs of a refused batch are not kept: consumers must never see half a batch.
        for entry in batch.files:
            base = self.layout.processed_file(batch.batch_id, entry)
            for key in (f"{base}.normalized.csv", f"{base}.summary.json"):
                if key in present:
                    self.store.delete(key)

    def _move_if_there(self, source: str, target: str) -> None:
        if self.store.head(source) is not None:
            self.store.move(source, target)

    def _move_all(self, moves: list[tuple[str, str]]) -> None:
        if not moves:
            return
        with ThreadPoolExecutor(max_workers=min(MOVE_WORKERS, len(moves))) as pool:
            # list() re-raises the first error: a failed move fails the step (and is retried).
            list(pool.map(lambda pair: self.store.move(*pair), moves))


def _hashed(chunks: Iterable[bytes], hasher: Any) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def _stored_digest(info: ObjectInfo, algorithm: str) -> tuple[str | None, bool, str]:
    """(hex digest S3 already knows, whether a difference is conclusive, how it was known)."""
    if algorithm == "SHA256" and info.checksum_sha256 and "-" not in info.checksum_sha256:
        try:
            hex_digest = base64_to_hex(info.checksum_sha256)
        except (ValueError, ChecksumFormatError):
            return None, False, ""
        # Only a FULL_OBJECT checksum is the file's SHA-256; a COMPOSITE one (multipart) is a
        # checksum of part checksums, and some S3 look-alikes do not say which they stored.
        return hex_digest, info.checksum_type == "FULL_OBJECT", "s3_checksum"
    if algorithm == "MD5" and re.fullmatch(r"[0-9a-f]{32}", info.etag or ""):
        # A single-part upload's ETag is its MD5, but not with SSE-KMS: trusted only when it matches.
        return info.etag, False, "etag_md5"
    return None, False, ""


# --- task callables: the DAG's glue from Airflow's context to the operations above --------------------
RESUME_TASK = "resume_or_wait_for_manifest"
SENSOR_TASK = "wait_for_manifest"
TAKE_TASK = "take_manifest"
READ_TASK = "read_manifest"


def _batches() -> Batches:
    settings = config.load()
    return Batches(aws.object_store(settings), settings)


def _label_map_index(file_key: str) -> None:
    # The mapped tasks' map_index_template is "{{ file_key }}": the UI lists them by file, not by number.
    get_current_context()["file_key"] = file_key  # type: ignore[literal-required]


def _taken(context: dict[str, Any]) -> TakenManifest:
    return TakenManifest.from_dict(context["ti"].xcom_pull(task_ids=TAKE_TASK))


def _manifest(batch_id: str, files: list[dict[str, Any]]) -> Manifest:
    return Manifest(batch_id=batch_id, files=tuple(FileEntry.from_dict(f) for f in files))


def resume_or_wait_for_manifest(**context: Any) -> str:
    """A re-run of a run that already took a manifest goes back to it; otherwise wait for one."""
    earlier = _batches().run_record(context["run_id"])
    return TAKE_TASK if earlier is not None else SENSOR_TASK


def take_manifest_task(**context: Any) -> dict[str, Any]:
    """Move the oldest waiting manifest out of the manifests prefix; this run owns it now."""
    taken = _batches().take_manifest(context["run_id"])
    if taken is None:
        raise AirflowSkipException("no manifest is waiting (another run took it, or the sensor timed out)")
    return taken.to_dict()


def read_manifest_task(**context: Any) -> list[dict[str, Any]]:
    """Parse and check the manifest; refuse a bad one, set aside a duplicate; return the files to verify.

    The file list is the return value (mapped tasks expand over it); ``batch_id``,
    ``deadline`` (epoch s) and ``verified`` are pushed beside it under those XCom keys.
    """
    batches = _batches()
    taken = _taken(context)
    if taken.outcome in {Outcome.PROCESSED, Outcome.DUPLICATE}:
        raise AirflowSkipException(f"this run already finished: {taken.outcome} ({taken.location})")
    if taken.outcome is not None:
        # A failed run re-run: the same data gives the same answer; nothing is moved twice.
        message = taken.message or str(taken.outcome)
        raise BatchRefusedError(message, reason=taken.reason, location=taken.location)
    batch = batches.read_manifest(taken)
    claim = batches.batch_claim(batch.batch_id)
    if claim is not None and claim.get("run_id") != taken.run_id:
        raise AirflowSkipException(batches.set_aside_duplicate(taken, batch, claim).message or "duplicate")
    log.info("batch %r: %d files, %d bytes", batch.batch_id, len(batch.files), batch.total_bytes)
    ti = context["ti"]
    ti.xcom_push(key="batch_id", value=batch.batch_id)
    ti.xcom_push(key="deadline", value=taken.taken_at + batches.settings.batch_late_file_window_seconds)
    # This run claimed the batch on an earlier try: its files passed verification then.
    ti.xcom_push(key="verified", value=claim is not None)
    return [f.to_dict() for f in batch.files]


def wait_for_listed_files_task(
    batch_id: str, files: list[dict[str, Any]], deadline: float, verified: bool
) -> dict[str, Any]:
    """Give late files until the window closes (``clean_zone_batch_late_file_window_seconds``)."""
    if verified:
        return Arrival(len(files), [], 0.0).to_dict()
    batches = _batches()
    arrival = batches.wait_for_files(
        _manifest(batch_id, files), deadline, batches.settings.sensor_poke_interval_seconds
    )
    if arrival.missing:
        log.warning("window closed with %d of %d files missing", len(arrival.missing), arrival.expected)
    return arrival.to_dict()


def verify_file_task(entry: dict[str, Any], batch_id: str, verified: bool) -> dict[str, Any]:
    """One listed file: present, with its size and checksum (mapped: one task per file)."""
    file_entry = FileEntry.from_dict(entry)
    _label_map_index(file_entry.key)
    if verified:
        object_key = Layout(config.load()).object_key(batch_id, file_entry)
        earlier = FileCheck(
            key=file_entry.key,
            object_key=object_key,
            status=FileStatus.OK,
            expected_size=file_entry.size,
            method="verified_earlier",
        )
        return earlier.to_dict()
    check = _batches().verify_file(batch_id, file_entry)
    log.info("%s", check.describe())
    return check.to_dict()


def accept_or_quarantine_batch_task(
    checks: Iterable[dict[str, Any]], batch_id: str, files: list[dict[str, Any]], **context: Any
) -> dict[str, Any]:
    """Every file verified: claim the batch. Any problem: quarantine the whole batch and fail (one alert)."""
    batches = _batches()
    taken = _taken(context)
    batch = _manifest(batch_id, files)
    results = [FileCheck.from_dict(c) for c in checks]
    problems = [{"problem": c.describe(), **c.to_dict()} for c in results if not c.ok]
    if problems:
        raise batches.quarantine_batch(taken, batch, problems, stage="verification")
    if not batches.claim_batch(taken, batch):
        claim = batches.batch_claim(batch_id) or {}
        raise AirflowSkipException(batches.set_aside_duplicate(taken, batch, claim).message or "duplicate")
    return {
        "batch_id": batch_id,
        "files": len(results),
        "bytes": batch.total_bytes,
        "methods": {m: sum(1 for c in results if c.method == m) for m in {c.method for c in results}},
    }


def process_file_task(entry: dict[str, Any], batch_id: str, **context: Any) -> dict[str, Any]:
    """One verified file through the single-file steps: extension check, CSV validation, processing."""
    file_entry = FileEntry.from_dict(entry)
    _label_map_index(file_entry.key)
    ti = context["ti"]
    label = f"{context['run_id']}|{batch_id}/{file_entry.key}|{ti.try_number}"
    result = _batches().process_file(_taken(context), batch_id, file_entry, label)
    if not result.ok:
        log.warning("%s: %s (%s)", file_entry.key, result.reason, result.detail)
    return result.to_dict()


def finish_batch_task(
    results: Iterable[dict[str, Any]], batch_id: str, files: list[dict[str, Any]], **context: Any
) -> dict[str, Any]:
    """All processed: write the batch summary beside the outputs. Any file refused: quarantine the batch."""
    batches = _batches()
    taken = _taken(context)
    batch = _manifest(batch_id, files)
    processed = [FileResult.from_dict(r) for r in results]
    failed = [{"problem": f"{r.reason}: {r.key} ({r.detail})", **r.to_dict()} for r in processed if not r.ok]
    if failed:
        raise batches.quarantine_batch(taken, batch, failed, stage="processing")
    summary = batches.finish_batch(taken, batch, processed)
    log.info(
        "batch %r processed: %d files, %d rows, %d bytes in %.1f s",
        batch_id,
        summary["files"],
        summary["rows"],
        summary["bytes"],
        summary["duration_seconds"],
    )
    return {k: v for k, v in summary.items() if k != "outputs"}
