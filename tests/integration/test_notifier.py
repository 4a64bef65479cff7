"""The failure notifier, called as Airflow calls an on_failure_callback, publishing to SNS on moto.

Alerts SNS refuses are kept in the bucket and sent again once it answers: SNS is made to refuse by
pointing the failure topic setting at a topic that does not exist (moto answers NotFound, as SNS
would); "SNS answers again" is the setting put right.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from clean_zone import config, undelivered_alerts
from clean_zone.airflow_glue.aws import object_store
from clean_zone.airflow_glue.notifier import FailureAlertNotifier, redeliver_alerts
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
    # Nowhere to keep the refused alert either: the task log is the last place left.
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BUCKET", "no-such-bucket")

    FailureAlertNotifier().notify({"ti": failed_task(), "exception": ValueError("v")})  # logged, not raised

    assert alerts_inbox.receive(wait_seconds=1) == []


@pytest.fixture
def refusing_sns(provisioned: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_TOPIC_ARN", provisioned.failure_topic_arn + "-down")
    return monkeypatch


def _alert(key: str) -> None:
    claim = {"bucket": "clean-zone", "key": key}
    error = DataQualityError(
        "ragged rows", reason="ragged_rows", location=f"s3://clean-zone/quarantine/{key}"
    )
    FailureAlertNotifier(object_task_id="claim_file").notify({"ti": failed_task(claim), "exception": error})


def test_a_refused_alert_is_kept_in_the_bucket_with_its_whole_text(
    refusing_sns: Any, alerts_inbox: Any, provisioned: Any
) -> None:
    _alert("landing/refused.csv")

    assert alerts_inbox.receive(wait_seconds=1) == []
    store = object_store(config.load_for_parsing())
    [kept] = undelivered_alerts.pending(store, provisioned)
    assert kept.startswith("_state/alerts/undelivered/")
    document = store.get_json(kept)
    assert "s3://clean-zone/landing/refused.csv" in document["message"]
    assert document["subject"].startswith("[WARNING]")
    assert document["attributes"]["failure_class"]["StringValue"] == "data_quality"
    assert document["due_at"]


def test_kept_alerts_are_sent_again_oldest_first_once_sns_answers(
    refusing_sns: Any, alerts_inbox: Any, provisioned: Any
) -> None:
    _alert("landing/first.csv")
    _alert("landing/second.csv")
    store = object_store(provisioned)

    # Still refusing: nothing is lost and nothing is sent.
    assert "0 kept alert(s) sent again, 2 still waiting" in redeliver_alerts()
    assert len(undelivered_alerts.pending(store, provisioned)) == 2

    refusing_sns.setenv("AIRFLOW_VAR_CLEAN_ZONE_FAILURE_TOPIC_ARN", provisioned.failure_topic_arn)
    assert redeliver_alerts() == "2 kept alert(s) sent again, 0 still waiting"

    alerts = alerts_inbox.receive(wait_seconds=5, expect=2)
    assert ["first.csv" in alerts[0]["message"], "second.csv" in alerts[1]["message"]] == [True, True]
    for alert in alerts:
        assert alert["message"].startswith("(Delayed: this alert was due at ")
        assert alert["attributes"]["delayed"] == "true"
        assert alert["attributes"]["severity"] == "warning"
    assert undelivered_alerts.pending(store, provisioned) == []
    assert redeliver_alerts() == "0 kept alert(s) sent again, 0 still waiting"
