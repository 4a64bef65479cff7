"""The browser test's fixtures: a local stack of its own (``scripts/dev start`` on free ports) and a
headless Chromium page driven by Playwright.

The browser is Debian's Chromium (``scripts/install-browser``), never a Playwright download. The
stack is the one a developer starts, with two differences from ``local.env``: free ports (so a
developer's stack on 8080/4566 is left alone) and a failure generator that never fails (so the
good file's run succeeds every time). Its state folder is the checkout's ``.state/`` (the stack has
no setting to move it), so the test refuses to run beside a stack already started from this
checkout.

``--screenshots`` writes the screenshots into docs/images/ (the README shows them); without it they
go to a temporary folder, and the test still takes them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".state"
CHROMIUM = Path(os.environ.get("CLEAN_ZONE_CHROMIUM", "/usr/bin/chromium"))
# Headless and quiet: no GPU, no QUIC, and none of the browser's own calls to the internet
# (updates, sync, field trials), which this machine cannot reach and CI must not wait for.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}
UI_TIMEOUT_MS = 90_000  # for each page, click and API call
STACK_START_TIMEOUT = 480.0  # seconds; about 2 minutes on an idle 2-core machine, more under load
READY_BANNER = "Local stack is up"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"  # where scripts/dev start puts the login


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots", action="store_true",
        help="browser test: save the UI screenshots into docs/images/ (the README's pictures)",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require(condition: bool, reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where a skipped browser test would hide a gap."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _stack_already_running() -> int | None:
    try:
        pid = int((STATE / "stack.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


@dataclass(frozen=True)
class LocalStack:
    """The stack this test started: where its UI and endpoint are, how to run ``scripts/dev``."""

    ui_url: str
    endpoint: str
    env: dict[str, str]
    user: str
    password: str

    def dev(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """Run ``scripts/dev <args>`` against this stack, as a person would in another terminal."""
        result = subprocess.run(
            [str(REPO / "scripts" / "dev"), *args], env=self.env, cwd=REPO,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        assert result.returncode == 0, f"scripts/dev {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result

    def s3(self) -> Any:
        import boto3

        # moto accepts any credentials; these are local.env's placeholders.
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
        )


def _stack_environment(moto_port: int, ui_port: int) -> dict[str, str]:
    # The suite's own Airflow settings (tests/conftest.py: a temporary AIRFLOW_HOME, unit-test mode,
    # short retries) belong to dag.test(), not to this stack: start from the environment without them.
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("AIRFLOW") and key not in {"AWS_ENDPOINT_URL", "AWS_PROFILE"}
    }
    env.update({
        "MOTO_PORT": str(moto_port),
        "AIRFLOW_UI_PORT": str(ui_port),
        # Alert links must point at this stack's UI, so the test can follow one as a person would.
        "AIRFLOW_VAR_CLEAN_ZONE_UI_BASE_URL": f"http://localhost:{ui_port}",
        # The good file's run must succeed every time: the flaky step never fails here.
        "AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE": "0",
    })
    return env


def _wait_for_banner(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STACK_START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if READY_BANNER in text:
            return
        if process.poll() is not None:
            pytest.fail(
                f"scripts/dev start exited ({process.returncode}) before the stack was up:\n{text[-4000:]}"
            )
        time.sleep(1.0)
    pytest.fail(f"the stack was not up within {STACK_START_TIMEOUT:.0f} s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the stack we started: SIGTERM to its supervisor stops Airflow, then moto, in order."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=150)
    except subprocess.TimeoutExpired:
        # Its own process group (start_new_session), so this reaches only what the test started.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    running = _stack_already_running()
    _require(
        running is None,
        f"a local stack started from this checkout is running (pid {running}); the browser test starts "
        "its own and shares .state/ with it: scripts/dev stop first",
    )
    moto_port, ui_port = _free_port(), _free_port()
    env = _stack_environment(moto_port, ui_port)
    log = tmp_path_factory.mktemp("stack") / "start.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(REPO / "scripts" / "dev"), "start"], env=env, cwd=REPO,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        _wait_for_banner(process, log)
        passwords = json.loads((STATE / "airflow" / PASSWORDS_FILE).read_text())
        yield LocalStack(
            ui_url=f"http://localhost:{ui_port}", endpoint=f"http://127.0.0.1:{moto_port}", env=env,
            user="admin", password=passwords["admin"],
        )
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    _require(CHROMIUM.is_file(), f"no browser at {CHROMIUM}: run scripts/install-browser")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            # Airflow's api-server on SQLite answers slowly while the scheduler and a task share two
            # busy cores: Playwright's 30 s default failed one run in three on this machine.
            context.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture(scope="module")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if request.config.getoption("--screenshots", default=False):
        return REPO / "docs" / "images"
    return tmp_path_factory.mktemp("screenshots")
