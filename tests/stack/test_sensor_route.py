"""The sensor route on a stack of its own (``clean_zone_trigger_route`` = ``sensor``): a file the
watcher handed over is claimed where it landed and never copied to processing/; while it waits there,
failed, the watcher's deferred sensor sleeps (no run after run for nothing); cleared, it is processed
with one copy; and a new file still wakes the watcher at once.

About 3 min on 2 cores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from clean_zone_tools.devstack.harness import running_stack
from clean_zone_tools.faults.stack import SuiteStack

pytestmark = pytest.mark.stack

CSV = b"order_id,customer,amount\n1,Acme,10.50\n2,Globex,7.25\n"
PIPELINE = "clean_zone_file_pipeline"
WATCHER = "clean_zone_landing_watcher"
SENSOR = "wait_for_landing_file"
SETTINGS = {
    "AIRFLOW_VAR_CLEAN_ZONE_TRIGGER_ROUTE": "sensor",
    "AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS": "2",
    # A failed file is not looked at again within the test (the re-check has tests of its own).
    "AIRFLOW_VAR_CLEAN_ZONE_LANDING_SWEEP_MINUTES": "60",
    # The flaky step fails at once, without retries (the failure rate is a Variable: set below).
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_MAX_ATTEMPTS": "0",
}
QUIET_SECONDS = 40  # twenty pokes


@pytest.fixture(scope="module")
def sensor_stack() -> Iterator[SuiteStack]:
    with running_stack(env=SETTINGS) as stack:
        yield SuiteStack(stack)


def _failure_rate(stack: SuiteStack, rate: str) -> None:
    body = {"key": "clean_zone_failure_rate", "value": rate}
    try:
        stack.api("PATCH", "/api/v2/variables/clean_zone_failure_rate", body)
    except OSError:  # not there yet (urllib's HTTPError is an OSError)
        stack.api("POST", "/api/v2/variables", body)


def _runs(stack: SuiteStack, dag_id: str, **query: str) -> list[dict[str, Any]]:
    params = "&".join(f"{key}={value}" for key, value in {"limit": "100", **query}.items())
    return list(stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?{params}").get("dag_runs", []))


def _task_state(stack: SuiteStack, dag_id: str, run_id: str, task_id: str) -> str | None:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    return stack.api("GET", path).get("state")


def _keys(s3: Any, bucket: str, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _versions(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    return [v for page in pages for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]


def _wait(stack: SuiteStack, condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(2)
    raise AssertionError(f"no {what} within {timeout:.0f} s (stack log: {stack.stack.log})")


def test_a_file_claimed_where_it_landed_leaves_the_watcher_asleep_and_is_copied_once(
    sensor_stack: SuiteStack,
) -> None:
    stack = sensor_stack
    s3, bucket = stack.client("s3"), stack.settings.bucket
    _failure_rate(stack, "1")
    s3.put_object(Bucket=bucket, Key="landing/held/orders.csv", Body=CSV)

    [failed] = _wait(stack, lambda: _runs(stack, PIPELINE, state="failed"), 240, "failed pipeline run")

    # Claimed where it landed (its version pinned), never copied to processing/.
    assert _keys(s3, bucket, "landing/") == {"landing/held/orders.csv"}
    assert _versions(s3, bucket, "processing/") == []

    # The watcher's next run waits, deferred; with the file still in landing/, no run follows it.
    def waiting_watcher() -> dict[str, Any] | None:
        running = _runs(stack, WATCHER, state="running")
        if running and _task_state(stack, WATCHER, running[0]["dag_run_id"], SENSOR) == "deferred":
            return running[0]
        return None

    waiting = _wait(stack, waiting_watcher, 120, "watcher run waiting deferred")
    runs_before = len(_runs(stack, WATCHER))
    time.sleep(QUIET_SECONDS)
    assert len(_runs(stack, WATCHER)) == runs_before
    assert _runs(stack, WATCHER, state="running")[0]["dag_run_id"] == waiting["dag_run_id"]

    # The operator's clear-and-resume, the flaky step passing now: processed, copied once.
    _failure_rate(stack, "0")
    body = {"dry_run": False, "only_failed": True, "reset_dag_runs": True, "dag_run_id": failed["dag_run_id"]}
    stack.api("POST", f"/api/v2/dags/{PIPELINE}/clearTaskInstances", body)
    _wait(
        stack, lambda: "processed/held/orders.csv" in _keys(s3, bucket, "processed/"), 240, "processed file"
    )
    assert _keys(s3, bucket, "landing/") == set()
    assert [v["Key"] for v in _versions(s3, bucket, "processed/held/orders.csv")].count(
        "processed/held/orders.csv"
    ) == 1
    assert _versions(s3, bucket, "processing/") == []

    # A new file wakes the sleeping watcher and is processed.
    s3.put_object(Bucket=bucket, Key="landing/held/more.csv", Body=CSV)
    _wait(stack, lambda: "processed/held/more.csv" in _keys(s3, bucket, "processed/"), 240, "second file")
    assert _versions(s3, bucket, "processing/") == []
