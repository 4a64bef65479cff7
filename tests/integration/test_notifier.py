"""The failure notifier, called as Airflow calls an on_failure_callback, publishing to SNS on moto."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from clean_zone.airflow_glue.notifier import FailureAlertNotifier
from clean_zone.failures import DataQualityError

RUN_ID = "manual__2026-09-14T06:00:00+00:00"


def failed_task(pulled: Any = None, map_index: int = -1) -> SimpleNamespace:
    """The task instance fields the notifier reads, and the XCom the claiming task left."""

    def xcom_pull(task_ids: str) -> Any:
        if isinstance(pulled, Exception):
            raise pulled
        return pulled

    return SimpleNamespace(
        dag_id="clean_zone_file_pipeline",
        task_id="validate_csv",
        run_id=RUN_ID,
        try_number=1,
        max_tries=0,
        map_index=map_index,
        xcom_pull=xcom_pull,
    )


def test_the_alert_names_the_claimed_object_and_where_it_went(provisioned: Any, alerts_inbox: Any) -> None:
    claim = {"bucket": "clean-zone", "key": "landing/a.csv", "location": "s3://clean-zone/processing/a.csv"}
    error = DataQualityError("ragged rows", reason="ragged_rows", location="s3://clean-zone/quarantine/a.csv")

    FailureAlertNotifier(object_task_id="claim_file").notify({"ti": failed_task(claim), "exception": error})

    [alert] = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert alert["attributes"]["failure_class"] == "data_quality"
    assert alert["attributes"]["task_id"] == "validate_csv"
    assert "s3://clean-zone/landing/a.csv" in alert["message"]
    assert "s3://clean-zone/quarantine/a.csv" in alert["message"]  # the error's location wins
    assert "Try:           not retried" in alert["message"]  # a data problem is never retried


def test_before_anything_was_claimed_the_alert_names_the_runs_conf(
    provisioned: Any, alerts_inbox: Any
) -> None:
    context = {
        "ti": failed_task(RuntimeError("no XCom yet")),
        "exception": KeyError("key"),
        "dag_run": SimpleNamespace(conf={"bucket": "clean-zone", "key": "landing/b.csv"}),
    }

    FailureAlertNotifier(object_task_id="claim_file").notify(context)

    [alert] = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert alert["attributes"]["failure_class"] == "code"
    assert "s3://clean-zone/landing/b.csv" in alert["message"]


def test_a_broken_alert_path_never_raises(provisioned: Any, alerts_inbox: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_TOPIC_ARN", provisioned.failure_topic_arn + "-gone")

    FailureAlertNotifier().notify({"ti": failed_task(), "exception": ValueError("v")})  # logged, not raised

    assert alerts_inbox.receive(wait_seconds=1) == []
