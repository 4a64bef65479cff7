"""The fault suite's scenarios: what each one breaks, when, and how it recovers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from clean_zone_tools.faults.stack import SuiteStack
from clean_zone_tools.faults.workload import KINDS, WorkFile


@dataclass
class Scenario:
    name: str
    description: str
    files: int
    fault_at: float = 0.0  # seconds after the drop starts
    fault: Callable[[SuiteStack, list[WorkFile]], str] | None = None
    recover_after: float | None = None  # seconds after the fault
    recover: Callable[[SuiteStack], str] | None = None
    kinds: tuple[str, ...] = KINDS
    extra_alerts: Callable[[list[WorkFile]], int] = lambda _files: 0
    # Where the sensor route alerts otherwise: (files named in alerts, alerts from the watcher).
    on_sensor_route: Callable[[list[WorkFile]], tuple[int, int]] | None = None


def _kill(component: str, first_only: bool = False) -> Callable[[SuiteStack, list[WorkFile]], str]:
    def act(stack: SuiteStack, _files: list[WorkFile]) -> str:
        deadline = time.monotonic() + 60
        while not (killed := stack.kill(component, first_only)) and time.monotonic() < deadline:
            time.sleep(0.5)  # a task process exists only while a task runs
        return f"SIGKILL {component} ({killed} process(es))"

    return act


def _fault(
    mode: str, services: list[str] | None = None, seconds: float | None = None
) -> Callable[[SuiteStack, list[WorkFile]], str]:
    def act(stack: SuiteStack, _files: list[WorkFile]) -> str:
        options: dict[str, Any] = {} if seconds is None else {"seconds": seconds}
        stack.faults.set(mode, services, **options)
        return f"proxy {mode} {services or 'all'} for {seconds or 'ever'} s"

    return act


def _restart(stack: SuiteStack, _files: list[WorkFile]) -> str:
    stopped = stack.stop()
    started = stack.start()
    return f"stop ({stopped:.1f} s) and start ({started:.0f} s)"


def _withdraw_and_resend(stack: SuiteStack, files: list[WorkFile]) -> str:
    """The partner deletes some files and uploads new content to others while the burst runs."""
    settings = stack.settings
    s3 = stack.client("s3")
    good = [index for index, item in enumerate(files) if item.kind == "good"]
    withdrawn, resent = good[0::3], good[1::3]
    for index in withdrawn:
        s3.delete_object(Bucket=settings.bucket, Key=settings.landing_prefix + files[index].rel)
        files[index] = replace(files[index], withdrawn=True)
    for index in resent:
        item = files[index]
        s3.put_object(
            Bucket=settings.bucket, Key=settings.landing_prefix + item.rel, Body=item.body + b"resent,x,1\n"
        )
        files[index] = replace(item, uploads=2)
    return f"partner withdrew {len(withdrawn)} files and re-sent {len(resent)} with new content"


def _clear_failed(stack: SuiteStack) -> str:
    """What an operator does after an outage, through the REST API: clear what failed.

    Single-file runs: their failed tasks. Burst runs: ``process_chunk`` and what follows it, as the
    burst's own error says (a chunk finishes with its files' outcomes, waiting files included; the
    run fails at ``report_burst``).
    """
    stack.faults.off()
    cleared = 0
    # The DAGs that start runs: only the chosen route's exist.
    route = stack.settings.trigger_route
    starters = {"events": ["clean_zone_s3_events"], "sensor": ["clean_zone_landing_watcher"]}
    starting = starters.get(route, starters["events"] + starters["sensor"])
    for dag_id in ["clean_zone_file_pipeline", *starting]:
        body = {"dry_run": False, "only_failed": True, "reset_dag_runs": True}
        answer = stack.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", body)
        cleared += len(answer.get("task_instances", []))
    failed = stack.api("GET", "/api/v2/dags/clean_zone_file_burst/dagRuns?state=failed&limit=100")
    for run in failed.get("dag_runs", []):
        body = {
            "dry_run": False,
            "only_failed": False,
            "reset_dag_runs": True,
            "dag_run_id": run["dag_run_id"],
            "task_ids": ["process_chunk"],
            "include_downstream": True,
        }
        answer = stack.api("POST", "/api/v2/dags/clean_zone_file_burst/clearTaskInstances", body)
        cleared += len(answer.get("task_instances", []))
    return f"fault off; cleared {cleared} task(s) of failed runs"


SCENARIOS = [
    Scenario("calm-burst", "a burst with nothing going wrong (the baseline)", 40),
    Scenario("scheduler-killed", "the scheduler is SIGKILLed mid-burst", 40, 15, _kill("scheduler")),
    Scenario(
        "triggerer-killed",
        "the triggerer is SIGKILLed while sensors and watchers wait",
        20,
        5,
        _kill("triggerer"),
    ),
    Scenario("api-server-killed", "the api-server is SIGKILLed mid-burst", 30, 10, _kill("api-server")),
    Scenario(
        "dag-processor-killed", "the dag-processor is SIGKILLed mid-burst", 20, 5, _kill("dag-processor")
    ),
    Scenario(
        "endpoint-killed",
        "the AWS endpoint is SIGKILLed mid-burst (its state must survive)",
        30,
        10,
        _kill("endpoint"),
    ),
    Scenario(
        "short-outage",
        "the endpoint refuses Airflow for 10 s, less than the retry budget",
        20,
        10,
        _fault("refuse", seconds=10),
    ),
    Scenario(
        "long-outage",
        "S3 answers 500 to Airflow for longer than the retry budget, then the failed tasks are cleared",
        12,
        0,  # from the start, so every file's run meets it (the hand-over goes on without S3)
        _fault("error", ["s3"]),
        # Long enough for every file of the chunk, tried one after another, to run out of retries.
        360,
        _clear_failed,
        kinds=("good",),
        # One endpoint alert per file after its last try; good files alert nothing else.
        extra_alerts=len,
        # The watcher cannot list landing/, so no file gets a run to fail: it alerts once and hands
        # every file over when S3 answers again.
        on_sensor_route=lambda _files: (0, 1),
    ),
    Scenario(
        "sns-outage",
        "SNS fails while bad files are alerted",
        10,
        0,
        _fault("error", ["sns"], seconds=60),
        kinds=("wrong_extension", "corrupt"),
    ),
    Scenario("stop-start", "the whole stack is stopped and started mid-burst", 40, 15, _restart),
    Scenario(
        "task-killed",
        "a running task's process is SIGKILLed (a worker dying mid-task)",
        20,
        8,
        _kill("task", first_only=True),
    ),
    Scenario(
        "withdraw-and-resend",
        "the partner deletes some files and re-sends others mid-burst",
        30,
        3,
        _withdraw_and_resend,
        kinds=("good",),
    ),
    Scenario("mixed-burst", "1,000 mixed files at once (--files to change)", 1000),
]
