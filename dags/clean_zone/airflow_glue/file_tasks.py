"""Task callables of ``clean_zone_file_pipeline``: thin glue from Airflow to the plain modules.

The claim travels as an argument (the DAG passes ``claim_file``'s XCom on):
each callable rebuilds only the lifecycle for the claim's bucket, does one
step, and returns a small JSON-able dict. Every step can be re-run safely: it
finds the file wherever the lifecycle has it and redoes only what is not done.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from clean_zone import config, failure_generator, processing
from clean_zone.airflow_glue.aws import object_store
from clean_zone.csv_validation import CsvStats
from clean_zone.extensions import FileKind, check_file
from clean_zone.failures import DataQualityError, DependencyError, InvalidFileError
from clean_zone.keys import Place, place_key, staged_output_key
from clean_zone.lifecycle import Claim, ClaimOutcome, Lifecycle, Withdrawn, withdrawn_error

CLAIM_TASK = "claim_file"
CHECK_TASK = "check_file_extension"
ROUTE_TASK = "route_by_extension"
VALIDATE_TASK = "validate_csv"
GENERATOR_TASK = "run_failure_generator"
WRITE_TASK = "write_processed_output"
REJECT_TASK = "reject_file"

_SKIPPED = {
    ClaimOutcome.DUPLICATE: "re-delivery of a file already claimed: moved to the duplicates prefix",
    ClaimOutcome.TAKEN: "another run owns this object; nothing to do",
    ClaimOutcome.IGNORED: "a folder marker, not a file: ignored",
}


def _lifecycle(bucket: str | None = None) -> Lifecycle:
    settings = config.load()
    return Lifecycle(object_store(settings, bucket), settings)


def _source(lifecycle: Lifecycle, claim: Claim) -> tuple[Any, bool]:
    """The claimed file's bytes wherever it is now, and whether they are gzip-compressed."""
    return lifecycle.chunks(claim), check_file(claim.bucket, claim.key, claim.size).kind is FileKind.CSV_GZIP


def claim_file(**context: Any) -> dict[str, Any]:
    """Claim the run's object (``conf``: ``bucket``, ``key``, ``etag``): in place, or moved to processing/."""
    params = context["params"]
    key = params.get("key")
    if not key or not isinstance(key, str):
        raise InvalidFileError(
            'trigger this DAG with conf {"key": "<object key>", "bucket": "<optional>"}', reason="missing_key"
        )
    lifecycle = _lifecycle(params.get("bucket"))
    version_id = params.get("version_id")
    outcome, claim = lifecycle.claim(key, context["run_id"], etag=params.get("etag"), version_id=version_id)
    if outcome is ClaimOutcome.KEY_TOO_LONG and claim is not None:
        raise InvalidFileError(
            f"the key is too long to process ({len(key.encode())} bytes); the file was kept under a "
            "short name with its real key in the reason file",
            reason="key_too_long",
            location=claim.location,
        )
    if outcome is ClaimOutcome.GONE and version_id:
        # The event named an upload that no longer exists in any version: withdrawn, not late.
        raise withdrawn_error(Withdrawn.GONE, lifecycle.store.url(key))
    if outcome is ClaimOutcome.GONE:
        raise DependencyError(f"s3://{lifecycle.store.bucket}/{key} does not exist (yet)", reason="not_found")
    if claim is None:
        raise AirflowSkipException(_SKIPPED[outcome])
    return claim.to_dict()


def check_file_extension(claim: dict[str, Any]) -> dict[str, Any]:
    """The reference's "check-file-ext": bucket, key, size and extension of the claimed file."""
    return check_file(claim["bucket"], claim["key"], claim["size"]).to_dict()


def route_by_extension(checked: dict[str, Any]) -> str:
    """CSV (plain or gzip) goes to processing; anything else to the invalid path."""
    return VALIDATE_TASK if FileKind(checked["kind"]).is_csv else REJECT_TASK


def validate_csv(claim: dict[str, Any]) -> dict[str, Any]:
    """Stream the CSV once: check it (header, column counts, UTF-8, not binary) and stage its
    normalised copy for ``write_processed_output``. Quarantine it if bad."""
    owned = Claim.from_dict(claim)
    lifecycle = _lifecycle(owned.bucket)
    chunks, gzipped = _source(lifecycle, owned)
    try:
        stats = processing.stage_output(
            lifecycle.store,
            chunks,
            staged_output_key(lifecycle.settings, owned.key, owned.etag),
            gzipped=gzipped,
            max_inflated_bytes=lifecycle.settings.max_inflated_bytes,
        )
    except DataQualityError as error:
        raise lifecycle.fail_into(owned, Place.QUARANTINE, error) from error
    return stats.to_dict()


def run_failure_generator(claim: dict[str, Any], **context: Any) -> float:
    """The reference's flaky step: 10 / randint(0, 2); retried with backoff by the retry policy."""
    settings = config.load()
    label = f"{claim['run_id']}|{claim['key']}|{context['ti'].try_number}"
    return failure_generator.run_once(settings.failure_rate, settings.failure_seed, label)


def write_processed_output(
    claim: dict[str, Any], generated: float, validated: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write the normalised CSV and a JSON summary, then move the original to processed/.

    The normalised CSV ``validate_csv`` staged is copied on the server: the file is not read again.
    Without a stage (an older run's, or one cleared from here), the file is read and normalised now.
    """
    owned = Claim.from_dict(claim)
    lifecycle = _lifecycle(owned.bucket)
    base = place_key(lifecycle.settings, Place.PROCESSED, owned.relative_key)
    fields = {
        "source": f"s3://{owned.bucket}/{owned.key}",
        "run_id": owned.run_id,
        "failure_generator_result": generated,
    }
    staged = staged_output_key(lifecycle.settings, owned.key, owned.etag)
    if validated is not None and lifecycle.store.head(staged) is not None:
        written = processing.publish_output(
            lifecycle.store, staged, base, CsvStats.from_dict(validated), fields=fields
        )
    else:
        chunks, gzipped = _source(lifecycle, owned)
        written = processing.write_outputs(
            lifecycle.store,
            chunks,
            base,
            gzipped=gzipped,
            fields=fields,
            max_inflated_bytes=lifecycle.settings.max_inflated_bytes,
        )
        lifecycle.store.delete(staged)  # a stage the run could not use is not left behind
    return {**written.summary, "location": lifecycle.finish(owned, Place.PROCESSED)}


def reject_file(claim: dict[str, Any], checked: dict[str, Any]) -> None:
    """The invalid path: move the file to rejected/ with a reason, then fail the run (one alert)."""
    owned = Claim.from_dict(claim)
    extension = checked["extension"] or "(none)"
    error = InvalidFileError(
        f"invalid file extension {extension!r}: only .csv and .csv.gz are processed",
        reason="invalid_extension",
    )
    raise _lifecycle(owned.bucket).fail_into(owned, Place.REJECTED, error)
