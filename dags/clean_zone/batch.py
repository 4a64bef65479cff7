"""Manifest-driven batches: take a manifest, verify every listed file, then process or quarantine the batch.

:class:`BatchProcessor` does the steps of ``clean_zone_manifest_batch``; the
DAG's task callables (``clean_zone.airflow_glue.batch_tasks``) call it. The
records the steps hand each other are in :mod:`clean_zone.batch_records`.
Every key it reads or writes is laid out by :class:`clean_zone.keys.BatchLayout`.

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
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clean_zone import failure_generator, manifest
from clean_zone.batch_records import (
    Arrival,
    BatchRefusedError,
    BatchStateError,
    FileResult,
    FileStatus,
    FileVerification,
    Outcome,
    TakenManifest,
)
from clean_zone.clock import now_iso
from clean_zone.config import Settings
from clean_zone.csv_validation import CsvStats
from clean_zone.extensions import FileKind, check_file
from clean_zone.failures import DataQualityError
from clean_zone.hashing import ChecksumFormatError, base64_to_hex, hash_chunks, new_hasher
from clean_zone.keys import BatchLayout, is_folder_marker, output_keys
from clean_zone.manifest import FileEntry, Manifest, ManifestError, Problem, Reason
from clean_zone.processing import write_outputs
from clean_zone.storage import ObjectInfo, ObjectMissing, ObjectStore

log = logging.getLogger(__name__)

# Moves of a batch's files run side by side; S3 copies are independent requests.
MOVE_WORKERS = 8
# An alert names this many problems; the report in S3 names them all.
PROBLEMS_IN_MESSAGE = 20


class BatchProcessor:
    """One bucket's manifest batches, step by step. ``clock`` is injectable for tests."""

    def __init__(
        self, store: ObjectStore, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.settings = settings
        self.layout = BatchLayout(settings)
        self.clock = clock

    # --- taking a manifest -------------------------------------------------------------------------
    def run_record(self, run_id: str) -> TakenManifest | None:
        key = self.layout.run_record(run_id)
        if self.store.head(key) is None:
            return None
        return TakenManifest.from_dict(self.store.get_json(key))

    def pending_manifests(self) -> list[ObjectInfo]:
        """Manifests waiting, oldest upload first (key order among equals)."""
        found = [
            i for i in self.store.list_keys(self.settings.manifests_prefix) if not is_folder_marker(i.key)
        ]
        return sorted(found, key=lambda i: (i.last_modified or "", i.key))

    def take_manifest(self, run_id: str) -> TakenManifest | None:
        """This run's manifest: the one it took before (a re-run), else the oldest no run has taken."""
        earlier = self.run_record(run_id)
        if earlier is not None:
            if earlier.outcome is None:
                self._ensure_held(earlier)
            log.info("run %s resumes its manifest %s", run_id, earlier.key)
            return earlier
        for info in self.pending_manifests():
            taken = self._take(info.key, run_id)
            if taken is not None:
                log.info("took manifest %s (held at %s)", taken.key, taken.held_key)
                return taken
        return None

    def _take(self, key: str, run_id: str) -> TakenManifest | None:
        """Take the upload now at ``key`` for ``run_id``; None if another run has it or it is gone.

        Several runs wait at once and all see the same new manifest: a move (copy, then delete)
        cannot tell two takers apart, so a conditional put on a record of this very upload decides.
        """
        current = self.store.head(key)
        if current is None:
            log.info("%s was moved on by another run a moment ago; trying the next", key)
            return None
        # "null" is the one version of a bucket whose versioning is suspended: not this upload's own.
        version = current.version_id if current.version_id not in {None, "null"} else None
        take_key = self.layout.manifest_take(key, version or _unversioned_token(current))
        record = {"manifest_key": key, "version_id": version, "etag": current.etag}
        record |= {"run_id": run_id, "at": now_iso(self.clock())}
        if not self.store.put_json(take_key, record, if_absent=True):
            try:
                owner = self.store.get_json(take_key).get("run_id")
            except ObjectMissing:
                # Released already (an unversioned bucket): the winner moved the manifest on between
                # our put and this read; the key is empty or holds a newer upload, for a later look.
                log.info("%s was taken and moved on by another run a moment ago; trying the next", key)
                return None
            if owner != run_id:
                log.info("%s was taken by run %s; trying the next", key, owner)
                return None
            # Ours: an earlier try of this run won the take and died before its run record.
        held = self.layout.held_manifest(run_id, key)
        taken = TakenManifest(
            self.store.bucket,
            key,
            held,
            run_id,
            self.clock(),
            location=self.store.url(held),
            version_id=version,
        )
        # The record before the move: a retry after a crash mid-move must find what this run took.
        self.store.put_json(self.layout.run_record(run_id), taken.to_dict())
        try:
            self.store.move(key, held, version_id=version)
        except ObjectMissing:
            # Withdrawn by the partner between the look and the move (an unversioned bucket).
            log.info("%s was deleted before it could be moved; trying the next", key)
            self.store.delete(self.layout.run_record(run_id))
            self.store.delete(take_key)
            return None
        if version is None:
            # Without versions the record names the upload by ETag and time, which the same bytes
            # uploaded again within the second repeat: kept, it would hide that upload for good.
            # Released once the key is empty, it is a lock: a run that wins it later finds the
            # key empty or holding a newer upload, never this one.
            self.store.delete(take_key)
        return taken

    def _ensure_held(self, taken: TakenManifest) -> None:
        if self.store.head(taken.held_key) is not None:
            return
        if self.store.head(taken.key, version_id=taken.version_id) is not None:
            self.store.move(taken.key, taken.held_key, version_id=taken.version_id)
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
            f"prefix. Its data files were left where they are, under {self.settings.batches_prefix}"
            "<batch id>/, and nothing processes them until a valid manifest names them: keep them there "
            "for the corrected manifest, or delete them if the delivery is withdrawn.",
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
    def look_for_files(self, batch: Manifest, deadline: float, since: float) -> Arrival | None:
        """One LIST: the arrival once every listed file is there or ``deadline`` (epoch s) has passed,
        None while the window is open and files are missing. ``since``: when the wait began."""
        prefix = self.layout.files_prefix(batch.batch_id)
        wanted = {prefix + f.key for f in batch.files}
        present = {info.key for info in self.store.list_keys(prefix)}
        missing = sorted(wanted - present)
        now = self.clock()
        if missing and now < deadline:
            log.info(
                "%d of %d listed files not there yet (first: %s); waiting up to %.0f s more",
                len(missing),
                len(wanted),
                missing[0],
                deadline - now,
            )
            return None
        return Arrival(len(wanted), [m[len(prefix) :] for m in missing], round(max(0.0, now - since), 3))

    def verify_file(self, batch_id: str, entry: FileEntry) -> FileVerification:
        """Is the listed file there, with its size and checksum? S3's stored checksum first, else stream."""
        object_key = self.layout.object_key(batch_id, entry.key)
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
            return FileVerification(status=FileStatus.MISSING, detail=detail, **base)
        if info.size != entry.size:
            return FileVerification(status=FileStatus.SIZE_MISMATCH, actual_size=info.size, **base)
        stored, conclusive, method = _stored_digest(info, entry.algorithm)
        if stored is not None and (stored == entry.checksum or conclusive):
            status = FileStatus.OK if stored == entry.checksum else FileStatus.CHECKSUM_MISMATCH
            return FileVerification(
                status=status, actual_size=info.size, actual_checksum=stored, method=method, **base
            )
        try:
            digest = hash_chunks(self.store.iter_chunks(object_key), entry.algorithm, prefetch=True)
        except ObjectMissing:
            return FileVerification(
                status=FileStatus.MISSING, detail="deleted while it was being read", **base
            )
        status = FileStatus.OK if digest.hex == entry.checksum else FileStatus.CHECKSUM_MISMATCH
        if digest.size != entry.size:
            status = FileStatus.SIZE_MISMATCH  # replaced while we read it
        return FileVerification(
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
                self.layout.object_key(batch.batch_id, entry.key),
                self.layout.processed_file(batch.batch_id, entry.key),
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
        hasher = new_hasher(entry.algorithm)

        def vet(stats: CsvStats) -> dict[str, Any]:
            if hasher.hexdigest() != entry.checksum:
                raise DataQualityError(
                    "the bytes processed do not match the manifest's checksum (file replaced?)",
                    reason="changed_since_verification",
                )
            if entry.rows is not None and stats.rows != entry.rows:
                raise DataQualityError(
                    f"the manifest lists {entry.rows} data rows, the file has {stats.rows}",
                    reason="row_count_mismatch",
                )
            # The reference's flaky "Process CSV" step; its outage is retried with backoff (retry policy).
            generated = failure_generator.run_once(
                self.settings.failure_rate, self.settings.failure_seed, attempt_label
            )
            return {"failure_generator_result": generated}

        try:
            written = write_outputs(
                self.store,
                _hashed(self.store.iter_chunks(source), hasher),
                self.layout.processed_file(batch_id, entry.key),
                gzipped=checked.kind is FileKind.CSV_GZIP,
                fields={
                    "batch_id": batch_id,
                    "source": self.store.url(self.layout.object_key(batch_id, entry.key)),
                    "run_id": taken.run_id,
                },
                before_upload=vet,
                processed_at=now_iso(self.clock()),
                max_inflated_bytes=self.settings.max_inflated_bytes,
            )
        except DataQualityError as error:
            result.reason, result.detail = error.reason, str(error)
            return result
        return FileResult(
            key=entry.key,
            source=result.source,
            ok=True,
            rows=written.stats.rows,
            bytes=written.stats.bytes,
            output=written.output,
            summary=written.summary_url,
        )

    def finish_batch(
        self, taken: TakenManifest, batch: Manifest, results: list[FileResult]
    ) -> dict[str, Any]:
        """All files processed: move sources and manifest to processed/, write the summary last."""
        target = self.layout.processed(batch.batch_id)
        present = self._present(batch)
        moves = [
            (source, self.layout.processed_file(batch.batch_id, entry.key))
            for entry in batch.files
            if (source := self.layout.object_key(batch.batch_id, entry.key)) in present
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
        for key in (
            self.layout.object_key(batch_id, entry.key),
            self.layout.processed_file(batch_id, entry.key),
        ):
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
            base = self.layout.processed_file(batch.batch_id, entry.key)
            for key in output_keys(base):
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


def _unversioned_token(info: ObjectInfo) -> str:
    """Names an upload without a version id as nearly as S3 allows: its ETag and upload time."""
    return hashlib.sha256(f"{info.etag}|{info.last_modified}".encode()).hexdigest()[:32]


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
