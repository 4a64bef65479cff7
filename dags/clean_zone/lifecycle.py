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
processing/   claimed by a run that failed on a retryable error; clear ledger
              the failed task to resume
landing/      not yet claimed (the pipeline is down or busy)           --
============  =======================================================  =========

A file keeps its key below the prefix (``landing/a/b.csv`` becomes
``processed/a/b.csv``). Moves copy, confirm, then delete, so nothing is ever
only in flight; reason sidecars are written before the move.

Exactly once: a run claims an object by writing a ledger record keyed on the
key and its ETag with a conditional put (``If-None-Match: *``). Only one run
can win, however often a sensor fires or a run is triggered; a cleared run
finds its own claim and resumes; a later re-delivery of the same content
finds a finished record and goes to ``duplicates/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from clean_zone.clock import now_iso
from clean_zone.config import Settings
from clean_zone.failures import PipelineError
from clean_zone.keys import (
    MAX_KEY_BYTES,
    Place,
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


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this run owns the file now
    RESUMED = "resumed"  # this run had claimed it before (a retry or a cleared run)
    DUPLICATE = "duplicate"  # same content already processed: moved to duplicates/
    TAKEN = "taken"  # another run owns it
    GONE = "gone"  # nothing at that key any more
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claim:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _version(info: ObjectInfo) -> str:
    """Tells two uploads of the same content apart (version id; last-modified where unversioned)."""
    return info.version_id or info.last_modified or ""


class Lifecycle:
    """Moves one bucket's files through their places, keeping the ledger."""

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # --- claiming ------------------------------------------------------------
    def claim(self, key: str, run_id: str, etag: str | None = None) -> tuple[ClaimOutcome, Claim | None]:
        """Claim the object at ``key`` for ``run_id``, moving it to processing/.

        ``etag``, when the trigger knew it, tells a file another run already
        took (TAKEN) from one that never arrived (GONE).
        """
        info = self.store.head(key)
        rel = relative_key(key, self.settings.landing_prefix)
        if info is None:
            outcome, claim = self._resume_elsewhere(key, rel, run_id)
            if (
                outcome is ClaimOutcome.GONE
                and etag
                and self.store.head(ledger_key(self.settings, key, etag))
            ):
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
                return ClaimOutcome.RESUMED, self._move_to_processing(key, rel, info, run_id)
            if existing.get("version") == _version(info):
                # The very object another run claimed a moment ago: it is theirs to move.
                return ClaimOutcome.TAKEN, None
            # Same key, same content, a later upload: a re-delivery.
            self._finish_duplicate(key, rel, existing)
            return ClaimOutcome.DUPLICATE, None
        return ClaimOutcome.CLAIMED, self._move_to_processing(key, rel, info, run_id)

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

    def _move_to_processing(self, key: str, rel: str, info: ObjectInfo, run_id: str) -> Claim:
        target = place_key(self.settings, Place.PROCESSING, rel)
        # Record first: a retry after a crash mid-move must still find its claim.
        self.store.put_json(
            run_record_key(self.settings, run_id), {"key": key, "etag": info.etag, "size": info.size}
        )
        if key != target:
            self.store.move(key, target)
        return Claim(self.store.bucket, key, rel, info.size, info.etag, run_id, self.store.url(target))

    def _resume_elsewhere(self, key: str, rel: str, run_id: str) -> tuple[ClaimOutcome, Claim | None]:
        """The key is gone: a retry of our own claim finds the file already moved on."""
        record_key = run_record_key(self.settings, run_id)
        if self.store.head(record_key) is None:
            return ClaimOutcome.GONE, None
        mine = self.store.get_json(record_key)
        if mine.get("key") != key:
            return ClaimOutcome.GONE, None
        place, where = self.locate(rel)
        if place is None:
            return ClaimOutcome.GONE, None
        return ClaimOutcome.RESUMED, Claim(
            self.store.bucket, key, rel, int(mine["size"]), mine["etag"], run_id, self.store.url(where)
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
    def locate(self, rel: str) -> tuple[Place | None, str]:
        """The place a claimed file is in now (processing first: the usual answer)."""
        for place in Place:
            candidate = place_key(self.settings, place, rel)
            if self.store.head(candidate) is not None:
                return place, candidate
        return None, ""

    def current_key(self, claim: Claim) -> str:
        place, where = self.locate(claim.relative_key)
        if place is None:
            raise ObjectMissing(f"{claim.key} is in none of its places")
        return where

    # --- ending --------------------------------------------------------------
    def finish(self, claim: Claim, place: Place, reason: dict[str, Any] | None = None) -> str:
        """Move the claimed file to its terminal ``place`` (idempotent); return its s3:// URL."""
        target = place_key(self.settings, place, claim.relative_key)
        source = place_key(self.settings, Place.PROCESSING, claim.relative_key)
        if reason is not None:
            document = {**reason, "source_key": claim.key, "run_id": claim.run_id, "at": now_iso()}
            self.store.put_json(reason_key(self.settings, place, claim.relative_key), document)
        if self.store.head(source) is not None:
            self.store.move(source, target)
        elif self.store.head(target) is None:
            raise ObjectMissing(f"{claim.key} is neither in processing nor in {place}")
        record = {
            "key": claim.key,
            "etag": claim.etag,
            "size": claim.size,
            "run_id": claim.run_id,
            "state": place.value,
            "finished_at": now_iso(),
            "location": target,
        }
        self.store.put_json(ledger_key(self.settings, claim.key, claim.etag), record)
        return self.store.url(target)

    def fail_into(self, claim: Claim, place: Place, error: PipelineError) -> PipelineError:
        """Finish in ``place`` with ``error`` as the reason; return the error, now knowing the location."""
        error.location = self.finish(
            claim,
            place,
            {"reason": error.reason, "detail": str(error), "failure_class": error.failure_class.value},
        )
        return error
