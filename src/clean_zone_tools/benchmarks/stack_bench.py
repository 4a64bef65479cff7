"""What the benchmarks on the real stack share: a stack of their own on one trigger route, the
task instances and runs Airflow's REST API reports, and the figures (percentiles, the table).

The stack is the devstack harness's (free ports, a temporary state folder, every component a real
process); the REST API is the fault suite's (logged in as the stack's admin).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from clean_zone import config
from clean_zone.airflow_glue.trigger_tasks import BURST_DAG, PIPELINE_DAG
from clean_zone_tools.benchmarks.bench_manifest import _table
from clean_zone_tools.devstack.harness import running_stack
from clean_zone_tools.faults.stack import SuiteStack, say

# The DAG each trigger route generates (the route not chosen is not generated at all).
ROUTE_DAGS = {"events": "clean_zone_s3_events", "sensor": "clean_zone_landing_watcher"}

# Exit codes shared by the stack benchmarks.
MEASURED, MEASUREMENT_FAILED, STACK_DID_NOT_START = 0, 1, 3


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linearly interpolated between the nearest ranks."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max of ``values``, rounded to the hundredth (NaN when there are none)."""
    return {
        "p50": round(percentile(values, 50), 2),
        "p95": round(percentile(values, 95), 2),
        "max": round(max(values), 2) if values else math.nan,
    }


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """The rows as aligned columns (the benchmarks' one table format)."""
    return "\n".join(_table(rows, columns or list(rows[0]))) if rows else "(no rows)"


def epoch(stamp: str | None) -> float | None:
    """Seconds since the epoch of an ISO time from the REST API (``...Z``), None for none."""
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def stack_setting(value: str) -> tuple[str, str]:
    """A ``KEY=VALUE`` argument as an environment setting for the stack."""
    key, sep, rest = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip(), rest


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    """A stack benchmark's parser with the arguments they share; ``--set`` arrives as a list of pairs."""
    parse = argparse.ArgumentParser(
        prog=f"python -m clean_zone_tools.benchmarks.{name}",
        description=doc.split("\n\n", maxsplit=1)[0],
        epilog="Exit codes: 0 measured, 1 a measurement failed, 2 usage, 3 a stack did not start.",
    )
    parse.add_argument(
        "--set",
        action="append",
        type=stack_setting,
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the stack over local.env, e.g. AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE=0",
    )
    parse.add_argument(
        "--warmup-timeout",
        type=float,
        default=600,
        help="seconds the warm-up file's run may take: the first waits for the stack to settle (default 600)",
    )
    parse.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON here")
    return parse


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(payload, indent=2) + "\n")
        say(f"figures written to {path}")


@contextmanager
def route_stack(route: str, settings: dict[str, str]) -> Iterator[SuiteStack]:
    """A healthy stack of its own with ``route`` as its trigger route; StackStartError if it is not."""
    env = {config.env_name("trigger_route"): route, **settings}
    say(f"starting a stack of its own (trigger route {route}, free ports, temporary state) ...")
    with running_stack(env=env) as stack:
        say(f"stack up (UI {stack.ui_url})")
        yield SuiteStack(stack)
        say("stopping the stack")


def _query(**params: Any) -> str:
    return urllib.parse.urlencode(
        [(k, item) for k, v in params.items() for item in (v if isinstance(v, list) else [v])]
    )


def dag_runs(stack: SuiteStack, dag_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The DAG's latest runs, newest first."""
    path = f"/api/v2/dags/{dag_id}/dagRuns?{_query(limit=limit, order_by='-run_after')}"
    return list(stack.api("GET", path).get("dag_runs", []))


def task_instances(stack: SuiteStack, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of one run (each mapped index its own)."""
    run = urllib.parse.quote(run_id, safe="")
    return list(
        stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances?limit=1000")["task_instances"]
    )


def count_task_instances(stack: SuiteStack, dag_id: str = "~", states: Sequence[str] = ()) -> int:
    """How many task instances the DAG (``~``: every DAG) has, in ``states`` if given."""
    params: dict[str, Any] = {"limit": 1}
    if states:
        params["state"] = list(states)
    path = f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances?{_query(**params)}"
    return int(stack.api("GET", path)["total_entries"])


def count_runs(stack: SuiteStack, dag_id: str, states: Sequence[str] = ()) -> int:
    """How many runs the DAG has, in ``states`` if given."""
    params: dict[str, Any] = {"limit": 1, **({"state": list(states)} if states else {})}
    return int(stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?{_query(**params)}")["total_entries"])


def first_start(instances: list[dict[str, Any]]) -> float | None:
    """When the run's first task instance started (seconds since the epoch), None if none has."""
    starts = [t for t in (epoch(ti.get("start_date")) for ti in instances) if t is not None]
    return min(starts) if starts else None


def run_for_key(stack: SuiteStack, key: str) -> tuple[str, dict[str, Any]] | None:
    """The file-pipeline or burst run that took ``key`` (its DAG and the run), None if none has yet."""
    for run in dag_runs(stack, PIPELINE_DAG, limit=25):
        if (run.get("conf") or {}).get("key") == key:
            return PIPELINE_DAG, run
    for run in dag_runs(stack, BURST_DAG, limit=25):
        if any(item.get("key") == key for item in (run.get("conf") or {}).get("files", [])):
            return BURST_DAG, run
    return None


@dataclass
class FileTiming:
    key: str
    put_at: float  # when PutObject returned (seconds since the epoch, this machine's clock)
    queued: float | None = None  # seconds from put_at until the run that takes the file was queued
    first_task: float | None = None  # seconds from put_at to the run's first task start
    done: float | None = None  # seconds from put_at to the run's end
    dag_id: str = ""
    run_id: str = ""


def drop_one(stack: SuiteStack, rel: str, body: bytes, timeout: float, poll: float = 2.0) -> FileTiming:
    """Put one file into landing/ and wait until the run that takes it has ended.

    Latencies come from the run's own timestamps in the metadata DB (same machine, same clock),
    so how often this polls changes how long it waits, not what it measures.
    """
    settings = stack.settings
    key = settings.landing_prefix + rel
    stack.client("s3").put_object(Bucket=settings.bucket, Key=key, Body=body)
    timing = FileTiming(key, time.time())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(poll)
        found = run_for_key(stack, key)
        if found is None or found[1].get("state") not in ("success", "failed"):
            continue
        timing.dag_id, run = found
        timing.run_id = run["dag_run_id"]
        started = first_start(task_instances(stack, timing.dag_id, timing.run_id))
        ended, queued = epoch(run.get("end_date")), epoch(run.get("queued_at"))
        timing.queued = None if queued is None else round(queued - timing.put_at, 3)
        timing.first_task = None if started is None else round(started - timing.put_at, 3)
        timing.done = None if ended is None else round(ended - timing.put_at, 3)
        return timing
    return timing


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load (the stack benchmarks share the machine)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"
