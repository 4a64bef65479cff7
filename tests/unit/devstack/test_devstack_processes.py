"""clean_zone_tools.devstack.processes: ports, the pid file and stopping process groups, on real
processes of this machine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clean_zone.config import load_for_parsing
from clean_zone_tools.devstack.processes import (
    alive,
    claim_pid_file,
    group_alive,
    port_in_use,
    process_command,
    read_pid,
    running_supervisor,
    stop_groups,
    terminate_group,
    wait_until,
)
from clean_zone_tools.devstack.settings import Context


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    context = Context(tmp_path, {}, load_for_parsing({}), "http://127.0.0.1:4566")
    context.state.mkdir()
    return context


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line names the stack's module, in its own process group."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "clean_zone_tools.devstack", "start"],
        start_new_session=True,
    )
    # Right after exec the kernel may still show an empty command line for a moment.
    assert wait_until(lambda: bool(process_command(process.pid)), timeout=5)
    yield process
    process.kill()
    process.wait()


def test_a_listening_port_is_in_use_and_a_closed_one_is_not() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)


def test_alive_needs_the_marker_in_the_command_line(sleeper: subprocess.Popen[bytes]) -> None:
    assert alive(sleeper.pid, "clean_zone_tools.devstack")
    assert not alive(sleeper.pid, "moto_server")  # a reused pid is not taken for ours


def test_a_pid_file_with_garbage_names_no_process(ctx: Context) -> None:
    ctx.pid_file.write_text("not a pid\n")

    assert read_pid(ctx.pid_file) is None
    assert running_supervisor(ctx) is None


def test_claiming_the_pid_file_replaces_a_stale_one_and_refuses_a_live_one(
    ctx: Context, sleeper: subprocess.Popen[bytes]
) -> None:
    ctx.pid_file.write_text("999999999\n")  # no such process
    assert claim_pid_file(ctx) is None
    assert read_pid(ctx.pid_file) == os.getpid()

    ctx.pid_file.write_text(f"{sleeper.pid}\n")
    assert claim_pid_file(ctx) == sleeper.pid
    assert read_pid(ctx.pid_file) == sleeper.pid


def test_terminate_group_stops_the_leader_and_its_children() -> None:
    # A shell that ignores the polite signal, with a child in its group: SIGTERM to the group ends both.
    leader = subprocess.Popen(
        ["bash", "-c", "trap '' INT; sleep 60 & wait"], start_new_session=True
    )
    try:
        terminate_group(leader.pid, first_signal=signal.SIGINT, grace=0.5, label="test group")
        assert leader.wait(timeout=5) != 0
        assert not group_alive(leader.pid)
    finally:
        leader.kill()
        leader.wait()


def test_stop_groups_stops_them_together_within_the_bound() -> None:
    # Three groups whose leaders ignore SIGTERM: waited for together, killed after the grace.
    stubborn = [
        subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 60 & wait"], start_new_session=True)
        for _ in range(3)
    ]
    try:
        began = time.monotonic()
        assert stop_groups({f"g{n}": p.pid for n, p in enumerate(stubborn)}, grace=1.0)
        elapsed = time.monotonic() - began
        assert all(p.wait(timeout=5) != 0 for p in stubborn)
        # Not a speed target: one at a time would take 3 x (1 + 2 + 1) s = 12 s, together 4 s.
        assert elapsed < 8.0, elapsed
    finally:
        for process in stubborn:
            process.kill()
            process.wait()
