"""Static checks that the docker-compose stack agrees with MWAA and with the no-Docker path.

No Docker engine is needed. Each check takes a :class:`Stack` (the files of one checkout) and
returns a list of problems, empty when all is well, so the tests run the very same checks on the
repository and on a deliberately drifted copy. The sources of truth are the no-Docker path's own
files and code: requirements-mwaa-base.txt (Airflow version), constraints/ (Python version and
pins), requirements.txt, requirements-dev.txt (moto), local.env (ports, login, Variables,
connection id), scripts/provision.py, scripts/bootstrap.sh and scripts/local_stack.py.

    python scripts/compose_checks.py            # every check; exit 1 on any problem
    python scripts/compose_checks.py --root DIR # another checkout
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from clean_zone_tools import REPO_ROOT
from clean_zone_tools.devstack.settings import stack_environment
from clean_zone_tools.envfile import read_env_file

COMPOSE_FILE = "docker-compose.yaml"
DOCKERFILE = "docker/Dockerfile"
ENTRYPOINT_FILE = "docker/entrypoint.sh"
LOCAL_ENV = "local.env"
ENV_EXAMPLE = ".env.example"
PROVISION_MODULE = "clean_zone_tools.devstack.provision"
PROVISION_SOURCE = "src/clean_zone_tools/devstack/provision.py"
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
# Settings of the no-Docker stack (scripts/local_stack.stack_environment) that differ by design in
# compose; every other one must be equal. docs/docker.md lists them with the reason.
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
        # standalone starts the scheduler before its API server answers; compose starts them in order
        "AIRFLOW__WORKERS__EXECUTION_API_RETRIES",
    }
)
IGNORED_DIRS = {".git", ".venv", ".state", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"}


class StackError(Exception):
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
            raise StackError(f"{COMPOSE_FILE}: {error}") from error
        if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
            raise StackError(f"{COMPOSE_FILE}: no 'services' mapping")
        try:
            local_env = read_env_file(root / LOCAL_ENV)
        except (OSError, ValueError) as error:
            raise StackError(f"{LOCAL_ENV}: {error}") from error
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
        raise StackError(f"{relative}: {error.strerror}") from error


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


def pinned_requirements(text: str) -> dict[str, str]:
    """``name==version`` lines (names normalized, extras dropped); options and comments skipped."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)", stripped)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return pins


def constraint_lines(text: str) -> list[str]:
    """The ``-c``/``--constraint`` lines of a requirements file."""
    return [line.strip() for line in text.splitlines() if re.match(r"^\s*(-c|--constraint)([\s=]|$)", line)]


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


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command") or ""
    return " ".join(command) if isinstance(command, list) else str(command)


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
    base = pinned_requirements(read(root, "requirements-mwaa-base.txt"))
    if "apache-airflow" not in base:
        raise StackError("requirements-mwaa-base.txt: no apache-airflow==X pin")
    candidates = sorted((root / "constraints").glob("airflow-*-python-*.txt"))
    match = re.fullmatch(r"airflow-(.+)-python-(\d+\.\d+)\.txt", candidates[0].name) if candidates else None
    if len(candidates) != 1 or not match:
        raise StackError(f"constraints/: expected one airflow-X-python-Y.txt, found {len(candidates)}")
    if match.group(1) != base["apache-airflow"]:
        raise StackError(
            f"constraints/{candidates[0].name} is for Airflow {match.group(1)}, "
            f"requirements-mwaa-base.txt pins {base['apache-airflow']}"
        )
    dev = pinned_requirements(read(root, "requirements-dev.txt"))
    if "moto" not in dev:
        raise StackError("requirements-dev.txt: no moto==X pin")
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


def option_values(words: list[str], short: str, long: str) -> list[str]:
    """File names given to ``short``/``long`` (e.g. -r/--requirement) in a command's words."""
    values: list[str] = []
    for index, word in enumerate(words):
        if word in (short, long) and index + 1 < len(words):
            values.append(Path(words[index + 1]).name)
        elif word.startswith(long + "="):
            values.append(Path(word.split("=", 1)[1]).name)
    return values


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


# --- checks ------------------------------------------------------------------------------------------


def check_schema(stack: Stack) -> list[str]:
    """The compose file against the compose specification's schema (check-jsonschema's vendored copy)."""
    tool = Path(sys.executable).parent / "check-jsonschema"
    executable = str(tool) if tool.exists() else shutil.which("check-jsonschema")
    if executable is None:
        return ["check-jsonschema is not installed (requirements-dev.txt)"]
    result = subprocess.run(
        [executable, "--builtin-schema", "vendor.compose-spec", str(stack.root / COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        return [f"{COMPOSE_FILE} fails the compose schema:\n{(result.stdout + result.stderr).strip()}"]
    return []


def check_versions(stack: Stack) -> list[str]:
    """Airflow, Python and moto versions: every Dockerfile and compose match the no-Docker pins."""
    problems: list[str] = []
    versions = stack.versions()
    airflow_tag = f"{versions.airflow}-python{versions.python}"
    for relative, instructions in dockerfiles(stack):
        bases = [args.split()[0] for word, args in instructions if word == "FROM" and args]
        airflow_bases = [base for base in bases if image_tag(base)[0] == "apache/airflow"]
        if relative == DOCKERFILE and not airflow_bases:
            problems.append(f"{relative}: no FROM apache/airflow:{airflow_tag}")
        problems += [
            f"{relative}: FROM {base}, but the no-Docker path pins apache/airflow:{airflow_tag} "
            f"(requirements-mwaa-base.txt, {versions.constraints_file})"
            for base in airflow_bases
            if image_tag(base)[1] != airflow_tag
        ]
        problems += [
            f"{relative}: pip install without --constraint {Path(versions.constraints_file).name}"
            for words in pip_installs(instructions)
            if relative != DOCKERFILE  # checked in detail by check_requirements_install
            and Path(versions.constraints_file).name not in option_values(words, "-c", "--constraint")
        ]
    expected_image = f"clean-zone-airflow:{airflow_tag}"
    for name in AIRFLOW_SERVICES:
        service = stack.service(name)
        build = service.get("build")
        if not service:
            problems.append(f"{COMPOSE_FILE}: service {name} is missing")
        elif service.get("image") != expected_image:
            problems.append(f"{name}: image {service.get('image')!r}, expected {expected_image!r}")
        elif not isinstance(build, dict) or build.get("dockerfile") != DOCKERFILE or build.get("args"):
            problems.append(f"{name}: must build {DOCKERFILE} with no build args (the pins live there)")
    moto_image = stack.service(MOTO_SERVICE).get("image", "")
    if image_tag(moto_image) != ("motoserver/moto", versions.moto):
        problems.append(
            f"{MOTO_SERVICE}: image {moto_image!r}, but requirements-dev.txt pins moto {versions.moto} "
            f"(expected motoserver/moto:{versions.moto})"
        )
    problems += [
        f"{name}: image {service['image']!r} has no version tag"
        for name, service in stack.services.items()
        if service.get("image") and image_tag(service["image"])[1] in {"", "latest"}
    ]
    return problems


def check_requirements_install(stack: Stack) -> list[str]:
    """The image installs requirements.txt as scripts/bootstrap.sh does: local constraints, no URL line."""
    problems: list[str] = []
    versions = stack.versions()
    url = (
        f"https://raw.githubusercontent.com/apache/airflow/constraints-{versions.airflow}/"
        f"constraints-{versions.python}.txt"
    )
    url_lines = constraint_lines(read(stack.root, "requirements.txt"))
    if len(url_lines) != 1 or url not in url_lines[0]:
        problems.append(f"requirements.txt: needs one --constraint line for {url}, has {url_lines}")
    copied = {src for word, args in stack.dockerfile if word == "COPY" for src in copy_sources(args)}
    for needed in (
        "requirements.txt",
        "requirements-mwaa-base.txt",
        versions.constraints_file,
        versions.essential_file,
    ):
        if needed not in copied:
            problems.append(f"{DOCKERFILE}: does not COPY {needed}")
    strip = strip_command(stack)
    if strip is None:
        problems.append(
            f"{DOCKERFILE}: no `grep -v ... requirements.txt > FILE` dropping the --constraint URL"
        )
    installs = pip_installs(stack.dockerfile)
    if not installs:
        problems.append(f"{DOCKERFILE}: no pip install")
    constraints_name, essential_name = (
        Path(versions.constraints_file).name,
        Path(versions.essential_file).name,
    )
    for words in installs:
        constraints = option_values(words, "-c", "--constraint")
        files = option_values(words, "-r", "--requirement")
        if constraints_name not in constraints:
            problems.append(f"{DOCKERFILE}: pip install without --constraint {constraints_name}")
        if essential_name not in constraints:
            problems.append(f"{DOCKERFILE}: pip install without MWAA's essential pins ({essential_name})")
        if "requirements.txt" in files:
            problems.append(
                f"{DOCKERFILE}: installs requirements.txt itself (its constraints URL, not the copy)"
            )
        if "requirements-mwaa-base.txt" not in files:
            problems.append(f"{DOCKERFILE}: pip install without -r requirements-mwaa-base.txt")
        if strip is not None and strip[1] not in files:
            problems.append(
                f"{DOCKERFILE}: pip install without -r {strip[1]} (requirements.txt minus the URL)"
            )
    return problems + pin_conflicts(stack.root, versions)


# Lines the image and scripts/bootstrap.sh must treat alike: the first four dropped, the rest kept.
CONSTRAINT_SAMPLE = """\
--constraint "https://example.invalid/constraints-3.3.1/constraints-3.12.txt"
-c https://example.invalid/constraints.txt
--constraint=https://example.invalid/constraints.txt
   -c   ./local-constraints.txt
aiobotocore==3.9.0
apache-airflow-providers-common-messaging==2.0.4  # --constraint in a comment
# -c in a comment line
-r other-requirements.txt
--index-url https://example.invalid/simple
celery[redis]==5.6.3
"""


def check_constraint_stripping(stack: Stack) -> list[str]:
    """The image drops requirements.txt's --constraint line exactly as scripts/bootstrap.sh does."""
    strip = strip_command(stack)
    bootstrap = re.search(r"grep -v -E '([^']+)'", read(stack.root, BOOTSTRAP_SCRIPT))
    if strip is None or bootstrap is None:
        return [f"no `grep -v -E` dropping the --constraint line in {DOCKERFILE} or {BOOTSTRAP_SCRIPT}"]
    problems: list[str] = []
    samples = {
        "requirements.txt": read(stack.root, "requirements.txt"),
        "a sample of option lines": CONSTRAINT_SAMPLE,
    }
    with tempfile.TemporaryDirectory() as folder:
        for label, text in samples.items():
            Path(folder, "requirements.txt").write_text(text, encoding="utf-8")
            image = subprocess.run(
                ["bash", "-c", strip[0]], cwd=folder, capture_output=True, text=True, check=False
            )
            local = subprocess.run(
                ["grep", "-v", "-E", bootstrap.group(1), "requirements.txt"],
                cwd=folder,
                capture_output=True,
                text=True,
                check=False,
            )
            if image.stdout != local.stdout:
                problems.append(
                    f"{DOCKERFILE} filters {label} differently from {BOOTSTRAP_SCRIPT}: "
                    f"image keeps {image.stdout.splitlines()}, bootstrap keeps {local.stdout.splitlines()}"
                )
            if constraint_lines(image.stdout):
                problems.append(f"{DOCKERFILE} keeps {constraint_lines(image.stdout)} of {label}")
            lost = set(pinned_requirements(text)) - set(pinned_requirements(image.stdout))
            if lost:
                problems.append(f"{DOCKERFILE} drops requirements {sorted(lost)} of {label}")
    return problems


def pin_conflicts(root: Path, versions: Versions) -> list[str]:
    """Pins that disagree with the constraints the image installs under (the build would fail)."""
    problems: list[str] = []
    official = pinned_requirements(read(root, versions.constraints_file))
    essential = pinned_requirements(read(root, versions.essential_file))
    problems += [
        f"{versions.essential_file}: {package}=={version}, official constraints: {official[package]}"
        for package, version in essential.items()
        if package in official and official[package] != version
    ]
    for relative in ("requirements.txt", "requirements-mwaa-base.txt"):
        for package, version in pinned_requirements(read(root, relative)).items():
            for source, pins in ((versions.constraints_file, official), (versions.essential_file, essential)):
                if package in pins and pins[package] != version:
                    problems.append(
                        f"{relative}: {package}=={version} conflicts with {source} ({pins[package]}): "
                        "the image build would fail"
                    )
    return problems


def check_mwaa_layout(stack: Stack) -> list[str]:
    """DAGs, plugins, startup.sh and requirements.txt where MWAA has them; the startup script is run."""
    problems = [
        f"./{source} does not exist (every Airflow container mounts it)"
        for source in MWAA_MOUNTS
        if not (stack.root / source).exists()
    ]
    for name, (_, component) in AIRFLOW_SERVICES.items():
        service = stack.service(name)
        env = environment(service)
        expected_env = {
            "AIRFLOW_HOME": AIRFLOW_HOME,
            "MWAA_AIRFLOW_COMPONENT": component,
            "MWAA__CORE__STARTUP_SCRIPT_PATH": MWAA_MOUNTS["startup.sh"],
            "MWAA__CORE__REQUIREMENTS_PATH": MWAA_MOUNTS["requirements.txt"],
            "AIRFLOW__CORE__DAGS_FOLDER": MWAA_MOUNTS["dags"],
            "AIRFLOW__CORE__PLUGINS_FOLDER": MWAA_MOUNTS["plugins"],
        }
        problems += [
            f"{name}: {key} is {env.get(key)!r}, expected {value!r} (MWAA's layout)"
            for key, value in expected_env.items()
            if env.get(key) != value
        ]
        volume_map = mounts(service)
        problems += [
            f"{name}: ./{source} must be mounted at {target} (MWAA's layout)"
            for source, target in MWAA_MOUNTS.items()
            if volume_map.get(target) != source
        ]
    entrypoints = [args for word, args in stack.dockerfile if word == "ENTRYPOINT"]
    if not entrypoints or "clean-zone-entrypoint" not in entrypoints[-1]:
        problems.append(
            f"{DOCKERFILE}: ENTRYPOINT must run clean-zone-entrypoint (runs startup.sh like MWAA)"
        )
    if not any(word == "COPY" and ENTRYPOINT_FILE in copy_sources(args) for word, args in stack.dockerfile):
        problems.append(f"{DOCKERFILE}: does not COPY {ENTRYPOINT_FILE}")
    if not any(word == "ENV" and f"AIRFLOW_HOME={AIRFLOW_HOME}" in args for word, args in stack.dockerfile):
        problems.append(f"{DOCKERFILE}: no ENV AIRFLOW_HOME={AIRFLOW_HOME} (MWAA's)")
    if f"MWAA__CORE__STARTUP_SCRIPT_PATH:-{MWAA_MOUNTS['startup.sh']}" not in read(
        stack.root, ENTRYPOINT_FILE
    ):
        problems.append(f"{ENTRYPOINT_FILE}: default startup script path is not {MWAA_MOUNTS['startup.sh']}")
    return problems


def check_shared_settings(stack: Stack) -> list[str]:
    """local.env feeds every Airflow service and moto; compose adds only the in-network endpoint."""
    problems: list[str] = []
    local = stack.local_env
    problems += [
        f"{LOCAL_ENV}: {key} is not set"
        for key in ("MOTO_PORT", "AIRFLOW_UI_PORT", "AIRFLOW_LOGIN_USER")
        if key not in local
    ]
    endpoint = f"http://{MOTO_SERVICE}:{local.get('MOTO_PORT', '')}"
    for name in (*AIRFLOW_SERVICES, MOTO_SERVICE):
        service = stack.service(name)
        if LOCAL_ENV not in env_files(service):
            problems.append(
                f"{name}: must load {LOCAL_ENV} with env_file (settings shared with the no-Docker path)"
            )
        for key in environment(service):
            if key in local:
                problems.append(
                    f"{name}: environment sets {key}, shadowing {LOCAL_ENV} (the stacks would differ)"
                )
            elif key.startswith("AIRFLOW_VAR_"):
                problems.append(f"{name}: environment sets Variable {key}; Variables belong in {LOCAL_ENV}")
    for name in AIRFLOW_SERVICES:
        found = environment(stack.service(name)).get("AWS_ENDPOINT_URL")
        if found != endpoint:
            problems.append(
                f"{name}: AWS_ENDPOINT_URL is {found!r}, expected {endpoint} (MOTO_PORT in {LOCAL_ENV})"
            )
    return problems


def effective_environment(stack: Stack, name: str) -> dict[str, str]:
    """What a compose service's Airflow sees: local.env, then environment, then the entrypoint's login."""
    env = {**stack.local_env, **environment(stack.service(name))}
    entrypoint = read(stack.root, ENTRYPOINT_FILE)
    if (
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS" not in env
        and '"${AIRFLOW_LOGIN_USER}:admin"' in entrypoint
    ):
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = f"{env.get('AIRFLOW_LOGIN_USER', '')}:admin"
    return env


def same_setting(key: str, ours: str, theirs: str) -> bool:
    if key.startswith("AIRFLOW_CONN_"):
        try:
            return json.loads(ours) == json.loads(theirs)
        except json.JSONDecodeError:
            return False
    if {ours.lower(), theirs.lower()} <= {"true", "false"}:
        return ours.lower() == theirs.lower()
    return ours == theirs


def check_no_docker_agreement(stack: Stack) -> list[str]:
    """Every setting scripts/dev start gives Airflow is the same in compose, bar the documented ones."""
    problems: list[str] = []
    for name in AIRFLOW_SERVICES:
        ours = effective_environment(stack, name)
        endpoint = ours.get("AWS_ENDPOINT_URL", "")
        try:
            theirs = stack_environment(stack.root, endpoint, environ={})
        except (OSError, ValueError) as error:
            return [f"scripts/local_stack.py: cannot compute the no-Docker settings: {error}"]
        for key, value in sorted(theirs.items()):
            if key in DIFFERENT_BY_DESIGN:
                continue
            if key not in ours:
                problems.append(f"{name}: {key} is not set; the no-Docker stack sets {value!r}")
            elif not same_setting(key, ours[key], value):
                problems.append(f"{name}: {key} is {ours[key]!r}; the no-Docker stack sets {value!r}")
    return problems


def check_ports(stack: Stack) -> list[str]:
    """The UI and moto are published on the ports the no-Docker stack uses (local.env)."""
    problems: list[str] = []
    local = stack.local_env
    api = stack.service(API_SERVICE)
    api_port = int(environment(api).get("AIRFLOW__API__PORT") or API_SERVER_DEFAULT_PORT)
    ui_port = local.get("AIRFLOW_UI_PORT", "")
    if str(published_ports(api).get(api_port)) != ui_port:
        problems.append(
            f"{API_SERVICE}: must publish port {api_port} on host port {ui_port} (AIRFLOW_UI_PORT)"
        )
    health = " ".join(str(part) for part in (api.get("healthcheck") or {}).get("test") or [])
    if f"localhost:{api_port}/" not in health:
        problems.append(f"{API_SERVICE}: health check does not probe port {api_port}")
    moto_port = local.get("MOTO_PORT", "")
    if not moto_port.isdigit() or published_ports(stack.service(MOTO_SERVICE)).get(int(moto_port)) != int(
        moto_port
    ):
        problems.append(f"{MOTO_SERVICE}: must publish {moto_port}:{moto_port} (MOTO_PORT in {LOCAL_ENV})")
    ui_url = local.get("AIRFLOW_VAR_CLEAN_ZONE_UI_BASE_URL")
    if ui_url and str(urlsplit(ui_url).port or 80) != ui_port:
        problems.append(f"{LOCAL_ENV}: AIRFLOW_VAR_CLEAN_ZONE_UI_BASE_URL {ui_url} is not on port {ui_port}")
    for name in AIRFLOW_SERVICES:
        parts = urlsplit(environment(stack.service(name)).get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", ""))
        if parts.hostname != API_SERVICE or parts.port != api_port or not parts.path.startswith("/execution"):
            problems.append(
                f"{name}: AIRFLOW__CORE__EXECUTION_API_SERVER_URL must be http://{API_SERVICE}:{api_port}/execution/"
            )
    return problems


def check_provisioning(stack: Stack) -> list[str]:
    """The init service migrates, creates the login and runs the no-Docker path's provisioning script."""
    problems: list[str] = []
    init = stack.service(INIT_SERVICE)
    lines = [line.strip() for line in command_text(init).replace(";", "\n").splitlines()]
    provision = f"python -m {PROVISION_MODULE}"
    if not (stack.root / PROVISION_SOURCE).is_file():
        problems.append(f"{PROVISION_SOURCE} does not exist (the init service runs it)")
    if provision not in lines:
        problems.append(
            f"{INIT_SERVICE}: must run `{provision}` (the same provisioning as the no-Docker path)"
        )
    migrate = next((i for i, line in enumerate(lines) if line.startswith("airflow db migrate")), None)
    if migrate is None:
        problems.append(f"{INIT_SERVICE}: does not run `airflow db migrate`")
    elif provision in lines and migrate > lines.index(provision):
        problems.append(f"{INIT_SERVICE}: migrates the database after provisioning")
    if init.get("working_dir") != AIRFLOW_HOME:
        problems.append(f"{INIT_SERVICE}: working_dir must be {AIRFLOW_HOME} (the script's relative path)")
    volume_map = mounts(init)
    problems += [
        f"{INIT_SERVICE}: ./{source} must be mounted at {AIRFLOW_HOME}/{source} (provisioning runs from them)"
        for source in ("src", "dags")
        if volume_map.get(f"{AIRFLOW_HOME}/{source}") != source
    ]
    if not {"AIRFLOW_LOGIN_USER", "AIRFLOW_LOGIN_PASSWORD"} <= set(
        re.findall(r"AIRFLOW_LOGIN_\w+", command_text(init))
    ):
        problems.append(
            f"{INIT_SERVICE}: does not create the login from AIRFLOW_LOGIN_USER / AIRFLOW_LOGIN_PASSWORD"
        )
    needs = depends_on(init)
    problems += [
        f"{INIT_SERVICE}: must wait for {name} to be healthy"
        for name in ("postgres", MOTO_SERVICE)
        if needs.get(name) != "service_healthy"
    ]
    auth_dir = str(
        Path(environment(init).get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "/")).parent
    )
    for name in (INIT_SERVICE, API_SERVICE):
        source = mounts(stack.service(name)).get(auth_dir, "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", source) or source not in (
            stack.compose.get("volumes") or {}
        ):
            problems.append(
                f"{name}: the login file's folder {auth_dir} must be a named volume (init writes it)"
            )
    return problems


def check_startup_order(stack: Stack) -> list[str]:
    """Health checks and depends_on conditions bring the stack up in order; nothing waits on a ghost."""
    services = stack.services
    problems = [
        f"{name}: no health check"
        for name, service in services.items()
        if name != INIT_SERVICE and not has_healthcheck(service)
    ]
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            if target not in services:
                problems.append(f"{name}: depends on unknown service {target}")
            elif condition == "service_healthy" and not has_healthcheck(services[target]):
                problems.append(f"{name}: waits for {target} to be healthy, but {target} has no health check")
            elif condition == "service_completed_successfully" and services[target].get("restart") not in (
                None,
                "no",
            ):
                problems.append(f"{name}: waits for one-shot {target}, which restarts")
    for name in AIRFLOW_SERVICES:
        needs = depends_on(stack.service(name)) if name != INIT_SERVICE else {}
        problems += [
            f"{name}: must wait for {backing} to be healthy"
            for backing in BACKING_SERVICES
            if name != INIT_SERVICE and needs.get(backing) != "service_healthy"
        ]
        if name != INIT_SERVICE and needs.get(INIT_SERVICE) != "service_completed_successfully":
            problems.append(f"{name}: must wait for {INIT_SERVICE} to complete successfully")
    worker = stack.service(WORKER_SERVICE)
    if depends_on(worker).get(API_SERVICE) != "service_healthy":
        problems.append(
            f"{WORKER_SERVICE}: must wait for {API_SERVICE} (tasks run through its execution API)"
        )
    if "container_name" in worker or worker.get("ports"):
        problems.append(f"{WORKER_SERVICE}: container_name or published ports prevent --scale")
    cycle = find_cycle({name: list(depends_on(service)) for name, service in services.items()})
    if cycle:
        problems.append(f"depends_on cycle: {' -> '.join(cycle)}")
    return problems


def check_executor(stack: Stack) -> list[str]:
    """MWAA's shape: CeleryExecutor with a broker, a PostgreSQL metadata database in a named volume."""
    postgres = stack.service("postgres")
    problems: list[str] = []
    if image_tag(postgres.get("image", ""))[0] != "postgres":
        problems.append("postgres: must run the postgres image (MWAA's metadata database engine)")
    data = mounts(postgres).get("/var/lib/postgresql/data", "")
    if data not in (stack.compose.get("volumes") or {}):
        problems.append("postgres: /var/lib/postgresql/data must be a named volume")
    expected = {
        "AIRFLOW__CORE__EXECUTOR": r"CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": r"postgresql(\+\w+)?://.*@postgres(:5432)?/\w+",
        "AIRFLOW__CELERY__BROKER_URL": r"redis://redis(:6379)?/\d+",
        "AIRFLOW__CELERY__RESULT_BACKEND": r"db\+postgresql(\+\w+)?://.*@postgres(:5432)?/\w+",
    }
    for name in AIRFLOW_SERVICES:
        env = environment(stack.service(name))
        problems += [
            f"{name}: {key} must match {pattern} (MWAA's executor and database)"
            for key, pattern in expected.items()
            if not re.fullmatch(pattern, env.get(key, ""))
        ]
    return problems


def check_secrets(stack: Stack) -> list[str]:
    """No secret in a committed file: compose interpolates each from .env, kept out of git and images."""
    problems: list[str] = []
    example = read_env_file(stack.root / ENV_EXAMPLE) if (stack.root / ENV_EXAMPLE).exists() else {}
    for key in SECRETS:
        if key not in example:
            problems.append(f"{ENV_EXAMPLE}: {key} is missing (scripts/docker-env fills it in)")
        elif example[key]:
            problems.append(f"{ENV_EXAMPLE}: {key} has a value; secrets are generated, never committed")
    for name, service in stack.services.items():
        for key, value in environment(service).items():
            secret_values = [value] if SECRET_NAME.search(key) else URL_PASSWORD.findall(value)
            for secret in secret_values:
                match = INTERPOLATION.fullmatch(secret)
                if not match or match.group(1) not in SECRETS:
                    problems.append(f"{name}: {key} holds a literal secret; interpolate it from .env")
                elif not (match.group(2) or "").startswith(":?"):
                    problems.append(
                        f"{name}: {key} must use ${{{match.group(1)}:?...}}: a missing .env is an error"
                    )
    gitignore = stack.root / ".gitignore"
    if ".env" not in {
        line.strip() for line in (gitignore.read_text().splitlines() if gitignore.exists() else [])
    }:
        problems.append(".gitignore: .env must be ignored")
    patterns = dockerignore(stack.root)
    problems += [
        f".dockerignore: {path} would be sent to the image build"
        for path in (".env", ".venv/bin/python", ".git/config", ".state/airflow/airflow.db")
        if not docker_ignored(path, patterns)
    ]
    problems += [
        f".dockerignore: excludes {source}, which {DOCKERFILE} copies"
        for word, args in stack.dockerfile
        if word == "COPY"
        for source in copy_sources(args)
        if docker_ignored(source, patterns)
    ]
    return problems


CHECKS: tuple[Callable[[Stack], list[str]], ...] = (
    check_schema,
    check_versions,
    check_requirements_install,
    check_constraint_stripping,
    check_mwaa_layout,
    check_shared_settings,
    check_no_docker_agreement,
    check_ports,
    check_provisioning,
    check_startup_order,
    check_executor,
    check_secrets,
)


def run_checks(root: Path) -> dict[str, list[str]]:
    """Every check on the checkout at ``root``: check name -> problems."""
    try:
        stack = Stack.load(root)
    except StackError as error:
        return {"load": [str(error)]}
    results: dict[str, list[str]] = {}
    for check in CHECKS:
        try:
            results[check.__name__] = check(stack)
        except StackError as error:
            results[check.__name__] = [str(error)]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check docker-compose.yaml and docker/Dockerfile against MWAA and the no-Docker path "
        "(versions, requirements, constraints, provisioning, Variables, connection, ports). No Docker needed."
    )
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="checkout to check"
    )
    args = parser.parse_args(argv)
    results = run_checks(args.root)
    for name, problems in results.items():
        print(f"{'FAIL' if problems else 'ok  '} {name}")
        for problem in problems:
            print(f"     - {problem}")
    failed = sum(1 for problems in results.values() if problems)
    print(f"{failed} check(s) failed" if failed else f"all {len(results)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
