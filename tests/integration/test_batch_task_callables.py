"""The batch DAG's sensors, called as Airflow calls them, against the moto server: the late-file wait
(not done while the window is open and a file is missing, done once it is there or the window shut),
and the manifest sensor, done only once its run has taken a manifest."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk.exceptions import TaskDeferred

from clean_zone.airflow_glue import batch_tasks
from clean_zone.batch_records import TakenManifest
from clean_zone.manifest import FileEntry

CSV = b"id\n1\n"


def listed(*names: str) -> list[dict[str, Any]]:
    digest = hashlib.sha256(CSV).hexdigest()
    return [
        FileEntry(key=name, size=len(CSV), algorithm="SHA256", checksum=digest).to_dict() for name in names
    ]


def taken_now() -> dict[str, Any]:
    return TakenManifest("clean-zone", "manifests/b1.json", "processing/x", "run", time.time()).to_dict()


def test_the_wait_pokes_until_the_late_file_lands(s3: Any, provisioned: Any) -> None:
    files = listed("a.csv", "late.csv")
    s3.put_object(Bucket=provisioned.bucket, Key="batches/b1/a.csv", Body=CSV)
    taken = taken_now()
    deadline = taken["taken_at"] + 300

    first = batch_tasks.wait_for_listed_files(taken, "b1", files, deadline, verified=False)
    s3.put_object(Bucket=provisioned.bucket, Key="batches/b1/late.csv", Body=CSV)
    second = batch_tasks.wait_for_listed_files(taken, "b1", files, deadline, verified=False)

    assert not first.is_done
    assert second.is_done
    assert second.xcom_value == files


def test_a_closed_window_or_an_earlier_verification_ends_the_wait_at_once(s3: Any, provisioned: Any) -> None:
    files = listed("never.csv")
    taken = taken_now()

    closed = batch_tasks.wait_for_listed_files(taken, "b1", files, taken["taken_at"] - 1, verified=False)
    verified = batch_tasks.wait_for_listed_files(taken, "b1", files, taken["taken_at"] + 300, verified=True)

    assert closed.is_done and closed.xcom_value == files  # verification then reports it missing
    assert verified.is_done


def _sensor(bucket: str) -> batch_tasks.ManifestSensor:
    return batch_tasks.ManifestSensor(
        task_id="wait_for_manifest",
        bucket_name=bucket,
        bucket_key="manifests/*[!/]",
        wildcard_match=True,
        deferrable=True,
        poke_interval=7,
    )


def test_a_sensor_that_loses_the_race_for_a_manifest_waits_again(s3: Any, provisioned: Any) -> None:
    bucket = provisioned.bucket
    s3.put_object(Bucket=bucket, Key="manifests/only.json", Body=b"{}")
    sensor = _sensor(bucket)
    winner, loser = {"run_id": "scheduled__a"}, {"run_id": "scheduled__b"}

    # Both runs' triggers saw the manifest; the first to come back takes it.
    sensor.execute_complete(winner, {"status": "success"})  # type: ignore[arg-type]
    with pytest.raises(TaskDeferred) as paused:
        sensor.execute_complete(loser, {"status": "success"})  # type: ignore[arg-type]

    assert paused.value.method_name == "look_again"  # a poke interval in the triggerer, then a look
    assert isinstance(paused.value.trigger, TimeDeltaTrigger)
    with pytest.raises(TaskDeferred) as waiting:
        sensor.look_again(loser)  # type: ignore[arg-type]
    assert isinstance(waiting.value.trigger, S3KeyTrigger)  # nothing left: back to waiting for one

    s3.put_object(Bucket=bucket, Key="manifests/next.json", Body=b"{}")
    sensor.look_again(loser)  # type: ignore[arg-type]  # a new one: taken at once, the wait ends
    assert batch_tasks.take_manifest(**winner)["key"] == "manifests/only.json"
    assert batch_tasks.take_manifest(**loser)["key"] == "manifests/next.json"
