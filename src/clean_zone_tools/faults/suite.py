"""The fault and load suite: bursts of files on a stack of its own, with components killed,
the endpoint cut, and the stack restarted mid-burst; then a census of where every file ended.

    python -m clean_zone_tools.faults.suite                       # every scenario
    python -m clean_zone_tools.faults.suite --scenario scheduler-killed --files 40
    python -m clean_zone_tools.faults.suite --list

It starts its own stack (``python -m clean_zone_tools.devstack start``) in a temporary state
folder on free ports, with the fault proxy between Airflow and the endpoint, runs each scenario
on a fresh key prefix, and prints one table row per scenario:

scenario | files in | processed | rejected | quarantined | duplicates | still waiting | lost |
misplaced | duplicated outputs | alerts expected / sent | duration

Exit codes: 0 every scenario held (lost = 0, misplaced = 0, duplicated outputs = 0, nothing
still waiting, alerts expected = sent), 1 a scenario did not hold, 2 usage, 3 the stack did not
start. ``--json FILE`` writes the rows for the README's reliability section.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clean_zone.config import Settings, load_for_parsing
from clean_zone_tools import REPO_ROOT, local_aws
from clean_zone_tools.faults import census
from clean_zone_tools.faults.proxy import FaultSwitch
from clean_zone_tools.faults.workload import KINDS, WorkFile, mixed_files

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


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the stack ------------------------------------------------------------------------------


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
        _say(f"starting a stack of the suite's own (state {stack.state_dir}, UI port {stack.ui_port}) ...")
        try:
            seconds = stack.start()
            _say(f"stack healthy in {seconds:.0f} s")
            yield stack
        finally:
            _say(f"stopping the stack (took {stack.stop():.1f} s)")


# --- scenarios ------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    description: str
    files: int
    fault_at: float = 0.0  # seconds after the drop starts
    fault: Callable[[SuiteStack, list[WorkFile]], str] | None = None
    recover_after: float | None = None  # seconds after the fault
    recover: Callable[[SuiteStack], str] | None = None
    kinds: tuple[str, ...] = KINDS
    extra_alerts: Callable[[list[WorkFile]], int] = lambda _files: 0


def _kill(component: str, first_only: bool = False) -> Callable[[SuiteStack, list[WorkFile]], str]:
    def act(stack: SuiteStack, _files: list[WorkFile]) -> str:
        deadline = time.monotonic() + 60
        while not (killed := stack.kill(component, first_only)) and time.monotonic() < deadline:
            time.sleep(0.5)  # a task process exists only while a task runs
        return f"SIGKILL {component} ({killed} process(es))"

    return act


def _fault(
    mode: str, services: list[str] | None = None, seconds: float | None = None
) -> Callable[[SuiteStack], str]:
    def act(stack: SuiteStack) -> str:
        options: dict[str, Any] = {} if seconds is None else {"seconds": seconds}
        stack.faults.set(mode, services, **options)
        return f"proxy {mode} {services or 'all'} for {seconds or 'ever'} s"

    return act


def _restart(stack: SuiteStack, _files: list[WorkFile]) -> str:
    stopped = stack.stop()
    started = stack.start()
    return f"stop ({stopped:.1f} s) and start ({started:.0f} s)"


def _withdraw_and_resend(stack: SuiteStack, files: list[WorkFile]) -> str:
    """The partner deletes some files and uploads new content to others while the burst runs."""
    settings = stack.settings()
    s3 = stack.client("s3")
    good = [index for index, item in enumerate(files) if item.kind == "good"]
    withdrawn, resent = good[0::3], good[1::3]
    for index in withdrawn:
        s3.delete_object(Bucket=settings.bucket, Key=settings.landing_prefix + files[index].rel)
        files[index] = replace(files[index], withdrawn=True)
    for index in resent:
        item = files[index]
        s3.put_object(
            Bucket=settings.bucket, Key=settings.landing_prefix + item.rel, Body=item.body + b"resent,x,1\n"
        )
        files[index] = replace(item, uploads=2)
    return f"partner withdrew {len(withdrawn)} files and re-sent {len(resent)} with new content"


def _clear_failed(stack: SuiteStack) -> str:
    """What an operator does after an outage: clear the failed tasks (through the REST API)."""
    stack.faults.off()
    answer = stack.api(
        "POST",
        "/api/v2/dags/clean_zone_file_pipeline/clearTaskInstances",
        {"dry_run": False, "only_failed": True, "reset_dag_runs": True},
    )
    return f"fault off; cleared {len(answer.get('task_instances', []))} failed task(s)"


SCENARIOS = [
    Scenario("calm-burst", "a burst with nothing going wrong (the baseline)", 40),
    Scenario("scheduler-killed", "the scheduler is SIGKILLed mid-burst", 40, 15, _kill("scheduler")),
    Scenario(
        "triggerer-killed",
        "the triggerer is SIGKILLed while sensors and watchers wait",
        20,
        5,
        _kill("triggerer"),
    ),
    Scenario("api-server-killed", "the api-server is SIGKILLed mid-burst", 30, 10, _kill("api-server")),
    Scenario(
        "dag-processor-killed", "the dag-processor is SIGKILLed mid-burst", 20, 5, _kill("dag-processor")
    ),
    Scenario(
        "endpoint-killed",
        "the AWS endpoint is SIGKILLed mid-burst (its state must survive)",
        30,
        10,
        _kill("endpoint"),
    ),
    Scenario(
        "short-outage",
        "the endpoint refuses Airflow for 10 s, less than the retry budget",
        20,
        10,
        _fault("refuse", seconds=10),
    ),
    Scenario(
        "long-outage",
        "S3 answers 500 to Airflow for longer than the retry budget, then the failed tasks are cleared",
        12,
        0,  # from the start, so every file's run meets it
        _fault("error", ["s3"]),
        120,
        _clear_failed,
        kinds=("good",),
        # One endpoint alert per file after its last try; good files alert nothing else.
        extra_alerts=len,
    ),
    Scenario(
        "sns-outage",
        "SNS fails while bad files are alerted",
        10,
        0,
        _fault("error", ["sns"], seconds=60),
        kinds=("wrong_extension", "corrupt"),
    ),
    Scenario("stop-start", "the whole stack is stopped and started mid-burst", 40, 15, _restart),
    Scenario(
        "task-killed",
        "a running task's process is SIGKILLed (a worker dying mid-task)",
        20,
        8,
        _kill("task", first_only=True),
    ),
    Scenario(
        "withdraw-and-resend",
        "the partner deletes some files and re-sends others mid-burst",
        30,
        3,
        _withdraw_and_resend,
        kinds=("good",),
    ),
    Scenario("mixed-burst", "1,000 mixed files at once (--files to change)", 1000),
]


@dataclass
class Result:
    scenario: str
    census: census.Census
    seconds: float
    events: list[str]

    @property
    def held(self) -> bool:
        row = self.census.row()
        return (
            row["lost"] == 0
            and row["misplaced"] == 0
            and row["duplicated outputs"] == 0
            and row["still waiting"] == 0
            and self.census.alerts_expected == self.census.files_alerted
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


def run_scenario(stack: SuiteStack, scenario: Scenario, files_override: int | None, timeout: float) -> Result:
    settings = stack.settings()
    count = files_override or scenario.files
    tag = f"suite/{scenario.name}-{int(time.time())}"
    files = mixed_files(count, tag, scenario.kinds)
    sqs = stack.client("sqs")
    inbox = sqs.get_queue_url(QueueName=settings.alerts_queue_name)["QueueUrl"]
    alerts: list[dict[str, Any]] = []
    census.read_alerts(sqs, inbox, [])  # earlier scenarios' alerts are not this one's
    expected_alerts = sum(1 for item in files if item.expected.alerts) + scenario.extra_alerts(files)
    events: list[str] = []
    _say(f"{scenario.name}: dropping {count} files ({scenario.description})")
    started = time.monotonic()
    _drop(stack, settings, files)
    fault_done = scenario.fault is None
    recover_at: float | None = None
    result = None
    while True:
        elapsed = time.monotonic() - started
        if not fault_done and elapsed >= scenario.fault_at:
            events.append(f"{elapsed:.0f} s: {scenario.fault(stack, files)}")  # type: ignore[misc]
            fault_done = True
            if scenario.recover is not None:
                recover_at = elapsed + (scenario.recover_after or 0)
        if recover_at is not None and elapsed >= recover_at:
            events.append(f"{elapsed:.0f} s: {scenario.recover(stack)}")  # type: ignore[misc]
            recover_at = None
        census.read_alerts(sqs, inbox, alerts)
        result = census.take(stack.client("s3"), settings, files, alerts, expected_alerts)
        waiting = result.places[census.WAITING]
        if fault_done and recover_at is None and result.settled:
            break
        if elapsed > timeout:
            events.append(f"{elapsed:.0f} s: gave up waiting ({waiting} still waiting)")
            break
        _say(f"{scenario.name}: {elapsed:.0f} s, {count - waiting}/{count} in a terminal place")
        time.sleep(5)
    # Alerts for the last files may still be on their way.
    deadline = time.monotonic() + 20
    while result.files_alerted < expected_alerts and time.monotonic() < deadline:
        time.sleep(2)
        census.read_alerts(sqs, inbox, alerts)
        result = census.take(stack.client("s3"), settings, files, alerts, expected_alerts)
    stack.faults.off()
    return Result(scenario.name, result, time.monotonic() - started, events)


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
        with suite_stack() as stack:
            for scenario in chosen:
                result = run_scenario(stack, scenario, args.files, args.timeout)
                results.append(result)
                _say(
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
