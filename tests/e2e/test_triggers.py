"""What starts the file pipeline: the deferrable S3KeySensor watcher and S3 event notifications
through SQS; and resuming a failed run from the point of failure."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest
from clean_zone_landing_trigger import HandedOver

from clean_zone.keys import watcher_handed_over_key
from clean_zone.storage import ObjectStore
from tests.e2e.test_file_pipeline import GOOD_CSV, PIPELINE, drop, where_is

pytestmark = pytest.mark.e2e


def pipeline_runs() -> dict[str, dict[str, Any]]:
    """The file-pipeline runs the triggers created: run id -> conf."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == PIPELINE).all()
        return {run.run_id: dict(run.conf or {}) for run in runs}


def clear_pipeline_runs() -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == PIPELINE).delete()


@pytest.fixture
def sensor_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher DAG exists only when the sensor route is chosen (the default is events)."""
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_TRIGGER_ROUTE", "both")


def test_watcher_waits_deferred_for_a_file_and_starts_one_run_per_file(
    run_dag, s3, provisioned, sensor_route, monkeypatch
):
    clear_pipeline_runs()
    # Soft-failing (skipped) after 60 s, rather than hanging, if the upload never wakes it.
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_SENSOR_TIMEOUT_SECONDS", "60")
    s3.put_object(Bucket=provisioned.bucket, Key="landing/folder/", Body=b"")  # never wakes the sensor

    def partner_uploads_later() -> None:
        time.sleep(2)
        # In a sub-folder: the provider's trigger lists only the top level for a check_fn, so
        # the watcher has none (its pattern leaves folder markers out).
        drop(s3, provisioned, "partner/late.csv", GOOD_CSV)

    uploader = threading.Thread(target=partner_uploads_later)
    uploader.start()
    started = time.monotonic()
    result = run_dag("clean_zone_landing_watcher")
    uploader.join()

    assert result.state == "success"
    assert time.monotonic() - started >= 2  # it really waited for the upload
    assert result.tasks["wait_for_landing_file"] == "success"
    runs = pipeline_runs()
    assert [conf["key"] for conf in runs.values()] == ["landing/partner/late.csv"]

    # The watcher keeps a record of what it handed over: the file, still in landing/ (its run has
    # not claimed it yet, or works on it in place), no longer wakes the sensor.
    record = json.loads(
        s3.get_object(Bucket=provisioned.bucket, Key=watcher_handed_over_key(provisioned))["Body"].read()
    )
    assert list(record["files"]) == ["landing/partner/late.csv"]

    # A new upload to the same key does wake it, and gets a run of its own.
    drop(s3, provisioned, "partner/late.csv", GOOD_CSV + b"3,corrected,1.00\n")
    again = run_dag("clean_zone_landing_watcher")
    assert [t["started"] for t in again.xcom["start_file_runs"]] == [True]
    assert len(pipeline_runs()) == 2

    # A file handed over a re-check interval ago that no run claimed is handed over again; its run
    # exists already, so none is started twice.
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_LANDING_SWEEP_MINUTES", "0.01")  # 0.6 s
    time.sleep(1)
    rechecked = run_dag("clean_zone_landing_watcher")
    assert [t["started"] for t in rechecked.xcom["start_file_runs"]] == [False]
    assert len(pipeline_runs()) == 2


def test_a_file_claimed_where_it_landed_does_not_wake_the_watcher_and_is_copied_once(
    run_dag, s3, provisioned, sensor_route, monkeypatch
):
    clear_pipeline_runs()
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "1")  # it fails and waits, claimed
    drop(s3, provisioned, "held/orders.csv", GOOD_CSV)
    handed = run_dag("clean_zone_landing_watcher")
    [trigger] = handed.xcom["start_file_runs"]

    from tests.e2e.conftest import _load_dag

    pipeline = _load_dag(PIPELINE)
    failed = pipeline.test(run_conf=trigger["conf"])

    assert failed.get_state() == "failed"
    assert where_is(s3, provisioned, "held/orders.csv") == [provisioned.landing_prefix]
    listed = list(ObjectStore(s3, provisioned.bucket).list_keys(provisioned.landing_prefix))
    record = HandedOver.from_json(
        json.loads(
            s3.get_object(Bucket=provisioned.bucket, Key=watcher_handed_over_key(provisioned))["Body"].read()
        )
    )
    assert record.waiting(listed, time.time(), 0.0) == ([], [])  # the sensor sleeps through it

    # Cleared with the flaky step passing: processed from where it landed, one copy, no processing/.
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "0")
    resumed = pipeline.test(
        logical_date=failed.logical_date, run_after=failed.run_after, run_conf=trigger["conf"]
    )
    assert resumed.get_state() == "success"
    assert where_is(s3, provisioned, "held/orders.csv") == [provisioned.processed_prefix]
    versions = s3.list_object_versions(Bucket=provisioned.bucket, Prefix="processing/")
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []


def test_s3_event_notifications_start_the_pipeline_with_decoded_keys(run_dag, s3, provisioned):
    clear_pipeline_runs()
    sqs = boto3.client("sqs", region_name=provisioned.region)
    drop(s3, provisioned, "folder/", b"")
    drop(s3, provisioned, "q3 report+final.csv", GOOD_CSV)
    s3.put_object(Bucket=provisioned.bucket, Key="elsewhere/ignored.csv", Body=GOOD_CSV)
    messages = sqs.receive_message(
        QueueUrl=provisioned.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    )["Messages"]
    assert any("s3:TestEvent" in m["Body"] for m in messages)  # S3's own, first message: ignored

    result = run_dag("clean_zone_s3_events", {"messages": messages})

    assert result.state == "success"
    triggered = result.xcom["start_file_runs"]
    assert [t["conf"]["key"] for t in triggered] == ["landing/q3 report+final.csv"]
    assert [conf["key"] for conf in pipeline_runs().values()] == ["landing/q3 report+final.csv"]
    # Due the moment it is queued: the scheduler takes a run once run_after <= the database's
    # now(), which SQLite (the local stack) gives in whole seconds; a run due at 12:00:01.9 sat
    # queued until 12:00:02.
    for run_after, queued_at in run_times():
        assert run_after.microsecond == 0
        assert run_after <= queued_at


def run_times() -> list[tuple[Any, Any]]:
    """(run_after, queued_at) of every file-pipeline run."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return [
            (run.run_after, run.queued_at)
            for run in session.query(DagRun).filter(DagRun.dag_id == PIPELINE).all()
        ]


def test_the_hand_over_goes_on_when_s3_cannot_say_whether_a_file_was_claimed(
    run_dag, s3, provisioned, monkeypatch
):
    # The ledger check only spares a run that would skip; with S3 down, each file's own run meets
    # the outage (and retries, alerts and waits) instead of the hand-over failing for all of them.
    clear_pipeline_runs()
    sqs = boto3.client("sqs", region_name=provisioned.region)
    drop(s3, provisioned, "during-outage.csv", GOOD_CSV)
    messages = sqs.receive_message(
        QueueUrl=provisioned.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    )["Messages"]
    nowhere = {
        "conn_type": "aws",
        "extra": {
            "endpoint_url": "http://127.0.0.1:9",  # nothing listens: connection refused
            "region_name": provisioned.region,
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(nowhere))

    result = run_dag("clean_zone_s3_events", {"messages": messages})

    assert result.state == "success"
    assert [t["conf"]["key"] for t in result.xcom["start_file_runs"]] == ["landing/during-outage.csv"]
    assert [conf["key"] for conf in pipeline_runs().values()] == ["landing/during-outage.csv"]


def test_a_run_without_events_sweeps_landing_for_files_no_event_handed_over(
    run_dag, s3, provisioned, monkeypatch
):
    # An event Airflow never handed to a run (or one lost on its way): the file sits in landing/
    # with nothing coming for it. The timed run, which has no events, hands it over.
    clear_pipeline_runs()
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_LANDING_SWEEP_MINUTES", "0.5")  # 30 s
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BURST_WINDOW_SECONDS", "0")
    drop(s3, provisioned, "stranded.csv", GOOD_CSV)
    drop(s3, provisioned, "folder/", b"")  # a folder marker is never a file
    time.sleep(31)
    drop(s3, provisioned, "just-landed.csv", GOOD_CSV)  # its event may still be on its way: left alone

    result = run_dag("clean_zone_s3_events")

    assert result.state == "success"
    triggered = result.xcom["start_file_runs"]
    assert [t["conf"]["key"] for t in triggered] == ["landing/stranded.csv"]
    assert [conf["key"] for conf in pipeline_runs().values()] == ["landing/stranded.csv"]

    # Once claimed (moved to processing/ by its run), a file is not handed over again.
    from tests.e2e.conftest import _load_dag

    _load_dag(PIPELINE).test(run_conf={"key": "landing/stranded.csv"})
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_LANDING_SWEEP_MINUTES", "0.01")  # now both are "old"
    again = run_dag("clean_zone_s3_events")
    assert [t["conf"]["key"] for t in again.xcom["start_file_runs"]] == ["landing/just-landed.csv"]

    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_LANDING_SWEEP_MINUTES", "0")  # off
    assert run_dag("clean_zone_s3_events").xcom["start_file_runs"] == []


def test_a_failed_run_cleared_and_rerun_finishes_the_same_file(
    run_dag, s3, provisioned, alerts_inbox, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "1")
    key = drop(s3, provisioned, "resume.csv", GOOD_CSV)
    from tests.e2e.conftest import _load_dag

    dag = _load_dag(PIPELINE)
    failed = dag.test(run_conf={"key": key})
    assert failed.get_state() == "failed"
    # Claimed in place (the events route): it waits where it landed, for the clear-and-resume.
    assert where_is(s3, provisioned, "resume.csv") == [provisioned.landing_prefix]

    # The downstream service is back: clear the run and run it again (dag.test clears every task of
    # the run: each must be safe to repeat; the claim finds its own record and resumes).
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE", "0")
    resumed = dag.test(logical_date=failed.logical_date, run_after=failed.run_after, run_conf={"key": key})

    assert resumed.run_id == failed.run_id
    assert resumed.get_state() == "success"
    assert where_is(s3, provisioned, "resume.csv") == [provisioned.processed_prefix]
    assert len(alerts_inbox.receive(wait_seconds=2, expect=1)) == 1  # only the first run's failure


def test_an_sns_outage_in_the_callback_does_not_hide_the_failure(
    run_dag, s3, provisioned, alerts_inbox, monkeypatch
):
    monkeypatch.setenv(
        "AIRFLOW_VAR_CLEAN_ZONE_FAILURE_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    )
    key = drop(s3, provisioned, "broken.pdf", b"%PDF")

    result = run_dag(PIPELINE, {"key": key})

    assert result.state == "failed"
    assert result.tasks["reject_file"] == "failed"
    assert where_is(s3, provisioned, "broken.pdf") == [provisioned.rejected_prefix]
    assert alerts_inbox.receive(wait_seconds=1) == []


def test_eventbridge_route_delivers_object_created_events_to_the_pipeline(
    run_dag, s3, provisioned, monkeypatch
):
    """The reference's own trigger: S3 -> EventBridge "Object Created" rule -> SQS -> pipeline runs."""
    import boto3

    from clean_zone import config
    from clean_zone_tools.devstack.provision import provision

    clear_pipeline_runs()
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_EVENT_ROUTE", "eventbridge")
    settings = config.load_for_parsing()
    provision(settings, session=boto3.Session(region_name=settings.region), quiet=True)
    sqs = boto3.client("sqs", region_name=settings.region)
    sqs.purge_queue(QueueUrl=settings.events_queue_url)
    drop(s3, settings, "via eventbridge.csv", GOOD_CSV)
    s3.put_object(Bucket=settings.bucket, Key="elsewhere/not-watched.csv", Body=GOOD_CSV)
    messages = sqs.receive_message(
        QueueUrl=settings.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    )["Messages"]
    assert all('"detail-type": "Object Created"' in m["Body"] for m in messages)

    result = run_dag("clean_zone_s3_events", {"messages": messages})

    assert result.state == "success"
    assert [conf["key"] for conf in pipeline_runs().values()] == ["landing/via eventbridge.csv"]
