"""A whole local stack for a test or a script, beside a developer's own: free ports, a
temporary state folder, started as ``scripts/dev start`` starts it and stopped at the end.

    from clean_zone_tools.devstack.harness import running_stack

    with running_stack(fault_proxy=True) as stack:
        s3 = stack.client("s3")                 # the endpoint, directly
        stack.ui_url, stack.login_user, stack.password, stack.proxy_url, stack.state_dir
        stack.status()["components"]["scheduler"]["pid"]

The stack runs as a subprocess (``python -m clean_zone_tools.devstack start``) with the
environment it would have on a developer's machine: Airflow and AWS settings inherited from the
caller (a test session's, for one) are dropped, so only ``local.env`` and ``env`` apply.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from clean_zone.config import Settings, load_for_parsing
from clean_zone_tools import REPO_ROOT
from clean_zone_tools.devstack.processes import http_get, tail
from clean_zone_tools.devstack.settings import (
    HEALTH_PATH,
    PASSWORDS_FILE_NAME,
    TRIGGER_LOG_PORT_KEY,
    WORKER_LOG_PORT_KEY,
    layered_settings,
)

# Inherited variables with these prefixes would reconfigure the stack (a test session points
# AIRFLOW_HOME and AWS_ENDPOINT_URL at its own places), so the harness leaves them out.
DROPPED_PREFIXES = ("AIRFLOW", "AWS_", "MOTO_", "CLEAN_ZONE_", "FAULT_PROXY", "DEVSTACK_")


class StackStartError(RuntimeError):
    """The stack did not come up; the message carries the end of its output."""


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Stack:
    """A stack started by :func:`running_stack`: where it is, and start/stop/status for tests."""

    state_dir: Path
    env: dict[str, str]
    startup_timeout: float = 600.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    exit_code: int | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.env['MOTO_PORT']}"

    @property
    def proxy_url(self) -> str | None:
        port = self.env.get("FAULT_PROXY_PORT")
        return f"http://127.0.0.1:{port}" if port else None

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.env['AIRFLOW_UI_PORT']}"

    @property
    def settings(self) -> Settings:
        return load_for_parsing(layered_settings(REPO_ROOT, self.env) | self.env)

    @property
    def login_user(self) -> str:
        return layered_settings(REPO_ROOT, self.env).get("AIRFLOW_LOGIN_USER", "admin")

    @property
    def password(self) -> str:
        passwords = json.loads((self.state_dir / "airflow" / PASSWORDS_FILE_NAME).read_text())
        return str(passwords[self.login_user])

    @property
    def log(self) -> Path:
        """The supervisor's console output (``scripts/dev start``'s terminal)."""
        return self.state_dir / "start.out"

    def session(self) -> boto3.Session:
        values = layered_settings(REPO_ROOT, self.env)
        return boto3.Session(
            aws_access_key_id=values.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=values.get("AWS_SECRET_ACCESS_KEY", "testing"),
            region_name=self.settings.region,
        )

    def client(self, service: str) -> Any:
        """A client of the endpoint itself (never through the fault proxy)."""
        return self.session().client(service, endpoint_url=self.endpoint)

    # -- the stack's own commands ---------------------------------------------------
    def command(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``scripts/dev <args>`` against this stack."""
        return subprocess.run(
            [sys.executable, "-m", "clean_zone_tools.devstack", "--root", str(REPO_ROOT), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )

    def status(self) -> dict[str, Any]:
        """The supervisor's state file (components, pids, restarts), or {} when there is none."""
        try:
            return json.loads((self.state_dir / "stack.json").read_text())
        except (OSError, ValueError):
            return {}

    def component(self, name: str) -> dict[str, Any]:
        return dict(self.status().get("components", {}).get(name, {}))

    def endpoint_answers(self) -> bool:
        return http_get(int(self.env["MOTO_PORT"]), "/moto-api/", timeout=5) is not None

    def healthy(self) -> bool:
        """Every component up, the endpoint and the UI answering."""
        status = self.status()
        components = status.get("components", {})
        if status.get("state") != "running" or not all(c.get("status") == "up" for c in components.values()):
            return False
        answer = http_get(int(self.env["AIRFLOW_UI_PORT"]), HEALTH_PATH, timeout=5)
        return self.endpoint_answers() and answer is not None and answer[0] == 200

    def wait(self, condition: Any, timeout: float, what: str) -> float:
        """Seconds until ``condition()`` held; StackStartError (with the output) if it did not."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if condition():
                return time.monotonic() - began
            if self.process is not None and self.process.poll() is not None:
                self.exit_code = self.process.returncode
                raise StackStartError(f"the stack exited (code {self.exit_code}) while waiting for {what}:\n"
                                      f"{tail(self.log, 40)}")
            time.sleep(0.5)
        raise StackStartError(f"{what}: not within {timeout:.0f} s; last output:\n{tail(self.log, 40)}")

    def start(self) -> float:
        """Start the stack and wait until it is healthy; the seconds that took."""
        self.launch()
        return self.wait(self.healthy, self.startup_timeout, "a healthy stack")

    def launch(self) -> None:
        """Start the stack's supervisor, without waiting for anything."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "clean_zone_tools.devstack", "--root", str(REPO_ROOT), "start",
                 "--timeout", str(self.startup_timeout)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.exit_code = None

    def finished(self, timeout: float) -> int:
        """Wait for the supervisor to exit on its own; its exit code."""
        if self.process is None:
            raise StackStartError("the stack was not started")
        self.exit_code = self.process.wait(timeout=timeout)
        return self.exit_code

    def stop(self) -> float:
        """``scripts/dev stop``; the seconds it took. Kills the supervisor if it does not exit."""
        began = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.command("stop", timeout=60)
            try:
                self.exit_code = self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.exit_code = self.process.wait()
        return time.monotonic() - began


def stack_environment(
    state_dir: Path, *, fault_proxy: bool = False, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The caller's environment without Airflow/AWS settings, with free ports and ``state_dir``."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(DROPPED_PREFIXES)}
    names = ["MOTO_PORT", "AIRFLOW_UI_PORT", WORKER_LOG_PORT_KEY, TRIGGER_LOG_PORT_KEY]
    names += ["FAULT_PROXY_PORT"] if fault_proxy else []
    ports = dict(zip(names, map(str, free_ports(len(names))), strict=True))
    base.update(ports)
    base["CLEAN_ZONE_STATE_DIR"] = str(state_dir)
    base["AIRFLOW_VAR_CLEAN_ZONE_UI_BASE_URL"] = f"http://localhost:{ports['AIRFLOW_UI_PORT']}"
    base.update(env or {})
    return base


@contextmanager
def running_stack(
    *,
    fault_proxy: bool = False,
    env: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
    startup_timeout: float = 600.0,
    wait_healthy: bool = True,
) -> Iterator[Stack]:
    """A started stack (healthy unless ``wait_healthy`` is False), stopped on exit.

    ``state_dir`` defaults to a temporary folder removed afterwards; ``env`` adds settings
    (``DEVSTACK_MAX_RESTARTS``, ``AIRFLOW_VAR_...``) over the defaults.
    """
    with tempfile.TemporaryDirectory(prefix="clean-zone-stack-") as temporary:
        folder = state_dir or Path(temporary) / "state"
        stack = Stack(folder, stack_environment(folder, fault_proxy=fault_proxy, env=env), startup_timeout)
        try:
            if wait_healthy:
                stack.start()
            else:
                stack.launch()
            yield stack
        finally:
            stack.stop()
