"""``scripts/dev start``'s supervisor: runs each part of the stack as its own child process,
restarts one that dies, and stops them all in a bounded time.

The parts (components): the durable AWS endpoint, the fault proxy (only with FAULT_PROXY_PORT),
and Airflow's api-server, scheduler, dag-processor and triggerer, each started on its own rather
than through ``airflow standalone``, whose children cannot be restarted one by one.

Healing: every second each component is checked; a dead one is restarted after a backoff
(1 s, doubling to 30 s, back to 1 s once it has stayed up a minute), each restart logged to
the console and to ``<state>/logs/supervisor.log``. More than DEVSTACK_MAX_RESTARTS restarts of
one component within DEVSTACK_RESTART_WINDOW_SECONDS means something is broken for good: the
supervisor says so, stops everything and exits with :data:`GAVE_UP`.

What it sees is written to ``<state>/stack.json`` on every change, for ``scripts/dev status``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clean_zone_tools.devstack.processes import (
    http_get,
    signal_group,
    stop_groups,
    tail,
    terminate_group,
)
from clean_zone_tools.devstack.settings import (
    HEALTH_PATH,
    PASSWORDS_FILE_NAME,
    Context,
    StackError,
    UsageError,
)
from clean_zone_tools.devstack.sqlite_clock import write_local_settings

GAVE_UP = 3  # exit status when a component kept dying
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DEFAULT_MAX_RESTARTS = 5
DEFAULT_RESTART_WINDOW = 300.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # up this long, a component's backoff starts again from FIRST_BACKOFF
CHECK_INTERVAL = 1.0
# `scripts/dev stop` must end within 15 s. The scheduler's LocalExecutor waits for running
# tasks and the triggerer for its triggers, well past that, so after this grace they are
# ended (SIGTERM to the group, then SIGKILL: at most 3 s more); their tasks are retried after
# the next start. The endpoint gets its own grace to write a checkpoint; were it killed, its
# journal still holds every acknowledged write.
AIRFLOW_STOP_GRACE = 4.0
ENDPOINT_STOP_GRACE = 3.0


class StartInterruptedError(Exception):
    """Ctrl-C or SIGTERM during start-up."""


class GaveUpError(StackError):
    """A component died more often than the restart budget allows."""


@dataclass
class Component:
    name: str
    command: list[str]
    marker: str  # in its command line: `stop` recognises it after a supervisor crash
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    status: str = "down"  # up | down (restart pending) | stopped
    restarts: list[float] = field(default_factory=list)  # monotonic times
    restart_total: int = 0
    last_exit: int | None = None
    started: float = 0.0
    restart_at: float | None = None
    backoff: float = FIRST_BACKOFF

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class Supervisor:
    """Starts the components, keeps them running, and stops them."""

    def __init__(self, ctx: Context, startup_timeout: float) -> None:
        self.ctx = ctx
        self.startup_timeout = startup_timeout
        self.stop_requested = threading.Event()
        self.reset_requested = threading.Event()
        self.components: dict[str, Component] = {}
        self.state = "starting"
        self.resets_done = 0
        self.last_reset_error: str | None = None
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            self.max_restarts = int(ctx.values.get("DEVSTACK_MAX_RESTARTS", DEFAULT_MAX_RESTARTS))
            self.window = float(ctx.values.get("DEVSTACK_RESTART_WINDOW_SECONDS", DEFAULT_RESTART_WINDOW))
        except ValueError as error:
            raise UsageError(f"DEVSTACK_MAX_RESTARTS / DEVSTACK_RESTART_WINDOW_SECONDS: {error}") from None
        self.overrides = command_overrides(ctx.values.get("DEVSTACK_COMMAND_OVERRIDES") or "{}")
        # Provisioning and the stack's own tools talk to the endpoint directly; Airflow is given
        # the fault proxy when there is one.
        self.env = ctx.process_environment()
        self.airflow_env = ctx.process_environment(ctx.airflow_endpoint)

    @property
    def children(self) -> dict[str, subprocess.Popen[bytes]]:
        return {name: c.process for name, c in self.components.items() if c.process is not None}

    # -- signals ------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGUSR1:  # scripts/dev reset, while the stack runs
            self.reset_requested.set()
            return
        if self.stop_requested.is_set():
            # A second Ctrl-C: stop waiting politely.
            for child in self.children.values():
                signal_group(child.pid, signal.SIGKILL)
            return
        self.stop_requested.set()

    def install_signal_handlers(self) -> None:
        # Installed before any child starts: exec resets handled signals to their
        # defaults in the children, so each component gets its usual signal behaviour even
        # when this process was started with SIGINT ignored (a background job).
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(signum, self._on_signal)

    def _check_interrupted(self) -> None:
        if self.stop_requested.is_set():
            raise StartInterruptedError

    # -- reporting ------------------------------------------------------------
    def say(self, message: str, *, error: bool = False) -> None:
        """To the console and the supervisor's log, which outlives the terminal."""
        print(message, file=sys.stderr if error else sys.stdout, flush=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with self.ctx.supervisor_log.open("a", encoding="utf-8") as log:
            for line in message.strip("\n").splitlines():
                log.write(f"{stamp} {line}\n")

    def record(self) -> None:
        """Write the state file atomically: ``status`` may read it at any moment."""
        now = time.monotonic()
        info = {
            "supervisor": os.getpid(),
            "state": self.state,
            "started_at": self.started_at,
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "endpoint": self.ctx.endpoint,
            "airflow_endpoint": self.ctx.airflow_endpoint,
            "ui_url": self.ctx.ui_url,
            "resets_done": self.resets_done,
            "last_reset_error": self.last_reset_error,
            "components": {
                name: {
                    "pid": c.pid,
                    "marker": c.marker,
                    "status": c.status,
                    "restarts": c.restart_total,
                    "last_exit": c.last_exit,
                    "up_seconds": round(now - c.started) if c.status == "up" else None,
                }
                for name, c in self.components.items()
            },
        }
        partial = self.ctx.info_file.with_suffix(".json.partial")
        partial.write_text(json.dumps(info, indent=2) + "\n")
        partial.replace(self.ctx.info_file)

    # -- children -------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        return self.ctx.logs / f"{name}.log"

    def _rotate_log(self, name: str) -> Path:
        path = self.log_path(name)
        if path.exists():
            path.replace(path.with_suffix(".log.1"))  # keep the previous run's log for a post-mortem
        return path

    def add(self, name: str, command: Sequence[str], marker: str, env: dict[str, str]) -> Component:
        command = self.overrides.get(name, list(command))
        component = Component(name, list(command), marker, env)
        self.components[name] = component
        self._rotate_log(name)
        return component

    def spawn(self, component: Component) -> None:
        # Appended to: a restarted component's log follows on from the one that died.
        with self.log_path(component.name).open("ab") as out:
            # Own session: the terminal's Ctrl-C reaches only this supervisor, and a
            # component's leftovers (task workers, log servers) can be stopped as a group.
            component.process = subprocess.Popen(
                component.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=component.env, cwd=self.ctx.repo_root, start_new_session=True,
            )
        component.status = "up"
        component.started = time.monotonic()
        component.restart_at = None
        self.record()

    def run_step(self, description: str, command: Sequence[str], log_name: str | None) -> None:
        """Run a command to completion (output to a log, or to the terminal if log_name is None)."""
        log = self._rotate_log(log_name) if log_name else None
        with open(log, "wb") if log else contextlib.nullcontext() as out:
            step = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT if out else None,
                stdin=subprocess.DEVNULL, env=self.env, cwd=self.ctx.repo_root, start_new_session=True,
            )
            while step.poll() is None:
                if self.stop_requested.wait(0.2):
                    terminate_group(step.pid, first_signal=signal.SIGTERM, grace=5.0, label=description)
                    step.wait()
                    raise StartInterruptedError
        if step.returncode != 0:
            detail = f"; last lines of {self.ctx.relative(log)}:\n{tail(log)}" if log else ""
            raise StackError(f"{description} failed (exit {step.returncode}){detail}")

    def wait_for(self, description: str, port: int, path: str, child: str, expect_ok: bool) -> None:
        """Wait until ``port`` answers ``path``, healing the components meanwhile.

        Before the endpoint has ever answered there is nothing to heal: its death is reported.
        """
        started = time.monotonic()
        next_note = started + 15
        log = self.log_path(child)
        while True:
            self._check_interrupted()
            answer = http_get(port, path)
            if answer is not None and (not expect_ok or answer[0] == 200):
                return
            process = self.components[child].process
            if child in ("endpoint", "fault-proxy") and process and process.poll() is not None:
                raise StackError(
                    f"{child} exited (code {process.returncode}) before {description} answered; "
                    f"last lines of {self.ctx.relative(log)}:\n{tail(log)}"
                )
            self.heal()
            now = time.monotonic()
            if now - started > self.startup_timeout:
                raise StackError(
                    f"{description} did not answer within {self.startup_timeout:.0f} s; "
                    f"see {self.ctx.relative(log)}:\n{tail(log)}"
                )
            if now >= next_note:
                print(f"  ... still waiting for {description} ({now - started:.0f} s; "
                      f"log: {self.ctx.relative(log)})", flush=True)
                next_note = now + 15
            self.stop_requested.wait(0.5)

    # -- healing ------------------------------------------------------------------
    def heal(self) -> None:
        """Notice dead components, restart those whose backoff has passed; give up past the budget."""
        now = time.monotonic()
        for component in self.components.values():
            process = component.process
            if component.status == "up" and process is not None and process.poll() is not None:
                self._on_death(component, process.returncode, now)
            elif component.status == "down" and now >= (component.restart_at or float("inf")):
                component.restarts.append(now)
                component.restart_total += 1
                self.say(f"[supervisor] restarting {component.name} (restart {component.restart_total})")
                self.spawn(component)

    def _on_death(self, component: Component, code: int, now: float) -> None:
        component.status = "down"
        component.last_exit = code
        # What a dead leader leaves in its group (task workers, a log server) goes too: the
        # new one starts its own, and orphans would hold ports and write to a dead queue.
        if component.process is not None:
            signal_group(component.process.pid, signal.SIGKILL)
        if now - component.started >= STABLE_AFTER:
            component.backoff = FIRST_BACKOFF
        component.restarts = [t for t in component.restarts if now - t < self.window]
        log = self.ctx.relative(self.log_path(component.name))
        if len(component.restarts) >= self.max_restarts:
            self.record()
            raise GaveUpError(
                f"GIVING UP: {component.name} died {len(component.restarts) + 1} times within "
                f"{self.window:.0f} s (last exit code {code}); stopping the whole stack. "
                f"Last lines of {log}:\n{tail(self.log_path(component.name))}"
            )
        component.restart_at = now + component.backoff
        self.say(
            f"[supervisor] {component.name} (pid {component.pid}) died with exit code {code}; "
            f"restarting in {component.backoff:.0f} s (log: {log})",
            error=True,
        )
        component.backoff = min(component.backoff * 2, MAX_BACKOFF)
        self.record()

    # -- the whole run ------------------------------------------------------------
    def start(self) -> None:
        ctx = self.ctx
        started = time.monotonic()
        python = sys.executable
        airflow = str(Path(sys.prefix) / "bin" / "airflow")
        print(f"Starting the AWS endpoint on {ctx.endpoint} (state: {ctx.relative(ctx.endpoint_state)})...",
              flush=True)
        endpoint = self.add(
            "endpoint",
            [python, "-m", "clean_zone_tools.devstack.endpoint", "--port", str(ctx.moto_port),
             "--state-dir", str(ctx.endpoint_state)],
            "clean_zone_tools.devstack.endpoint", self.env,
        )
        self.spawn(endpoint)
        self.wait_for("the AWS endpoint", ctx.moto_port, "/moto-api/", "endpoint", expect_ok=False)

        if ctx.proxy_port:
            print(f"Starting the fault proxy on {ctx.airflow_endpoint} (Airflow's endpoint)...", flush=True)
            proxy = self.add(
                "fault-proxy",
                [python, "-m", "clean_zone_tools.faults.proxy", "--listen", str(ctx.proxy_port),
                 "--upstream", ctx.endpoint],
                "clean_zone_tools.faults.proxy", self.env,
            )
            self.spawn(proxy)
            self.wait_for("the fault proxy", ctx.proxy_port, "/_faults", "fault-proxy", expect_ok=True)

        print("Provisioning AWS resources (idempotent: a restored endpoint keeps what it has)...", flush=True)
        self.run_step("provisioning", [python, "-m", "clean_zone_tools.devstack.provision"], None)

        write_local_settings(ctx.airflow_home)  # SQLite's now() to the millisecond (sqlite_clock)
        first_run = not (ctx.airflow_home / "airflow.db").exists()
        note = " (first run: about a minute)" if first_run else ""
        print(f"Preparing the Airflow database{note}...", flush=True)
        self.run_step("airflow db migrate", [airflow, "db", "migrate"], "airflow-db-migrate")

        print(f"Starting Airflow: {', '.join(AIRFLOW_COMPONENTS)} (logs: {ctx.relative(ctx.logs)}/)...",
              flush=True)
        for name in AIRFLOW_COMPONENTS:
            self.spawn(self.add(name, [airflow, name], f"airflow {name}", self.airflow_env))
        self.wait_for("the Airflow UI", ctx.ui_port, HEALTH_PATH, "api-server", expect_ok=True)
        self.state = "running"
        self.record()
        print_banner(ctx, time.monotonic() - started)

    def watch(self) -> int:
        """Heal until a stop is requested (0), or until a component exhausts its restarts."""
        while not self.stop_requested.wait(CHECK_INTERVAL):
            try:
                self.heal()
                if self.reset_requested.is_set():
                    self.reset_requested.clear()
                    self.reset_running()
            except GaveUpError as error:
                self.state = "gave-up"
                self.say(f"\n{error}", error=True)
                return GAVE_UP
        print("\nStop requested.", flush=True)
        return 0

    def reset_running(self) -> None:
        """``scripts/dev reset`` on a running stack: Airflow's runs and the endpoint's data go
        together, with Airflow stopped meanwhile so no task sees one without the other."""
        self.state = "resetting"
        self.say("[supervisor] reset requested: stopping Airflow, wiping its runs and the endpoint's data")
        self._stop(AIRFLOW_COMPONENTS, AIRFLOW_STOP_GRACE)
        try:
            airflow = str(Path(sys.prefix) / "bin" / "airflow")
            self.run_step("airflow db reset", [airflow, "db", "reset", "--yes"], "airflow-db-reset")
            reset = urllib.request.Request(f"{self.ctx.endpoint}/moto-api/reset", method="POST")  # noqa: S310 - the local endpoint
            urllib.request.urlopen(reset, timeout=60).close()  # noqa: S310 - the local endpoint
            provision = [sys.executable, "-m", "clean_zone_tools.devstack.provision", "--json"]
            self.run_step("provisioning", provision, "provision")
            self.last_reset_error = None
        except (StackError, OSError) as error:
            self.last_reset_error = str(error)
            self.say(f"[supervisor] reset failed: {error}", error=True)
        for name in AIRFLOW_COMPONENTS:
            component = self.components[name]
            component.restarts.clear()
            self.spawn(component)
        self.resets_done += 1
        self.state = "running"
        self.say("[supervisor] reset done; Airflow restarted" if not self.last_reset_error else
                 "[supervisor] Airflow restarted after a failed reset")
        self.record()

    def _stop(self, names: Sequence[str], grace: float) -> None:
        chosen = [self.components[n] for n in names if n in self.components]
        stop_groups({c.name: c.process.pid for c in chosen if c.process}, grace=grace)
        for component in chosen:
            if component.process:
                component.process.wait()
            component.status = "stopped"
            component.restart_at = None
        self.record()

    def stop_children(self) -> None:
        """Airflow first, all at once (its tasks may still talk to S3), then the proxy and the endpoint."""
        if not self.components:
            return
        self.state = "stopping"
        began = time.monotonic()
        print("Stopping Airflow...", end=" ", flush=True)
        self._stop(AIRFLOW_COMPONENTS, AIRFLOW_STOP_GRACE)
        print(f"stopped ({time.monotonic() - began:.1f} s)", flush=True)
        began = time.monotonic()
        print("Stopping the AWS endpoint (saving its state)...", end=" ", flush=True)
        self._stop(("fault-proxy", "endpoint"), ENDPOINT_STOP_GRACE)
        print(f"stopped ({time.monotonic() - began:.1f} s)", flush=True)


def command_overrides(raw: str) -> dict[str, list[str]]:
    """DEVSTACK_COMMAND_OVERRIDES: ``{"component": ["program", "arg", ...]}``, replacing its command."""
    try:
        overrides = json.loads(raw)
    except ValueError as error:
        raise StackError(f"DEVSTACK_COMMAND_OVERRIDES is not JSON: {error}") from None
    if not isinstance(overrides, dict) or not all(
        isinstance(command, list) and command and all(isinstance(part, str) for part in command)
        for command in overrides.values()
    ):
        raise StackError(
            'DEVSTACK_COMMAND_OVERRIDES must map component names to commands: {"name": ["prog", ...]}'
        )
    return overrides


def print_banner(ctx: Context, seconds: float) -> None:
    settings = ctx.settings
    passwords = ctx.relative(ctx.airflow_home / PASSWORDS_FILE_NAME)
    landing = f"s3://{settings.bucket}/{settings.landing_prefix}"
    proxy = ""
    if ctx.proxy_port:
        proxy = f"\n Fault proxy    {ctx.airflow_endpoint}   (Airflow's endpoint; POST /_faults)"
    rule = "=" * 78
    print(
        f"""
{rule}
 Local stack is up (ready in {seconds:.0f} s)

 Airflow UI     {ctx.ui_url}
   login        user '{ctx.login_user}'; password in {passwords}
 AWS endpoint   {ctx.endpoint}   (moto: S3, SNS, SQS, EventBridge; {settings.region})
                state kept in {ctx.relative(ctx.endpoint_state)}/ across restarts{proxy}
 Bucket         s3://{settings.bucket}
                (files: {settings.landing_prefix}  manifests: {settings.manifests_prefix})
 Alerts         SNS {settings.failure_topic_arn}
                -> SQS {settings.alerts_queue_name} (read it: scripts/dev inbox)

 Next, in another terminal:
   scripts/dev drop --sample       upload a generated CSV to {landing}
   scripts/dev drop <file>         upload your own file there
   scripts/dev inbox               read the failure alerts
   scripts/dev trigger <dag_id>    start a DAG run by hand; scripts/dev runs <dag_id> lists them
   scripts/dev status              each component (pid, up/down, restarts), objects per prefix
   scripts/dev reset --yes         wipe the bucket's data and Airflow's runs together
   scripts/dev stop                stop everything (or Ctrl-C here)

 A component that dies is restarted (log: {ctx.relative(ctx.supervisor_log)}).
 Logs: {ctx.relative(ctx.logs)}/ (one per component); task logs under the UI.
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
