"""The manifest batch pipeline end to end: a partner's files and manifest put into moto's S3, the DAG
run with dag.test() (sensor, mapped verification and processing included), outcomes read back from
S3 and alerts read from the SQS inbox subscribed to the SNS topic."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

PIPELINE = "clean_zone_manifest_batch"
DAGS = Path(__file__).resolve().parents[2] / "dags"


def csv_body(name: str, rows: int) -> bytes:
    lines = ["id,name,amount"] + [f"{i},{name}-{i},{i * 10}" for i in range(1, rows + 1)]
    return ("\n".join(lines) + "\n").encode()


GOOD = {
    "orders/part-0001.csv": csv_body("a", 3),
    "orders/part-0002.csv": csv_body("b", 5),
    "customers.csv": csv_body("c", 2),
}


def keys(s3: Any, bucket: str, prefix: str = "") -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def read_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def entry(key: str, body: bytes, *, algorithm: str = "SHA256", rows: int | None = None) -> dict[str, Any]:
    digest = (
        hashlib.sha256(body) if algorithm == "SHA256" else hashlib.md5(body, usedforsecurity=False)
    ).hexdigest()
    item: dict[str, Any] = {
        "key": key,
        "size": len(body),
        "checksum": {"algorithm": algorithm, "value": digest},
    }
    if rows is not None:
        item["rows"] = rows
    return item


def manifest_for(batch_id: str, files: dict[str, bytes], **kwargs: Any) -> dict[str, Any]:
    return {
        "manifest_version": 1,
        "batch_id": batch_id,
        "files": [entry(k, body, **kwargs) for k, body in files.items()],
    }


def upload_files(s3: Any, settings: Any, batch_id: str, files: dict[str, bytes], **put: Any) -> None:
    for key, body in files.items():
        s3.put_object(
            Bucket=settings.bucket, Key=f"{settings.batches_prefix}{batch_id}/{key}", Body=body, **put
        )


def upload_manifest(s3: Any, settings: Any, name: str, document: Any) -> str:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    key = f"{settings.manifests_prefix}{name}"
    s3.put_object(Bucket=settings.bucket, Key=key, Body=body)
    return key


@pytest.fixture
def short_window(monkeypatch: pytest.MonkeyPatch) -> float:
    """Late files get two seconds (the product default is 300)."""
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BATCH_LATE_FILE_WINDOW_SECONDS", "2")
    return 2.0


def test_good_batch_built_by_the_partner_cli_is_processed_with_a_summary(
    run_dag, s3, provisioned, alerts_inbox, short_window, tmp_path
):
    folder = tmp_path / "outgoing"
    for key, body in GOOD.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(body)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "clean_zone_tools.partner.manifest_builder",
            str(folder),
            "--batch-id",
            "acme-0914",
            "--rows",
            "-o",
            str(tmp_path / "acme-0914.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    # One file with S3's own SHA-256 stored, so both verification paths run.
    upload_files(
        s3, provisioned, "acme-0914", {"customers.csv": GOOD["customers.csv"]}, ChecksumAlgorithm="SHA256"
    )
    upload_files(s3, provisioned, "acme-0914", {k: v for k, v in GOOD.items() if k != "customers.csv"})
    upload_manifest(s3, provisioned, "acme-0914.json", (tmp_path / "acme-0914.json").read_bytes())

    result = run_dag(PIPELINE)

    assert result.state == "success", result
    checks = {c["key"]: c for name, c in result.xcom.items() if name.startswith("verify_file[")}
    assert {k: c["status"] for k, c in checks.items()} == dict.fromkeys(GOOD, "ok")
    assert checks["customers.csv"]["method"] == "s3_checksum"
    assert checks["orders/part-0001.csv"]["method"] == "streamed"

    bucket, done = provisioned.bucket, "processed/batches/acme-0914/"
    summary = read_json(s3, bucket, done + "summary.json")
    assert summary["outcome"] == "processed"
    assert summary["files"] == 3
    assert summary["rows"] == 10
    assert summary["bytes"] == sum(len(b) for b in GOOD.values())
    assert summary["duration_seconds"] >= 0
    assert read_json(s3, bucket, done + "manifest.json")["batch_id"] == "acme-0914"
    for key, body in GOOD.items():
        assert s3.get_object(Bucket=bucket, Key=f"{done}files/{key}")["Body"].read() == body
        assert s3.get_object(Bucket=bucket, Key=f"{done}files/{key}.normalized.csv")["Body"].read() == body
    # Nothing left behind: the batch prefix, the manifests prefix and processing/ are empty.
    assert keys(s3, bucket, "batches/") == set()
    assert keys(s3, bucket, "manifests/") == set()
    assert keys(s3, bucket, "processing/") == set()
    assert alerts_inbox.receive(wait_seconds=1) == []


def only_alert(inbox: Any) -> dict[str, Any]:
    """The one alert a person received (waits for it, then makes sure no second one follows)."""
    alerts = inbox.receive(wait_seconds=5, expect=1)
    alerts = inbox.receive(wait_seconds=1)
    assert len(alerts) == 1, [a["subject"] for a in alerts]
    return alerts[0]


def quarantined_report(s3: Any, settings: Any, prefix: str) -> tuple[str, dict[str, Any]]:
    """(folder, report) of the one quarantined manifest or batch under ``prefix``."""
    reports = [k for k in keys(s3, settings.bucket, prefix) if k.endswith("/report.json")]
    assert len(reports) == 1, reports
    return reports[0][: -len("report.json")], read_json(s3, settings.bucket, reports[0])


def test_missing_file_quarantines_the_whole_batch_with_one_alert(
    run_dag, s3, provisioned, alerts_inbox, short_window
):
    listed = dict(GOOD)
    upload_files(s3, provisioned, "acme-0915", {k: v for k, v in listed.items() if k != "customers.csv"})
    upload_manifest(s3, provisioned, "acme-0915.json", manifest_for("acme-0915", listed))

    result = run_dag(PIPELINE)

    assert result.state == "failed"
    assert result.tasks["accept_or_quarantine_batch"] == "failed"
    assert result.tries["accept_or_quarantine_batch"] == 1  # data problems are not retried
    assert not any(
        name.startswith("process_file") and state == "success" for name, state in result.tasks.items()
    )
    folder, report = quarantined_report(s3, provisioned, "quarantine/batches/acme-0915/")
    assert report["stage"] == "verification"
    assert [(p["key"], p["status"]) for p in report["problems"]] == [("customers.csv", "missing")]
    # The whole batch moved: the files that were there, and the manifest; nothing processed.
    assert keys(s3, provisioned.bucket, folder + "files/") == {
        f"{folder}files/orders/part-0001.csv",
        f"{folder}files/orders/part-0002.csv",
    }
    assert read_json(s3, provisioned.bucket, folder + "manifest.json")["batch_id"] == "acme-0915"
    assert keys(s3, provisioned.bucket, "batches/") == set()
    assert keys(s3, provisioned.bucket, "processed/") == set()
    assert keys(s3, provisioned.bucket, "_state/batches/") == set()  # a corrected delivery may run
    alert = only_alert(alerts_inbox)
    assert alert["attributes"]["failure_class"] == "data_quality"
    assert alert["attributes"]["task_id"] == "accept_or_quarantine_batch"
    assert "missing: customers.csv" in alert["message"]
    assert f"s3://{provisioned.bucket}/manifests/acme-0915.json" in alert["message"]


def test_checksum_and_size_mismatches_are_each_named_in_the_report_and_the_alert(
    run_dag, s3, provisioned, alerts_inbox, short_window
):
    listed = manifest_for("acme-0916", GOOD)
    delivered = dict(GOOD)
    delivered["orders/part-0001.csv"] = GOOD["orders/part-0001.csv"].replace(b"a-1", b"X-1")  # same size
    delivered["customers.csv"] = GOOD["customers.csv"] + b"3,c-3,30\n"
    upload_files(s3, provisioned, "acme-0916", delivered)
    upload_manifest(s3, provisioned, "acme-0916.json", listed)

    result = run_dag(PIPELINE)

    assert result.state == "failed"
    _, report = quarantined_report(s3, provisioned, "quarantine/batches/acme-0916/")
    problems = {p["key"]: p for p in report["problems"]}
    assert problems["orders/part-0001.csv"]["status"] == "checksum_mismatch"
    assert (
        problems["orders/part-0001.csv"]["actual_checksum"]
        == hashlib.sha256(delivered["orders/part-0001.csv"]).hexdigest()
    )
    assert problems["customers.csv"]["status"] == "size_mismatch"
    assert "orders/part-0002.csv" not in problems
    message = only_alert(alerts_inbox)["message"]
    assert "checksum_mismatch: orders/part-0001.csv" in message
    assert "size_mismatch: customers.csv" in message


def test_late_file_arriving_inside_the_window_is_waited_for(
    run_dag, s3, provisioned, alerts_inbox, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BATCH_LATE_FILE_WINDOW_SECONDS", "20")
    upload_files(s3, provisioned, "acme-0917", {k: v for k, v in GOOD.items() if k != "customers.csv"})
    upload_manifest(s3, provisioned, "acme-0917.json", manifest_for("acme-0917", GOOD))

    def deliver_late() -> None:
        # The partner's last file lands after the run has taken the manifest.
        deadline = time.monotonic() + 60
        while keys(s3, provisioned.bucket, "manifests/") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        upload_files(s3, provisioned, "acme-0917", {"customers.csv": GOOD["customers.csv"]})

    late = threading.Thread(target=deliver_late, daemon=True)
    late.start()
    result = run_dag(PIPELINE)
    late.join(timeout=5)

    assert result.state == "success", result
    assert len(result.xcom["wait_for_listed_files"]) == 3  # the listed files, handed to verification
    assert all(result.tasks[f"verify_file[{i}]"] == "success" for i in range(3))
    assert read_json(s3, provisioned.bucket, "processed/batches/acme-0917/summary.json")["files"] == 3
    assert alerts_inbox.receive(wait_seconds=1) == []


def _entry_for(key: str, algorithm: str = "SHA256") -> dict[str, Any]:
    return entry(key, b"id\n1\n", algorithm=algorithm)


BAD_MANIFESTS: dict[str, tuple[Any, list[str]]] = {
    "not_json": (b"id,name\n1,this is a CSV, not a manifest\n", ["not_json"]),
    "wrong_version": (
        {"manifest_version": 2, "batch_id": "b", "files": [_entry_for("a.csv")]},
        ["unsupported_version"],
    ),
    "empty_file_list": ({"manifest_version": 1, "batch_id": "b", "files": []}, ["empty_file_list"]),
    "duplicate_entries": (
        {"manifest_version": 1, "batch_id": "b", "files": [_entry_for("a.csv")] * 2},
        ["duplicate_entries"],
    ),
    "keys_escaping_the_batch_prefix": (
        {
            "manifest_version": 1,
            "batch_id": "b",
            "files": [
                _entry_for("../other-batch/a.csv"),
                _entry_for("/etc/passwd"),
                _entry_for("s3://other-bucket/a.csv"),
            ],
        },
        ["key_escapes_batch_prefix"] * 3,
    ),
    "unknown_checksum_algorithm": (
        {
            "manifest_version": 1,
            "batch_id": "b",
            "files": [{"key": "a.csv", "size": 5, "checksum": {"algorithm": "CRC32C", "value": "AAAAAA=="}}],
        },
        ["unknown_checksum_algorithm"],
    ),
    "lists_itself": (
        {"manifest_version": 1, "batch_id": "b", "files": [_entry_for("lists_itself.json")]},
        ["lists_itself"],
    ),
    "ten_thousand_entries": (
        {
            "manifest_version": 1,
            "batch_id": "b",
            "files": [_entry_for(f"part-{i:05}.csv") for i in range(10_000)],
        },
        ["too_many_files"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_bad_manifest_is_quarantined_with_its_reason_and_one_alert(
    case, run_dag, s3, provisioned, alerts_inbox, short_window
):
    document, reasons = BAD_MANIFESTS[case]
    upload_files(s3, provisioned, "b", {"a.csv": b"id\n1\n"})
    upload_manifest(s3, provisioned, f"{case}.json", document)

    result = run_dag(PIPELINE)

    assert result.state == "failed"
    assert result.tasks["read_manifest"] == "failed"
    assert result.tries["read_manifest"] == 1
    assert result.tasks["wait_for_listed_files"] == "upstream_failed"
    folder, report = quarantined_report(s3, provisioned, "quarantine/manifests/")
    assert report["reason"] == reasons[0]
    assert [p["reason"] for p in report["problems"]] == reasons
    assert report["manifest_key"] == f"manifests/{case}.json"
    assert f"{folder}{case}.json" in keys(s3, provisioned.bucket, folder)  # kept, not lost
    assert keys(s3, provisioned.bucket, "manifests/") == set()
    assert keys(s3, provisioned.bucket, "batches/") == {"batches/b/a.csv"}  # data files left alone
    alert = only_alert(alerts_inbox)
    assert alert["attributes"]["failure_class"] == "data_quality"
    assert alert["attributes"]["task_id"] == "read_manifest"
    assert f"bad manifest: {reasons[0]}" in alert["message"]


def test_a_verified_file_the_single_file_steps_refuse_quarantines_the_batch_after_processing(
    run_dag, s3, provisioned, alerts_inbox, short_window
):
    delivered = {**GOOD, "notes.pdf": b"%PDF-1.7 not a CSV"}
    listed = manifest_for("acme-0921", delivered)
    listed["files"][0]["rows"] = 99  # the partner's row count for orders/part-0001.csv is wrong
    upload_files(s3, provisioned, "acme-0921", delivered)
    upload_manifest(s3, provisioned, "acme-0921.json", listed)

    result = run_dag(PIPELINE)

    assert result.state == "failed"
    assert result.tasks["accept_or_quarantine_batch"] == "success"  # every file was present and intact
    assert result.tasks["finish_batch"] == "failed"
    folder, report = quarantined_report(s3, provisioned, "quarantine/batches/acme-0921/")
    assert report["stage"] == "processing"
    assert {p["key"]: p["reason"] for p in report["problems"]} == {
        "orders/part-0001.csv": "row_count_mismatch",
        "notes.pdf": "invalid_extension",
    }
    assert len(keys(s3, provisioned.bucket, folder + "files/")) == 4  # the whole batch, not just the bad
    assert keys(s3, provisioned.bucket, "processed/") == set()  # no half batch for consumers
    assert keys(s3, provisioned.bucket, "_state/batches/") == set()
    message = only_alert(alerts_inbox)["message"]
    assert "row_count_mismatch: orders/part-0001.csv" in message
    assert "invalid_extension: notes.pdf" in message


def test_reuploaded_manifest_does_not_process_the_batch_twice(
    run_dag, s3, provisioned, alerts_inbox, short_window
):
    document = manifest_for("acme-0918", GOOD)
    upload_files(s3, provisioned, "acme-0918", GOOD)
    upload_manifest(s3, provisioned, "acme-0918.json", document)
    first = run_dag(PIPELINE)
    assert first.state == "success", first
    summary_before = read_json(s3, provisioned.bucket, "processed/batches/acme-0918/summary.json")
    processed_before = keys(s3, provisioned.bucket, "processed/")

    upload_manifest(s3, provisioned, "acme-0918.json", document)
    second = run_dag(PIPELINE)

    assert second.state == "success"
    assert second.tasks["read_manifest"] == "skipped"
    assert not any(
        name.startswith(("verify_file", "process_file")) and state != "skipped"
        for name, state in second.tasks.items()
    )
    assert read_json(s3, provisioned.bucket, "processed/batches/acme-0918/summary.json") == summary_before
    assert keys(s3, provisioned.bucket, "processed/") == processed_before
    notes = [
        k for k in keys(s3, provisioned.bucket, "duplicates/manifests/acme-0918/") if k.endswith("note.json")
    ]
    assert len(notes) == 1
    note = read_json(s3, provisioned.bucket, notes[0])
    assert note["outcome"] == "duplicate"
    assert note["first_state"] == "processed"
    assert keys(s3, provisioned.bucket, "manifests/") == set()
    assert alerts_inbox.receive(wait_seconds=1) == []


def manifest_sensor(settings: Any) -> Any:
    """The DAG's own manifest sensor, to poke against moto. (dag.test() runs a deferred trigger until
    its first event and ignores its timeout, so "no manifest" cannot be a dag.test() run.)"""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS / f"{PIPELINE}.py"), safe_mode=True).dags[PIPELINE]
    sensor = dag.get_task("wait_for_manifest")
    sensor.bucket_name = settings.bucket  # rendered from the Variable template at run time
    return sensor


def test_data_files_alone_never_start_a_batch_only_a_manifest_does(aws_env, s3, provisioned, airflow_db):
    sensor = manifest_sensor(provisioned)
    upload_files(s3, provisioned, "acme-0919", GOOD)
    s3.put_object(Bucket=provisioned.bucket, Key="manifests/", Body=b"")  # folder markers, as the
    s3.put_object(Bucket=provisioned.bucket, Key="manifests/acme/", Body=b"")  # S3 console makes them
    assert sensor.poke({"run_id": RUN_BIG}) is False

    upload_manifest(s3, provisioned, "acme/acme-0919.json", manifest_for("acme-0919", GOOD))
    assert sensor.poke({"run_id": RUN_BIG}) is True
    # The sensor is done only because this run took the manifest: no other run can have it now.
    assert keys(s3, provisioned.bucket, "manifests/") == {"manifests/", "manifests/acme/"}
    assert sensor.poke({"run_id": "scheduled__2026-09-19T06:01:00+00:00"}) is False


RUN_BIG = "scheduled__2026-09-19T06:00:00+00:00"
BIG = {f"orders/part-{i:02}.csv": csv_body(f"p{i}", 200) for i in range(6)}


def test_a_small_batch_is_finished_while_a_large_one_taken_before_it_is_still_being_verified(
    run_dag, s3, provisioned, alerts_inbox, short_window
):
    from types import SimpleNamespace

    from airflow.sdk.execution_time.context import set_current_context

    from clean_zone.airflow_glue import batch_tasks as steps

    bucket = provisioned.bucket
    upload_files(s3, provisioned, "acme-big", BIG)
    upload_manifest(s3, provisioned, "acme-big.json", manifest_for("acme-big", BIG))
    small = {"customers.csv": GOOD["customers.csv"]}
    upload_files(s3, provisioned, "acme-small", small)
    upload_manifest(s3, provisioned, "acme-small.json", manifest_for("acme-small", small))

    # The large batch's run, as a worker runs its tasks, stopped after its first file's verification.
    big_run = {"run_id": RUN_BIG, "ti": SimpleNamespace(try_number=1)}
    assert manifest_sensor(provisioned).poke(big_run) is True
    taken = steps.take_manifest(**big_run)
    assert taken["key"] == "manifests/acme-big.json"  # the oldest
    batch = steps.read_manifest(taken)
    listed = steps.wait_for_listed_files(
        taken, "acme-big", batch["files"], batch["deadline"], batch["verified"]
    )
    assert listed.is_done
    with set_current_context(big_run):  # type: ignore[arg-type]
        checks = [steps.verify_file(listed.xcom_value[0], "acme-big", batch["verified"])]

    # Meanwhile another run of the DAG, with its real sensor, takes the small manifest and finishes it.
    other = run_dag(PIPELINE)

    assert other.state == "success", other
    assert other.xcom["take_manifest"]["key"] == "manifests/acme-small.json"
    assert read_json(s3, bucket, "processed/batches/acme-small/summary.json")["files"] == 1
    assert keys(s3, bucket, "processed/batches/acme-big/") == set()  # still in flight
    assert keys(s3, bucket, "_state/batches/") == {"_state/batches/acme-small.json"}
    assert keys(s3, bucket, "manifests/") == set()

    # The large batch's run carries on where it was and finishes its own batch, once.
    with set_current_context(big_run):  # type: ignore[arg-type]
        checks += [steps.verify_file(f, "acme-big", batch["verified"]) for f in listed.xcom_value[1:]]
        steps.accept_or_quarantine_batch(checks, taken, "acme-big", listed.xcom_value)
        results = [steps.process_file(f, taken, "acme-big", **big_run) for f in listed.xcom_value]
    summary = steps.finish_batch(results, taken, "acme-big", listed.xcom_value)

    assert summary["files"] == len(BIG)
    assert summary["run_id"] == RUN_BIG
    assert read_json(s3, bucket, "processed/batches/acme-big/summary.json")["rows"] == 200 * len(BIG)
    assert keys(s3, bucket, "batches/") == set()
    assert keys(s3, bucket, "processing/") == set()
    assert keys(s3, bucket, "duplicates/") == set()
    assert keys(s3, bucket, "quarantine/") == set()
    assert len(keys(s3, bucket, "_state/manifest-takes/")) == 2  # one take per manifest
    assert alerts_inbox.receive(wait_seconds=1) == []


def _run_again(dag_id: str, logical_date: Any) -> tuple[str, dict[str, str]]:
    """dag.test() with a fixed logical date: the same run id, its task instances cleared, as a user's
    "Clear" of the whole DAG run does."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS), safe_mode=True)
    dag_run = bag.dags[dag_id].test(logical_date=logical_date, run_after=logical_date)
    states = {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
        for ti in dag_run.get_task_instances()
    }
    return str(dag_run.state), states


def test_rerunning_a_failed_run_resumes_it_and_processes_the_batch_once(
    s3, provisioned, alerts_inbox, short_window, airflow_db, monkeypatch
):
    from datetime import UTC, datetime

    upload_files(s3, provisioned, "acme-0920", GOOD)
    upload_manifest(s3, provisioned, "acme-0920.json", manifest_for("acme-0920", GOOD))
    when = datetime(2026, 9, 20, 6, 0, tzinfo=UTC)
    # First try: the processing step's downstream service is down (the failure generator always fails).
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "1")
    state, tasks = _run_again(PIPELINE, when)
    assert state == "failed"
    assert tasks["accept_or_quarantine_batch"] == "success"
    assert tasks["finish_batch"] == "upstream_failed"
    assert read_json(s3, provisioned.bucket, "_state/batches/acme-0920.json")["state"] == "processing"

    # The service is back; the operator clears the whole run.
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "0")
    state, tasks = _run_again(PIPELINE, when)
    assert state == "success", tasks
    assert tasks["wait_for_manifest"] == "skipped"  # it went straight back to its own manifest
    summary = read_json(s3, provisioned.bucket, "processed/batches/acme-0920/summary.json")
    assert summary["files"] == 3
    assert summary["rows"] == 10
    assert keys(s3, provisioned.bucket, "batches/") == set()
    assert keys(s3, provisioned.bucket, "quarantine/") == set()
    assert keys(s3, provisioned.bucket, "duplicates/") == set()

    # Cleared once more after success: nothing is redone, nothing moves.
    before = keys(s3, provisioned.bucket)
    state, tasks = _run_again(PIPELINE, when)
    assert state == "success"
    assert tasks["read_manifest"] == "skipped"
    assert keys(s3, provisioned.bucket) == before
    assert read_json(s3, provisioned.bucket, "processed/batches/acme-0920/summary.json") == summary
