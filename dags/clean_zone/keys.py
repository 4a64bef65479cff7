"""Every S3 key the pipelines read or write: places, suffixes, state records and the batch layout.

A file keeps its key below its prefix in every place (``landing/a/b.csv``
becomes ``processed/a/b.csv``); its outputs sit beside it with
:data:`OUTPUT_SUFFIX` and :data:`SUMMARY_SUFFIX`. A manifest batch's keys
(``<slug>`` is the DAG run id made key-safe)::

    manifests/<name>                          a partner's manifest, waiting
    batches/<batch_id>/<key>                  the files it lists (keys relative to this prefix)
    processing/manifests/<slug>/<name>        the manifest while a run works on it
    processed/batches/<batch_id>/manifest.json
    processed/batches/<batch_id>/summary.json     written last: the batch is complete
    processed/batches/<batch_id>/files/<key>      each source file, its outputs beside it
    quarantine/manifests/<slug>/<name>        a refused manifest, report.json beside it
    quarantine/batches/<batch_id>/<slug>/     a refused batch: manifest.json, report.json, files/<key>
    duplicates/manifests/<batch_id>/<slug>/   a re-uploaded manifest of a batch already taken
    _state/batch-runs/<slug>.json             what a run took, and how it ended
    _state/batches/<batch_id>.json            the batch claim: which run processes it

The single-file pipeline's normalised CSV waits under ``_state/staged/`` from
``validate_csv`` (which reads the file once, validating and normalising) until
``write_processed_output`` copies it beside the processed file.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from enum import StrEnum

from clean_zone.config import Settings

# S3 refuses keys over 1,024 bytes (UTF-8); a place's prefix and an output's suffix lengthen a key.
MAX_KEY_BYTES = 1024
OUTPUT_SUFFIX = ".normalized.csv"
SUMMARY_SUFFIX = ".summary.json"
REASON_SUFFIX = ".reason.json"
LONGEST_SUFFIX = max(OUTPUT_SUFFIX, SUMMARY_SUFFIX, REASON_SUFFIX, key=len)
# Where a file whose key is too long is kept, under the SHA-256 of its key.
TOO_LONG_FOLDER = "_key_too_long/"


class Place(StrEnum):
    PROCESSING = "processing"
    PROCESSED = "processed"
    REJECTED = "rejected"
    QUARANTINE = "quarantine"
    DUPLICATES = "duplicates"

    @property
    def terminal(self) -> bool:
        return self is not Place.PROCESSING


# --- showing keys to a person ------------------------------------------------------------------------
def display_key(key: str) -> str:
    """``key`` as a person should read it: quoted when spaces at its ends or control characters
    would otherwise be invisible (``"report.csv "``), as it is otherwise."""
    if key != key.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        return json.dumps(key, ensure_ascii=False)
    return key


# --- folder markers ----------------------------------------------------------------------------------
def is_folder_marker(key: str, size: int = 0) -> bool:
    """A key ending in '/' with no content, as the S3 console makes for a folder: not a file.

    Where the size is unknown (a listed manifest key, an event) the key alone decides.
    """
    return key.endswith("/") and size == 0


def files_pattern(prefix: str) -> str:
    """An S3KeySensor wildcard for any key under ``prefix`` except folder markers.

    Filtering in the pattern rather than in a ``check_fn`` matters: a deferrable
    S3KeySensor whose trigger fires on a folder marker and whose check then
    refuses it re-defers, restarting its own timeout, every poke interval.
    """
    return f"{prefix}*[!/]"


# --- single files ---------------------------------------------------------------------------------------
def relative_key(key: str, landing_prefix: str) -> str:
    """``key`` below the landing prefix; a key from elsewhere keeps its whole name."""
    return key[len(landing_prefix) :] if key.startswith(landing_prefix) else key


def place_prefix(settings: Settings, place: Place) -> str:
    return {
        Place.PROCESSING: settings.processing_prefix,
        Place.PROCESSED: settings.processed_prefix,
        Place.REJECTED: settings.rejected_prefix,
        Place.QUARANTINE: settings.quarantine_prefix,
        Place.DUPLICATES: settings.duplicates_prefix,
    }[place]


def place_key(settings: Settings, place: Place, rel: str) -> str:
    return place_prefix(settings, place) + rel


def reason_key(settings: Settings, place: Place, rel: str) -> str:
    return place_key(settings, place, rel) + REASON_SUFFIX


def output_keys(base: str) -> tuple[str, str]:
    """(normalised CSV, JSON summary) of the file at ``base``."""
    return base + OUTPUT_SUFFIX, base + SUMMARY_SUFFIX


def longest_derived_key(settings: Settings, rel: str) -> int:
    """Bytes of the longest key a landed file would get in any of its places."""
    longest_prefix = max(len(place_prefix(settings, place).encode()) for place in Place)
    return longest_prefix + len(rel.encode()) + len(LONGEST_SUFFIX)


def too_long_key(key: str) -> str:
    """The short name (below the rejected prefix) a too-long key is kept under."""
    return TOO_LONG_FOLDER + hashlib.sha256(key.encode()).hexdigest()


def ledger_key(settings: Settings, key: str, etag: str) -> str:
    # Hash the key: S3 keys may hold characters and lengths a nested key could not.
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{settings.state_prefix}objects/{digest}/{etag}.json"


def staged_output_key(settings: Settings, key: str, etag: str) -> str:
    """Where the single-file pipeline keeps a file's normalised CSV between validation and writing."""
    digest = hashlib.sha256(f"{key}@{etag}".encode()).hexdigest()
    return f"{settings.state_prefix}staged/{digest}{OUTPUT_SUFFIX}"


def events_handed_over_key(settings: Settings) -> str:
    """The newest S3 event the events route has handed over (its runs skip older ones)."""
    return f"{settings.state_prefix}events/handed-over.json"


def watcher_handed_over_key(settings: Settings) -> str:
    """The landing watcher's record of the files it handed over (its sensor wakes only for others)."""
    return f"{settings.state_prefix}watcher/handed-over.json"


def run_record_key(settings: Settings, run_id: str) -> str:
    """The file pipeline's note of what a run claimed (a retry finds its file through it)."""
    return f"{settings.state_prefix}runs/{hashlib.sha256(run_id.encode()).hexdigest()}.json"


# --- manifest batches -------------------------------------------------------------------------------------
def run_slug(run_id: str) -> str:
    """A run id as a key segment: readable, and a hash keeps two ids from ever colliding."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-.")[:80]
    return f"{readable}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def batch_prefix(batches_prefix: str, batch_id: str) -> str:
    """Where a batch's files are: ``<batches_prefix><batch_id>/``."""
    return f"{batches_prefix}{batch_id}/"


@dataclass(frozen=True)
class BatchLayout:
    """Every key the batch pipeline reads or writes, from the settings' prefixes."""

    settings: Settings

    def files_prefix(self, batch_id: str) -> str:
        return batch_prefix(self.settings.batches_prefix, batch_id)

    def object_key(self, batch_id: str, file_key: str) -> str:
        return self.files_prefix(batch_id) + file_key

    def held_manifest(self, run_id: str, manifest_key: str) -> str:
        name = posixpath.basename(manifest_key)
        return f"{self.settings.processing_prefix}manifests/{run_slug(run_id)}/{name}"

    def run_record(self, run_id: str) -> str:
        return f"{self.settings.state_prefix}batch-runs/{run_slug(run_id)}.json"

    def manifest_take(self, manifest_key: str, upload: str) -> str:
        """The record that one upload of a manifest was taken by one run (``upload``: its version)."""
        digest = hashlib.sha256(manifest_key.encode()).hexdigest()
        return f"{self.settings.state_prefix}manifest-takes/{digest}/{upload}.json"

    def batch_claim(self, batch_id: str) -> str:
        return f"{self.settings.state_prefix}batches/{batch_id}.json"

    def processed(self, batch_id: str) -> str:
        return f"{self.settings.processed_prefix}batches/{batch_id}/"

    def processed_file(self, batch_id: str, file_key: str) -> str:
        return f"{self.processed(batch_id)}files/{file_key}"

    def quarantined_batch(self, batch_id: str, run_id: str) -> str:
        return f"{self.settings.quarantine_prefix}batches/{batch_id}/{run_slug(run_id)}/"

    def refused_manifest(self, run_id: str) -> str:
        return f"{self.settings.quarantine_prefix}manifests/{run_slug(run_id)}/"

    def duplicate_manifest(self, batch_id: str, run_id: str) -> str:
        return f"{self.settings.duplicates_prefix}manifests/{batch_id}/{run_slug(run_id)}/"
