"""The batch DAG's late-file wait, called as its sensor pokes, against the moto server: not done while
the window is open and a file is missing, done (handing the files on) once it is there or the window shut."""

from __future__ import annotations

import hashlib
import time
from typing import Any

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
