"""The file pipeline end to end: files dropped into moto's S3, the DAG run with dag.test(),
outcomes read back from S3 and alerts read from the SQS inbox subscribed to the SNS topic."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from clean_zone.extensions import FileKind

pytestmark = pytest.mark.e2e

PIPELINE = "clean_zone_file_pipeline"
GOOD_CSV = b"id,name,amount\n1,alpha,10\n2,beta,20\n3,gamma,30\n"


def keys(s3: Any, bucket: str, prefix: str = "") -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def where_is(s3: Any, settings: Any, rel: str) -> list[str]:
    """Every place that holds the file ``rel`` (sidecars and outputs aside)."""
    places = [
        settings.landing_prefix,
        settings.processing_prefix,
        settings.processed_prefix,
        settings.rejected_prefix,
        settings.quarantine_prefix,
        settings.duplicates_prefix,
    ]
    all_keys = keys(s3, settings.bucket)
    return [prefix for prefix in places if prefix + rel in all_keys]


def drop(s3: Any, settings: Any, rel: str, body: bytes) -> str:
    key = settings.landing_prefix + rel
    s3.put_object(Bucket=settings.bucket, Key=key, Body=body)
    return key


def test_good_csv_is_processed_with_summary_and_no_alert(run_dag, s3, provisioned, alerts_inbox):
    key = drop(s3, provisioned, "partner/orders.csv", GOOD_CSV)

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "success"
    assert result.tasks["reject_file"] == "skipped"
    assert where_is(s3, provisioned, "partner/orders.csv") == [provisioned.processed_prefix]
    summary = read_json(s3, provisioned.bucket, "processed/partner/orders.csv.summary.json")
    assert summary["rows"] == 3
    assert summary["columns"] == 3
    assert summary["bytes"] == len(GOOD_CSV)
    assert summary["source"] == f"s3://{provisioned.bucket}/{key}"
    assert len(summary["sha256"]) == 64
    output = s3.get_object(Bucket=provisioned.bucket, Key="processed/partner/orders.csv.normalized.csv")
    assert output["Body"].read() == GOOD_CSV
    assert alerts_inbox.receive(wait_seconds=1) == []


def test_a_good_csv_is_read_once_and_its_staged_output_is_gone_after(
    run_dag, s3, provisioned, alerts_inbox, monkeypatch
):
    # validate_csv reads, checks and normalises in one pass; write_processed_output copies that
    # output on the server instead of reading the file again. A spy on our own store counts reads.
    from clean_zone.storage import ObjectStore

    opened: list[str] = []
    real_open = ObjectStore.open

    def counting_open(self: ObjectStore, key: str, version_id: str | None = None) -> Any:
        opened.append(key)
        return real_open(self, key, version_id)

    monkeypatch.setattr(ObjectStore, "open", counting_open)
    key = drop(s3, provisioned, "once/orders.csv", GOOD_CSV)

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "success"
    # Read where it landed: claimed in place (the events route), it is copied once, to processed/.
    assert [k for k in opened if k.endswith("once/orders.csv")] == ["landing/once/orders.csv"]
    output = s3.get_object(Bucket=provisioned.bucket, Key="processed/once/orders.csv.normalized.csv")
    assert output["Body"].read() == GOOD_CSV
    assert keys(s3, provisioned.bucket, "_state/staged/") == set()


def test_write_without_a_staged_output_reads_the_file_again(run_dag, s3, provisioned, alerts_inbox):
    # A stage lost (or a run from before stages) is no dead end: the write step normalises the file.
    from clean_zone import config
    from clean_zone.airflow_glue import file_tasks
    from clean_zone.keys import staged_output_key

    key = drop(s3, provisioned, "restage/orders.csv", GOOD_CSV)
    claim = file_tasks.claim_file(params={"key": key}, run_id="manual__restage")
    validated = file_tasks.validate_csv(claim)
    s3.delete_object(
        Bucket=provisioned.bucket, Key=staged_output_key(config.load(), claim["key"], claim["etag"])
    )

    written = file_tasks.write_processed_output(claim, 10.0, validated)

    assert written["rows"] == 3
    assert where_is(s3, provisioned, "restage/orders.csv") == [provisioned.processed_prefix]
    output = s3.get_object(Bucket=provisioned.bucket, Key="processed/restage/orders.csv.normalized.csv")
    assert output["Body"].read() == GOOD_CSV


def test_pdf_is_rejected_with_one_alert_and_a_failed_run(run_dag, s3, provisioned, alerts_inbox):
    key = drop(s3, provisioned, "report.pdf", b"%PDF-1.7 not a csv")

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "failed"
    assert result.tasks["reject_file"] == "failed"
    assert result.tries["reject_file"] == 1  # invalid input is not retried
    assert result.tasks["validate_csv"] == "skipped"
    assert result.xcom["check_file_extension"]["extension"] == ".pdf"
    assert where_is(s3, provisioned, "report.pdf") == [provisioned.rejected_prefix]
    reason = read_json(s3, provisioned.bucket, "rejected/report.pdf.reason.json")
    assert reason["reason"] == "invalid_extension"
    alerts = alerts_inbox.receive(wait_seconds=3, expect=1)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["attributes"]["failure_class"] == "invalid_input"
    assert alert["attributes"]["dag_id"] == PIPELINE
    assert len(alert["subject"]) <= 100
    assert f"s3://{provisioned.bucket}/{key}" in alert["message"]
    assert f"s3://{provisioned.bucket}/rejected/report.pdf" in alert["message"]
    assert "/dags/clean_zone_file_pipeline/runs/" in alert["message"]
    assert "Try:           not retried" in alert["message"]  # invalid input is never retried


@pytest.mark.parametrize(
    ("rel", "body", "kind"),
    [
        ("UPPER.CSV", GOOD_CSV, FileKind.CSV),
        ("compressed.csv.gz", gzip.compress(GOOD_CSV, mtime=0), FileKind.CSV_GZIP),
    ],
)
def test_upper_case_and_gzip_csv_are_processed(run_dag, s3, provisioned, alerts_inbox, rel, body, kind):
    key = drop(s3, provisioned, rel, body)

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "success"
    assert result.xcom["check_file_extension"]["kind"] == kind.value
    assert where_is(s3, provisioned, rel) == [provisioned.processed_prefix]
    normalized = s3.get_object(Bucket=provisioned.bucket, Key=f"processed/{rel}.normalized.csv")[
        "Body"
    ].read()
    assert normalized == GOOD_CSV
    assert alerts_inbox.receive(wait_seconds=1) == []


@pytest.mark.parametrize(
    ("rel", "body", "reason"),
    [
        ("header_only.csv", b"id,name\n", "no_data_rows"),
        ("ragged.csv", b"id,name\n1,a\n2,b,extra\n", "ragged_rows"),
        ("binary.csv", bytes(range(256)) * 4, "binary"),
    ],
)
def test_bad_csv_is_quarantined_with_a_data_quality_alert_and_no_retries(
    run_dag, s3, provisioned, alerts_inbox, rel, body, reason
):
    key = drop(s3, provisioned, rel, body)

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "failed"
    assert result.tasks["validate_csv"] == "failed"
    assert result.tries["validate_csv"] == 1
    assert where_is(s3, provisioned, rel) == [provisioned.quarantine_prefix]
    sidecar = read_json(s3, provisioned.bucket, f"quarantine/{rel}.reason.json")
    assert sidecar["reason"] == reason
    assert sidecar["failure_class"] == "data_quality"
    alerts = alerts_inbox.receive(wait_seconds=3, expect=1)
    assert [a["attributes"]["failure_class"] for a in alerts] == ["data_quality"]
    assert alerts[0]["attributes"]["severity"] == "warning"
    assert f"s3://{provisioned.bucket}/quarantine/{rel}" in alerts[0]["message"]


@pytest.mark.parametrize("route", ["events", "sensor"])
def test_failure_generator_is_retried_per_policy_then_alerts_once(
    run_dag, s3, provisioned, alerts_inbox, monkeypatch, route
):
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "1")
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_TRIGGER_ROUTE", route)
    key = drop(s3, provisioned, "flaky.csv", GOOD_CSV)

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "failed"
    assert result.tasks["run_failure_generator"] == "failed"
    # tests/conftest.py sets MaxAttempts 3: the first try and three retries.
    assert result.tries["run_failure_generator"] == 4
    assert result.tasks["write_processed_output"] == "upstream_failed"
    # A retryable failure leaves the file claimed where it landed, whichever route started its run
    # (the watcher's sensor is not woken by it), ready for a clear-and-resume.
    assert where_is(s3, provisioned, "flaky.csv") == [provisioned.landing_prefix]
    alerts = alerts_inbox.receive(wait_seconds=3, expect=1)
    assert len(alerts) == 1
    assert alerts[0]["attributes"]["failure_class"] == "endpoint"
    assert alerts[0]["attributes"]["severity"] == "critical"
    assert "Try:           4 of 4" in alerts[0]["message"]
    assert "SimulatedOutage" in alerts[0]["message"]


def test_failure_generator_forced_to_succeed(run_dag, s3, provisioned, alerts_inbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "0")
    key = drop(s3, provisioned, "steady.csv", GOOD_CSV)

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "success"
    assert result.tries["run_failure_generator"] == 1
    assert result.xcom["run_failure_generator"] in (5.0, 10.0)
    assert alerts_inbox.receive(wait_seconds=1) == []


def test_same_file_dropped_twice_is_processed_once(run_dag, s3, provisioned, alerts_inbox):
    key = drop(s3, provisioned, "twice.csv", GOOD_CSV)
    first = run_dag(PIPELINE, {"key": key})
    drop(s3, provisioned, "twice.csv", GOOD_CSV)

    second = run_dag(PIPELINE, {"key": key})

    assert first.state == "success"
    assert second.state == "success"
    assert second.tasks["claim_file"] == "skipped"
    assert second.tasks["validate_csv"] == "skipped"
    assert where_is(s3, provisioned, "twice.csv") == [
        provisioned.processed_prefix,
        provisioned.duplicates_prefix,
    ]
    reason = read_json(s3, provisioned.bucket, "duplicates/twice.csv.reason.json")
    assert reason["reason"] == "duplicate"
    assert reason["first_outcome"] == "processed"
    assert alerts_inbox.receive(wait_seconds=1) == []


def test_a_second_trigger_for_a_claimed_file_does_nothing(run_dag, s3, provisioned, alerts_inbox):
    key = drop(s3, provisioned, "once.csv", GOOD_CSV)
    etag = s3.head_object(Bucket=provisioned.bucket, Key=key)["ETag"].strip('"')
    first = run_dag(PIPELINE, {"key": key, "etag": etag})

    again = run_dag(PIPELINE, {"key": key, "etag": etag})

    assert first.state == "success"
    assert again.tasks["claim_file"] == "skipped"
    assert where_is(s3, provisioned, "once.csv") == [provisioned.processed_prefix]
    assert alerts_inbox.receive(wait_seconds=1) == []


@pytest.mark.parametrize(
    "rel",
    [
        "with space/quarterly report.csv",
        "ünïcødé/日本語 データ.csv",
        "plus+and%percent.csv",
        ("long/" + "x" * 400 + ".csv"),
    ],
)
def test_awkward_keys_work(run_dag, s3, provisioned, rel):
    key = drop(s3, provisioned, rel, GOOD_CSV)

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "success"
    assert where_is(s3, provisioned, rel) == [provisioned.processed_prefix]
    assert read_json(s3, provisioned.bucket, f"processed/{rel}.summary.json")["rows"] == 3


def test_a_key_too_long_for_its_processed_names_is_rejected_under_a_short_name(
    run_dag, s3, provisioned, alerts_inbox
):
    # S3 allows 1,024-byte keys; "processed/" plus ".normalized.csv" would push this one past it.
    rel = "deep/" + "k" * (1024 - len("landing/deep/") - len(".csv")) + ".csv"
    key = drop(s3, provisioned, rel, GOOD_CSV)
    assert len(key.encode()) == 1024

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "failed"
    assert result.tasks["claim_file"] == "failed"
    kept = [k for k in keys(s3, provisioned.bucket, "rejected/_key_too_long/") if not k.endswith(".json")]
    assert len(kept) == 1
    reason = read_json(s3, provisioned.bucket, kept[0] + ".reason.json")
    assert reason["reason"] == "key_too_long"
    assert reason["source_key"] == key
    assert key not in keys(s3, provisioned.bucket, provisioned.landing_prefix)
    alerts = alerts_inbox.receive(wait_seconds=3, expect=1)
    assert [a["attributes"]["failure_class"] for a in alerts] == ["invalid_input"]
