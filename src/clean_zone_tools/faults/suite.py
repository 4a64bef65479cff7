"""The fault and load suite: bursts of files on a stack of its own, with components killed,
the endpoint cut, and the stack restarted mid-burst; then a census of where every file ended.

    python -m clean_zone_tools.faults.suite                       # every scenario
    python -m clean_zone_tools.faults.suite --scenario scheduler-killed --files 40
    python -m clean_zone_tools.faults.suite --list

It starts its own stack (``python -m clean_zone_tools.devstack start``) in a temporary state
folder on free ports, with the fault proxy between Airflow and the endpoint, runs each scenario
on a fresh key prefix, and prints one table row per scenario:

scenario | files in | processed | rejected | quarantined | duplicates | withdrawn | still waiting |
lost | misplaced | duplicated outputs | alerts expected / sent | alerts delayed / still kept | duration

Exit codes: 0 every scenario held (lost = 0, misplaced = 0, duplicated outputs = 0, nothing
still waiting, alerts expected = sent), 1 a scenario did not hold, 2 usage, 3 the stack did not
start. ``--json FILE`` writes the rows for the README's reliability section.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clean_zone.config import Settings
from clean_zone_tools.faults import census
from clean_zone_tools.faults.scenarios import SCENARIOS, Scenario
from clean_zone_tools.faults.stack import SuiteStack, say, suite_stack
from clean_zone_tools.faults.workload import WorkFile, mixed_files

# How long after the files settled the expected alerts may still arrive (see run_scenario).
ALERT_GRACE_SECONDS = 90


@dataclass
class Result:
    scenario: str
    census: census.Census
    seconds: float
    events: list[str]
    watcher_alerts_expected: int | None = None  # checked only where a scenario says (sensor route)

    @property
    def held(self) -> bool:
        row = self.census.row()
        return (
            row["lost"] == 0
            and row["misplaced"] == 0
            and row["duplicated outputs"] == 0
            and row["still waiting"] == 0
            and self.census.alerts_expected == self.census.files_alerted
            and self.watcher_alerts_expected in (None, self.census.watcher_alerts)
        )


def _drop(stack: SuiteStack, settings: Settings, files: list[WorkFile]) -> None:
    s3 = stack.client("s3")
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda item: s3.put_object(
                    Bucket=settings.bucket, Key=settings.landing_prefix + item.rel, Body=item.body
                ),
                files,
            )
        )


def _expected_alerts(scenario: Scenario, files: list[WorkFile], route: str) -> tuple[int, int | None]:
    """(files named in alerts, alerts from the landing watcher: None where not checked)."""
    if route == "sensor" and scenario.on_sensor_route is not None:
        return scenario.on_sensor_route(files)
    return sum(1 for item in files if item.expected.alerts) + scenario.extra_alerts(files), None


def run_scenario(stack: SuiteStack, scenario: Scenario, files_override: int | None, timeout: float) -> Result:
    settings = stack.settings
    count = files_override or scenario.files
    tag = f"suite/{scenario.name}-{int(time.time())}"
    files = mixed_files(count, tag, scenario.kinds)
    sqs = stack.client("sqs")
    inbox = sqs.get_queue_url(QueueName=settings.alerts_queue_name)["QueueUrl"]
    alerts: list[dict[str, Any]] = []
    census.read_alerts(sqs, inbox, [])  # earlier scenarios' alerts are not this one's
    expected_alerts, watcher_alerts = _expected_alerts(scenario, files, settings.trigger_route)
    events: list[str] = []
    say(f"{scenario.name}: dropping {count} files ({scenario.description})")
    started = time.monotonic()
    _drop(stack, settings, files)
    fault_done = scenario.fault is None
    recover_at: float | None = None
    previous_settled = False
    while True:
        elapsed = time.monotonic() - started
        if not fault_done and elapsed >= scenario.fault_at:
            events.append(f"{elapsed:.0f} s: {scenario.fault(stack, files)}")  # type: ignore[misc]
            say(f"{scenario.name}: {events[-1]}")
            fault_done = True
            if scenario.recover is not None:
                recover_at = elapsed + (scenario.recover_after or 0)
        if recover_at is not None and elapsed >= recover_at:
            events.append(f"{elapsed:.0f} s: {scenario.recover(stack)}")  # type: ignore[misc]
            say(f"{scenario.name}: {events[-1]}")
            recover_at = None
        census.read_alerts(sqs, inbox, alerts)
        result = census.take(stack.client("s3"), settings, files, alerts, expected_alerts)
        waiting = result.places[census.WAITING]
        # Settled twice in a row: a file between two places is seen in the second look.
        if fault_done and recover_at is None and result.settled and previous_settled:
            break
        previous_settled = result.settled
        if elapsed > timeout:
            events.append(f"{elapsed:.0f} s: gave up waiting ({waiting} still waiting)")
            break
        say(f"{scenario.name}: {elapsed:.0f} s, {count - waiting}/{count} in a terminal place")
        time.sleep(5)
    # Alerts for the last files may still be on their way: a burst's come in one digest from its
    # run's report task, which runs after every file of the run is placed (later still when the
    # scheduler or the API server was just killed and restarted). Alerts SNS refused are sent again
    # by the redelivery DAG (every minute on the suite's stack) once it answers.
    settled_at = time.monotonic()
    while result.files_alerted < expected_alerts and (
        time.monotonic() < settled_at + ALERT_GRACE_SECONDS
        or (result.alerts_kept and time.monotonic() < settled_at + 240)
    ):
        time.sleep(2)
        census.read_alerts(sqs, inbox, alerts)
        result = census.take(stack.client("s3"), settings, files, alerts, expected_alerts)
    # A kept alert sent again between the inbox read and the census is in the inbox by now.
    census.read_alerts(sqs, inbox, alerts)
    result = census.take(stack.client("s3"), settings, files, alerts, expected_alerts)
    stack.faults.off()
    if watcher_alerts is not None:
        events.append(f"watcher alerts: {result.watcher_alerts} (expected {watcher_alerts})")
    return Result(scenario.name, result, time.monotonic() - started, events, watcher_alerts)


COLUMNS = [
    "scenario",
    "files in",
    "processed",
    "rejected",
    "quarantined",
    "duplicates",
    "withdrawn",
    "still waiting",
    "lost",
    "misplaced",
    "duplicated outputs",
    "alerts expected / sent",
    "alerts delayed / still kept",
    "duration",
]


def table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result in results:
        row = {"scenario": result.scenario, **result.census.row(), "duration": f"{result.seconds:.0f} s"}
        lines.append("| " + " | ".join(str(row[column]) for column in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.faults.suite",
        description="Run bursts of files through a stack of the suite's own while components fail; "
        "print where every file ended.",
    )
    parser.add_argument("--scenario", action="append", help="run only these (repeatable); see --list")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--files", type=int, help="files per scenario (default: each scenario's own)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a scenario may take to settle")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--route",
        choices=["events", "sensor", "both"],
        default="events",
        help="what starts the file runs (clean_zone_trigger_route; default events)",
    )
    args = parser.parse_args(argv)
    by_name = {scenario.name: scenario for scenario in SCENARIOS}
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.name:22} {scenario.files:5} files  {scenario.description}")
        return 0
    unknown = sorted(set(args.scenario or []) - set(by_name))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; see --list")
    chosen = [by_name[name] for name in args.scenario] if args.scenario else SCENARIOS
    results: list[Result] = []
    try:
        with suite_stack(args.route) as stack:
            for scenario in chosen:
                result = run_scenario(stack, scenario, args.files, args.timeout)
                results.append(result)
                say(
                    f"{scenario.name}: {'held' if result.held else 'DID NOT HOLD'}; "
                    + "; ".join(result.events)
                )
    except RuntimeError as error:
        print(f"suite: {error}", file=sys.stderr)
        if not results:
            return 3
    print()
    print(table(results))
    for result in results:
        for problem in result.census.wrong_place[:10]:
            print(f"  {result.scenario}: {problem}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "scenario": r.scenario,
                        **r.census.row(),
                        "seconds": round(r.seconds),
                        "events": r.events,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    return 0 if results and all(result.held for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
