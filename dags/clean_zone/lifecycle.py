"""Where a file is, and where it ends: claims, the ledger and terminal places.

Every file dropped under the landing prefix ends in exactly one place:

============  =======================================================  =========
place         when                                                     reason
============  =======================================================  =========
processed/    valid CSV, processed; outputs and summary beside it      summary
rejected/     extension the pipeline does not process                  sidecar
quarantine/   CSV that failed a data-quality check                     sidecar
duplicates/   exact re-delivery (same key, same content) of a file     sidecar
              another run already claimed
rejected/_key_too_long/<sha256 of key>: a key so long that its        sidecar
              processed names would pass S3's 1,024-byte limit
landing/      not yet claimed (the pipeline is down or busy); or claimed,  ledger
              while its run works on it or after it failed on a
              retryable error: clear the failed task to resume
processing/   the same, in a bucket without versioning (see below)      ledger
(none)        withdrawn: deleted by the partner after its claim, or    ledger
              replaced by a newer upload before it could be read
              (``gone`` / ``superseded`` in the ledger; no sidecar)
============  =======================================================  =========

A file keeps its key below the prefix (``landing/a/b.csv`` becomes
``processed/a/b.csv``). Moves copy, confirm, then delete, so nothing is ever
only in flight; reason sidecars are written before the move.

Copied once: in a versioned bucket a claim leaves the file at its landing key
and pins the version it claimed; every step reads that version, and the one
move is from landing/ to the terminal place (one CopyObject up to 5 GB). The
landing watcher's sensor wakes only for files it has not handed over, so files
claimed in place do not keep it awake. In an unversioned bucket, where nothing
but a move keeps a newer upload from replacing the claimed bytes, a claim moves
the file to processing/ first.

Exactly once: a run claims an object by writing a ledger record keyed on the
key and its ETag with a conditional put (``If-None-Match: *``). Only one run
can win, however often a sensor fires or a run is triggered; a cleared run
finds its own claim and resumes; a later re-delivery of the same content
finds a finished record and goes to ``duplicates/``.

Races with the partner (the bucket is versioned): a claim remembers the
version it claimed and every step reads that version, so a new upload to the
same key is its own version, claimed and processed by its own run, and never
read or moved in another run's place. A move deletes its
source only while the source still shows the version that was copied, so a
newer upload is never hidden. An event naming a version processes that version,
even if the key was deleted or overwritten before its run. A file that can no
longer be read at all ends as ``gone`` (or ``superseded``) in the ledger, with
no reason sidecar written for a file that is not there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from clean_zone.clock import now_iso
from clean_zone.config import Settings
from clean_zone.failures import InvalidFileError, PipelineError
from clean_zone.keys import (
    MAX_KEY_BYTES,
    Place,
    display_key,
    is_folder_marker,
    ledger_key,
    longest_derived_key,
    place_key,
    reason_key,
    relative_key,
    run_record_key,
    too_long_key,
)
from clean_zone.storage import ObjectInfo, ObjectMissing, ObjectStore

log = logging.getLogger(__name__)


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this run owns the file now
    RESUMED = "resumed"  # this run had claimed it before (a retry or a cleared run)
    DUPLICATE = "duplicate"  # same content already processed: moved to duplicates/
    TAKEN = "taken"  # another run owns it
    GONE = "gone"  # nothing at that key any more (nor the named version)
    IGNORED = "ignored"  # a folder marker: not a file
    KEY_TOO_LONG = "key_too_long"  # its processed keys would pass S3's limit: rejected under a hash


@dataclass(frozen=True)
class Claim:
    """The object a run works on (pushed to XCom as a dict)."""

    bucket: str
    key: str  # where it landed
    relative_key: str  # its key below the landing prefix, kept in every place
    size: int
    etag: str
    run_id: str
    location: str  # s3:// URL of where it is now
    version_id: str | None = None  # the version this run reads (versioned buckets)
    in_place: bool = False  # claimed at its landing key (else moved to processing/)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claim:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _pinned(info: ObjectInfo) -> bool:
    """Whether the upload has a version of its own to pin (a versioned bucket)."""
    return info.version_id not in (None, "null")


def _version(info: ObjectInfo) -> str:
    """Tells two uploads of the same content apart (version id; last-modified where unversioned).

    A bucket whose versioning was suspended gives every new upload the version id "null".
    """
    return str(info.version_id) if _pinned(info) else info.last_modified or ""


class Withdrawn(StrEnum):
    """How a claimed file vanished before the run finished with it (the ledger's ``state``)."""

    GONE = "gone"  # deleted (or lost) and no readable version left
    SUPERSEDED = "superseded"  # replaced by a newer upload, which its own run processes

    def explain(self, key: str) -> str:
        if self is Withdrawn.SUPERSEDED:
            return (
                f"{key} was replaced by a newer upload before this run could finish it; the newer "
                "upload is processed by its own run, and nothing was written for this one"
            )
        return (
            f"{key} was deleted (withdrawn by the partner, or lost by the endpoint) before this run "
            "could finish it; nothing was written for it"
        )


def withdrawn_error(state: Withdrawn, key: str) -> InvalidFileError:
    """The error a run fails with when its file was withdrawn: a warning for a person, never retried."""
    return InvalidFileError(state.explain(key), reason=state.value)


class Lifecycle:
    """Moves one bucket's files through their places, keeping the ledger."""

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # --- claiming ------------------------------------------------------------
    def claim(
        self, key: str, run_id: str, etag: str | None = None, version_id: str | None = None
    ) -> tuple[ClaimOutcome, Claim | None]:
        """Claim the object at ``key`` for ``run_id``: in place, or moved to processing/ (see the module).

        ``etag``, when the trigger knew it, tells a file another run already
        took (TAKEN) from one that never arrived (GONE). ``version_id``, when
        the event named it, is the upload to process, even if the key was
        deleted or overwritten since.
        """
        info = self.store.head(key)
        noncurrent = bool(version_id) and (info is None or info.version_id != version_id)
        if noncurrent:
            # Deleted or overwritten since the event: that upload is still readable as its version.
            # A version that is gone for good is withdrawn (GONE), even if a newer upload is there:
            # that one has its own event and its own run.
            info = self.store.head(key, version_id=version_id)
        rel = relative_key(key, self.settings.landing_prefix)
        if info is None:
            outcome, claim = self._resume_elsewhere(key, rel, run_id)
            if outcome is ClaimOutcome.GONE and etag:
                record = {"key": key, "etag": etag, "run_id": run_id, "version": version_id}
                if version_id and self.store.put_json(
                    ledger_key(self.settings, key, etag),
                    {**record, "state": Withdrawn.GONE.value, "at": now_iso()},
                    if_absent=True,
                ):
                    return outcome, claim  # the named upload is gone for good: recorded as withdrawn
                if self.store.head(ledger_key(self.settings, key, etag)):
                    return ClaimOutcome.TAKEN, None
            return outcome, claim
        if is_folder_marker(key, info.size):
            return ClaimOutcome.IGNORED, None
        if longest_derived_key(self.settings, rel) > MAX_KEY_BYTES:
            return ClaimOutcome.KEY_TOO_LONG, self._reject_long_key(key, info, run_id)
        record_key = ledger_key(self.settings, key, info.etag)
        record = {
            "key": key,
            "etag": info.etag,
            "size": info.size,
            "run_id": run_id,
            "version": _version(info),
            "state": Place.PROCESSING.value,
            "claimed_at": now_iso(),
        }
        if not self.store.put_json(record_key, record, if_absent=True):
            existing = self.store.get_json(record_key)
            if existing.get("run_id") == run_id:
                return ClaimOutcome.RESUMED, self._hold(key, rel, info, run_id)
            same_upload = existing.get("version") == _version(info)
            if same_upload and not _pinned(info) and existing.get("state") != Place.PROCESSING.value:
                # Unversioned, an upload is told from another only by its second; but a finished
                # claim's file has left landing/, so what is there now is a later upload.
                same_upload = False
            if same_upload or noncurrent:
                # The very upload another run claimed (a moment ago, or long since: an event delivered
                # twice names a version that stays readable after its move): it is theirs.
                return ClaimOutcome.TAKEN, None
            # Same key, same content, a later upload: a re-delivery.
            self._finish_duplicate(key, rel, existing)
            return ClaimOutcome.DUPLICATE, None
        return ClaimOutcome.CLAIMED, self._hold(key, rel, info, run_id)

    def already_claimed(self, key: str, etag: str | None, version_id: str | None) -> bool:
        """Whether a run already claimed this very upload (the ledger names its version).

        A trigger asks before starting a run, so one upload seen by both routes (the watcher's
        listing and the S3 event) starts one run, not a second that only skips. Without the event's
        version id, the key's current object decides: gone (moved on by the claiming run) or the
        claimed version means taken; another version at the key is a re-delivery, to be run.
        """
        record_key = ledger_key(self.settings, key, etag or "")
        if not etag or self.store.head(record_key) is None:
            return False
        claimed = self.store.get_json(record_key).get("version")
        if version_id:
            return bool(claimed == version_id)
        current = self.store.head(key)
        return current is None or claimed == _version(current)

    def _reject_long_key(self, key: str, info: ObjectInfo, run_id: str) -> Claim:
        """Keep the file, under a name S3 accepts, with its real key in the reason sidecar."""
        rel = too_long_key(key)
        target = place_key(self.settings, Place.REJECTED, rel)
        reason = {
            "reason": "key_too_long",
            "detail": f"the key is {len(key.encode())} bytes; with this pipeline's prefixes and suffixes "
            f"it would pass S3's {MAX_KEY_BYTES}-byte limit",
            "source_key": key,
            "run_id": run_id,
            "at": now_iso(),
        }
        self.store.put_json(reason_key(self.settings, Place.REJECTED, rel), reason)
        self.store.move(key, target)
        return Claim(self.store.bucket, key, rel, info.size, info.etag, run_id, self.store.url(target))

    def _hold(self, key: str, rel: str, info: ObjectInfo, run_id: str) -> Claim:
        """Keep the claimed upload where it waits for its terminal place: its landing key, or processing/."""
        # In place only with a version to pin: without one, a newer upload would replace its bytes.
        in_place = _pinned(info)
        target = key if in_place else place_key(self.settings, Place.PROCESSING, rel)
        # Record first: a retry after a crash mid-move (or after the partner deleted the key) must
        # still find its claim.
        record = {"key": key, "etag": info.etag, "size": info.size}
        if in_place:
            record.update(in_place=True, version=info.version_id)
        self.store.put_json(run_record_key(self.settings, run_id), record)
        version = info.version_id
        if key != target:
            version = self.store.move(key, target, version_id=info.version_id, source=info).version_id
        return Claim(
            self.store.bucket,
            key,
            rel,
            info.size,
            info.etag,
            run_id,
            self.store.url(target),
            version,
            in_place,
        )

    def _run_record(self, run_id: str) -> dict[str, Any]:
        """What this run recorded it claimed ({} if nothing)."""
        try:
            return dict(self.store.get_json(run_record_key(self.settings, run_id)))
        except ObjectMissing:
            return {}

    def _resume_elsewhere(self, key: str, rel: str, run_id: str) -> tuple[ClaimOutcome, Claim | None]:
        """The key is gone: a retry of our own claim finds the file already moved on."""
        mine = self._run_record(run_id)
        if not mine:
            return ClaimOutcome.GONE, None
        if mine.get("key") != key:
            return ClaimOutcome.GONE, None
        recorded = Claim(self.store.bucket, key, rel, int(mine["size"]), mine["etag"], run_id, "")
        version_id = mine.get("version")
        if mine.get("in_place") and self.store.head(key, version_id=version_id) is not None:
            # Claimed in place, and the key deleted (or moved on by an earlier try) since: the
            # claimed version is still there to read.
            return ClaimOutcome.RESUMED, replace(
                recorded, location=self.store.url(key), version_id=version_id, in_place=True
            )
        place, where = self.locate(rel)
        if place is None:
            return ClaimOutcome.GONE, None
        # Still in processing/: the version there is the one this run copied (a later upload would have
        # had to be claimed, and moved here, by another run in between: too rare to guess about).
        version = self.store.head(where) if place is Place.PROCESSING else None
        return ClaimOutcome.RESUMED, replace(
            recorded,
            location=self.store.url(where),
            version_id=version.version_id if version is not None else None,
        )

    def _finish_duplicate(self, key: str, rel: str, existing: dict[str, Any]) -> None:
        reason = {
            "reason": "duplicate",
            "detail": "same key and content as a file another run already claimed",
            "first_outcome": existing.get("state"),
            "first_processed_by_run": existing.get("run_id"),
            "source_key": key,
            "at": now_iso(),
        }
        self.store.put_json(reason_key(self.settings, Place.DUPLICATES, rel), reason)
        self.store.move(key, place_key(self.settings, Place.DUPLICATES, rel))

    # --- where is it ---------------------------------------------------------
    def held_key(self, claim: Claim) -> str:
        """Where a claimed file waits for its terminal place: its landing key, or processing/."""
        return claim.key if claim.in_place else place_key(self.settings, Place.PROCESSING, claim.relative_key)

    def locate(self, rel: str) -> tuple[Place | None, str]:
        """The place a claimed file is in now (processing first: the usual answer)."""
        for place in Place:
            candidate = place_key(self.settings, place, rel)
            if self.store.head(candidate) is not None:
                return place, candidate
        return None, ""

    def ended(self, claim: Claim) -> tuple[Place, str] | None:
        """The terminal place (and key) this claim's run took the file to, per the ledger (None: not yet)."""
        _, record = self._ledger(claim)
        if record.get("run_id") != claim.run_id or not record.get("location"):
            return None
        return Place(record["state"]), str(record["location"])

    def current_key(self, claim: Claim) -> str:
        place, where = self.locate(claim.relative_key)
        if place is None:
            raise ObjectMissing(f"{claim.key} is in none of its places")
        return where

    def claimed_version(self, claim: Claim) -> tuple[str, str | None]:
        """(key, version id) of the claimed upload where it waits (or wherever it went since).

        Raises the withdrawn error, after recording it in the ledger, when the
        upload can no longer be read.
        """
        held = self.held_key(claim)
        if claim.version_id and self.store.head(held, version_id=claim.version_id) is not None:
            return held, claim.version_id
        place, where = self.locate(claim.relative_key)
        current = self.store.head(where) if place is not None else None
        if current is None or (claim.version_id and current.etag != claim.etag):
            raise self.withdraw(claim)
        return where, None

    def chunks(self, claim: Claim) -> Iterator[bytes]:
        """The claimed upload's bytes (that version, even if a newer upload took its key since)."""
        key, version_id = self.claimed_version(claim)
        return self.store.iter_chunks(key, version_id=version_id)

    def withdraw(self, claim: Claim) -> InvalidFileError:
        """Record in the ledger that the claimed upload vanished; return the run's error (a warning)."""
        # A newer upload at its key, or (moved on the sensor route) in processing/; claimed in place,
        # processing/ holds nothing of this file.
        newer = self.store.head(claim.key)
        if newer is None and not claim.in_place:
            newer = self.store.head(place_key(self.settings, Place.PROCESSING, claim.relative_key))
        state = Withdrawn.SUPERSEDED if newer is not None and newer.etag != claim.etag else Withdrawn.GONE
        record_key, claimed = self._ledger(claim)
        record = {
            **claimed,
            "key": claim.key,
            "etag": claim.etag,
            "size": claim.size,
            "run_id": claim.run_id,
            "state": state.value,
            "finished_at": now_iso(),
        }
        self.store.put_json(record_key, record)
        return withdrawn_error(state, self.store.url(claim.key))

    def _ledger(self, claim: Claim) -> tuple[str, dict[str, Any]]:
        """The claimed upload's ledger key and record ({} if there is none)."""
        record_key = ledger_key(self.settings, claim.key, claim.etag)
        try:
            return record_key, self.store.get_json(record_key)
        except ObjectMissing:
            return record_key, {}

    # --- ending --------------------------------------------------------------
    def finish(self, claim: Claim, place: Place, reason: dict[str, Any] | None = None) -> str:
        """Move the claimed file to its terminal ``place`` (idempotent); return its s3:// URL.

        The reason sidecar is written only once the file is known to be there,
        and removed again if the file vanishes mid-move: no sidecar without its file.
        """
        target = place_key(self.settings, place, claim.relative_key)
        sidecar = reason_key(self.settings, place, claim.relative_key)
        held_key = self.held_key(claim)
        version = claim.version_id
        record_key, claimed = self._ledger(claim)
        if claimed.get("run_id") == claim.run_id and claimed.get("state") == place.value:
            return self.store.url(target)  # this step finished before (a retry, or a cleared task)
        held = self.store.head(held_key, version_id=version)
        if held is None:
            finished = self.store.head(target)
            if finished is None or finished.size != claim.size:
                raise self.withdraw(claim)
            source = None  # moved by an earlier try of this step: only the ledger is left to write
        else:
            source = held_key
        if reason is not None:
            document = {**reason, "source_key": claim.key, "run_id": claim.run_id, "at": now_iso()}
            self.store.put_json(sidecar, document)
        if source is not None:
            try:
                version = self.store.move(source, target, version_id=version, source=held).version_id
            except ObjectMissing:
                if reason is not None:
                    self.store.delete(sidecar)
                raise self.withdraw(claim) from None
        record = {
            **claimed,  # the claim's facts (the upload's version, when it was claimed) stay
            "key": claim.key,
            "etag": claim.etag,
            "size": claim.size,
            "run_id": claim.run_id,
            "state": place.value,
            "finished_at": now_iso(),
            "location": target,
            "location_version": version,
        }
        self.store.put_json(record_key, record)
        return self.store.url(target)

    def fail_into(self, claim: Claim, place: Place, error: PipelineError) -> PipelineError:
        """Finish in ``place`` with ``error`` as the reason; return the error, now knowing the location."""
        error.location = self.finish(
            claim,
            place,
            {"reason": error.reason, "detail": str(error), "failure_class": error.failure_class.value},
        )
        # The one line a person needs in the task log (Airflow's traceback of the failure follows it).
        log.warning(
            "%s: %s moved to %s; why is in %s",
            error.reason,
            display_key(claim.key),
            error.location,
            self.store.url(reason_key(self.settings, place, claim.relative_key)),
        )
        return error
