#!/usr/bin/env python3
"""The local stack without Docker: moto as the AWS endpoint, Airflow standalone.

Run through ``scripts/dev`` (it installs .venv first):

  scripts/dev start            moto + provisioning + Airflow; runs until Ctrl-C
  scripts/dev stop             stop it from another terminal
  scripts/dev status           what runs, what answers, objects per prefix
  scripts/dev drop FILE        upload a file to the landing prefix (--sample: a generated CSV)
  scripts/dev inbox            read (and clear) the failure alerts
  scripts/dev trigger DAG_ID   trigger a DAG run;  scripts/dev runs DAG_ID: list them
  scripts/dev provision        create the AWS resources again (idempotent)

Settings come from ``local.env`` at the repository root (KEY=VALUE lines);
anything set in the environment wins over the file. Everything the stack
writes lives under ``.state/`` (git-ignored): the Airflow home with its SQLite
database, logs, the pid file. The moto server keeps its data in memory, so
the bucket, topic and queues start empty on every ``start`` (provisioned again).

Exit codes: 0 ok, 1 failure or refusal (already running, port busy, endpoint
down), 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import io
import json
import mimetypes
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from clean_zone.alerts import parse_sns_envelope
from clean_zone.config import ConfigError, Settings, load_for_parsing
from clean_zone.failures import EndpointError
from clean_zone.storage import ObjectStore
from clean_zone_tools import REPO_ROOT

ENV_FILE_NAME = "local.env"
DEFAULT_MOTO_PORT = 4566
DEFAULT_UI_PORT = 8080
DEFAULT_LOGIN_USER = "admin"
HEALTH_PATH = "/api/v2/monitor/health"
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json.generated"

# Settings of the stack itself (not Airflow's), read from local.env or the environment.
STACK_KEYS = (
    "MOTO_PORT", "AIRFLOW_UI_PORT", "AIRFLOW_LOGIN_USER",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
)

# Airflow settings of the local stack that a developer may override from the environment.
LOCAL_AIRFLOW_DEFAULTS = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    # A dropped file should be picked up at once; MWAA keeps Airflow's default
    # (new DAGs start paused).
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    # LocalExecutor starts one worker process per slot (about 120 MB each): 32,
    # Airflow's default, would take 4 GB of a laptop.
    "AIRFLOW__CORE__PARALLELISM": "8",
    # Standalone starts the scheduler and the api-server together; on a busy
    # machine the api-server needs a minute or more, and a task started before it
    # answers fails after the default 5 tries (about 15 s). 12 tries ride it out.
    "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "12",
}

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StackError(RuntimeError):
    """A problem the user must act on; the message says what to do."""


class UsageError(StackError):
    """Bad arguments (exit 2)."""


# --------------------------------------------------------------------------- settings
def read_env_file(path: Path | str) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file, as docker compose's ``env_file`` reads them.

    Blank lines and ``#`` comment lines are skipped; ``export KEY=VALUE`` is
    accepted; a value in matching single or double quotes loses the quotes;
    in an unquoted value `` #`` starts a comment. Anything else raises
    ValueError naming the file and line.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, separator, value = line.partition("=")
        key = key.strip()
        if not separator or not _ENV_KEY.fullmatch(key):
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        values[key] = value
    return values


def _layered_settings(repo_root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """local.env's values, each overridden by the environment when set there.

    The stack's own knobs (ports, login, AWS placeholders) are taken from the
    environment even when local.env does not list them.
    """
    env_file = repo_root / ENV_FILE_NAME
    values = read_env_file(env_file) if env_file.is_file() else {}
    layered = {key: environ.get(key, value) for key, value in values.items()}
    layered.update({key: environ[key] for key in STACK_KEYS if key in environ})
    return layered


def state_dir(repo_root: Path) -> Path:
    return repo_root / ".state"


def stack_environment(
    repo_root: Path, endpoint: str, *, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables the local stack sets for Airflow, provisioning and the CLI wrappers.

    local.env's settings (the environment overrides each), the AWS endpoint and
    the Airflow connection that carries it, and the Airflow configuration of the
    no-Docker stack (home, SQLite database, folders, port, login). Only these
    keys: callers lay them over ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    env = _layered_settings(repo_root, environ)
    settings = load_for_parsing({**env, **environ})
    ui_port = int(env.get("AIRFLOW_UI_PORT", DEFAULT_UI_PORT))
    airflow_home = state_dir(repo_root) / "airflow"
    login_user = env.get("AIRFLOW_LOGIN_USER", DEFAULT_LOGIN_USER)
    connection = {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": settings.region}}
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", settings.region),
            f"AIRFLOW_CONN_{settings.aws_conn_id.upper()}": json.dumps(connection),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(repo_root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo_root / "plugins"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{login_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / PASSWORDS_FILE_NAME),
            # The UI (with its dev-only auth manager) listens on this machine only.
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(ui_port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{ui_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ui_port}/execution/",
        }
    )
    # Local defaults the environment may override (docs/local-stack.md lists them).
    for name, default in LOCAL_AIRFLOW_DEFAULTS.items():
        env[name] = environ.get(name, default)
    return env


@dataclass(frozen=True)
class Context:
    """What every subcommand needs: paths, resolved settings, the endpoint."""

    repo_root: Path
    values: dict[str, str]  # local.env with environment overrides
    settings: Settings
    endpoint: str

    @property
    def state(self) -> Path:
        return state_dir(self.repo_root)

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pid_file(self) -> Path:
        return self.state / "stack.pid"

    @property
    def info_file(self) -> Path:
        """Children of the running stack, so ``stop`` can clean up after a crashed supervisor."""
        return self.state / "stack.json"

    @property
    def airflow_home(self) -> Path:
        return self.state / "airflow"

    @property
    def moto_port(self) -> int:
        return _port(self.values, "MOTO_PORT", DEFAULT_MOTO_PORT)

    @property
    def ui_port(self) -> int:
        return _port(self.values, "AIRFLOW_UI_PORT", DEFAULT_UI_PORT)

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    @property
    def login_user(self) -> str:
        return self.values.get("AIRFLOW_LOGIN_USER", DEFAULT_LOGIN_USER)

    def process_environment(self, endpoint: str | None = None) -> dict[str, str]:
        """os.environ with the stack's variables on top, and .venv/bin first on PATH."""
        env = {**os.environ, **stack_environment(self.repo_root, endpoint or self.endpoint)}
        venv_bin = str(Path(sys.prefix) / "bin")
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
        return env

    def client(self, service: str) -> Any:
        # Few retries and short timeouts: a stopped stack should say so at once,
        # not after botocore's backoff.
        config = Config(connect_timeout=2, read_timeout=30, retries={"total_max_attempts": 2})
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.settings.region,
            aws_access_key_id=self.values.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=self.values.get("AWS_SECRET_ACCESS_KEY")
            or os.environ.get("AWS_SECRET_ACCESS_KEY"),
            config=config,
        )


def _port(values: Mapping[str, str], name: str, default: int) -> int:
    raw = values.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise UsageError(f"{name} must be a port number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"{name} must be a port number (1-65535), got {port}")
    return port


def make_context(repo_root: Path = REPO_ROOT, *, for_stack: bool = False) -> Context:
    """Resolve settings. The stack itself always serves on 127.0.0.1:MOTO_PORT; the other
    commands honour AWS_ENDPOINT_URL from the environment (tests point it at their own server)."""
    try:
        values = _layered_settings(repo_root, os.environ)
    except ValueError as error:
        raise UsageError(f"cannot read {ENV_FILE_NAME}: {error}") from None
    try:
        settings = load_for_parsing({**values, **os.environ})
    except ConfigError as error:
        raise UsageError(str(error)) from None
    local_endpoint = f"http://127.0.0.1:{_port(values, 'MOTO_PORT', DEFAULT_MOTO_PORT)}"
    endpoint = local_endpoint if for_stack else os.environ.get("AWS_ENDPOINT_URL") or local_endpoint
    return Context(repo_root=repo_root, values=values, settings=settings, endpoint=endpoint)


# --------------------------------------------------------------------------- processes
def _http_get(
    port: int, path: str, timeout: float = 2.0, host: str = "127.0.0.1"
) -> tuple[int, bytes] | None:
    """Status and body of GET http://host:port/path, or None if nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def port_in_use(port: int) -> bool:
    """True if something listens on the port, or it cannot be bound on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _listener_description(port: int) -> str:
    """Best effort: which program listens on the port (lsof output), or ''."""
    if not shutil.which("lsof"):
        return ""
    result = subprocess.run(
        ["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN"], capture_output=True, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    return "\n    ".join(lines[:4])


def process_command(pid: int) -> str | None:
    """The command line of a live process, or None if there is no such process."""
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.is_dir():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return None
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None


def _alive(pid: int, marker: str) -> bool:
    """True if ``pid`` runs and its command line contains ``marker`` (guards against reused pids)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    command = process_command(pid)
    return command is not None and marker in command


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in a process group.

    Zombies are left out: a group leader that exited but is not reaped yet still
    "exists" for kill(), and waiting for it to vanish would wait forever.
    """
    proc = Path("/proc")
    members = []
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ')'.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
        return members
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=,pgid=,stat="], capture_output=True, text=True, check=False
    )
    for line in listing.stdout.splitlines():
        pid, group, state = line.split(None, 2)
        if int(group) == pgid and not state.startswith("Z"):
            members.append(int(pid))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _wait_until(condition: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(f"    {line}" for line in text[-lines:])


def _relative(path: Path, repo_root: Path) -> str:
    try:
        return str(path.relative_to(repo_root))
    except ValueError:
        return str(path)


# Markers that identify the stack's own processes in `ps` output.
SUPERVISOR_MARKER = "local_stack.py"
CHILD_MARKERS = {"moto": "moto_server", "airflow": "airflow"}


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def running_supervisor(ctx: Context) -> int | None:
    pid = read_pid(ctx.pid_file)
    return pid if pid is not None and _alive(pid, SUPERVISOR_MARKER) else None


def _recorded_children(ctx: Context) -> dict[str, int]:
    try:
        info = json.loads(ctx.info_file.read_text())
    except (OSError, ValueError):
        return {}
    return {name: int(pid) for name, pid in info.get("processes", {}).items() if name in CHILD_MARKERS}


def _leftover_children(ctx: Context) -> dict[str, int]:
    """Children a crashed supervisor left behind (still alive, still ours)."""
    return {name: pid for name, pid in _recorded_children(ctx).items() if _alive(pid, CHILD_MARKERS[name])}


def _terminate_group(pgid: int, *, first_signal: int, grace: float, label: str) -> None:
    """Stop a process group: ``first_signal`` to its leader, then SIGTERM and SIGKILL to the whole group.

    Only the leader gets the polite signal: it stops its own children in order
    (Airflow standalone ends its components, which let running tasks finish
    their bookkeeping). Signalling the whole group at once would kill task
    processes mid-flight.
    """
    steps = ((first_signal, grace, False), (signal.SIGTERM, 10.0, True), (signal.SIGKILL, 5.0, True))
    for signum, wait, whole_group in steps:
        if not _group_alive(pgid):
            return
        if whole_group:
            _signal_group(pgid, signum)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pgid, signum)
        if _wait_until(lambda: not _group_alive(pgid), wait):
            return
        if signum != signal.SIGKILL:
            print(f"\n  {label} did not stop within {wait:.0f} s; insisting", flush=True)
    print(f"  warning: some {label} processes (group {pgid}) did not stop", file=sys.stderr)


# --------------------------------------------------------------------------- start
class StartInterruptedError(Exception):
    """Ctrl-C or SIGTERM during start-up."""


class Supervisor:
    """Runs moto and Airflow standalone as children and stops them cleanly."""

    def __init__(self, ctx: Context, startup_timeout: float) -> None:
        self.ctx = ctx
        self.startup_timeout = startup_timeout
        self.stop_requested = threading.Event()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.env = ctx.process_environment()

    # -- signals ------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_requested.is_set():
            # A second Ctrl-C: stop waiting politely.
            for child in self.children.values():
                _signal_group(child.pid, signal.SIGKILL)
            return
        self.stop_requested.set()

    def install_signal_handlers(self) -> None:
        # Installed before any child starts: exec resets handled signals to their
        # defaults in the children, so Airflow gets its usual Ctrl-C behaviour even
        # when this process was started with SIGINT ignored (a background job).
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _check_interrupted(self) -> None:
        if self.stop_requested.is_set():
            raise StartInterruptedError

    # -- children -------------------------------------------------------------
    def _record(self) -> None:
        info = {
            "supervisor": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "endpoint": self.ctx.endpoint,
            "ui_url": self.ctx.ui_url,
            "processes": {name: child.pid for name, child in self.children.items()},
        }
        self.ctx.info_file.write_text(json.dumps(info, indent=2) + "\n")

    def _log_file(self, name: str) -> Path:
        path = self.ctx.logs / f"{name}.log"
        if path.exists():
            path.replace(path.with_suffix(".log.1"))  # keep the previous run's log for a post-mortem
        return path

    def spawn(self, name: str, command: Sequence[str]) -> subprocess.Popen[bytes]:
        log = self._log_file(name)
        with log.open("wb") as out:
            # Own session: the terminal's Ctrl-C reaches only this supervisor,
            # which then stops each child in order.
            child = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.ctx.repo_root, start_new_session=True,
            )
        self.children[name] = child
        self._record()
        return child

    def run_step(self, description: str, command: Sequence[str], log_name: str | None) -> None:
        """Run a command to completion (output to a log, or to the terminal if log_name is None)."""
        log = self._log_file(log_name) if log_name else None
        with open(log, "wb") if log else contextlib.nullcontext() as out:
            step = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT if out else None,
                stdin=subprocess.DEVNULL, env=self.env, cwd=self.ctx.repo_root, start_new_session=True,
            )
            while step.poll() is None:
                if self.stop_requested.wait(0.2):
                    _terminate_group(step.pid, first_signal=signal.SIGTERM, grace=10.0, label=description)
                    step.wait()
                    raise StartInterruptedError
        if step.returncode != 0:
            detail = f"; last lines of {_relative(log, self.ctx.repo_root)}:\n{_tail(log)}" if log else ""
            raise StackError(f"{description} failed (exit {step.returncode}){detail}")

    def wait_for(self, description: str, port: int, path: str, child: str, expect_ok: bool) -> None:
        started = time.monotonic()
        next_note = started + 15
        log = self.ctx.logs / f"{child}.log"
        while True:
            self._check_interrupted()
            answer = _http_get(port, path)
            if answer is not None and (not expect_ok or answer[0] == 200):
                return
            process = self.children[child]
            if process.poll() is not None:
                raise StackError(
                    f"{child} exited (code {process.returncode}) before {description} answered; "
                    f"last lines of {_relative(log, self.ctx.repo_root)}:\n{_tail(log)}"
                )
            now = time.monotonic()
            if now - started > self.startup_timeout:
                raise StackError(
                    f"{description} did not answer within {self.startup_timeout:.0f} s; "
                    f"see {_relative(log, self.ctx.repo_root)}:\n{_tail(log)}"
                )
            if now >= next_note:
                print(f"  ... still waiting for {description} ({now - started:.0f} s; "
                      f"log: {_relative(log, self.ctx.repo_root)})", flush=True)
                next_note = now + 15
            self.stop_requested.wait(0.5)

    def stop_children(self) -> None:
        """Airflow first (its tasks may still talk to S3), then moto."""
        for name, label, first_signal, grace in (
            # Airflow standalone shuts its components down on Ctrl-C (SIGINT).
            ("airflow", "Airflow (scheduler, dag-processor, triggerer, api-server)", signal.SIGINT, 40.0),
            ("moto", "the moto server", signal.SIGTERM, 10.0),
        ):
            child = self.children.get(name)
            if child is None:
                continue
            began = time.monotonic()
            print(f"Stopping {label}...", end=" ", flush=True)
            _terminate_group(child.pid, first_signal=first_signal, grace=grace, label=name)
            child.wait()
            print(f"stopped ({time.monotonic() - began:.0f} s)", flush=True)

    # -- the whole run ------------------------------------------------------------
    def start(self) -> None:
        ctx = self.ctx
        started = time.monotonic()
        bin_dir = Path(sys.prefix) / "bin"
        print(f"Starting the moto server on {ctx.endpoint} (S3, SNS, SQS, EventBridge)...", flush=True)
        self.spawn("moto", [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(ctx.moto_port)])
        self.wait_for("the moto server", ctx.moto_port, "/", "moto", expect_ok=False)

        print("Provisioning AWS resources...", flush=True)
        self.run_step("provisioning", [sys.executable, "-m", "clean_zone_tools.devstack.provision"], None)

        first_run = not (ctx.airflow_home / "airflow.db").exists()
        note = " (first run: about a minute)" if first_run else ""
        print(f"Preparing the Airflow database{note}...", flush=True)
        self.run_step("airflow db migrate", [str(bin_dir / "airflow"), "db", "migrate"], "airflow-db-migrate")

        print(f"Starting Airflow standalone (log: {_relative(ctx.logs / 'airflow.log', ctx.repo_root)})...",
              flush=True)
        self.spawn("airflow", [str(bin_dir / "airflow"), "standalone"])
        self.wait_for("the Airflow UI", ctx.ui_port, HEALTH_PATH, "airflow", expect_ok=True)
        print_banner(ctx, time.monotonic() - started)

    def watch(self) -> int:
        """Wait for a stop request; 1 if a component died on its own."""
        while not self.stop_requested.wait(0.5):
            for name, child in self.children.items():
                if child.poll() is not None:
                    log = self.ctx.logs / f"{name}.log"
                    print(f"\n{name} exited unexpectedly (code {child.returncode}); last lines of "
                          f"{_relative(log, self.ctx.repo_root)}:\n{_tail(log)}", file=sys.stderr, flush=True)
                    return 1
        print("\nStop requested.", flush=True)
        return 0


def print_banner(ctx: Context, seconds: float) -> None:
    settings = ctx.settings
    passwords = _relative(ctx.airflow_home / PASSWORDS_FILE_NAME, ctx.repo_root)
    landing = f"s3://{settings.bucket}/{settings.landing_prefix}"
    rule = "=" * 78
    print(
        f"""
{rule}
 Local stack is up (ready in {seconds:.0f} s)

 Airflow UI     {ctx.ui_url}
   login        user '{ctx.login_user}'; password in {passwords}
 AWS endpoint   {ctx.endpoint}   (moto: S3, SNS, SQS, EventBridge; {settings.region})
 Bucket         s3://{settings.bucket}
                (files: {settings.landing_prefix}  manifests: {settings.manifests_prefix})
 Alerts         SNS {settings.failure_topic_arn}
                -> SQS {settings.alerts_queue_name} (read it: scripts/dev inbox)

 Next, in another terminal:
   scripts/dev drop --sample       upload a generated CSV to {landing}
   scripts/dev drop <file>         upload your own file there
   scripts/dev inbox               read the failure alerts
   scripts/dev trigger <dag_id>    start a DAG run by hand; scripts/dev runs <dag_id> lists them
   scripts/dev status              what runs, objects per prefix
   scripts/dev stop                stop everything (or Ctrl-C here)

 Logs: {_relative(ctx.logs, ctx.repo_root)}/ (airflow.log, moto.log); task logs under the UI.
{rule}
""",
        flush=True,
    )


def ensure_ui_password(ctx: Context) -> Path:
    """Give the login user a generated password in Airflow's password file, readable by the owner only.

    Airflow would generate one too, but it prints it into the log; generated
    here it is never printed anywhere. Existing passwords are kept.
    """
    path = ctx.airflow_home / PASSWORDS_FILE_NAME
    try:
        passwords = json.loads(path.read_text() or "{}") if path.exists() else {}
    except ValueError:
        raise StackError(f"{path} is not valid JSON: fix it, or delete it for new passwords") from None
    if ctx.login_user not in passwords:
        # Airflow's own alphabet for these passwords (no look-alike characters).
        alphabet = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"
        passwords[ctx.login_user] = "".join(secrets.choice(alphabet) for _ in range(16))
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(passwords) + "\n")
    path.chmod(0o600)
    return path


def _claim_pid_file(ctx: Context) -> int | None:
    """Write our pid atomically; the pid of a live stack if one already runs."""
    for _ in range(3):
        try:
            descriptor = os.open(ctx.pid_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            running = running_supervisor(ctx)
            if running is not None:
                return running
            ctx.pid_file.unlink(missing_ok=True)  # stale: that stack is gone
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return None
    raise StackError(f"cannot create {ctx.pid_file}")


def _stop_leftovers(ctx: Context) -> list[str]:
    stopped = []
    for name, pid in _leftover_children(ctx).items():
        if name == "airflow":
            _terminate_group(pid, first_signal=signal.SIGINT, grace=40.0, label=name)
        else:
            _terminate_group(pid, first_signal=signal.SIGTERM, grace=10.0, label=name)
        stopped.append(f"{name} (pid {pid})")
    ctx.info_file.unlink(missing_ok=True)
    return stopped


def _check_ports(ctx: Context) -> None:
    for name, port in (("MOTO_PORT", ctx.moto_port), ("AIRFLOW_UI_PORT", ctx.ui_port)):
        if port_in_use(port):
            holder = _listener_description(port)
            raise StackError(
                f"port {port} ({name}) is already in use by another program"
                + (f":\n    {holder}\n" if holder else "; ")
                + f"stop that program, or choose another port: {name}=<port> scripts/dev start "
                f"(or set it in {ENV_FILE_NAME})"
            )


def cmd_start(args: argparse.Namespace) -> int:
    ctx = make_context(for_stack=True)
    for folder in (ctx.state, ctx.logs, ctx.airflow_home):
        folder.mkdir(parents=True, exist_ok=True)
    running = _claim_pid_file(ctx)
    if running is not None:
        print(f"The local stack is already running (pid {running}): scripts/dev stop", file=sys.stderr)
        return 1
    supervisor = Supervisor(ctx, startup_timeout=args.timeout)
    supervisor.install_signal_handlers()
    status = 1
    try:
        leftovers = _stop_leftovers(ctx)
        if leftovers:
            print(f"Stopped processes a previous stack left behind: {', '.join(leftovers)}", flush=True)
        _check_ports(ctx)
        ensure_ui_password(ctx)
        supervisor.start()
        status = supervisor.watch()
    except StartInterruptedError:
        print("\nStart-up interrupted.", flush=True)
        status = 1
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


# --------------------------------------------------------------------------- stop / status
def cmd_stop(args: argparse.Namespace) -> int:
    ctx = make_context(for_stack=True)
    pid = running_supervisor(ctx)
    if pid is None:
        leftovers = _stop_leftovers(ctx)
        ctx.pid_file.unlink(missing_ok=True)
        if leftovers:
            print(f"The stack's supervisor was gone; stopped what it left behind: {', '.join(leftovers)}")
        else:
            print("The local stack is not running.")
        return 0
    print(f"Stopping the local stack (pid {pid})...", flush=True)
    os.kill(pid, signal.SIGTERM)
    if not _wait_until(lambda: not _alive(pid, SUPERVISOR_MARKER), args.timeout, interval=0.5):
        print(f"  it did not stop within {args.timeout:.0f} s; killing it and its processes", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _stop_leftovers(ctx)
        ctx.pid_file.unlink(missing_ok=True)
    print("Stopped.")
    return 0


def _health_summary(port: int) -> str | None:
    answer = _http_get(port, HEALTH_PATH, timeout=10.0)
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


def cmd_status(_args: argparse.Namespace) -> int:
    ctx = make_context()
    healthy = True
    pid = running_supervisor(ctx)
    print(f"Local stack    {f'running (pid {pid})' if pid else 'not running (scripts/dev start)'}")
    healthy &= pid is not None

    endpoint = urlsplit(ctx.endpoint)
    endpoint_up = _http_get(endpoint.port or 80, "/", host=endpoint.hostname or "127.0.0.1") is not None
    print(f"AWS endpoint   {ctx.endpoint}  {'answering' if endpoint_up else 'not answering'}")
    healthy &= endpoint_up

    health = _health_summary(ctx.ui_port)
    print(f"Airflow UI     {ctx.ui_url}  {health or 'not answering (no reply within 10 s)'}")
    healthy &= health is not None

    if endpoint_up:
        print(f"Bucket         s3://{ctx.settings.bucket}")
        store = ObjectStore(ctx.client("s3"), ctx.settings.bucket)
        try:
            for prefix in _prefixes(ctx.settings):
                count = sum(1 for _ in store.list_keys(prefix))
                print(f"  {prefix:<14} {count:>5} object{'s' if count != 1 else ''}")
        except EndpointError as error:
            print(f"  cannot list the bucket: {error}")
            healthy = False
    return 0 if healthy else 1


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
    ctx = make_context()
    if args.sample == (args.file is not None):
        raise UsageError("give a FILE or --sample (one of them)")
    if args.key and args.prefix:
        raise UsageError("--key and --prefix exclude each other (--key is the whole object key)")
    if args.sample:
        source = write_sample_csv(ctx.state / "samples")
        print(f"Wrote a sample CSV: {_relative(source, ctx.repo_root)}")
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
@dataclass(frozen=True)
class InboxMessage:
    """One alert as the inbox queue holds it."""

    subject: str | None
    message: str
    attributes: dict[str, Any]
    timestamp: str | None

    @classmethod
    def from_sqs_body(cls, body: str) -> InboxMessage:
        """An SNS envelope (the usual delivery) or, with raw delivery, the message itself."""
        try:
            envelope = json.loads(body)
        except ValueError:
            envelope = None
        if not (isinstance(envelope, dict) and "Message" in envelope):
            return cls(None, body, {}, None)
        alert = parse_sns_envelope(body)
        return cls(alert["subject"], str(alert["message"]), alert["attributes"], envelope.get("Timestamp"))

    def as_text(self, number: int) -> str:
        lines = [f"[{number}] {self.subject or '(no subject)'}"]
        if self.timestamp:
            lines.append(f"    sent {self.timestamp}")
        if self.attributes:
            lines.append("    " + ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items())))
        lines.append("")
        lines.extend(f"    {line}".rstrip() for line in self.message.splitlines())
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "message": self.message, "attributes": self.attributes,
                "timestamp": self.timestamp}


def _receive_all(sqs: Any, queue_url: str, wait: float) -> Iterator[dict[str, Any]]:
    """Every message now in the queue; if there is none, wait up to ``wait`` s for some."""
    deadline = time.monotonic() + wait
    received_any = False
    while True:
        remaining = deadline - time.monotonic()
        poll = 0 if received_any or remaining <= 0 else min(20, max(1, int(remaining)))
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=poll,
            # Hidden while this command runs, so the loop does not see a message twice.
            VisibilityTimeout=60, MessageAttributeNames=["All"],
        ).get("Messages", [])
        if messages:
            received_any = True
            yield from messages
        elif received_any or time.monotonic() >= deadline:
            return


def cmd_inbox(args: argparse.Namespace) -> int:
    ctx = make_context()
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
        messages = list(_receive_all(sqs, queue_url, args.wait))
    except (ClientError, BotoCoreError) as error:
        print(f"inbox: {_describe_aws_error(ctx, error)}", file=sys.stderr)
        return 1
    alerts = [InboxMessage.from_sqs_body(message["Body"]) for message in messages]
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
    handles = [message["ReceiptHandle"] for message in messages]
    for start in range(0, len(handles), 10):
        batch = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + 10])]
        if args.keep:
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url, Entries=[{**entry, "VisibilityTimeout": 0} for entry in batch]
            )
        else:
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=batch)
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
    ctx = make_context()
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
    ctx = make_context()
    arguments = ["dags", "list-runs", args.dag_id]
    if args.state:
        arguments += ["--state", args.state]
    return _run_airflow(ctx, arguments)


def cmd_provision(args: argparse.Namespace) -> int:
    ctx = make_context()
    command = [sys.executable, "-m", "clean_zone_tools.devstack.provision"]
    command += ["--json"] if args.json else []
    env = ctx.process_environment()
    return subprocess.run(command, env=env, cwd=ctx.repo_root, check=False).returncode


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/dev", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    start = commands.add_parser(
        "start", help="start moto + Airflow and provision; runs until Ctrl-C",
        description="Start the moto server (the local AWS endpoint), provision the bucket, topic and "
        "queues, prepare the Airflow database and run Airflow standalone (UI, scheduler, dag-processor, "
        "triggerer). Prints where everything is, then runs until Ctrl-C or `scripts/dev stop`.",
    )
    start.add_argument("--timeout", type=float, default=300.0,
                       help="seconds to wait for each component to answer (default: 300)")
    start.set_defaults(handler=cmd_start)

    stop = commands.add_parser("stop", help="stop the running stack",
                               description="Stop the stack `scripts/dev start` started (from any terminal).")
    stop.add_argument("--timeout", type=float, default=90.0,
                      help="seconds to wait for a clean shutdown before killing (default: 90)")
    stop.set_defaults(handler=cmd_stop)

    status = commands.add_parser(
        "status", help="what runs, what answers, objects per prefix",
        description="Show whether the stack runs, whether the endpoint and the UI answer, and how many "
        "objects each bucket prefix holds. Exit 0 when everything answers, 1 otherwise.",
    )
    status.set_defaults(handler=cmd_status)

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
        description="Run scripts/provision.py against the local endpoint (the running stack's moto).",
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
