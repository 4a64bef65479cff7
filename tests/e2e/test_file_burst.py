"""Bursts end to end: many files dropped into moto's S3 at once, handed over by a trigger DAG as one
burst run (or a few), run with dag.test(); outcomes read back from S3, alerts from the SQS inbox."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from clean_zone import failure_generator
from clean_zone.burst import claimant
from tests.e2e.conftest import _load_dag
from tests.e2e.test_file_pipeline import GOOD_CSV, drop, keys, read_json, where_is

pytestmark = pytest.mark.e2e

BURST = "clean_zone_file_burst"


def event_messages(settings: Any, expect: int) -> list[dict[str, Any]]:
    """The S3 event notifications the bucket sent to the events queue (S3's test event included)."""
    sqs = boto3.client("sqs", region_name=settings.region)
    found: list[dict[str, Any]] = []
    for _ in range(20):
        batch = sqs.receive_message(
            QueueUrl=settings.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        found += batch
        if not batch and len(found) >= expect:
            break
    return found


def run_burst(conf: dict[str, Any], when: datetime) -> tuple[Any, dict[str, str]]:
    """One burst run with a fixed logical date: running it again is a user's "Clear" of the run."""
    dag_run = _load_dag(BURST).test(logical_date=when, run_after=when, run_conf=conf)
    states = {
        (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
        for ti in dag_run.get_task_instances()
    }
    return dag_run, states


MIXED = {
    **{f"good/{n:02}.csv": GOOD_CSV for n in range(20)},
    "good/packed.csv.gz": gzip.compress(GOOD_CSV),
    "good/more.csv.gz": gzip.compress(GOOD_CSV),
    "odd/report.pdf": b"%PDF-1.7",
    "odd/notes.txt": b"hello",
    "odd/README": b"no extension",
    "bad/ragged.csv": b"a,b,c\n1,2\n",
    "bad/binary.csv": b"a,b\n1,\x00\n",
    "bad/latin1.csv": "name\nJos\xe9\n".encode("latin-1"),
    "bad/empty.csv": b"",
    "bad/header-only.csv": b"a,b,c\n",
}
BAD = {
    "odd/report.pdf": ("rejected/", "invalid_extension"),
    "odd/notes.txt": ("rejected/", "invalid_extension"),
    "odd/README": ("rejected/", "invalid_extension"),
    "bad/ragged.csv": ("quarantine/", "ragged_rows"),
    "bad/binary.csv": ("quarantine/", "binary"),
    "bad/latin1.csv": ("quarantine/", "not_utf8"),
    "bad/empty.csv": ("quarantine/", "empty"),
    "bad/header-only.csv": ("quarantine/", "no_data_rows"),
}


def test_a_burst_of_mixed_files_ends_each_in_its_place_with_one_digest(
    run_dag, s3, provisioned, alerts_inbox
):
    for rel, body in MIXED.items():
        drop(s3, provisioned, rel, body)
    messages = event_messages(provisioned, expect=len(MIXED))

    handed = run_dag("clean_zone_s3_events", {"messages": messages})

    # All 30 landed within the window and under N: one burst run, not 30 pipeline runs.
    (trigger,) = handed.xcom["start_file_runs"]
    assert trigger["trigger_dag_id"] == BURST
    assert sorted(f["key"] for f in trigger["conf"]["files"]) == sorted(f"landing/{r}" for r in MIXED)

    dag_run, tasks = run_burst(trigger["conf"], datetime(2026, 10, 1, tzinfo=UTC))

    assert dag_run.state == "success", tasks
    # Task instances do not grow with the files: plan, two chunks of 25 and 5, the report.
    assert sorted(tasks) == ["plan_chunks", "process_chunk[0]", "process_chunk[1]", "report_burst"]
    assert len(tasks) / len(MIXED) <= 0.2
    for rel in MIXED:
        expected = BAD.get(rel, ("processed/", None))[0]
        assert where_is(s3, provisioned, rel) == [expected], rel
    for rel, (place, reason) in BAD.items():
        assert read_json(s3, provisioned.bucket, f"{place}{rel}.reason.json")["reason"] == reason
    summary = read_json(s3, provisioned.bucket, "processed/good/packed.csv.gz.summary.json")
    assert summary["rows"] == 3
    assert summary["failure_generator_result"] in (5.0, 10.0)
    # Every file keeps its own ledger record, in its terminal state.
    ledger = [read_json(s3, provisioned.bucket, k) for k in keys(s3, provisioned.bucket, "_state/objects/")]
    assert sorted(r["key"] for r in ledger) == sorted(f"landing/{r}" for r in MIXED)
    assert {r["state"] for r in ledger} == {"processed", "rejected", "quarantine"}

    alerts = alerts_inbox.receive(wait_seconds=3, expect=1)
    assert len(alerts) == 1  # one digest for the run, not one page per bad file
    digest = alerts[0]
    assert digest["attributes"]["severity"] == "warning"  # partner problems only
    assert "8 of 30 files need attention" in digest["subject"]
    for rel, (place, reason) in BAD.items():
        assert f"landing/{rel} | " in digest["message"]
        assert f"| {reason} | s3://{provisioned.bucket}/{place}{rel}" in digest["message"]
    assert "good/00.csv" not in digest["message"]


def test_n_and_t_cut_the_waiting_files_into_runs_and_none_is_left_behind(
    run_dag, s3, provisioned, alerts_inbox, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_TRIGGER_ROUTE", "both")
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BURST_MAX_FILES", "5")
    for n in range(12):
        drop(s3, provisioned, f"wave/{n:02}.csv", GOOD_CSV)

    handed = run_dag("clean_zone_landing_watcher")

    triggers = handed.xcom["start_file_runs"]
    # N = 5: runs of 5, 5 and 2, all handed over at once (the last two need no new upload).
    assert [len(t["conf"]["files"]) for t in triggers] == [5, 5, 2]
    assert {t["trigger_dag_id"] for t in triggers} == {BURST}
    for index, trigger in enumerate(triggers):
        dag_run, _ = run_burst(trigger["conf"], datetime(2026, 10, 2, index, tzinfo=UTC))
        assert dag_run.state == "success"
    assert keys(s3, provisioned.bucket, "landing/") == set()
    assert len(keys(s3, provisioned.bucket, "processed/wave/")) == 12 * 3  # file, output, summary

    # T = 0 s: files that did not land in the same instant go to separate runs; a lone file gets
    # the single-file pipeline, the reference's shape.
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BURST_WINDOW_SECONDS", "0")
    drop(s3, provisioned, "alone.csv", GOOD_CSV)
    again = run_dag("clean_zone_landing_watcher")
    assert [t["trigger_dag_id"] for t in again.xcom["start_file_runs"]] == ["clean_zone_file_pipeline"]


def _seed_where_only(flaky_label: str, steady_labels: list[str]) -> str:
    """A failure-generator seed (rate 1/2) under which ``flaky_label``'s first try fails and its
    second succeeds, and every steady file succeeds at once: a deterministic flaky file."""
    for n in range(5000):
        seed = f"s{n}"

        def fails(label: str, seed: str = seed) -> bool:
            try:
                failure_generator.run_once(0.5, seed, label)
            except failure_generator.SimulatedOutage:
                return True
            return False

        if (
            fails(f"{flaky_label}|1.1")
            and not fails(f"{flaky_label}|1.2")
            and not any(fails(f"{label}|1.1") for label in steady_labels)
        ):
            return seed
    raise AssertionError("no seed found")


def test_a_flaky_file_is_retried_inside_its_chunk_while_the_others_finish(
    s3, provisioned, alerts_inbox, airflow_db, monkeypatch
):
    when = datetime(2026, 10, 3, tzinfo=UTC)
    run_id = f"manual__{when.isoformat()}"
    names = [f"flaky-burst/{n}.csv" for n in range(4)]
    conf = {"files": [{"key": drop(s3, provisioned, name, GOOD_CSV)} for name in names]}
    labels = [f"{claimant(run_id, 'landing/' + n)}|landing/{n}" for n in names]
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "0.5")
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_SEED", _seed_where_only(labels[0], labels[1:]))

    dag_run, tasks = run_burst(conf, when)

    assert dag_run.run_id == run_id
    assert dag_run.state == "success", tasks
    chunk = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "process_chunk")
    assert chunk.try_number == 1  # retried in process, not by re-running the chunk (and its files)
    for name in names:
        assert where_is(s3, provisioned, name) == ["processed/"]
    assert alerts_inbox.receive(wait_seconds=1) == []


def test_a_file_out_of_retries_waits_and_is_resumed_by_clearing_its_chunk(
    s3, provisioned, alerts_inbox, airflow_db, monkeypatch
):
    when = datetime(2026, 10, 4, tzinfo=UTC)
    names = ["resume/a.csv", "resume/b.csv", "resume/c.pdf"]
    conf = {"files": [{"key": drop(s3, provisioned, name, GOOD_CSV)} for name in names]}
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "1")  # the downstream service is down

    failed, tasks = run_burst(conf, when)

    assert failed.state == "failed"
    assert tasks["process_chunk[0]"] == "success"  # every file had its turn
    assert tasks["report_burst"] == "failed"
    # Claimed in place (the events route): they wait, claimed, where they landed.
    assert where_is(s3, provisioned, "resume/a.csv") == ["landing/"]
    assert where_is(s3, provisioned, "resume/b.csv") == ["landing/"]
    assert where_is(s3, provisioned, "resume/c.pdf") == ["rejected/"]
    alerts = alerts_inbox.receive(wait_seconds=3, expect=1)
    assert len(alerts) == 1  # the digest, sent by the failure callback: no second page
    assert alerts[0]["attributes"]["severity"] == "critical"  # the worst: files waiting
    assert "(2 waiting)" in alerts[0]["subject"]
    assert "landing/resume/a.csv | endpoint | simulated_outage | " in alerts[0]["message"]
    assert "landing/resume/c.pdf | invalid_input | invalid_extension | " in alerts[0]["message"]

    # The service is back: the operator clears the chunk (and what follows it).
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "0")
    resumed, tasks = run_burst(conf, when)

    assert resumed.run_id == failed.run_id
    assert resumed.state == "success", tasks
    assert where_is(s3, provisioned, "resume/a.csv") == ["processed/"]
    assert where_is(s3, provisioned, "resume/b.csv") == ["processed/"]
    assert where_is(s3, provisioned, "resume/c.pdf") == ["rejected/"]  # not redone, reported as it ended
    reason = read_json(s3, provisioned.bucket, "rejected/resume/c.pdf.reason.json")
    assert reason["run_id"] == claimant(failed.run_id, "landing/resume/c.pdf")
