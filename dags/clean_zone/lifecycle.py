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

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from clean_zone.config import Settings
from clean_zone.failures import PipelineError
from clean_zone.storage import ObjectInfo, ObjectMissing, ObjectStore


class Place(StrEnum):
    PROCESSING = "processing"
    PROCESSED = "processed"
    REJECTED = "rejected"
    QUARANTINE = "quarantine"
    DUPLICATES = "duplicates"

    @property
    def terminal(self) -> bool:
        return self is not Place.PROCESSING


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


# S3 refuses keys over 1,024 bytes (UTF-8); a place's prefix and an output's suffix lengthen a key.
MAX_KEY_BYTES = 1024
LONGEST_SUFFIX = ".normalized.csv"
TOO_LONG_FOLDER = "_key_too_long/"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def relative_key(key: str, landing_prefix: str) -> str:
    """``key`` below the landing prefix; a key from elsewhere keeps its whole name."""
    return key[len(landing_prefix) :] if key.startswith(landing_prefix) else key


def place_key(settings: Settings, place: Place, rel: str) -> str:
    prefix = {
        Place.PROCESSING: settings.processing_prefix,
        Place.PROCESSED: settings.processed_prefix,
        Place.REJECTED: settings.rejected_prefix,
        Place.QUARANTINE: settings.quarantine_prefix,
        Place.DUPLICATES: settings.duplicates_prefix,
    }[place]
    return prefix + rel


def reason_key(settings: Settings, place: Place, rel: str) -> str:
    return place_key(settings, place, rel) + ".reason.json"


def ledger_key(settings: Settings, key: str, etag: str) -> str:
    # Hash the key: S3 keys may hold characters and lengths a nested key could not.
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{settings.state_prefix}objects/{digest}/{etag}.json"


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
        if key.endswith("/") and info.size == 0:
            return ClaimOutcome.IGNORED, None
        if self.longest_derived_key(rel) > MAX_KEY_BYTES:
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

    def longest_derived_key(self, rel: str) -> int:
        """Bytes of the longest key this file would get in any of its places."""
        prefixes = [place_key(self.settings, place, "") for place in Place]
        return max(len(p.encode()) for p in prefixes) + len(rel.encode()) + len(LONGEST_SUFFIX)

    def _reject_long_key(self, key: str, info: ObjectInfo, run_id: str) -> Claim:
        """Keep the file, under a name S3 accepts, with its real key in the reason sidecar."""
        rel = TOO_LONG_FOLDER + hashlib.sha256(key.encode()).hexdigest()
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
        self.store.put_json(self._run_record_key(run_id), {"key": key, "etag": info.etag, "size": info.size})
        if key != target:
            self.store.move(key, target)
        return Claim(self.store.bucket, key, rel, info.size, info.etag, run_id, self.store.url(target))

    def _resume_elsewhere(self, key: str, rel: str, run_id: str) -> tuple[ClaimOutcome, Claim | None]:
        """The key is gone: a retry of our own claim finds the file already moved on."""
        record_key = self._run_record_key(run_id)
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

    def _run_record_key(self, run_id: str) -> str:
        digest = hashlib.sha256(run_id.encode()).hexdigest()
        return f"{self.settings.state_prefix}runs/{digest}.json"

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
