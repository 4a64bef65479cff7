"""The fault suite's stack: the devstack harness's stack (free ports, a temporary state folder,
the fault proxy between Airflow and the endpoint), plus what a fault needs: killing one
component, switching the proxy, and the REST API an operator uses to clear failed tasks."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from clean_zone.config import Settings
from clean_zone_tools import local_aws
from clean_zone_tools.devstack.harness import Stack, running_stack
from clean_zone_tools.faults.proxy import FaultSwitch

# Fast retries, so an outage longer than the retry budget is a minute, not an hour; alerts SNS
# refused are sent again every minute, and landing/ is swept for files no event handed over every
# two, rather than every five.
SUITE_SETTINGS = {
    "AIRFLOW_VAR_CLEAN_ZONE_ALERT_REDELIVERY_MINUTES": "1",
    "AIRFLOW_VAR_CLEAN_ZONE_LANDING_SWEEP_MINUTES": "2",
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_INTERVAL_SECONDS": "2",
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_BACKOFF_RATE": "1.5",
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_MAX_ATTEMPTS": "3",
    "AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE": "0",
    "AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS": "2",
}
# A running task's own process retitles itself "airflow worker -- <task instance id>"; its
# supervisor in LocalExecutor is "airflow worker -- LocalExecutor: ...".
TASK_PROCESS_TITLE = "airflow worker -- "


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class SuiteStack:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    @property
    def faults(self) -> FaultSwitch:
        assert self.stack.proxy_url is not None, "the suite's stack runs the fault proxy"
        return FaultSwitch(self.stack.proxy_url)

    def client(self, service: str) -> Any:
        """The endpoint itself, never through the proxy: the partner's uploads and the census."""
        return local_aws.client(service, self.stack.endpoint, pool=32, attempts=10)

    def start(self) -> float:
        return self.stack.start()

    def stop(self) -> float:
        return self.stack.stop()

    def pids(self, component: str) -> list[int]:
        if component == "task":
            # A task's process descends from this stack's scheduler (LocalExecutor worker, then the
            # task). Ancestry, not the environment: a retitled process's /proc environ is its title.
            scheduler = self.stack.component("scheduler").get("pid")
            processes = list(_processes())
            parents = {pid: ppid for pid, ppid, _ in processes}
            titles = {pid: title for pid, _, title in processes}

            def descends(pid: int) -> bool:
                while pid in parents and pid > 1:
                    pid = parents[pid]
                    if pid == scheduler:
                        return True
                return False

            return [
                pid
                for pid, title in titles.items()
                if title.startswith(TASK_PROCESS_TITLE) and "LocalExecutor" not in title and descends(pid)
            ]
        pid = self.stack.component(component).get("pid")
        return [int(pid)] if pid else []

    def kill(self, component: str, first_only: bool = False) -> int:
        pids = self.pids(component)[:1] if first_only else self.pids(component)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Airflow's REST API as the stack's admin, logged in with the generated password."""
        login = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.stack.ui_url}/auth/token",
            data=json.dumps({"username": self.stack.login_user, "password": self.stack.password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(login, timeout=30) as answer:  # noqa: S310 - loopback
            token = json.loads(answer.read())["access_token"]
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.stack.ui_url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read() or b"{}")


def _processes() -> Iterator[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            # The command in /proc/<pid>/stat is in parentheses and may hold spaces: split after it.
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        yield int(proc.name), ppid, cmdline


@contextmanager
def suite_stack(route: str = "events") -> Iterator[SuiteStack]:
    """A stack with the suite's settings, its files started by trigger route ``route``."""
    say(f"starting a stack of the suite's own (route {route}, free ports, temporary state, fault proxy) ...")
    started = time.monotonic()
    settings = {**SUITE_SETTINGS, "AIRFLOW_VAR_CLEAN_ZONE_TRIGGER_ROUTE": route}
    with running_stack(fault_proxy=True, env=settings) as stack:
        say(f"stack healthy in {time.monotonic() - started:.0f} s (UI {stack.ui_url})")
        yield SuiteStack(stack)
        say("stopping the stack")
