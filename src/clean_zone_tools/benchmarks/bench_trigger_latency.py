"""PutObject to first task, per trigger route, on a real local stack; and worker slots held while waiting.

For each route (``clean_zone_trigger_route`` = events | sensor) it starts a stack of its own on that
route (endpoint, api-server, scheduler, dag-processor, triggerer; free ports, temporary state),
drops one warm-up file (not counted: the first run waits for the stack to settle), then ``--files``
single CSVs one at a time, each after the previous one's run ended. Per file:

* first task: the start of the first task instance of the run that took the file (the file
  pipeline's ``claim_file``) minus the moment PutObject returned;
* run queued: when that run was queued (the hand-over: the route noticed the file and its DAG's
  run triggered the file's run) minus the same moment; the rest of "first task" is scheduling;
* done: that run's end minus the same moment.

While nothing arrives (just before each file) it samples Airflow's task instances of the route's
DAG: *running* ones hold a worker slot; *deferred* ones wait in the triggerer and hold none.
Timings come from the metadata DB through the REST API, not from when this script noticed.

    python -m clean_zone_tools.benchmarks.bench_trigger_latency                  # both routes, 8 files each
    python -m clean_zone_tools.benchmarks.bench_trigger_latency --route events --files 3 --json out.json

Targets (events route): p50 < 3 s, p95 < 6 s, 0 slots held; shown beside the figures, not asserted.
Exit codes: 0 measured, 1 a file's run was not seen ending in time, 2 usage, 3 a stack did not start.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from typing import Any

from clean_zone_tools.benchmarks import stack_bench as sb
from clean_zone_tools.devstack.harness import StackStartError
from clean_zone_tools.faults.stack import SuiteStack, say
from clean_zone_tools.faults.workload import mixed_files

ROUTES = tuple(sb.ROUTE_DAGS)
# The targets; the sensor route has none (it waits up to one poke interval by design).
TARGETS = {"events": {"p50": 3.0, "p95": 6.0, "slots": 0}}
COLUMNS = [
    "route",
    "files",
    "run queued p50 s",
    "first task p50 s",
    "p95 s",
    "max s",
    "done p50 s",
    "done p95 s",
    "slots held waiting (max)",
    "deferred waiting (mean)",
    "target",
]


def idle_slots(stack: SuiteStack, route: str, samples: int, every: float) -> tuple[list[int], list[int]]:
    """Running and deferred task instances of the route's DAG, sampled while nothing arrives."""
    running, deferred = [], []
    for index in range(samples):
        if index:
            time.sleep(every)
        running.append(sb.count_task_instances(stack, sb.ROUTE_DAGS[route], ["running"]))
        deferred.append(sb.count_task_instances(stack, sb.ROUTE_DAGS[route], ["deferred"]))
    return running, deferred


def verdict(route: str, row: dict[str, Any]) -> str:
    """Whether the row meets the issue's targets for its route ("-" where there are none)."""
    target = TARGETS.get(route)
    if target is None:
        return "-"
    missed = [
        name
        for name, ok in (
            (f"p50 < {target['p50']:g} s", row["first task p50 s"] < target["p50"]),
            (f"p95 < {target['p95']:g} s", row["p95 s"] < target["p95"]),
            (f"{target['slots']} slots", row["slots held waiting (max)"] <= target["slots"]),
        )
        if not ok
    ]
    return "met" if not missed else "MISSED " + ", ".join(missed)


def summarise(
    route: str, timings: list[sb.FileTiming], running: list[int], deferred: list[int]
) -> dict[str, Any]:
    """One table row for a route from its files' timings and the idle samples."""
    firsts = [t.first_task for t in timings if t.first_task is not None]
    dones = [t.done for t in timings if t.done is not None]
    queued = sb.spread([t.queued for t in timings if t.queued is not None])
    first, done = sb.spread(firsts), sb.spread(dones)
    row: dict[str, Any] = {
        "route": route,
        "files": len(firsts),
        "run queued p50 s": queued["p50"],
        "first task p50 s": first["p50"],
        "p95 s": first["p95"],
        "max s": first["max"],
        "done p50 s": done["p50"],
        "done p95 s": done["p95"],
        "slots held waiting (max)": max(running, default=0),
        "deferred waiting (mean)": round(sum(deferred) / len(deferred), 2) if deferred else 0,
    }
    row["target"] = verdict(route, row)
    return row


def measure_route(route: str, args: argparse.Namespace) -> tuple[dict[str, Any], list[sb.FileTiming], bool]:
    """The route's row, every file's timing, and whether every file's run was seen ending."""
    timings: list[sb.FileTiming] = []
    running: list[int] = []
    deferred: list[int] = []
    complete = True
    # Keys straight under landing/, not in a sub-folder: the deferrable S3KeySensor's trigger lists
    # landing/ with Delimiter="/" (the provider's get_files_async), so it hands the sensor no file in a
    # sub-folder and the sensor route never starts a run for one (it re-defers every poke instead).
    files = [
        replace(item, rel=item.rel.replace("/", "-"))
        for item in mixed_files(
            args.files + args.warmup, f"bench-latency-{route}-{int(time.time())}", ("good",)
        )
    ]
    with sb.route_stack(route, args.settings) as stack:
        for index, item in enumerate(files):
            warmup = index < args.warmup
            if not warmup:
                more_running, more_deferred = idle_slots(stack, route, args.idle_samples, 1.0)
                running += more_running
                deferred += more_deferred
            timing = sb.drop_one(stack, item.rel, item.body, args.warmup_timeout if warmup else args.timeout)
            label = "warm-up" if warmup else f"{index - args.warmup + 1}/{args.files}"
            if timing.first_task is None:
                say(f"{route} {label}: no ended run for {timing.key!r} within the timeout")
                complete = False
                if warmup:
                    break
                continue
            say(f"{route} {label}: first task {timing.first_task:.2f} s, done {timing.done:.2f} s")
            if not warmup:
                timings.append(timing)
    return summarise(route, timings, running, deferred), timings, complete


def parser() -> argparse.ArgumentParser:
    parse = sb.parser("bench_trigger_latency", __doc__)
    parse.add_argument(
        "--route", choices=ROUTES, action="append", help="measure only this route (repeatable)"
    )
    parse.add_argument("--files", type=int, default=8, help="files per route, one at a time (default 8)")
    parse.add_argument(
        "--warmup", type=int, default=1, help="files first dropped and not counted (default 1)"
    )
    parse.add_argument(
        "--timeout", type=float, default=300, help="seconds one file's run may take (default 300)"
    )
    parse.add_argument(
        "--idle-samples",
        type=int,
        default=3,
        help="task-instance samples before each file, 1 s apart (default 3)",
    )
    return parse


def main(argv: list[str] | None = None) -> int:
    parse = parser()
    args = parse.parse_args(argv)
    if args.files < 1 or args.warmup < 0 or args.idle_samples < 1:
        parse.error("--files and --idle-samples must be at least 1, --warmup at least 0")
    args.settings = dict(args.set)
    load_before = sb.load_average()
    say(f"load average before: {load_before}")
    rows: list[dict[str, Any]] = []
    details: dict[str, list[dict[str, Any]]] = {}
    complete = True
    for route in args.route or ROUTES:
        try:
            row, timings, route_complete = measure_route(route, args)
        except StackStartError as error:
            print(f"bench_trigger_latency: the {route} stack did not start: {error}", file=sys.stderr)
            return sb.STACK_DID_NOT_START
        rows.append(row)
        details[route] = [asdict(t) for t in timings]
        complete = complete and route_complete
    load_after = sb.load_average()
    print()
    print(sb.table(rows, COLUMNS))
    print(f"load average before / after: {load_before} / {load_after}")
    sb.write_json(
        args.json,
        {
            "benchmark": "trigger_latency",
            "load_before": load_before,
            "load_after": load_after,
            "settings": args.settings,
            "routes": rows,
            "files": details,
        },
    )
    return sb.MEASURED if complete else sb.MEASUREMENT_FAILED


if __name__ == "__main__":
    sys.exit(main())
