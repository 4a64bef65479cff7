"""The local stack heals and keeps its data: Airflow talks through the fault proxy when one is
configured, components killed with SIGKILL come back by themselves, the endpoint's objects
survive its death and a stop/start, and a component that always dies makes the stack give up
loudly instead of looping.

Each test starts a real stack (harness) on its own ports: about 3 min each on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from clean_zone_tools.devstack.harness import Stack, running_stack
from clean_zone_tools.devstack.processes import alive
from clean_zone_tools.faults.proxy import FaultSwitch
from clean_zone_tools.faults.stack import SuiteStack

pytestmark = pytest.mark.stack

CSV = b"order_id,customer,amount\n1,Acme,10.50\n2,Globex,7.25\n"


def _versions(s3: Any, bucket: str) -> set[tuple[str, str]]:
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    return {(v["Key"], v["VersionId"]) for page in pages for v in page.get("Versions", [])}


def _version_counts(s3: Any, bucket: str) -> Counter[str]:
    """Versions per key. After a crash the endpoint replays its journal's last seconds, and moto
    gives replayed writes new version ids (endpoint.py), so a kill is checked by count."""
    return Counter(key for key, _ in _versions(s3, bucket))


def _keys_with(s3: Any, bucket: str, prefix: str, fragment: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", []) if fragment in o["Key"]]


def _restarted(stack: Stack, name: str, restarts: int) -> bool:
    component = stack.component(name)
    return component.get("restarts", 0) >= restarts and component.get("status") == "up"


def test_killed_components_restart_and_no_data_is_lost(stack_with_fault_proxy: Stack) -> None:
    stack = stack_with_fault_proxy
    s3 = stack.client("s3")
    settings = stack.settings

    # Airflow reaches the endpoint through the fault proxy; the test's own client does not.
    assert stack.proxy_url is not None
    switch = FaultSwitch(stack.proxy_url)
    switch.set("slow", ["s3", "sqs"], delay_seconds=0.05, seconds=60)
    stack.wait(lambda: bool(switch.status()["injected"]), 60, "Airflow's requests through the proxy")
    switch.off()
    assert s3.list_objects_v2(Bucket=settings.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200

    # The scheduler, killed: noticed, restarted, and a file dropped afterwards is processed.
    os.kill(stack.component("scheduler")["pid"], signal.SIGKILL)
    healed = stack.wait(lambda: _restarted(stack, "scheduler", 1), 30, "the scheduler restarted")
    print(f"scheduler restarted {healed:.1f} s after SIGKILL")
    status = stack.command("status")
    assert "scheduler" in status.stdout and "(last exit -9)" in status.stdout
    assert "scheduler (pid" in (stack.state_dir / "logs" / "supervisor.log").read_text()

    name = f"healed-{uuid.uuid4().hex[:8]}.csv"
    s3.put_object(Bucket=settings.bucket, Key=f"{settings.landing_prefix}{name}", Body=CSV)
    took = stack.wait(lambda: bool(_keys_with(s3, settings.bucket, settings.processed_prefix, name)),
                      300, f"{name} processed after the scheduler's restart")
    print(f"a file dropped after the restart was processed in {took:.0f} s")
    ledger = _keys_with(s3, settings.bucket, settings.state_prefix, "")
    assert ledger, "processing a file writes the ledger"

    # The endpoint, killed: restarted from its snapshot and journal with every object version.
    before_kill = _version_counts(s3, settings.bucket)
    os.kill(stack.component("endpoint")["pid"], signal.SIGKILL)
    back = stack.wait(lambda: _restarted(stack, "endpoint", 1) and stack.endpoint_answers(), 60,
                      "the endpoint restarted and answering")
    print(f"endpoint answering again {back:.1f} s after SIGKILL")
    after_kill = _version_counts(s3, settings.bucket)
    assert all(after_kill[key] >= count for key, count in before_kill.items()), (before_kill, after_kill)

    # Stop, then start: objects, versions and the ledger are all still there.
    before = _versions(s3, settings.bucket)
    seconds = stack.stop()
    print(f"scripts/dev stop took {seconds:.1f} s")
    assert stack.exit_code == 0
    assert seconds < 60, "a generous bound; the target (< 15 s) is measured and printed"
    stack.start()
    after = _versions(s3, settings.bucket)
    assert after >= before
    assert set(ledger) <= {key for key, _ in after}


def test_a_component_that_always_dies_makes_the_stack_give_up() -> None:
    dies = [sys.executable, "-c", "import sys; sys.exit(7)"]
    env = {"DEVSTACK_COMMAND_OVERRIDES": json.dumps({"triggerer": dies}), "DEVSTACK_MAX_RESTARTS": "2"}
    with running_stack(env=env, wait_healthy=False) as stack:
        seen: set[int] = set()
        deadline = time.monotonic() + 600
        while stack.process is not None and stack.process.poll() is None and time.monotonic() < deadline:
            seen |= {c["pid"] for c in stack.status().get("components", {}).values() if c.get("pid")}
            time.sleep(0.5)

        assert stack.finished(timeout=30) == 3
        output = stack.log.read_text()
        assert "GIVING UP: triggerer died 3 times" in output
        assert "last exit code 7" in output
        assert "The local stack has stopped." in output
        assert seen and not any(alive(pid, "") for pid in seen), "nothing is left running"


def _run_ids(stack: Stack, dag_id: str) -> set[str]:
    listing = stack.command("runs", dag_id)  # the command a person runs answers...
    assert listing.returncode == 0, listing.stderr
    # ...but its table wraps long run ids, so the ids compared come whole from the REST API.
    answer = SuiteStack(stack).api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")
    return {run["dag_run_id"] for run in answer.get("dag_runs", [])}


def test_reset_of_a_running_stack_wipes_data_and_runs_together(stack_with_fault_proxy: Stack) -> None:
    stack = stack_with_fault_proxy
    s3 = stack.client("s3")
    settings = stack.settings
    s3.put_object(Bucket=settings.bucket, Key=f"{settings.landing_prefix}before-reset.csv", Body=CSV)
    # The landing watcher runs on a schedule, so a running stack always has runs to wipe.
    watcher = "clean_zone_s3_events"  # the default trigger route; S3's test event starts its first run
    stack.wait(lambda: bool(_run_ids(stack, watcher)), 120, f"a run of {watcher}")
    before = _run_ids(stack, watcher)

    result = stack.command("reset", "--yes", timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "The stack is running" in result.stdout and "Reset done" in result.stdout
    assert _versions(s3, settings.bucket) == set(), "the bucket is provisioned again, empty"
    stack.wait(stack.healthy, 300, "a healthy stack after the reset")
    assert not before & _run_ids(stack, watcher)
