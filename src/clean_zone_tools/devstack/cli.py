"""The local stack without Docker: a durable moto endpoint and Airflow's components, supervised.

Run through ``scripts/dev`` (it installs .venv first):

  scripts/dev start            endpoint + provisioning + Airflow; runs until Ctrl-C, heals
  scripts/dev stop             stop it from another terminal
  scripts/dev status           each component (pid, up/down, restarts), objects per prefix
  scripts/dev reset --yes      wipe the endpoint's data and Airflow's runs together
  scripts/dev drop FILE        upload a file to the landing prefix (--sample: a generated CSV)
  scripts/dev inbox            read (and clear) the failure alerts
  scripts/dev trigger DAG_ID   trigger a DAG run;  scripts/dev runs DAG_ID: list them
  scripts/dev provision        create the AWS resources again (idempotent)

Settings come from ``local.env`` at the repository root (KEY=VALUE lines);
anything set in the environment wins over the file. Everything the stack
writes lives under ``.state/`` (CLEAN_ZONE_STATE_DIR; git-ignored): the
endpoint's data, the Airflow home with its SQLite database, logs, the pid and
state files. The endpoint's data survives stop/start and a killed endpoint.

Exit codes: 0 ok, 1 failure or refusal (already running, port busy, endpoint
down, unhealthy), 2 usage error, 3 a component kept dying and the stack gave up.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from clean_zone_tools import REPO_ROOT
from clean_zone_tools.devstack.commands import (
    cmd_drop,
    cmd_inbox,
    cmd_provision,
    cmd_reset,
    cmd_runs,
    cmd_start,
    cmd_status,
    cmd_stop,
    cmd_trigger,
)
from clean_zone_tools.devstack.settings import StackError, UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/dev", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, metavar="DIR",
        help="the checkout to work on: its local.env and .state/ (default: this project's checkout)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    start = commands.add_parser(
        "start", help="start the endpoint + Airflow and provision; runs until Ctrl-C",
        description="Start the durable AWS endpoint (moto, state kept under the state folder), the fault "
        "proxy when FAULT_PROXY_PORT is set, provision the bucket, topic and queues, prepare the Airflow "
        "database and run Airflow's api-server, scheduler, dag-processor and triggerer. Prints where "
        "everything is, then restarts whatever dies until Ctrl-C or `scripts/dev stop`.",
    )
    start.add_argument("--timeout", type=float, default=300.0,
                       help="seconds to wait for each component to answer (default: 300)")
    start.set_defaults(handler=cmd_start)

    stop = commands.add_parser("stop", help="stop the running stack",
                               description="Stop the stack `scripts/dev start` started (from any terminal).")
    stop.add_argument("--timeout", type=float, default=20.0,
                      help="seconds to wait for the stack's own (bounded) shutdown before killing it "
                      "(default: 20)")
    stop.set_defaults(handler=cmd_stop)

    status = commands.add_parser(
        "status", help="each component (pid, up/down, restarts), objects per prefix",
        description="Show whether the stack runs, each component's pid, state and restarts (from the "
        "supervisor's state file), whether the endpoint and the UI answer, and how many objects each "
        "bucket prefix holds. Exit 0 when everything is up and answers, 1 otherwise.",
    )
    status.set_defaults(handler=cmd_status)

    reset = commands.add_parser(
        "reset", help="wipe the endpoint's data and Airflow's runs together",
        description="Wipe every object, queue message, topic and ledger record of the local endpoint "
        "and every Airflow run, together, then provision again, so the two never disagree. On a running "
        "stack Airflow is stopped meanwhile and started again; on a stopped one the files are removed "
        "and the next start provisions. Asks first; without a terminal it needs --yes.",
    )
    reset.add_argument("--yes", action="store_true", help="do not ask")
    reset.add_argument("--timeout", type=float, default=300.0,
                       help="seconds to wait for a running stack's reset (default: 300)")
    reset.set_defaults(handler=cmd_reset)

    drop = commands.add_parser(
        "drop", help="upload a file to the landing prefix",
        description="Upload a local file into the clean-zone bucket, by default to the landing prefix "
        "(key: landing/<file name>), as a partner would. Prints its s3:// URL.",
    )
    drop.add_argument("file", nargs="?", help="the local file to upload")
    drop.add_argument("--sample", action="store_true",
                      help="generate a small valid CSV (kept under .state/samples/) and upload that")
    drop.add_argument("--prefix", help="upload under this prefix instead (e.g. manifests/, batches/)")
    drop.add_argument("--key", help="the exact object key to write (instead of <prefix><file name>)")
    drop.set_defaults(handler=cmd_drop)

    inbox = commands.add_parser(
        "inbox", help="read the failure alerts (SNS -> SQS inbox)",
        description="Print the alerts published to the failure topic, as a subscriber receives them "
        "(subject, then message), and remove them from the inbox queue.",
    )
    inbox.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                       help="if the inbox is empty, wait up to this long for an alert (default: 0)")
    inbox.add_argument("--keep", action="store_true", help="leave the alerts in the inbox")
    inbox.add_argument("--json", action="store_true", help="print the alerts as a JSON list")
    inbox.set_defaults(handler=cmd_inbox)

    trigger = commands.add_parser("trigger", help="trigger a DAG run (airflow dags trigger)",
                                  description="Trigger a run of DAG_ID in the local Airflow.")
    trigger.add_argument("dag_id")
    trigger.add_argument("--conf", help="run configuration, a JSON object")
    trigger.set_defaults(handler=cmd_trigger)

    runs = commands.add_parser("runs", help="list a DAG's runs (airflow dags list-runs)",
                               description="List the runs of DAG_ID in the local Airflow.")
    runs.add_argument("dag_id")
    runs.add_argument("--state", choices=["queued", "running", "success", "failed"],
                      help="only runs in this state")
    runs.set_defaults(handler=cmd_runs)

    provision = commands.add_parser(
        "provision", help="create the bucket, topic and queues (idempotent)",
        description="Run the provisioning (python -m clean_zone_tools.devstack.provision) against the local "
        "endpoint (the running stack's, never the fault proxy).",
    )
    provision.add_argument("--json", action="store_true", help="print the resources as JSON")
    provision.set_defaults(handler=cmd_provision)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2
    except StackError as error:
        print(f"{args.command}: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other CLI tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
