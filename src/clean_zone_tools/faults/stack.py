"""The fault suite's own local stack: started through the same CLI a developer uses, in a temporary
state folder on free ports, with the fault proxy between Airflow and the endpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clean_zone.config import Settings, load_for_parsing
from clean_zone_tools import REPO_ROOT, local_aws
from clean_zone_tools.faults.proxy import FaultSwitch

HEALTH_PATH = "/api/v2/monitor/health"
# Components by what their command line contains (the stack runs each as its own process).
COMPONENTS = {
    "scheduler": ("airflow", "scheduler"),
    "triggerer": ("airflow", "triggerer"),
    "api-server": ("airflow", "api-server"),
    "dag-processor": ("airflow", "dag-processor"),
    "endpoint": ("clean_zone_tools.devstack.endpoint",),
}
# Fast retries, so an outage longer than the retry budget is a minute, not an hour.
SUITE_SETTINGS = {
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_INTERVAL_SECONDS": "2",
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_BACKOFF_RATE": "1.5",
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_MAX_ATTEMPTS": "3",
    "AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE": "0",
    "AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS": "2",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class SuiteStack:
    """A local stack of the suite's own, driven through the same CLI a developer uses."""

    state_dir: Path
    endpoint_port: int = field(default_factory=_free_port)
    ui_port: int = field(default_factory=_free_port)
    proxy_port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **SUITE_SETTINGS,
            "CLEAN_ZONE_STATE_DIR": str(self.state_dir),
            "MOTO_PORT": str(self.endpoint_port),
            "AIRFLOW_UI_PORT": str(self.ui_port),
            "FAULT_PROXY_PORT": str(self.proxy_port),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW_VAR_CLEAN_ZONE_UI_BASE_URL": f"http://localhost:{self.ui_port}",
        }

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.endpoint_port}"

    @property
    def faults(self) -> FaultSwitch:
        return FaultSwitch(f"http://127.0.0.1:{self.proxy_port}")

    def cli(self, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clean_zone_tools.devstack", *arguments],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, timeout: float = 600) -> float:
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = (self.state_dir / "suite-stack.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clean_zone_tools.devstack", "start"],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        while not self.healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"the stack exited with {self.process.returncode}; see {log.name}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the stack was not healthy after {timeout:.0f} s; see {log.name}")
            time.sleep(2)
        return time.monotonic() - started

    def healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}{HEALTH_PATH}", timeout=5) as answer:
                health = json.loads(answer.read())
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=5):  # noqa: S310 - loopback
                pass
        except (OSError, ValueError):
            return False
        return all(
            isinstance(part, dict) and part.get("status") == "healthy"
            for name, part in health.items()
            if name in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def stop(self) -> float:
        started = time.monotonic()
        self.cli("stop", timeout=120)
        if self.process is not None:
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return time.monotonic() - started

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Airflow's REST API as the stack's admin (the generated password, as a user logs in)."""
        import urllib.request

        base = f"http://127.0.0.1:{self.ui_port}"
        passwords = json.loads(
            (self.state_dir / "airflow" / "simple_auth_manager_passwords.json.generated").read_text()
        )
        user, password = next(iter(passwords.items()))
        login = urllib.request.Request(  # noqa: S310 - loopback
            f"{base}/auth/token",
            data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(login, timeout=30) as answer:  # noqa: S310 - loopback
            token = json.loads(answer.read())["access_token"]
        request = urllib.request.Request(  # noqa: S310 - loopback
            base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read() or b"{}")

    def pids(self, component: str) -> list[int]:
        """Processes of ``component`` that belong to this stack (its state folder in their env)."""
        if component == "task":
            # A running task: LocalExecutor's task process retitles itself "airflow worker -- <ti id>";
            # its supervisor is "airflow worker -- LocalExecutor: ...".
            return [
                pid
                for pid, cmdline in self._processes()
                if cmdline.startswith("airflow worker -- ") and "LocalExecutor" not in cmdline
            ]
        needles = COMPONENTS[component]
        return [pid for pid, cmdline in self._processes() if all(needle in cmdline for needle in needles)]

    def _processes(self) -> list[tuple[int, str]]:
        marker = str(self.state_dir).encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ:
                found.append((int(proc.name), cmdline.strip()))
        return found

    def kill(self, component: str, first_only: bool = False) -> int:
        pids = self.pids(component)[:1] if first_only else self.pids(component)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def client(self, service: str) -> Any:
        return local_aws.client(service, self.endpoint_url, pool=32, attempts=10)

    def settings(self) -> Settings:
        return load_for_parsing()


@contextmanager
def suite_stack() -> Iterator[SuiteStack]:
    with tempfile.TemporaryDirectory(prefix="clean-zone-suite-") as tmp:
        stack = SuiteStack(Path(tmp) / "state")
        say(f"starting a stack of the suite's own (state {stack.state_dir}, UI port {stack.ui_port}) ...")
        try:
            seconds = stack.start()
            say(f"stack healthy in {seconds:.0f} s")
            yield stack
        finally:
            say(f"stopping the stack (took {stack.stop():.1f} s)")
