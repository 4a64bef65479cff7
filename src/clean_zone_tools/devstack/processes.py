"""The stack's processes as the operating system sees them: ports, process groups, the pid
file, and stopping groups in a bounded time. Used by ``start`` (the supervisor), ``stop`` and ``status``."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from clean_zone_tools.devstack.settings import ENV_FILE_NAME, Context, StackError

# Markers that identify the stack's own processes in `ps` output (they guard against reused
# pids). The supervisor runs as `python -m clean_zone_tools.devstack` (scripts/dev) or as the
# `clean-zone-dev` console script.
SUPERVISOR_MARKERS = ("clean_zone_tools.devstack", "clean-zone-dev")


def http_get(port: int, path: str, timeout: float = 2.0, host: str = "127.0.0.1") -> tuple[int, bytes] | None:
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


def check_ports(ctx: Context) -> None:
    for name, port in ctx.ports().items():
        if port_in_use(port):
            holder = _listener_description(port)
            raise StackError(
                f"port {port} ({name}) is already in use by another program"
                + (f":\n    {holder}\n" if holder else "; ")
                + f"stop that program, or choose another port: {name}=<port> scripts/dev start "
                f"(or set it in {ENV_FILE_NAME})"
            )


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


def alive(pid: int, *markers: str) -> bool:
    """True if ``pid`` runs and its command line contains one of ``markers``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    command = process_command(pid)
    return command is not None and any(marker in command for marker in markers)


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


def group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(f"    {line}" for line in text[-lines:])


def terminate_group(pgid: int, *, first_signal: int, grace: float, label: str) -> None:
    """Stop one process group (a pipeline step, a test's sleeper): see :func:`stop_groups`."""
    if not stop_groups({label: pgid}, first_signal=first_signal, grace=grace):
        print(f"  warning: some {label} processes (group {pgid}) did not stop", file=sys.stderr)


def stop_groups(groups: dict[str, int], *, first_signal: int = signal.SIGTERM, grace: float = 8.0) -> bool:
    """Stop several process groups at once, in a bounded time (about ``grace`` + 3 s).

    The polite signal goes to each group's leader only, so a scheduler can end its executor and
    an api-server its workers; after ``grace`` the whole of each remaining group gets SIGTERM,
    then SIGKILL. All groups are waited for together, so stopping five components takes as
    long as the slowest, not the sum. True when every group has gone.
    """
    steps = ((first_signal, grace, False), (signal.SIGTERM, 2.0, True), (signal.SIGKILL, 1.0, True))
    for signum, wait, whole_group in steps:
        remaining = {name: pgid for name, pgid in groups.items() if group_alive(pgid)}
        if not remaining:
            return True
        for name, pgid in remaining.items():
            if whole_group:
                signal_group(pgid, signum)
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pgid, signum)
            if signum == signal.SIGKILL:
                print(f"  {name} did not stop in time; killed", file=sys.stderr, flush=True)
        pending = list(remaining.values())
        wait_until(lambda pending=pending: not any(group_alive(pgid) for pgid in pending), wait, interval=0.1)
    return not any(group_alive(pgid) for pgid in groups.values())


# --------------------------------------------------------------------------- the pid file
def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def running_supervisor(ctx: Context) -> int | None:
    pid = read_pid(ctx.pid_file)
    return pid if pid is not None and alive(pid, *SUPERVISOR_MARKERS) else None


def claim_pid_file(ctx: Context) -> int | None:
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


def _recorded_children(ctx: Context) -> dict[str, tuple[int, str]]:
    """Each component the state file names: its pid and a marker its command line holds."""
    try:
        info = json.loads(ctx.info_file.read_text())
        components = info.get("components", {})
        return {
            name: (int(component["pid"]), str(component["marker"]))
            for name, component in components.items()
            if component.get("pid") and component.get("marker")
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def stop_leftovers(ctx: Context) -> list[str]:
    """Stop the children a crashed supervisor left behind (still alive, still ours)."""
    found = {name: pid for name, (pid, marker) in _recorded_children(ctx).items() if alive(pid, marker)}
    stop_groups(found)
    ctx.info_file.unlink(missing_ok=True)
    return [f"{name} (pid {pid})" for name, pid in found.items()]
