"""A burst on a real local stack: ``--files`` small mixed files dropped at once, then where each ended.

It starts a stack of its own (endpoint, api-server, scheduler, dag-processor, triggerer; free ports,
temporary state) on one trigger route, processes one warm-up file (so the figures do not include
the stack settling), drops the burst with 16 parallel PutObjects (the fault suite's workload: good,
gzip, wrong-extension, corrupt, empty, binary and hostile-key files), and polls the census (where
every file is) until every file is in a terminal place twice in a row. Figures:

* drop to last terminal: from the first PutObject to the census that found every file terminal
  (the census is taken every ``--poll`` seconds, so this is accurate to about that);
* files per minute over that time;
* lost, handled twice (misplaced, or a processed file with more output versions than uploads);
* task instances per file: every task instance (each mapped index counts) the route's DAG, the
  burst DAG and the file pipeline made for the burst, from Airflow's REST API.

    python -m clean_zone_tools.benchmarks.bench_stack_burst                       # 1,000 files, events
    python -m clean_zone_tools.benchmarks.bench_stack_burst --files 50 --json burst.json

Targets (issue #11): all terminal within 5 min, none lost, none twice, at most 0.2 task instances
per file; shown beside the figures, not asserted.
Exit codes: 0 measured, 1 a measurement failed (files still waiting at the timeout, lost or handled
twice), 2 usage, 3 the stack did not start.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from clean_zone_tools.benchmarks import stack_bench as sb
from clean_zone_tools.devstack.harness import StackStartError
from clean_zone_tools.faults import census
from clean_zone_tools.faults.stack import SuiteStack, say
from clean_zone_tools.faults.suite import _drop
from clean_zone_tools.faults.workload import WorkFile, mixed_files

TARGET_SECONDS = 300.0
TARGET_TIS_PER_FILE = 0.2
ACTIVE_RUN_STATES = ("queued", "running")


def file_dags(route: str) -> tuple[str, ...]:
    return (sb.ROUTE_DAGS[route], sb.BURST_DAG, sb.PIPELINE_DAG)


def task_instance_counts(stack: SuiteStack, route: str) -> dict[str, int]:
    return {dag_id: sb.count_task_instances(stack, dag_id) for dag_id in file_dags(route)}


def settle(
    stack: SuiteStack, files: list[WorkFile], started: float, timeout: float, poll: float
) -> tuple[census.Census, float | None]:
    """The census once every file is terminal (seen twice in a row), and the seconds from ``started``
    to the first of those two looks; None for the seconds when the timeout came first."""
    settings, s3 = stack.settings, stack.client("s3")
    settled_at: float | None = None
    while True:
        taken = census.take(s3, settings, files, [], 0)
        elapsed = time.monotonic() - started
        if taken.settled:
            if settled_at is not None:
                return taken, settled_at
            settled_at = elapsed
        else:
            # A file between two places (a move is a copy, then a delete) shows in the next look.
            settled_at = None
        if elapsed > timeout:
            say(f"gave up after {elapsed:.0f} s: {taken.places[census.WAITING]} file(s) still waiting")
            return taken, None
        say(f"{elapsed:.0f} s: {len(files) - taken.places[census.WAITING]}/{len(files)} in a terminal place")
        time.sleep(poll)


def wait_runs_ended(stack: SuiteStack, route: str, timeout: float) -> None:
    """Until the burst's runs have ended, so their last task instances are counted."""
    # The sensor route's watcher always has a run waiting for the next file: only its runs' ends count.
    dags = file_dags(route)[1:] if route == "sensor" else file_dags(route)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(sb.count_runs(stack, dag_id, ACTIVE_RUN_STATES) for dag_id in dags) == 0:
            return
        time.sleep(2)
    say(f"runs still active after {timeout:.0f} s; counting the task instances made so far")


def figures(
    files: int,
    drop_seconds: float,
    to_terminal: float | None,
    measured: float,
    taken: census.Census,
    task_instances: dict[str, int],
    runs: dict[str, int],
) -> dict[str, Any]:
    """The burst's figures and, beside each target, whether it was met."""
    row = taken.row()
    twice = row["misplaced"] + row["duplicated outputs"]
    total = sum(task_instances.values())
    per_file = round(total / files, 3) if files else 0.0
    return {
        "files": files,
        "drop seconds": round(drop_seconds, 1),
        "drop to last terminal s": None if to_terminal is None else round(to_terminal, 1),
        # Past the timeout: the rate of the files that did end, over the whole time measured.
        "files per minute": round((files - row["still waiting"]) / (to_terminal or measured) * 60, 1)
        if (to_terminal or measured) > 0
        else None,
        "processed": row["processed"],
        "rejected": row["rejected"],
        "quarantined": row["quarantined"],
        "still waiting": row["still waiting"],
        "lost": row["lost"],
        "handled twice": twice,
        "runs": runs,
        "task instances": task_instances,
        "task instances per file": per_file,
        "targets": {
            f"all terminal within {TARGET_SECONDS:.0f} s": to_terminal is not None
            and to_terminal <= TARGET_SECONDS,
            "none lost": row["lost"] == 0,
            "none twice": twice == 0,
            f"at most {TARGET_TIS_PER_FILE} task instances per file": per_file <= TARGET_TIS_PER_FILE,
        },
    }


def report(result: dict[str, Any]) -> str:
    """The figures as a two-column table, the targets after them."""
    rows = [
        {"figure": name, "value": value}
        for name, value in result.items()
        if name not in ("targets", "runs", "task instances")
    ]
    rows += [{"figure": f"task instances, {dag}", "value": n} for dag, n in result["task instances"].items()]
    rows += [{"figure": f"runs, {dag}", "value": n} for dag, n in result["runs"].items()]
    rows += [
        {"figure": f"target: {name}", "value": "met" if ok else "MISSED"}
        for name, ok in result["targets"].items()
    ]
    return sb.table(rows, ["figure", "value"])


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """The burst's figures, and whether the measurement completed (settled, none lost or twice)."""
    files = mixed_files(args.files, f"bench/burst-{int(time.time())}")
    with sb.route_stack(args.route, args.settings) as stack:
        warm = mixed_files(1, f"bench/burst-warmup-{int(time.time())}", ("good",))[0]
        timing = sb.drop_one(stack, warm.rel, warm.body, args.warmup_timeout)
        if timing.first_task is None:
            say("the warm-up file's run did not end in time")
            return {}, False
        say(f"warm-up file done in {timing.done:.1f} s; dropping {args.files} files at once")
        wait_runs_ended(stack, args.route, 60)  # the warm-up's task instances are not the burst's
        before = task_instance_counts(stack, args.route)
        runs_before = {dag: sb.count_runs(stack, dag) for dag in file_dags(args.route)}
        started = time.monotonic()
        _drop(stack, stack.settings, files)
        drop_seconds = time.monotonic() - started
        say(f"{args.files} files dropped in {drop_seconds:.1f} s")
        taken, to_terminal = settle(stack, files, started, args.timeout, args.poll)
        measured = time.monotonic() - started
        wait_runs_ended(stack, args.route, 120)
        after = task_instance_counts(stack, args.route)
        runs = {dag: sb.count_runs(stack, dag) - runs_before[dag] for dag in file_dags(args.route)}
    result = figures(
        args.files, drop_seconds, to_terminal, measured, taken, {d: after[d] - before[d] for d in after}, runs
    )
    complete = to_terminal is not None and result["lost"] == 0 and result["handled twice"] == 0
    return result, complete


def parser() -> argparse.ArgumentParser:
    parse = sb.parser("bench_stack_burst", __doc__)
    parse.add_argument("--files", type=int, default=1000, help="files in the burst (default 1000)")
    parse.add_argument(
        "--route", choices=tuple(sb.ROUTE_DAGS), default="events", help="trigger route (default events)"
    )
    parse.add_argument(
        "--timeout", type=float, default=1200, help="seconds the burst may take to settle (default 1200)"
    )
    parse.add_argument("--poll", type=float, default=2.0, help="seconds between census looks (default 2)")
    return parse


def main(argv: list[str] | None = None) -> int:
    parse = parser()
    args = parse.parse_args(argv)
    if args.files < 1 or args.poll <= 0:
        parse.error("--files must be at least 1 and --poll positive")
    args.settings = dict(args.set)
    load_before = sb.load_average()
    say(f"load average before: {load_before}")
    try:
        result, complete = measure(args)
    except StackStartError as error:
        print(f"bench_stack_burst: the stack did not start: {error}", file=sys.stderr)
        return sb.STACK_DID_NOT_START
    load_after = sb.load_average()
    if result:
        print()
        print(report(result))
    print(f"load average before / after: {load_before} / {load_after}")
    sb.write_json(
        args.json,
        {
            "benchmark": "stack_burst",
            "route": args.route,
            "load_before": load_before,
            "load_after": load_after,
            "settings": args.settings,
            **result,
        },
    )
    return sb.MEASURED if complete else sb.MEASUREMENT_FAILED


if __name__ == "__main__":
    sys.exit(main())
