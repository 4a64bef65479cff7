"""Reading one checkout for the compose checks: the files, the versions they pin, compose's shapes.

:class:`Stack` holds the parsed docker-compose.yaml, docker/Dockerfile and local.env of a checkout;
the helpers below turn compose's several spellings (lists or mappings, short or long syntax) into one
shape each, so :mod:`.checks` compares plain values. A file that is missing or does not parse raises
:class:`StackFileError`.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clean_zone_tools import requirements_file
from clean_zone_tools.envfile import read_env_file

COMPOSE_FILE = "docker-compose.yaml"
DOCKERFILE = "docker/Dockerfile"
ENTRYPOINT_FILE = "docker/entrypoint.sh"
LOCAL_ENV = "local.env"
ENV_EXAMPLE = ".env.example"
PROVISION_MODULE = "clean_zone_tools.devstack.provision"
PROVISION_SOURCE = "src/clean_zone_tools/devstack/provision.py"
ENDPOINT_MODULE = "clean_zone_tools.devstack.endpoint"
ENDPOINT_SOURCE = "src/clean_zone_tools/devstack/endpoint.py"
BOOTSTRAP_SCRIPT = "scripts/bootstrap.sh"

# MWAA's layout inside its containers.
AIRFLOW_HOME = "/usr/local/airflow"
MWAA_MOUNTS = {
    "dags": f"{AIRFLOW_HOME}/dags",
    "plugins": f"{AIRFLOW_HOME}/plugins",
    "startup.sh": f"{AIRFLOW_HOME}/startup/startup.sh",
    "requirements.txt": f"{AIRFLOW_HOME}/requirements/requirements.txt",
}
# Service -> (Airflow command, MWAA_AIRFLOW_COMPONENT). MWAA runs the DAG processor and the
# triggerer in its scheduler containers; the init service is not an MWAA component.
AIRFLOW_SERVICES: dict[str, tuple[str | None, str]] = {
    "airflow-init": (None, "init"),
    "airflow-apiserver": ("api-server", "webserver"),
    "airflow-scheduler": ("scheduler", "scheduler"),
    "airflow-dag-processor": ("dag-processor", "scheduler"),
    "airflow-triggerer": ("triggerer", "scheduler"),
    "airflow-worker": ("celery worker", "worker"),
}
INIT_SERVICE = "airflow-init"
API_SERVICE = "airflow-apiserver"
WORKER_SERVICE = "airflow-worker"
MOTO_SERVICE = "moto"
BACKING_SERVICES = ("postgres", "redis", MOTO_SERVICE)
API_SERVER_DEFAULT_PORT = 8080
# Generated into .env by scripts/docker-env; compose may only interpolate them.
SECRETS = (
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW_LOGIN_PASSWORD",
    "POSTGRES_PASSWORD",
)
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|SECRET_KEY|FERNET_KEY|TOKEN)$")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@\s]+)@")
INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_]+)(:?[?-][^}]*)?\}")
# Settings of the no-Docker stack (clean_zone_tools.devstack.settings.stack_environment) that differ by
# design in compose; every other one must be equal. docs/docker.md lists them with the reason.
DIFFERENT_BY_DESIGN = frozenset(
    {
        "AIRFLOW_HOME",  # MWAA's /usr/local/airflow vs .state/airflow
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",  # Postgres vs SQLite
        "AIRFLOW__CORE__DAGS_FOLDER",  # mounted at MWAA's path vs the checkout
        "AIRFLOW__CORE__PLUGINS_FOLDER",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",  # a volume shared by init and api-server
        "AIRFLOW__API__HOST",  # all interfaces in a container, published on the host's port
        "AIRFLOW__API__PORT",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",  # the api-server service vs 127.0.0.1
        "AIRFLOW__CORE__PARALLELISM",  # bounds LocalExecutor's processes; Celery workers have their own
        "AIRFLOW__CORE__EXECUTOR",  # Celery (like MWAA) vs LocalExecutor on SQLite
        # the no-Docker supervisor starts the scheduler before its API server answers; compose in order
        "AIRFLOW__WORKERS__EXECUTION_API_RETRIES",
        # each container has its own ports; the no-Docker stack makes them settable to run two stacks
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
        # the supervisor restarts a killed scheduler in seconds; compose restarts containers
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL",
    }
)
IGNORED_DIRS = {".git", ".venv", ".state", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}


class StackFileError(Exception):
    """A file the checks need is missing or cannot be parsed."""


@dataclass(frozen=True)
class Versions:
    airflow: str
    python: str
    constraints_file: str  # relative to the root
    essential_file: str
    moto: str


@dataclass
class Stack:
    """The files of one checkout that the checks compare."""

    root: Path
    compose: dict[str, Any]
    dockerfile: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuations joined
    local_env: dict[str, str]

    @classmethod
    def load(cls, root: Path) -> Stack:
        root = Path(root)
        try:
            compose = yaml.safe_load(read(root, COMPOSE_FILE))
        except yaml.YAMLError as error:
            raise StackFileError(f"{COMPOSE_FILE}: {error}") from error
        if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
            raise StackFileError(f"{COMPOSE_FILE}: no 'services' mapping")
        try:
            local_env = read_env_file(root / LOCAL_ENV)
        except (OSError, ValueError) as error:
            raise StackFileError(f"{LOCAL_ENV}: {error}") from error
        return cls(root, compose, parse_dockerfile(read(root, DOCKERFILE)), local_env)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.compose["services"]

    def service(self, name: str) -> dict[str, Any]:
        return self.services.get(name) or {}

    def versions(self) -> Versions:
        return expected_versions(self.root)


def read(root: Path, relative: str) -> str:
    try:
        return (root / relative).read_text(encoding="utf-8")
    except OSError as error:
        raise StackFileError(f"{relative}: {error.strerror}") from error


# --- reading compose, Dockerfiles and requirement files -------------------------------------------


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """Instructions with their arguments; comments dropped, backslash continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def env_files(service: dict[str, Any]) -> list[str]:
    value = service.get("env_file") or []
    items = [value] if isinstance(value, str | dict) else list(value)
    return [str(item["path"] if isinstance(item, dict) else item).removeprefix("./") for item in items]


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (bind mounts relative to the project, named volumes by name)."""
    result: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = str(volume.get("source", "")), str(volume.get("target", ""))
        else:
            parts = str(volume).split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        result[target] = source.removeprefix("./").rstrip("/") or "."
    return result


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    result: dict[int, int] = {}
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                result[int(port["target"])] = int(str(port["published"]))
            continue
        parts = str(port).split("/")[0].split(":")
        if len(parts) >= 2:
            result[int(parts[-1])] = int(parts[-2])
    return result


def port_host_addresses(service: dict[str, Any]) -> list[tuple[str, str]]:
    """Each published port as written, with the host address it binds ('' when it names none: all
    interfaces). Short syntax ``[HOST_IP:][HOST:]CONTAINER[/proto]`` or the long syntax's ``host_ip``."""
    result: list[tuple[str, str]] = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            result.append((str(port.get("host_ip") or ""), json.dumps(port, sort_keys=True)))
            continue
        text = str(port)
        parts = text.split("/", maxsplit=1)[0].rsplit(":", 2)
        result.append((parts[0].strip("[]") if len(parts) == 3 else "", text))
    return result


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command") or ""
    return " ".join(command) if isinstance(command, list) else str(command)


def command_words(service: dict[str, Any]) -> list[str]:
    """What the container runs: its entrypoint's words, then its command's (lists or shell strings)."""
    words: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        words += [str(word) for word in value] if isinstance(value, list) else shlex.split(str(value))
    return words


def option_value(words: list[str], option: str) -> str | None:
    """The value given to a long option (``--port 4566`` or ``--port=4566``); the last one wins."""
    given = _given(words, option, option)
    return given[-1] if given else None


def has_healthcheck(service: dict[str, Any]) -> bool:
    return bool((service.get("healthcheck") or {}).get("test"))


def image_tag(image: str) -> tuple[str, str]:
    """``name:tag`` split; the tag is empty when there is none (a registry port is not a tag)."""
    if ":" not in image.rsplit("/", 1)[-1]:
        return image, ""
    name, _, tag = image.rpartition(":")
    return name, tag


def expected_versions(root: Path) -> Versions:
    """Versions as the no-Docker path pins them."""
    base = requirements_file.pins(read(root, "requirements-mwaa-base.txt"))
    if "apache-airflow" not in base:
        raise StackFileError("requirements-mwaa-base.txt: no apache-airflow==X pin")
    candidates = sorted((root / "constraints").glob("airflow-*-python-*.txt"))
    match = re.fullmatch(r"airflow-(.+)-python-(\d+\.\d+)\.txt", candidates[0].name) if candidates else None
    if len(candidates) != 1 or not match:
        raise StackFileError(f"constraints/: expected one airflow-X-python-Y.txt, found {len(candidates)}")
    if match.group(1) != base["apache-airflow"]:
        raise StackFileError(
            f"constraints/{candidates[0].name} is for Airflow {match.group(1)}, "
            f"requirements-mwaa-base.txt pins {base['apache-airflow']}"
        )
    dev = requirements_file.pins(read(root, "requirements-dev.txt"))
    if "moto" not in dev:
        raise StackFileError("requirements-dev.txt: no moto==X pin")
    return Versions(
        airflow=base["apache-airflow"],
        python=match.group(2),
        constraints_file=f"constraints/{candidates[0].name}",
        essential_file=f"constraints/mwaa-{base['apache-airflow']}-essential.txt",
        moto=dev["moto"],
    )


def dockerfiles(stack: Stack) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every Dockerfile in the checkout (each must use the same pins), the compose one first."""
    found = [(DOCKERFILE, stack.dockerfile)]
    for path in sorted(stack.root.rglob("*Dockerfile*")):
        relative = path.relative_to(stack.root)
        if (
            relative.as_posix() == DOCKERFILE
            or IGNORED_DIRS.intersection(relative.parts)
            or not path.is_file()
        ):
            continue
        found.append((relative.as_posix(), parse_dockerfile(path.read_text(encoding="utf-8"))))
    return found


def copy_sources(args: str) -> list[str]:
    words = [word for word in shlex.split(args) if not word.startswith("--")]
    return words[:-1]


def _given(words: list[str], short: str, long: str) -> list[str]:
    """Every value given to ``short``/``long`` in a command's words (``-r x``, ``--requirement x``,
    ``--requirement=x``), in order."""
    values: list[str] = []
    for index, word in enumerate(words):
        if word in (short, long) and index + 1 < len(words):
            values.append(words[index + 1])
        elif word.startswith(long + "="):
            values.append(word.split("=", 1)[1])
    return values


def option_values(words: list[str], short: str, long: str) -> list[str]:
    """File names given to ``short``/``long`` (e.g. -r/--requirement) in a command's words."""
    return [Path(value).name for value in _given(words, short, long)]


def strip_command(stack: Stack) -> tuple[str, str] | None:
    """The Dockerfile's command that drops requirements.txt's --constraint line, and the file it writes."""
    for word, args in stack.dockerfile:
        for segment in args.split("&&") if word == "RUN" else []:
            match = re.search(r"(grep\s+-v\b[^>]*?\brequirements\.txt)[^>]*>\s*(\S+)", segment)
            if match:
                return match.group(1).strip(), match.group(2)
    return None


def pip_installs(instructions: list[tuple[str, str]]) -> list[list[str]]:
    """The words of every ``pip install`` command in a Dockerfile's instructions."""
    commands = []
    for word, args in instructions:
        for segment in args.split("&&") if word == "RUN" else []:
            if "pip install" in segment:
                commands.append(shlex.split(segment))
    return commands


def dockerignore(root: Path) -> list[str]:
    path = root / ".dockerignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def docker_ignored(path: str, patterns: Iterable[str]) -> bool:
    """Whether the build context leaves ``path`` out (last matching pattern wins; ``!`` re-includes)."""
    ignored = False
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase(prefix, body) for prefix in prefixes):
            ignored = not negate
    return ignored


def find_cycle(graph: dict[str, list[str]]) -> list[str]:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return []
