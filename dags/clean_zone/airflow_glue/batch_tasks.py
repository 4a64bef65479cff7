"""Task callables of ``clean_zone_manifest_batch``: thin glue from Airflow to :class:`BatchProcessor`.

What one step hands the next is an argument (the DAG passes XComArgs):
``taken`` is ``take_manifest``'s record, ``batch_id``/``files``/``deadline``/
``verified`` are ``read_manifest``'s outputs (``multiple_outputs``). Mapped
tasks expand over ``wait_for_listed_files``'s return value: Airflow maps only
over a task's whole return value, never over one of several outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import Context, PokeReturnValue, get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from clean_zone import config
from clean_zone.airflow_glue.aws import object_store
from clean_zone.batch import BatchProcessor
from clean_zone.batch_records import (
    BatchRefusedError,
    FileResult,
    FileStatus,
    FileVerification,
    Outcome,
    TakenManifest,
)
from clean_zone.keys import BatchLayout
from clean_zone.manifest import FileEntry, Manifest

log = logging.getLogger(__name__)

RESUME_TASK = "resume_or_wait_for_manifest"
SENSOR_TASK = "wait_for_manifest"
TAKE_TASK = "take_manifest"
READ_TASK = "read_manifest"
WAIT_TASK = "wait_for_listed_files"


def _processor() -> BatchProcessor:
    settings = config.load()
    return BatchProcessor(object_store(settings), settings)


def _label_map_index(file_key: str) -> None:
    # The mapped tasks' map_index_template is "{{ file_key }}": the UI lists them by file, not by number.
    get_current_context()["file_key"] = file_key  # type: ignore[literal-required]


def _manifest(batch_id: str, files: list[dict[str, Any]]) -> Manifest:
    return Manifest(batch_id=batch_id, files=tuple(FileEntry.from_dict(f) for f in files))


def _batch(
    taken: dict[str, Any], batch_id: str, files: list[dict[str, Any]]
) -> tuple[BatchProcessor, TakenManifest, Manifest]:
    """What the batch-wide steps work with: the processor, this run's manifest record and the batch."""
    return _processor(), TakenManifest.from_dict(taken), _manifest(batch_id, files)


def resume_or_wait_for_manifest(**context: Any) -> str:
    """A re-run of a run that already took a manifest goes back to it; otherwise wait for one."""
    earlier = _processor().run_record(context["run_id"])
    return TAKE_TASK if earlier is not None else SENSOR_TASK


class ManifestSensor(S3KeySensor):
    """The deferrable S3KeySensor on the manifests prefix, done only once this run has taken a manifest.

    Several runs wait at once and every one's trigger fires for a new manifest; exactly one takes it
    (a conditional put decides), and the others look again a poke interval later (in the triggerer,
    holding no worker slot) instead of ending with nothing to do.
    """

    def poke(self, context: Context) -> bool:
        return bool(super().poke(context)) and _take(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        super().execute_complete(context, event)  # raises on the trigger's error event
        if not _take(context):
            pause = TimeDeltaTrigger(timedelta(seconds=self.poke_interval))
            self.defer(trigger=pause, method_name="look_again")

    def look_again(self, context: Context, event: Any = None) -> None:
        self.execute(context)


def _take(context: Context) -> bool:
    return _processor().take_manifest(context["run_id"]) is not None


def take_manifest(**context: Any) -> dict[str, Any]:
    """Hand on this run's manifest: the one its sensor (or, before a clear, an earlier try) took."""
    taken = _processor().take_manifest(context["run_id"])
    if taken is None:
        raise AirflowSkipException("no manifest is waiting (another run took it, or the sensor timed out)")
    return taken.to_dict()


def read_manifest(taken: dict[str, Any]) -> dict[str, Any]:
    """Parse and check the manifest; refuse a bad one, set aside a duplicate.

    Returns (as separate outputs) ``batch_id``, ``files`` (the mapped tasks
    expand over it), ``deadline`` (epoch s: the late-file window closes) and
    ``verified`` (this run claimed the batch on an earlier try: its files passed then).
    """
    processor = _processor()
    record = TakenManifest.from_dict(taken)
    if record.outcome in {Outcome.PROCESSED, Outcome.DUPLICATE}:
        raise AirflowSkipException(f"this run already finished: {record.outcome} ({record.location})")
    if record.outcome is not None:
        # A failed run re-run: the same data gives the same answer; nothing is moved twice.
        message = record.message or str(record.outcome)
        raise BatchRefusedError(message, reason=record.reason, location=record.location)
    batch = processor.read_manifest(record)
    claim = processor.batch_claim(batch.batch_id)
    if claim is not None and claim.get("run_id") != record.run_id:
        raise AirflowSkipException(processor.set_aside_duplicate(record, batch, claim).message or "duplicate")
    log.info("batch %r: %d files, %d bytes", batch.batch_id, len(batch.files), batch.total_bytes)
    return {
        "batch_id": batch.batch_id,
        "files": [f.to_dict() for f in batch.files],
        "deadline": record.taken_at + processor.settings.batch_late_file_window_seconds,
        "verified": claim is not None,
    }


def wait_for_listed_files(
    taken: dict[str, Any], batch_id: str, files: list[dict[str, Any]], deadline: float, verified: bool
) -> PokeReturnValue:
    """Sensor poke: done once every listed file is there or the late-file window has closed.

    The DAG runs it in ``mode="reschedule"``: between looks the task gives its
    worker slot back. When done it hands the listed files on to the mapped
    verification, which reports any file still missing.
    """
    if not verified:
        since = TakenManifest.from_dict(taken).taken_at
        arrival = _processor().look_for_files(_manifest(batch_id, files), deadline, since)
        if arrival is None:
            return PokeReturnValue(is_done=False)
        if arrival.missing:
            log.warning("window closed with %d of %d files missing", len(arrival.missing), arrival.expected)
        log.info("waited %.1f s since the manifest was taken", arrival.waited_seconds)
    return PokeReturnValue(is_done=True, xcom_value=files)


def verify_file(entry: dict[str, Any], batch_id: str, verified: bool) -> dict[str, Any]:
    """One listed file: present, with its size and checksum (mapped: one task per file)."""
    file_entry = FileEntry.from_dict(entry)
    _label_map_index(file_entry.key)
    if verified:
        earlier = FileVerification(
            key=file_entry.key,
            object_key=BatchLayout(config.load()).object_key(batch_id, file_entry.key),
            status=FileStatus.OK,
            expected_size=file_entry.size,
            method="verified_earlier",
        )
        return earlier.to_dict()
    check = _processor().verify_file(batch_id, file_entry)
    log.info("%s", check.describe())
    return check.to_dict()


def accept_or_quarantine_batch(
    checks: Iterable[dict[str, Any]], taken: dict[str, Any], batch_id: str, files: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every file verified: claim the batch. Any problem: quarantine the whole batch and fail (one alert)."""
    processor, record, batch = _batch(taken, batch_id, files)
    results = [FileVerification.from_dict(c) for c in checks]
    problems = [{"problem": c.describe(), **c.to_dict()} for c in results if not c.ok]
    if problems:
        raise processor.quarantine_batch(record, batch, problems, stage="verification")
    if not processor.claim_batch(record, batch):
        claim = processor.batch_claim(batch_id) or {}
        raise AirflowSkipException(processor.set_aside_duplicate(record, batch, claim).message or "duplicate")
    return {
        "batch_id": batch_id,
        "files": len(results),
        "bytes": batch.total_bytes,
        "methods": {m: sum(1 for c in results if c.method == m) for m in {c.method for c in results}},
    }


def process_file(
    entry: dict[str, Any], taken: dict[str, Any], batch_id: str, **context: Any
) -> dict[str, Any]:
    """One verified file through the single-file steps: extension check, CSV validation, processing."""
    file_entry = FileEntry.from_dict(entry)
    _label_map_index(file_entry.key)
    label = f"{context['run_id']}|{batch_id}/{file_entry.key}|{context['ti'].try_number}"
    result = _processor().process_file(TakenManifest.from_dict(taken), batch_id, file_entry, label)
    if not result.ok:
        log.warning("%s: %s (%s)", file_entry.key, result.reason, result.detail)
    return result.to_dict()


def finish_batch(
    results: Iterable[dict[str, Any]], taken: dict[str, Any], batch_id: str, files: list[dict[str, Any]]
) -> dict[str, Any]:
    """All processed: write the batch summary beside the outputs. Any file refused: quarantine the batch."""
    processor, record, batch = _batch(taken, batch_id, files)
    processed = [FileResult.from_dict(r) for r in results]
    failed = [{"problem": f"{r.reason}: {r.key} ({r.detail})", **r.to_dict()} for r in processed if not r.ok]
    if failed:
        raise processor.quarantine_batch(record, batch, failed, stage="processing")
    summary = processor.finish_batch(record, batch, processed)
    log.info(
        "batch %r processed: %d files, %d rows, %d bytes in %.1f s",
        batch_id,
        summary["files"],
        summary["rows"],
        summary["bytes"],
        summary["duration_seconds"],
    )
    return {k: v for k, v in summary.items() if k != "outputs"}
