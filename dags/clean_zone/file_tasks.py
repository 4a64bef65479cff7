"""Task callables of the file pipeline: thin glue from Airflow's context to the plain modules.

Each callable reads the settings at run time, does one step, and returns a
small JSON-able dict (its XCom). Every step can be re-run safely: it finds the
file wherever the lifecycle has it and redoes only what is not yet done.
"""

from __future__ import annotations

import tempfile
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from clean_zone import config, csv_validation, events, failure_generator
from clean_zone.aws import client
from clean_zone.extensions import FileKind, check_file, is_folder_marker
from clean_zone.failures import DataQualityError, DependencyError, InvalidFileError
from clean_zone.lifecycle import Claim, ClaimOutcome, Lifecycle, Place, now_iso, place_key
from clean_zone.storage import ObjectStore

CLAIM_TASK = "claim_file"
CHECK_TASK = "check_file_extension"
VALIDATE_TASK = "validate_csv"
GENERATOR_TASK = "run_failure_generator"
WRITE_TASK = "write_processed_output"
REJECT_TASK = "reject_file"

# Spill the processed output to disk past this size: constant memory for any file size.
SPOOL_MAX_MEMORY = 8 * 1024 * 1024


def _lifecycle(bucket: str | None = None) -> Lifecycle:
    settings = config.load()
    return Lifecycle(ObjectStore(client("s3", settings), bucket or settings.bucket), settings)


def _claim(ti: Any) -> Claim:
    return Claim.from_dict(ti.xcom_pull(task_ids=CLAIM_TASK))


def landing_has_files(files: list[dict[str, Any]], **_context: Any) -> bool:
    """S3KeySensor check: at least one real file (folder markers do not count)."""
    return any(not is_folder_marker(str(f.get("Key", "")), int(f.get("Size") or 0)) for f in files)


def claim_file(**context: Any) -> dict[str, Any]:
    """Claim the run's object (``conf``: ``bucket``, ``key``) and move it to processing/."""
    params = context["params"]
    key = params.get("key")
    if not key or not isinstance(key, str):
        raise InvalidFileError(
            'trigger this DAG with conf {"key": "<object key>", "bucket": "<optional>"}', reason="missing_key"
        )
    lifecycle = _lifecycle(params.get("bucket"))
    outcome, claim = lifecycle.claim(key, context["run_id"], etag=params.get("etag"))
    if outcome is ClaimOutcome.KEY_TOO_LONG and claim is not None:
        raise InvalidFileError(
            f"the key is too long to process ({len(key.encode())} bytes); the file was kept under a "
            "short name with its real key in the reason file",
            reason="key_too_long",
            location=claim.location,
        )
    if claim is None:
        messages = {
            ClaimOutcome.DUPLICATE: "re-delivery of a file already claimed: moved to the duplicates prefix",
            ClaimOutcome.TAKEN: "another run owns this object; nothing to do",
            ClaimOutcome.IGNORED: "a folder marker, not a file: ignored",
        }
        if outcome is ClaimOutcome.GONE:
            raise DependencyError(
                f"s3://{lifecycle.store.bucket}/{key} does not exist (yet)", reason="not_found"
            )
        raise AirflowSkipException(messages[outcome])
    return claim.to_dict()


def check_file_extension(**context: Any) -> dict[str, Any]:
    """The reference's "check-file-ext": bucket, key, size and extension of the claimed file."""
    claim = _claim(context["ti"])
    return check_file(claim.bucket, claim.key, claim.size).to_dict()


def route_by_extension(**context: Any) -> str:
    """CSV (plain or gzip) goes to processing; anything else to the invalid path."""
    checked = context["ti"].xcom_pull(task_ids=CHECK_TASK)
    return VALIDATE_TASK if FileKind(checked["kind"]).is_csv else REJECT_TASK


def _stream(lifecycle: Lifecycle, claim: Claim) -> tuple[Any, bool]:
    return lifecycle.store.iter_chunks(lifecycle.current_key(claim)), claim.key.lower().endswith(".gz")


def validate_csv(**context: Any) -> dict[str, Any]:
    """Stream the CSV once: header, column counts, UTF-8, not binary. Quarantine it if bad."""
    claim = _claim(context["ti"])
    lifecycle = _lifecycle(claim.bucket)
    chunks, gzipped = _stream(lifecycle, claim)
    try:
        stats = csv_validation.validate(chunks, gzipped=gzipped)
    except DataQualityError as error:
        raise lifecycle.fail_into(claim, Place.QUARANTINE, error) from error
    return stats.to_dict()


def run_failure_generator(**context: Any) -> float:
    """The reference's flaky step: 10 / randint(0, 2); retried with backoff by the retry policy."""
    settings = config.load()
    claim = _claim(context["ti"])
    label = f"{claim.run_id}|{claim.key}|{context['ti'].try_number}"
    return failure_generator.run_once(settings.failure_rate, settings.failure_seed, label)


def write_processed_output(**context: Any) -> dict[str, Any]:
    """Write the normalised CSV and a JSON summary, then move the original to processed/."""
    ti = context["ti"]
    claim = _claim(ti)
    lifecycle = _lifecycle(claim.bucket)
    settings = lifecycle.settings
    base = place_key(settings, Place.PROCESSED, claim.relative_key)
    output_key, summary_key = f"{base}.normalized.csv", f"{base}.summary.json"
    chunks, gzipped = _stream(lifecycle, claim)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY) as sink:
        stats = csv_validation.normalize(chunks, sink, gzipped=gzipped)
        sink.seek(0)
        lifecycle.store.upload_stream(output_key, sink)
    summary = {
        "source": f"s3://{claim.bucket}/{claim.key}",
        "output": lifecycle.store.url(output_key),
        **stats.to_dict(),  # rows, columns, header, bytes, decoded_bytes, sha256
        "run_id": claim.run_id,
        "failure_generator_result": ti.xcom_pull(task_ids=GENERATOR_TASK),
        "processed_at": now_iso(),
    }
    lifecycle.store.put_json(summary_key, summary)
    summary["location"] = lifecycle.finish(claim, Place.PROCESSED)
    return summary


def reject_file(**context: Any) -> None:
    """The invalid path: move the file to rejected/ with a reason, then fail the run (one alert)."""
    ti = context["ti"]
    claim = _claim(ti)
    checked = ti.xcom_pull(task_ids=CHECK_TASK)
    lifecycle = _lifecycle(claim.bucket)
    extension = checked["extension"] or "(none)"
    error = InvalidFileError(
        f"invalid file extension {extension!r}: only .csv and .csv.gz are processed",
        reason="invalid_extension",
    )
    raise lifecycle.fail_into(claim, Place.REJECTED, error)


# --- the landing watcher ------------------------------------------------------
MAX_FILES_PER_CYCLE = 200


def pipeline_run_id(bucket: str, key: str, upload_marker: str | None) -> str:
    """One run id per upload (``upload_marker``: its time, and its ETag where known).

    A sensor firing twice, or an event delivered twice, cannot start it twice.
    """
    import hashlib
    import re

    digest = hashlib.sha256(f"{bucket}/{key}@{upload_marker}".encode()).hexdigest()[:16]
    stamp = re.sub(r"[^0-9T]", "", (upload_marker or "")[:19])
    return f"s3__{stamp}__{digest}"


def list_landing_files(**_context: Any) -> list[dict[str, Any]]:
    """The landing prefix's files (oldest first, folder markers left out), as pipeline triggers."""
    settings = config.load()
    store = ObjectStore(client("s3", settings), settings.bucket)
    found = [
        info for info in store.list_keys(settings.landing_prefix) if not is_folder_marker(info.key, info.size)
    ]
    found.sort(key=lambda info: (info.last_modified or "", info.key))
    return [
        {
            "trigger_run_id": pipeline_run_id(settings.bucket, info.key, info.last_modified),
            "conf": {"bucket": settings.bucket, "key": info.key, "etag": info.etag},
        }
        for info in found[:MAX_FILES_PER_CYCLE]
    ]


def s3_event_triggers(**context: Any) -> list[dict[str, Any]]:
    """Pipeline triggers for the objects created in the delivered S3 event notifications.

    Messages come from the Asset watcher's events or, for a replay by hand,
    from the run's conf ``{"messages": [<SQS message>, ...]}``.
    """
    settings = config.load()
    messages = events.messages_from_asset_events(
        event for asset_events in context["triggering_asset_events"].values() for event in asset_events
    ) or list((context["dag_run"].conf or {}).get("messages", []))
    created = events.objects_created(messages, settings.bucket, settings.landing_prefix)
    return [
        {
            "trigger_run_id": pipeline_run_id(item.bucket, item.key, f"{item.event_time}/{item.etag}"),
            "conf": {"bucket": item.bucket, "key": item.key, "etag": (item.etag or "").strip('"') or None},
        }
        for item in created
    ]
