"""Races with the partner, against the moto server's versioned bucket: a file deleted or replaced
between its claim and its end, an event for an upload deleted before its run, and a new upload to a
key that is being processed. Every file ends in one place, no reason file without its file, the
ledger says what happened and the alert says it in words."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from clean_zone.airflow_glue import file_tasks
from clean_zone.airflow_glue.notifier import FailureAlertNotifier
from clean_zone.failures import InvalidFileError
from clean_zone.keys import ledger_key

pytestmark = pytest.mark.e2e

PIPELINE = "clean_zone_file_pipeline"
RUN_A = "manual__2026-09-14T06:00:00+00:00"
RUN_B = "manual__2026-09-14T06:00:05+00:00"
FIRST = b"id,name\n1,alpha\n"
SECOND = b"id,name\n1,alpha\n2,beta\n"


@pytest.fixture
def held(provisioned: Any) -> Any:
    """Where a claimed file waits: its landing key, its version pinned (the bucket is versioned, as
    these races need; without versioning a claim moves the file to processing/: test_lifecycle)."""
    return lambda rel: provisioned.landing_prefix + rel


def listing(s3: Any, bucket: str) -> set[str]:
    """Every current key but the ledger's."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {
        o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].startswith("_state/")
    }


def upload(s3: Any, settings: Any, rel: str, body: bytes) -> dict[str, Any]:
    """Drop a file as a partner does; returns the upload's key, ETag and version id."""
    key = settings.landing_prefix + rel
    response = s3.put_object(Bucket=settings.bucket, Key=key, Body=body)
    return {"key": key, "etag": response["ETag"].strip('"'), "version_id": response["VersionId"]}


def erase(s3: Any, bucket: str, key: str) -> None:
    """Delete every version of ``key``: gone for good, as when the endpoint lost its data."""
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    for item in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
        if item["Key"] == key:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=item["VersionId"])


def ledger(s3: Any, settings: Any, key: str, etag: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=settings.bucket, Key=ledger_key(settings, key, etag))["Body"].read()
    return json.loads(body)


def claim(upload_: dict[str, Any], run_id: str, *, version: bool = True) -> dict[str, Any]:
    params = {"key": upload_["key"], "bucket": None, "etag": upload_["etag"]}
    if version:
        params["version_id"] = upload_["version_id"]
    return file_tasks.claim_file(params=params, run_id=run_id)


def read(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def alert_for(error: BaseException, claimed: dict[str, Any], task_id: str) -> Any:
    ti = SimpleNamespace(
        dag_id=PIPELINE,
        task_id=task_id,
        run_id=claimed["run_id"],
        try_number=1,
        max_tries=4,
        map_index=-1,
        xcom_pull=lambda task_ids: claimed,
    )
    return FailureAlertNotifier(object_task_id="claim_file").notify({"ti": ti, "exception": error})


def test_a_file_erased_before_its_rejection_leaves_no_orphan_reason_file(
    s3: Any, provisioned: Any, alerts_inbox: Any, held: Any
) -> None:
    sent = upload(s3, provisioned, "notes.txt", b"not a csv")
    claimed = claim(sent, RUN_A)
    erase(s3, provisioned.bucket, held("notes.txt"))  # the endpoint lost it (a restart)

    with pytest.raises(InvalidFileError) as caught:
        file_tasks.reject_file(claimed, file_tasks.check_file_extension(claimed))

    assert caught.value.reason == "gone"
    assert listing(s3, provisioned.bucket) == set()  # no rejected/notes.txt.reason.json
    assert ledger(s3, provisioned, sent["key"], sent["etag"])["state"] == "gone"
    alert_for(caught.value, claimed, "reject_file")
    [alert] = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert alert["subject"] == f"[WARNING] file withdrawn: {PIPELINE}.reject_file"
    assert alert["attributes"]["severity"] == "warning"
    assert "Try:           not retried" in alert["message"]
    assert "was deleted" in alert["message"]
    assert "no reason file was left behind" in alert["message"]


def test_a_file_erased_while_it_is_validated_ends_as_gone(s3: Any, provisioned: Any, held: Any) -> None:
    sent = upload(s3, provisioned, "orders.csv", FIRST)
    claimed = claim(sent, RUN_A)
    erase(s3, provisioned.bucket, held("orders.csv"))

    with pytest.raises(InvalidFileError, match="was deleted"):
        file_tasks.validate_csv(claimed)

    assert listing(s3, provisioned.bucket) == set()
    assert ledger(s3, provisioned, sent["key"], sent["etag"])["state"] == "gone"


def test_a_file_deleted_where_its_claim_holds_it_is_still_processed_from_its_version(
    s3: Any, provisioned: Any, held: Any
) -> None:
    # A plain delete in a versioned bucket leaves the claimed version readable: nothing is lost.
    sent = upload(s3, provisioned, "orders.csv", FIRST)
    claimed = claim(sent, RUN_A)
    s3.delete_object(Bucket=provisioned.bucket, Key=held("orders.csv"))

    file_tasks.validate_csv(claimed)
    summary = file_tasks.write_processed_output(claimed, 5.0)

    assert summary["location"] == "s3://clean-zone/processed/orders.csv"
    assert read(s3, provisioned.bucket, "processed/orders.csv") == FIRST
    assert listing(s3, provisioned.bucket) == {
        "processed/orders.csv",
        "processed/orders.csv.normalized.csv",
        "processed/orders.csv.summary.json",
    }


def test_an_event_for_an_upload_deleted_before_its_run_processes_that_version(
    run_dag: Any, s3: Any, provisioned: Any, alerts_inbox: Any
) -> None:
    sent = upload(s3, provisioned, "p/orders.csv", FIRST)
    s3.delete_object(Bucket=provisioned.bucket, Key=sent["key"])  # the partner withdrew it (a marker)

    result = run_dag(PIPELINE, sent)

    assert result.state == "success"
    assert result.tries["claim_file"] == 1  # no retries as a dependency error
    assert read(s3, provisioned.bucket, "processed/p/orders.csv") == FIRST
    assert listing(s3, provisioned.bucket) == {
        "processed/p/orders.csv",
        "processed/p/orders.csv.normalized.csv",
        "processed/p/orders.csv.summary.json",
    }
    assert alerts_inbox.receive(wait_seconds=1) == []


def test_an_event_for_an_overwritten_upload_processes_the_version_it_names(s3: Any, provisioned: Any) -> None:
    first = upload(s3, provisioned, "orders.csv", FIRST)
    second = upload(s3, provisioned, "orders.csv", SECOND)  # before the first event's run started

    claimed = claim(first, RUN_A)

    assert file_tasks.validate_csv(claimed)["rows"] == 1
    # The newer upload was not moved in the first one's place: it waits for its own run.
    assert read(s3, provisioned.bucket, second["key"]) == SECOND
    file_tasks.write_processed_output(claimed, 5.0)
    assert read(s3, provisioned.bucket, "processed/orders.csv") == FIRST
    assert ledger(s3, provisioned, first["key"], first["etag"])["state"] == "processed"


def test_an_event_for_an_upload_erased_before_its_run_is_withdrawn_not_retried(
    run_dag: Any, s3: Any, provisioned: Any, alerts_inbox: Any
) -> None:
    sent = upload(s3, provisioned, "orders.csv", FIRST)
    erase(s3, provisioned.bucket, sent["key"])

    result = run_dag(PIPELINE, sent)

    assert result.state == "failed"
    assert result.tries["claim_file"] == 1  # withdrawn: waiting cannot bring it back
    assert listing(s3, provisioned.bucket) == set()
    assert ledger(s3, provisioned, sent["key"], sent["etag"])["state"] == "gone"
    [alert] = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert alert["attributes"]["severity"] == "warning"
    assert alert["subject"] == f"[WARNING] file withdrawn: {PIPELINE}.claim_file"


def test_a_new_upload_to_a_key_being_processed_is_processed_too(s3: Any, provisioned: Any, held: Any) -> None:
    first = upload(s3, provisioned, "orders.csv", FIRST)
    claimed_a = claim(first, RUN_A)
    # While run A works on it, the partner uploads a corrected file under the same key.
    second = upload(s3, provisioned, "orders.csv", SECOND)
    claimed_b = claim(second, RUN_B)

    # Run B's upload now waits where its claim holds it; run A still reads and finishes its own.
    assert file_tasks.validate_csv(claimed_a)["rows"] == 1
    assert file_tasks.write_processed_output(claimed_a, 5.0)["rows"] == 1
    assert read(s3, provisioned.bucket, held("orders.csv")) == SECOND  # not moved by run A
    assert file_tasks.validate_csv(claimed_b)["rows"] == 2
    assert file_tasks.write_processed_output(claimed_b, 5.0)["rows"] == 2

    assert listing(s3, provisioned.bucket) == {
        "processed/orders.csv",
        "processed/orders.csv.normalized.csv",
        "processed/orders.csv.summary.json",
    }
    assert read(s3, provisioned.bucket, "processed/orders.csv") == SECOND  # the latest upload is current
    versions = s3.list_object_versions(Bucket=provisioned.bucket, Prefix="processed/orders.csv")
    kept = {
        read_version(s3, provisioned.bucket, v)
        for v in versions["Versions"]
        if v["Key"] == "processed/orders.csv"
    }
    assert kept == {FIRST, SECOND}  # the earlier upload's result is kept as a version, not lost
    assert ledger(s3, provisioned, first["key"], first["etag"])["state"] == "processed"
    assert ledger(s3, provisioned, second["key"], second["etag"])["state"] == "processed"


def read_version(s3: Any, bucket: str, version: dict[str, Any]) -> bytes:
    return bytes(
        s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
    )


def test_a_file_replaced_after_its_claimed_version_was_lost_is_superseded(
    s3: Any, provisioned: Any, alerts_inbox: Any, held: Any
) -> None:
    first = upload(s3, provisioned, "orders.csv", FIRST)
    claimed_a = claim(first, RUN_A)
    erase(s3, provisioned.bucket, held("orders.csv"))
    second = upload(s3, provisioned, "orders.csv", SECOND)
    claim(second, RUN_B)

    with pytest.raises(InvalidFileError) as caught:
        file_tasks.validate_csv(claimed_a)

    assert caught.value.reason == "superseded"
    assert ledger(s3, provisioned, first["key"], first["etag"])["state"] == "superseded"
    assert read(s3, provisioned.bucket, held("orders.csv")) == SECOND  # run B's, untouched
    alert_for(caught.value, claimed_a, "validate_csv")
    [alert] = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert alert["subject"] == f"[WARNING] file replaced by a newer upload: {PIPELINE}.validate_csv"


def test_an_event_for_an_upload_the_watchers_run_already_took_starts_no_second_run(
    run_dag: Any, s3: Any, provisioned: Any, alerts_inbox: Any
) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name=provisioned.region)
    upload(s3, provisioned, "notes.pdf", b"%PDF-1.7 not a csv")
    messages = sqs.receive_message(
        QueueUrl=provisioned.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    )["Messages"]
    # The watcher's run (conf without a version) rejects it first; then the event arrives.
    assert run_dag(PIPELINE, {"key": "landing/notes.pdf"}).state == "failed"

    result = run_dag("clean_zone_s3_events", {"messages": messages})

    assert result.state == "success"
    assert result.xcom["start_file_runs"] == []  # no second run that would only skip and show green
    assert listing(s3, provisioned.bucket) == {"rejected/notes.pdf", "rejected/notes.pdf.reason.json"}
    assert len(alerts_inbox.receive(wait_seconds=3, expect=1)) == 1
