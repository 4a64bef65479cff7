"""The landing watcher's sensor against the moto server: told by its trigger that S3 has not answered
for a while, it sends one alert (read from the SNS topic's queue, as a person's inbox gets it) and
waits on without reporting again; its first look in the worker waits out an outage instead of
failing the run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from clean_zone.airflow_glue.landing_sensor import LandingFileSensor
from clean_zone.keys import files_pattern

WATCHER = "clean_zone_landing_watcher"


def _sensor(provisioned: Any, **overrides: Any) -> LandingFileSensor:
    settings = {
        "task_id": "wait_for_landing_file",
        "bucket_name": provisioned.bucket,
        "bucket_key": files_pattern(provisioned.landing_prefix),
        "wildcard_match": True,
        "deferrable": True,
        "poke_interval": 5,
        "timeout": 60,
        **overrides,
    }
    return LandingFileSensor(**settings)


def _context() -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id=WATCHER,
        task_id="wait_for_landing_file",
        run_id="manual__2026-12-02T12:00:00+00:00",
        try_number=1,
        max_tries=4,
        map_index=-1,
        xcom_pull=lambda task_ids: None,
    )
    return {"ti": ti, "dag_run": SimpleNamespace(conf={})}


def test_a_lasting_outage_alerts_once_and_the_watch_goes_on(provisioned: Any, alerts_inbox: Any) -> None:
    sensor = _sensor(provisioned)
    event = {"status": "unreachable", "message": "S3 has not answered for 81 s: InternalError"}

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute_complete(_context(), event)

    trigger = deferred.value.trigger
    assert trigger.report_unreachable is False  # it will not report the same outage again
    assert trigger.unreachable_after_seconds >= 5  # the retry budget, at least one poke
    [alert] = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert alert["attributes"]["failure_class"] == "endpoint"
    assert alert["attributes"]["severity"] == "critical"
    assert f"{WATCHER}.wait_for_landing_file" in alert["subject"]
    assert "the landing watcher cannot list clean-zone" in alert["message"]
    assert "S3 has not answered for 81 s" in alert["message"]


def test_the_first_look_waits_out_an_unreachable_endpoint(
    provisioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 9 (discard): every request fails to connect, as in an outage.
    connection = (
        '{"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}'
    )
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    assert _sensor(provisioned).poke(_context()) is False  # then it defers: the trigger waits it out
