"""Hostile input through the file pipeline DAG (dag.test() against the moto server): a gzip bomb past
the configured limit, a key with spaces at its ends, and a run with no key at all. Each ends
in its documented place with the alert due (docs/file-checks.md, "Hostile input")."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

PIPELINE = "clean_zone_file_pipeline"


def listing(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {
        o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].startswith("_state/")
    }


def test_a_gzip_bomb_past_the_configured_limit_is_quarantined_with_a_warning(
    run_dag: Any, s3: Any, provisioned: Any, alerts_inbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_MAX_INFLATED_BYTES", str(4 * 1024 * 1024))
    bomb = gzip.compress(b"id,pad\n" + b"1,0\n" * (16 * 1024 * 1024), compresslevel=9)  # 64 MiB inflated
    s3.put_object(Bucket=provisioned.bucket, Key="landing/bomb.csv.gz", Body=bomb)

    result = run_dag(PIPELINE, {"key": "landing/bomb.csv.gz"})

    assert result.state == "failed"
    assert result.tasks["validate_csv"] == "failed"
    assert result.tries["validate_csv"] == 1
    assert listing(s3, provisioned.bucket) == {"quarantine/bomb.csv.gz", "quarantine/bomb.csv.gz.reason.json"}
    [alert] = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert alert["attributes"]["severity"] == "warning"
    assert "gzip_bomb" in alert["message"]


def test_a_key_with_spaces_at_its_ends_is_rejected_and_quoted_in_the_alert(
    run_dag: Any, s3: Any, provisioned: Any, alerts_inbox: Any
) -> None:
    # "report.csv " has the extension ".csv " (the space included): not a CSV, so it is rejected.
    key = "landing/ report.csv "
    s3.put_object(Bucket=provisioned.bucket, Key=key, Body=b"id,name\n1,alpha\n")

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "failed"
    assert listing(s3, provisioned.bucket) == {"rejected/ report.csv ", "rejected/ report.csv .reason.json"}
    [alert] = alerts_inbox.receive(wait_seconds=5, expect=1)
    # The spaces at the key's ends are visible: the key is quoted.
    assert 'S3 object:     s3://clean-zone/"landing/ report.csv "' in alert["message"]
    assert 'Now at:        s3://clean-zone/"rejected/ report.csv "' in alert["message"]
    assert "Try:           not retried" in alert["message"]


def test_a_run_with_no_key_is_refused_before_it_starts_and_pages_no_one(
    run_dag: Any, provisioned: Any, alerts_inbox: Any
) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="key"):
        run_dag(PIPELINE, {})

    assert alerts_inbox.receive(wait_seconds=1) == []
