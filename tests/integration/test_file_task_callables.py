"""The file pipeline's task callables called directly, as Airflow calls them, against the moto server:
each step takes the claim it is given and leaves the file in the right place."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from clean_zone.airflow_glue import file_tasks
from clean_zone.failures import DataQualityError, DependencyError, InvalidFileError

RUN = "manual__2026-09-14T06:00:00+00:00"
GOOD = b"id,name\n1,alpha\n2,beta\n"


def claim(key: str, run_id: str = RUN) -> dict[str, Any]:
    return file_tasks.claim_file(params={"key": key, "bucket": None, "etag": None}, run_id=run_id)


def keys(s3: Any, bucket: str) -> set[str]:
    return {
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if "_state/" not in o["Key"]
    }


def test_a_good_csv_goes_through_every_step(s3: Any, provisioned: Any) -> None:
    s3.put_object(Bucket=provisioned.bucket, Key="landing/p/orders.csv", Body=GOOD)

    claimed = claim("landing/p/orders.csv")
    checked = file_tasks.check_file_extension(claimed)
    assert file_tasks.route_by_extension(checked) == file_tasks.VALIDATE_TASK
    assert file_tasks.validate_csv(claimed)["rows"] == 2
    generated = file_tasks.run_failure_generator(claimed, ti=SimpleNamespace(try_number=1))
    summary = file_tasks.write_processed_output(claimed, generated)

    assert summary["location"] == "s3://clean-zone/processed/p/orders.csv"
    assert summary["failure_generator_result"] == generated
    assert keys(s3, provisioned.bucket) == {
        "processed/p/orders.csv",
        "processed/p/orders.csv.normalized.csv",
        "processed/p/orders.csv.summary.json",
    }
    stored = json.loads(
        s3.get_object(Bucket=provisioned.bucket, Key="processed/p/orders.csv.summary.json")["Body"].read()
    )
    assert stored["source"] == "s3://clean-zone/landing/p/orders.csv"
    assert stored["rows"] == 2
    # Run again (a cleared task): the same outputs, the file stays where it is.
    assert file_tasks.write_processed_output(claimed, generated)["location"] == summary["location"]


def test_a_bad_csv_is_quarantined_by_the_validation_step(s3: Any, provisioned: Any) -> None:
    s3.put_object(Bucket=provisioned.bucket, Key="landing/bad.csv", Body=b"a,b\n1\n")
    claimed = claim("landing/bad.csv")

    with pytest.raises(DataQualityError) as caught:
        file_tasks.validate_csv(claimed)

    assert caught.value.location == "s3://clean-zone/quarantine/bad.csv"
    assert "quarantine/bad.csv" in keys(s3, provisioned.bucket)


def test_another_extension_is_rejected_with_a_reason(s3: Any, provisioned: Any) -> None:
    s3.put_object(Bucket=provisioned.bucket, Key="landing/notes.txt", Body=b"hello")
    claimed = claim("landing/notes.txt")
    checked = file_tasks.check_file_extension(claimed)
    assert file_tasks.route_by_extension(checked) == file_tasks.REJECT_TASK

    with pytest.raises(InvalidFileError, match=r"'\.txt'"):
        file_tasks.reject_file(claimed, checked)

    assert keys(s3, provisioned.bucket) == {"rejected/notes.txt", "rejected/notes.txt.reason.json"}


def test_the_claim_step_skips_markers_and_waits_for_missing_files(s3: Any, provisioned: Any) -> None:
    s3.put_object(Bucket=provisioned.bucket, Key="landing/folder/", Body=b"")
    with pytest.raises(AirflowSkipException, match="folder marker"):
        claim("landing/folder/")
    with pytest.raises(DependencyError, match="does not exist"):
        claim("landing/never.csv")
    with pytest.raises(InvalidFileError, match="trigger this DAG with conf"):
        file_tasks.claim_file(params={}, run_id=RUN)
