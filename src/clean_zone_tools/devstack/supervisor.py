"""``scripts/dev start``'s supervisor: runs the moto server and Airflow standalone as children,
waits until each answers, watches them, and stops them in order."""

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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clean_zone_tools.devstack.processes import http_get, signal_group, tail, terminate_group
from clean_zone_tools.devstack.settings import HEALTH_PATH, PASSWORDS_FILE_NAME, Context, StackError


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
                signal_group(child.pid, signal.SIGKILL)
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
                    terminate_group(step.pid, first_signal=signal.SIGTERM, grace=10.0, label=description)
                    step.wait()
                    raise StartInterruptedError
        if step.returncode != 0:
            detail = f"; last lines of {self.ctx.relative(log)}:\n{tail(log)}" if log else ""
            raise StackError(f"{description} failed (exit {step.returncode}){detail}")

    def wait_for(self, description: str, port: int, path: str, child: str, expect_ok: bool) -> None:
        started = time.monotonic()
        next_note = started + 15
        log = self.ctx.logs / f"{child}.log"
        while True:
            self._check_interrupted()
            answer = http_get(port, path)
            if answer is not None and (not expect_ok or answer[0] == 200):
                return
            process = self.children[child]
            if process.poll() is not None:
                raise StackError(
                    f"{child} exited (code {process.returncode}) before {description} answered; "
                    f"last lines of {self.ctx.relative(log)}:\n{tail(log)}"
                )
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
            terminate_group(child.pid, first_signal=first_signal, grace=grace, label=name)
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

        print(f"Starting Airflow standalone (log: {ctx.relative(ctx.logs / 'airflow.log')})...", flush=True)
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
                          f"{self.ctx.relative(log)}:\n{tail(log)}", file=sys.stderr, flush=True)
                    return 1
        print("\nStop requested.", flush=True)
        return 0


def print_banner(ctx: Context, seconds: float) -> None:
    settings = ctx.settings
    passwords = ctx.relative(ctx.airflow_home / PASSWORDS_FILE_NAME)
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

 Logs: {ctx.relative(ctx.logs)}/ (airflow.log, moto.log); task logs under the UI.
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
