"""The handlers of ``scripts/dev``'s stack commands: start, stop, status, reset, drop, inbox,
trigger, runs, provision. Each takes the parsed arguments and returns the exit code."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import mimetypes
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from clean_zone import undelivered_alerts
from clean_zone.config import Settings
from clean_zone.failures import EndpointError
from clean_zone.keys import is_folder_marker
from clean_zone.lifecycle import Lifecycle
from clean_zone.storage import ObjectInfo, ObjectStore
from clean_zone_tools.devstack import inbox
from clean_zone_tools.devstack.processes import (
    SUPERVISOR_MARKERS,
    alive,
    check_ports,
    claim_pid_file,
    http_get,
    read_pid,
    running_supervisor,
    stop_leftovers,
    wait_until,
)
from clean_zone_tools.devstack.settings import (
    HEALTH_PATH,
    Context,
    StackError,
    UsageError,
    make_context,
)
from clean_zone_tools.devstack.supervisor import (
    GAVE_UP,
    GaveUpError,
    StartInterruptedError,
    Supervisor,
    ensure_ui_password,
)


# --------------------------------------------------------------------------- start / stop / status
def cmd_start(args: argparse.Namespace) -> int:
    ctx = make_context(args.root, for_stack=True)
    for folder in (ctx.state, ctx.logs, ctx.airflow_home):
        folder.mkdir(parents=True, exist_ok=True)
    running = claim_pid_file(ctx)
    if running is not None:
        print(f"The local stack is already running (pid {running}): scripts/dev stop", file=sys.stderr)
        return 1
    status = 1
    try:
        supervisor = Supervisor(ctx, startup_timeout=args.timeout)
    except StackError:
        ctx.pid_file.unlink(missing_ok=True)
        raise
    supervisor.install_signal_handlers()
    try:
        leftovers = stop_leftovers(ctx)
        if leftovers:
            print(f"Stopped processes a previous stack left behind: {', '.join(leftovers)}", flush=True)
        check_ports(ctx)
        ensure_ui_password(ctx)
        supervisor.start()
        status = supervisor.watch()
    except StartInterruptedError:
        print("\nStart-up interrupted.", flush=True)
        status = 1
    except GaveUpError as error:
        supervisor.say(f"start: {error}", error=True)
        status = GAVE_UP
    except StackError as error:
        print(f"start: {error}", file=sys.stderr, flush=True)
        status = 1
    finally:
        supervisor.stop_children()
        ctx.info_file.unlink(missing_ok=True)
        if read_pid(ctx.pid_file) == os.getpid():
            ctx.pid_file.unlink(missing_ok=True)
    if supervisor.children:
        print("The local stack has stopped.", flush=True)
    return status


def cmd_stop(args: argparse.Namespace) -> int:
    ctx = make_context(args.root, for_stack=True)
    pid = running_supervisor(ctx)
    if pid is None:
        leftovers = stop_leftovers(ctx)
        ctx.pid_file.unlink(missing_ok=True)
        if leftovers:
            print(f"The stack's supervisor was gone; stopped what it left behind: {', '.join(leftovers)}")
        else:
            print("The local stack is not running.")
        return 0
    print(f"Stopping the local stack (pid {pid})...", flush=True)
    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not alive(pid, *SUPERVISOR_MARKERS), args.timeout, interval=0.5):
        print(f"  it did not stop within {args.timeout:.0f} s; killing it and its processes", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        stop_leftovers(ctx)
        ctx.pid_file.unlink(missing_ok=True)
    print(f"Stopped ({time.monotonic() - began:.1f} s).")
    return 0


def _health_summary(port: int) -> str | None:
    answer = http_get(port, HEALTH_PATH, timeout=10.0)
    if answer is None:
        return None
    status, body = answer
    try:
        health = json.loads(body)
    except ValueError:
        return f"HTTP {status}"
    parts = [f"{name} {part.get('status')}" for name, part in health.items() if isinstance(part, dict)]
    return ", ".join(parts) or f"HTTP {status}"


def _prefixes(settings: Settings) -> list[str]:
    return [
        settings.landing_prefix, settings.processing_prefix, settings.processed_prefix,
        settings.rejected_prefix, settings.quarantine_prefix, settings.duplicates_prefix,
        settings.manifests_prefix, settings.batches_prefix,
    ]


# Files in landing/ whose claim is looked up (up to three requests each): enough to tell, bounded for a burst.
CLAIM_LOOKUPS = 200


def _claimed_note(store: ObjectStore, settings: Settings, listed: list[ObjectInfo]) -> str:
    """How many files in landing/ a run has claimed in place (working on them, or waiting to be resumed)."""
    every = [info for info in listed if not is_folder_marker(info.key, info.size)]
    files = every[:CLAIM_LOOKUPS]
    if not files:
        return ""
    lifecycle = Lifecycle(store, settings)
    # A listing names no versions: the key's current object decides (already_claimed's own rule).
    claimed = sum(lifecycle.already_claimed(info.key, info.etag, None) for info in files)
    of = f" of the first {len(files)}" if len(files) < len(every) else ""
    return f" ({claimed}{of} claimed by a run)"


def _read_stack_state(ctx: Context) -> dict[str, object]:
    try:
        return json.loads(ctx.info_file.read_text())
    except (OSError, ValueError):
        return {}


def cmd_status(args: argparse.Namespace) -> int:
    ctx = make_context(args.root)
    healthy = True
    pid = running_supervisor(ctx)
    state = _read_stack_state(ctx) if pid else {}
    running = f"{state.get('state', 'running')} (supervisor pid {pid})"
    print(f"Local stack    {running if pid else 'not running (scripts/dev start)'}")
    healthy &= pid is not None and state.get("state") == "running"

    components = state.get("components") or {}
    if isinstance(components, dict) and components:
        print(f"  {'component':<14} {'pid':>8}  {'status':<8} restarts")
        for name, component in components.items():
            up = component.get("status") == "up"
            healthy &= up
            last_exit = component.get("last_exit")
            exit_note = f" (last exit {last_exit})" if last_exit is not None else ""
            print(f"  {name:<14} {component.get('pid') or '-':>8}  {component.get('status', '?'):<8} "
                  f"{component.get('restarts', 0)}{exit_note}")

    endpoint = urlsplit(ctx.endpoint)
    endpoint_up = http_get(endpoint.port or 80, "/", host=endpoint.hostname or "127.0.0.1") is not None
    print(f"AWS endpoint   {ctx.endpoint}  {'answering' if endpoint_up else 'not answering'}")
    healthy &= endpoint_up

    health = _health_summary(ctx.ui_port)
    print(f"Airflow UI     {ctx.ui_url}  {health or 'not answering (no reply within 10 s)'}")
    healthy &= health is not None and "unhealthy" not in health

    if endpoint_up:
        print(f"Bucket         s3://{ctx.settings.bucket}")
        store = ObjectStore(ctx.client("s3"), ctx.settings.bucket)
        try:
            for prefix in _prefixes(ctx.settings):
                listed = list(store.list_keys(prefix))
                count = len(listed)
                landing = prefix == ctx.settings.landing_prefix
                note = _claimed_note(store, ctx.settings, listed) if landing else ""
                print(f"  {prefix:<14} {count:>5} object{'s' if count != 1 else ''}{note}")
            waiting = len(undelivered_alerts.pending(store, ctx.settings))
            if waiting:
                # Not unhealthy (the stack runs), but a person must know alerts did not reach them.
                print(f"Alerts         {waiting} refused by SNS, kept in "
                      f"s3://{ctx.settings.bucket}/{undelivered_alerts.folder(ctx.settings)} and sent "
                      "again by clean_zone_alert_redelivery")
        except EndpointError as error:
            print(f"  cannot list the bucket: {error}")
            healthy = False
    if not healthy:
        print("Unhealthy: see above (and scripts/dev logs in " f"{ctx.relative(ctx.logs)}/)")
    return 0 if healthy else 1


# --------------------------------------------------------------------------- reset
def cmd_reset(args: argparse.Namespace) -> int:
    """Wipe the endpoint's data and Airflow's runs together, so the two never disagree."""
    ctx = make_context(args.root, for_stack=True)
    pid = running_supervisor(ctx)
    where = "running" if pid else "stopped"
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("this wipes every object, queue message and Airflow run: add --yes to confirm")
        answer = input(f"The stack is {where}. Wipe every object, message and Airflow run? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing changed.")
            return 1
    if pid is None:
        # Stopped: removing the files is the reset; the next start provisions and migrates afresh.
        shutil.rmtree(ctx.endpoint_state, ignore_errors=True)
        for name in ("airflow.db", "airflow.db-journal", "airflow.db-wal", "airflow.db-shm"):
            (ctx.airflow_home / name).unlink(missing_ok=True)
        print(f"The stack is stopped: removed the endpoint's data ({ctx.relative(ctx.endpoint_state)}/) and "
              "Airflow's database. scripts/dev start provisions and creates them afresh.")
        return 0
    before = _read_stack_state(ctx).get("resets_done", 0)
    print(f"The stack is running (pid {pid}): asking it to stop Airflow, wipe both halves, provision, "
          "and start Airflow again...", flush=True)
    os.kill(pid, signal.SIGUSR1)
    if not wait_until(lambda: _read_stack_state(ctx).get("resets_done", 0) != before, args.timeout, 0.5):
        print(f"reset: not done within {args.timeout:.0f} s; see {ctx.relative(ctx.supervisor_log)}",
              file=sys.stderr)
        return 1
    error = _read_stack_state(ctx).get("last_reset_error")
    if error:
        print(f"reset: failed: {error}", file=sys.stderr)
        return 1
    print("Reset done: empty bucket prefixes, fresh queues and topic, no Airflow runs.")
    return 0


# --------------------------------------------------------------------------- drop
SAMPLE_COLUMNS = ("order_id", "customer", "country", "amount", "currency", "ordered_at")


def write_sample_csv(folder: Path, rows: int = 12) -> Path:
    """A small, well-formed CSV with a unique name, so every drop is a new file."""
    now = datetime.now(UTC)
    name = f"sample-{now:%Y%m%dT%H%M%S}-{random.randrange(16**4):04x}.csv"
    rng = random.Random(name)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SAMPLE_COLUMNS)
    customers = ["Acme Ltd", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries"]
    countries = ["GB", "DE", "US", "FR", "JP", "BR"]
    for number in range(1, rows + 1):
        writer.writerow([
            f"{now:%Y%m%d}-{number:04d}",
            rng.choice(customers),
            rng.choice(countries),
            f"{rng.uniform(5, 500):.2f}",
            "EUR",
            now.isoformat(timespec="seconds"),
        ])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _describe_aws_error(ctx: Context, error: Exception) -> str:
    text = str(error)
    if "NoSuchBucket" in text:
        return f"bucket {ctx.settings.bucket} does not exist at {ctx.endpoint}: run scripts/dev provision"
    if "Could not connect" in text or "Connection" in text:
        return f"nothing answers at {ctx.endpoint}: is the local stack running? (scripts/dev start)"
    return text


def cmd_drop(args: argparse.Namespace) -> int:
    ctx = make_context(args.root)
    if args.sample == (args.file is not None):
        raise UsageError("give a FILE or --sample (one of them)")
    if args.key and args.prefix:
        raise UsageError("--key and --prefix exclude each other (--key is the whole object key)")
    if args.sample:
        source = write_sample_csv(ctx.state / "samples")
        print(f"Wrote a sample CSV: {ctx.relative(source)}")
    else:
        source = Path(args.file)
        if not source.is_file():
            raise UsageError(f"no such file: {args.file}")
    if args.key:
        key = args.key
    else:
        prefix = args.prefix or ctx.settings.landing_prefix
        key = prefix.rstrip("/") + "/" + source.name
    if key.startswith("/") or key.endswith("/"):
        raise UsageError(f"an object key neither starts nor ends with '/': {key!r}")

    store = ObjectStore(ctx.client("s3"), ctx.settings.bucket)
    content_type = "text/csv" if source.suffix.lower() == ".csv" else (
        mimetypes.guess_type(source.name)[0] or "application/octet-stream")
    try:
        replaced = store.head(key) is not None
        with source.open("rb") as stream:
            store.upload_stream(key, stream, content_type=content_type)
    except (EndpointError, ClientError, BotoCoreError) as error:
        print(f"drop: {_describe_aws_error(ctx, error)}", file=sys.stderr)
        return 1
    note = " (replaced the object that was there; the bucket keeps the old version)" if replaced else ""
    print(f"Uploaded {source.stat().st_size} bytes to {store.url(key)}{note}")
    return 0


# --------------------------------------------------------------------------- inbox
def cmd_inbox(args: argparse.Namespace) -> int:
    ctx = make_context(args.root)
    sqs = ctx.client("sqs")
    try:
        queue_url = sqs.get_queue_url(QueueName=ctx.settings.alerts_queue_name)["QueueUrl"]
    except ClientError as error:
        if "NonExistentQueue" in str(error) or "does not exist" in str(error):
            print(f"inbox: no queue {ctx.settings.alerts_queue_name} at {ctx.endpoint}: "
                  "run scripts/dev provision", file=sys.stderr)
            return 1
        print(f"inbox: {_describe_aws_error(ctx, error)}", file=sys.stderr)
        return 1
    except BotoCoreError as error:
        print(f"inbox: {_describe_aws_error(ctx, error)}", file=sys.stderr)
        return 1
    if args.wait and not args.json:
        print(f"Waiting up to {args.wait:g} s for alerts...", flush=True)
    try:
        messages = list(inbox.receive_all(sqs, queue_url, args.wait))
    except (ClientError, BotoCoreError) as error:
        print(f"inbox: {_describe_aws_error(ctx, error)}", file=sys.stderr)
        return 1
    alerts = [inbox.InboxMessage.from_sqs_body(message["Body"]) for message in messages]
    if args.json:
        print(json.dumps([alert.as_json() for alert in alerts], indent=2))
    elif alerts:
        for number, alert in enumerate(alerts, start=1):
            print(alert.as_text(number))
            print()
    if not alerts:
        print("inbox empty", file=sys.stderr if args.json else sys.stdout)
        return 0
    # Printed first, removed after: an alert is never lost to a failed print.
    inbox.settle(sqs, queue_url, messages, keep=args.keep)
    summary = "kept in the inbox" if args.keep else "removed from the inbox (--keep leaves them)"
    print(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''} {summary}",
          file=sys.stderr if args.json else sys.stdout)
    return 0


# --------------------------------------------------------------------------- airflow wrappers
def _run_airflow(ctx: Context, arguments: Sequence[str]) -> int:
    if not (ctx.airflow_home / "airflow.db").exists():
        print("The Airflow database does not exist yet: run scripts/dev start once (it creates it).",
              file=sys.stderr)
        return 1
    env = ctx.process_environment(endpoint=f"http://127.0.0.1:{ctx.moto_port}")
    # The CLI warns on every call that it cannot draw graphs; nothing here draws one.
    quiet = "ignore:Could not import graphviz"
    env["PYTHONWARNINGS"] = f"{env['PYTHONWARNINGS']},{quiet}" if env.get("PYTHONWARNINGS") else quiet
    command = [str(Path(sys.prefix) / "bin" / "airflow"), *arguments]
    return subprocess.run(command, env=env, cwd=ctx.repo_root, check=False).returncode


def cmd_trigger(args: argparse.Namespace) -> int:
    ctx = make_context(args.root)
    arguments = ["dags", "trigger", args.dag_id]
    if args.conf is not None:
        try:
            conf = json.loads(args.conf)
        except ValueError as error:
            raise UsageError(f"--conf is not valid JSON: {error}") from None
        if not isinstance(conf, dict):
            raise UsageError("--conf must be a JSON object, e.g. '{\"key\": \"landing/x.csv\"}'")
        arguments += ["--conf", json.dumps(conf)]
    status = _run_airflow(ctx, arguments)
    if status == 0:
        print(f"Follow it: {ctx.ui_url}/dags/{args.dag_id}  or  scripts/dev runs {args.dag_id}")
    return status


def cmd_runs(args: argparse.Namespace) -> int:
    ctx = make_context(args.root)
    arguments = ["dags", "list-runs", args.dag_id]
    if args.state:
        arguments += ["--state", args.state]
    return _run_airflow(ctx, arguments)


def cmd_provision(args: argparse.Namespace) -> int:
    ctx = make_context(args.root)
    command = [sys.executable, "-m", "clean_zone_tools.devstack.provision"]
    command += ["--json"] if args.json else []
    env = ctx.process_environment()
    return subprocess.run(command, env=env, cwd=ctx.repo_root, check=False).returncode
