"""The docker-compose stack, checked without a Docker engine.

* Every static check in clean_zone_tools.checks.compose passes on the repository, and each one reports a
  drift when a copy of the checkout is changed the way a careless edit would change it.
* The image's entrypoint (docker/entrypoint.sh) runs startup.sh as MWAA does: run here with bash,
  with a stand-in for the official image's entrypoint.
* scripts/docker-env writes a .env that makes every interpolation in the compose file resolve.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from clean_zone_tools.checks.compose.checks import CHECKS, check_versions
from clean_zone_tools.checks.compose.parsing import (
    INTERPOLATION,
    MOTO_SERVICE,
    SECRETS,
    Stack,
    command_words,
)
from clean_zone_tools.devstack.harness import free_ports

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
CHECKOUT_FILES = (
    "docker-compose.yaml",
    "docker",
    "local.env",
    ".env.example",
    ".gitignore",
    ".dockerignore",
    "requirements.txt",
    "requirements-mwaa-base.txt",
    "requirements-dev.txt",
    "constraints",
    "startup.sh",
    "dags",
    "plugins",
    "src/clean_zone_tools/devstack/provision.py",
    "src/clean_zone_tools/devstack/endpoint.py",
    "scripts/bootstrap.sh",
)


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack.load(REPO)


def copy_checkout(target: Path) -> Path:
    """The files the checks read, copied so a test can change them (one missing here stays missing)."""
    for relative in CHECKOUT_FILES:
        source, destination = REPO / relative, target / relative
        if not source.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination)
    return target


# --- the repository passes every check ---------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_repository_passes(check, stack: Stack) -> None:
    assert check(stack) == []


# --- each check reports a drift -------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    name: str
    path: str
    old: str
    new: str
    check: str
    expected: str


FERNET_LINE = "AIRFLOW__CORE__FERNET_KEY: ${AIRFLOW__CORE__FERNET_KEY:?run scripts/docker-env to create .env}"
DRIFTS = [
    Drift(
        "airflow-version-in-image",
        "docker/Dockerfile",
        "FROM apache/airflow:3.3.1-python3.12",
        "FROM apache/airflow:3.3.0-python3.12",
        "check_versions",
        "FROM apache/airflow:3.3.0-python3.12, but the no-Docker path pins apache/airflow:3.3.1-python3.12",
    ),
    Drift(
        "python-version-in-image",
        "docker/Dockerfile",
        "FROM apache/airflow:3.3.1-python3.12",
        "FROM apache/airflow:3.3.1-python3.11",
        "check_versions",
        "3.3.1-python3.11",
    ),
    Drift(
        "image-tag-in-compose",
        "docker-compose.yaml",
        "image: clean-zone-airflow:3.3.1-python3.12",
        "image: clean-zone-airflow:latest",
        "check_versions",
        "expected 'clean-zone-airflow:3.3.1-python3.12'",
    ),
    Drift(
        "moto-plain-image",
        "docker-compose.yaml",
        "    image: clean-zone-airflow:3.3.1-python3.12\n    build:\n      context: .\n"
        "      dockerfile: docker/Dockerfile\n    # Not an Airflow component",
        "    image: motoserver/moto:5.2.5\n    # Not an Airflow component",
        "check_versions",
        "moto: image 'motoserver/moto:5.2.5', expected 'clean-zone-airflow:3.3.1-python3.12'",
    ),
    Drift(
        "moto-pin-in-image-differs",
        "docker/Dockerfile",
        '"moto[server]==5.2.5"',
        '"moto[server]==5.2.4"',
        "check_versions",
        "installs moto[server]==5.2.4, but requirements-dev.txt pins moto 5.2.5",
    ),
    Drift(
        "moto-pin-bumped-for-no-docker-only",
        "requirements-dev.txt",
        "moto[server]==5.2.5",
        "moto[server]==5.2.6",
        "check_versions",
        "installs moto[server]==5.2.5, but requirements-dev.txt pins moto 5.2.6",
    ),
    Drift(
        "moto-not-in-image",
        "docker/Dockerfile",
        '        "moto[server]==5.2.5" \\\n',
        "",
        "check_versions",
        "docker/Dockerfile: no pip install of moto[server]==5.2.5",
    ),
    Drift(
        "moto-runs-plain-moto-server",
        "docker-compose.yaml",
        "      - clean_zone_tools.devstack.endpoint\n",
        "      - moto.server\n",
        "check_endpoint",
        "moto: must run `python -m clean_zone_tools.devstack.endpoint`",
    ),
    Drift(
        "endpoint-on-the-container-loopback",
        "docker-compose.yaml",
        "      - --host\n      - 0.0.0.0\n",
        "",
        "check_endpoint",
        "must listen on 0.0.0.0 in its container (--host), not 127.0.0.1 (the default)",
    ),
    Drift(
        "endpoint-port-not-moto-port",
        "docker-compose.yaml",
        '      - --port\n      - "4566"\n',
        '      - --port\n      - "5000"\n',
        "check_endpoint",
        "moto: --port is '5000', expected 4566 (MOTO_PORT in local.env)",
    ),
    Drift(
        "endpoint-state-in-the-container-layer",
        "docker-compose.yaml",
        "      - endpoint-state:/usr/local/airflow/endpoint\n",
        "",
        "check_endpoint",
        "--state-dir /usr/local/airflow/endpoint must be a named volume",
    ),
    Drift(
        "endpoint-state-on-an-anonymous-volume",
        "docker-compose.yaml",
        "      - endpoint-state:/usr/local/airflow/endpoint\n",
        "      - /usr/local/airflow/endpoint\n",
        "check_endpoint",
        "--state-dir /usr/local/airflow/endpoint must be a named volume",
    ),
    Drift(
        "endpoint-state-dir-not-made-in-image",
        "docker/Dockerfile",
        "        /usr/local/airflow/endpoint \\\n",
        "",
        "check_endpoint",
        "does not create /usr/local/airflow/endpoint",
    ),
    Drift(
        "endpoint-without-state-dir",
        "docker-compose.yaml",
        "      - --state-dir\n      - /usr/local/airflow/endpoint\n",
        "",
        "check_endpoint",
        "moto: the endpoint needs --state-dir",
    ),
    Drift(
        "install-without-local-constraints",
        "docker/Dockerfile",
        "--constraint airflow-3.3.1-python-3.12.txt",
        "",
        "check_requirements_install",
        "pip install without --constraint airflow-3.3.1-python-3.12.txt",
    ),
    Drift(
        "install-requirements-txt-with-its-url",
        "docker/Dockerfile",
        "-r requirements-local.txt",
        "-r requirements.txt",
        "check_requirements_install",
        "installs requirements.txt itself",
    ),
    Drift(
        "requirement-pin-off-the-constraints",
        "requirements.txt",
        "aiobotocore==3.9.0",
        "aiobotocore==3.9.1",
        "check_requirements_install",
        "aiobotocore==3.9.1 conflicts with constraints/airflow-3.3.1-python-3.12.txt (3.9.0)",
    ),
    Drift(
        "celery-provider-left-to-the-image-extras",
        "requirements-mwaa-base.txt",
        "apache-airflow-providers-celery==3.23.1\n",
        "",
        "check_celery_provider",
        "the image would run whatever Celery provider the base image's extras carry",
    ),
    Drift(
        "celery-provider-off-mwaa",
        "requirements-mwaa-base.txt",
        "apache-airflow-providers-celery==3.23.1",
        "apache-airflow-providers-celery==3.24.0",
        "check_celery_provider",
        "apache-airflow-providers-celery==3.24.0, MWAA 3.3.1 runs 3.23.1",
    ),
    Drift(
        "celery-provider-pin-not-installed-in-image",
        "docker/Dockerfile",
        "-r requirements-mwaa-base.txt \\\n",
        "",
        "check_celery_provider",
        "no pip install -r requirements-mwaa-base.txt",
    ),
    Drift(
        "constraint-line-kept-in-image",
        "docker/Dockerfile",
        "(--constraint|-c)([[:space:]=]|$)",
        "(--constraint)([[:space:]]|$)",
        "check_constraint_stripping",
        "differently from scripts/bootstrap.sh",
    ),
    Drift(
        "dags-not-where-mwaa-has-them",
        "docker-compose.yaml",
        "./dags:/usr/local/airflow/dags:ro",
        "./dags:/opt/airflow/dags:ro",
        "check_mwaa_layout",
        "./dags must be mounted at /usr/local/airflow/dags",
    ),
    Drift(
        "startup-script-not-mounted",
        "docker-compose.yaml",
        "- ./startup.sh:/usr/local/airflow/startup/startup.sh:ro\n",
        "",
        "check_mwaa_layout",
        "./startup.sh must be mounted at /usr/local/airflow/startup/startup.sh",
    ),
    Drift(
        "local-env-not-loaded-by-moto",
        "docker-compose.yaml",
        "      - /usr/local/airflow/endpoint\n    env_file:\n      - local.env\n",
        "      - /usr/local/airflow/endpoint\n",
        "check_shared_settings",
        "moto: must load local.env",
    ),
    Drift(
        "variable-set-in-compose-only",
        "docker-compose.yaml",
        "    AIRFLOW__CORE__LOAD_EXAMPLES:",
        "    AIRFLOW_VAR_CLEAN_ZONE_BUCKET: another-bucket\n    AIRFLOW__CORE__LOAD_EXAMPLES:",
        "check_shared_settings",
        "shadowing local.env",
    ),
    Drift(
        "moto-port-changed-in-local-env",
        "local.env",
        "MOTO_PORT=4566",
        "MOTO_PORT=4567",
        "check_ports",
        "moto: must publish 4567:4567",
    ),
    Drift(
        "ui-port-changed-in-compose",
        "docker-compose.yaml",
        '- "127.0.0.1:8080:8080"',
        '- "127.0.0.1:8081:8080"',
        "check_ports",
        "must publish port 8080 on host port 8080",
    ),
    Drift(
        "moto-published-on-every-interface",
        "docker-compose.yaml",
        '- "127.0.0.1:4566:4566"',
        '- "4566:4566"',
        "check_loopback_ports",
        "moto: port 4566:4566 is published on every interface",
    ),
    Drift(
        "ui-published-on-a-network-address",
        "docker-compose.yaml",
        '- "127.0.0.1:8080:8080"',
        '- "0.0.0.0:8080:8080"',
        "check_loopback_ports",
        "port 0.0.0.0:8080:8080 is published on 0.0.0.0",
    ),
    Drift(
        "connection-id-changed-in-local-env",
        "local.env",
        "AIRFLOW_VAR_CLEAN_ZONE_AWS_CONN_ID=aws_default",
        "AIRFLOW_VAR_CLEAN_ZONE_AWS_CONN_ID=aws_local",
        "check_no_docker_agreement",
        "AIRFLOW_CONN_AWS_LOCAL is not set",
    ),
    Drift(
        "connection-region-differs",
        "docker-compose.yaml",
        '"region_name": "us-east-1"',
        '"region_name": "eu-west-1"',
        "check_no_docker_agreement",
        "AIRFLOW_CONN_AWS_DEFAULT is",
    ),
    Drift(
        "dags-paused-unlike-no-docker",
        "docker-compose.yaml",
        'AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION: "false"',
        'AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION: "true"',
        "check_no_docker_agreement",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION is 'true'; the no-Docker stack sets 'False'",
    ),
    Drift(
        "another-provisioning-script",
        "docker-compose.yaml",
        "python -m clean_zone_tools.devstack.provision",
        "python -m clean_zone_tools.devstack.provision_docker",
        "check_provisioning",
        "must run `python -m clean_zone_tools.devstack.provision`",
    ),
    Drift(
        "healthcheck-removed",
        "docker-compose.yaml",
        '      test: ["CMD", "redis-cli", "ping"]\n',
        "      disable: true\n",
        "check_startup_order",
        "waits for redis to be healthy, but redis has no health check",
    ),
    Drift(
        "not-celery",
        "docker-compose.yaml",
        "AIRFLOW__CORE__EXECUTOR: CeleryExecutor",
        "AIRFLOW__CORE__EXECUTOR: LocalExecutor",
        "check_executor",
        "AIRFLOW__CORE__EXECUTOR must match CeleryExecutor",
    ),
    Drift(
        "literal-fernet-key",
        "docker-compose.yaml",
        FERNET_LINE,
        "AIRFLOW__CORE__FERNET_KEY: 6x0Xj0nYfGQW0b3k3c2N4o0rZ9m8y3pQ2d1s0aVbC7E=",
        "check_secrets",
        "AIRFLOW__CORE__FERNET_KEY holds a literal secret",
    ),
    Drift(
        "env-file-in-build-context",
        ".dockerignore",
        "\n*\n",
        "\n.venv\n",
        "check_secrets",
        ".env would be sent to the image build",
    ),
    Drift(
        "not-compose-schema",
        "docker-compose.yaml",
        "    image: redis:7.2-bookworm\n",
        "    image: redis:7.2-bookworm\n    restart_policy: always\n",
        "check_schema",
        "fails the compose schema",
    ),
]


@pytest.mark.parametrize("drift", DRIFTS, ids=lambda drift: drift.name)
def test_check_reports_drift(drift: Drift, tmp_path: Path) -> None:
    root = copy_checkout(tmp_path)
    path = root / drift.path
    text = path.read_text(encoding="utf-8")
    assert drift.old in text, f"the drift no longer applies to {drift.path}: {drift.old!r}"
    path.write_text(text.replace(drift.old, drift.new), encoding="utf-8")

    check = next(check for check in CHECKS if check.__name__ == drift.check)
    problems = check(Stack.load(root))

    assert any(drift.expected in problem for problem in problems), problems


def test_any_dockerfile_uses_the_same_pins(tmp_path: Path) -> None:
    root = copy_checkout(tmp_path)
    (root / "docker" / "Dockerfile.debug").write_text(
        "FROM apache/airflow:3.2.1-python3.12\nRUN pip install --no-cache-dir debugpy==1.8.17\n",
        encoding="utf-8",
    )
    problems = check_versions(Stack.load(root))
    assert "docker/Dockerfile.debug: FROM apache/airflow:3.2.1-python3.12, but the no-Docker path pins" in (
        "\n".join(problems)
    )
    assert (
        "docker/Dockerfile.debug: pip install without --constraint airflow-3.3.1-python-3.12.txt" in problems
    )


def test_cli_names_the_drift_and_exits_1(tmp_path: Path) -> None:
    root = copy_checkout(tmp_path)
    local_env = root / "local.env"
    local_env.write_text(local_env.read_text().replace("AIRFLOW_UI_PORT=8080", "AIRFLOW_UI_PORT=9090"))
    result = subprocess.run(
        [sys.executable, "-m", "clean_zone_tools.checks.compose", "--root", root],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ok   check_schema" in result.stdout
    assert "FAIL check_ports" in result.stdout
    assert "host port 9090 (AIRFLOW_UI_PORT)" in result.stdout
    assert "AIRFLOW__API__BASE_URL is 'http://localhost:8080'" in result.stdout


# --- the moto service's command, run here ------------------------------------------------------------------


def test_moto_service_runs_the_durable_endpoint(stack: Stack, tmp_path: Path) -> None:
    """The moto service's own command line (its address, port and state dir mapped to this machine):
    the service's health check passes, and a bucket made before a stop is there after the restart."""
    import boto3

    moto = stack.service(MOTO_SERVICE)
    words = command_words(moto)
    start = words.index("python")
    (port,) = free_ports(1)
    mapped = {"--host": "127.0.0.1", "--port": str(port), "--state-dir": str(tmp_path / "state")}
    argv = [sys.executable, *words[start + 1 :]]
    for option, value in mapped.items():
        argv[argv.index(option) + 1] = value
    health = moto["healthcheck"]["test"]
    assert health[0] == "CMD-SHELL", health
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # `python`: ours
        "MOTO_PORT": str(port),
    }

    def healthy_within(endpoint: subprocess.Popen[bytes], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and endpoint.poll() is None:
            probe = subprocess.run(["sh", "-c", health[1]], env=env, capture_output=True, check=False)
            if probe.returncode == 0:
                return True
            time.sleep(0.5)
        return False

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (moto accepts any credentials)
    )
    for run in ("first", "restarted"):
        log = (tmp_path / f"{run}.log").open("w")
        endpoint = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert healthy_within(endpoint, 60), (tmp_path / f"{run}.log").read_text()
            if run == "first":
                s3.create_bucket(Bucket="kept-across-restarts")
            else:
                assert "kept-across-restarts" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        finally:
            endpoint.send_signal(signal.SIGTERM)  # what `docker compose stop` sends, through dumb-init
            code = endpoint.wait(timeout=30)
            log.close()
        assert code == 0, (tmp_path / f"{run}.log").read_text()
    assert "endpoint: state saved" in (tmp_path / "first.log").read_text()


# --- the entrypoint runs startup.sh as MWAA does ----------------------------------------------------------


@pytest.fixture
def component(tmp_path: Path):
    """Run docker/entrypoint.sh with a stand-in for the official entrypoint that prints what it got."""
    next_entrypoint = tmp_path / "official-entrypoint"
    next_entrypoint.write_text(
        "#!/usr/bin/env bash\n"
        'echo "started: $*"\n'
        "for name in FROM_STARTUP MULTILINE NOT_EXPORTED AIRFLOW__CORE__EXECUTOR \\\n"
        "    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS; do\n"
        '  echo "$name=${!name-<unset>}"\n'
        "done\n",
        encoding="utf-8",
    )
    next_entrypoint.chmod(0o755)

    def run(startup: str | None, *, extra_env: dict[str, str] | None = None, timeout_seconds: int = 30):
        script = tmp_path / "startup.sh"
        if startup is not None:
            script.write_text(startup, encoding="utf-8")
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "MWAA__CORE__STARTUP_SCRIPT_PATH": str(script),
            "MWAA__CORE__REQUIREMENTS_PATH": str(tmp_path / "no-requirements.txt"),
            "CLEAN_ZONE_NEXT_ENTRYPOINT": str(next_entrypoint),
            "CLEAN_ZONE_STARTUP_TIMEOUT_SECONDS": str(timeout_seconds),
            "MWAA_AIRFLOW_COMPONENT": "worker",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            **(extra_env or {}),
        }
        return subprocess.run(
            ["bash", ENTRYPOINT, "celery", "worker"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    return run


def printed_env(stdout: str) -> dict[str, str]:
    lines = stdout.split("started: ", 1)[-1].splitlines()[1:]
    result: dict[str, str] = {}
    for line in lines:
        if "=" in line and line.split("=", 1)[0].isupper():
            key, value = line.split("=", 1)
            result[key] = value
        elif result:
            result[list(result)[-1]] += "\n" + line
    return result


def test_startup_exports_reach_the_component(component) -> None:
    result = component(
        "set -euo pipefail\n"
        'echo "installing on $MWAA_AIRFLOW_COMPONENT"\n'
        'export FROM_STARTUP="a value with spaces"\n'
        "export MULTILINE=$'line one\\nline two'\n"
        "NOT_EXPORTED=1\n"
        "exit 0\n"
    )
    assert result.returncode == 0, result.stderr
    assert "installing on worker" in result.stdout
    assert "started: celery worker" in result.stdout
    seen = printed_env(result.stdout)
    assert seen["FROM_STARTUP"] == "a value with spaces"
    assert seen["MULTILINE"] == "line one\nline two"
    assert seen["NOT_EXPORTED"] == "<unset>"
    assert "startup script set: " in result.stderr and "FROM_STARTUP" in result.stderr


def test_startup_cannot_change_what_mwaa_protects(component) -> None:
    result = component("export AIRFLOW__CORE__EXECUTOR=LocalExecutor\nexport FROM_STARTUP=kept\n")
    assert result.returncode == 0, result.stderr
    seen = printed_env(result.stdout)
    assert seen["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert seen["FROM_STARTUP"] == "kept"
    assert "may not change (kept as configured, as on MWAA): AIRFLOW__CORE__EXECUTOR" in result.stderr


def test_failing_startup_script_stops_the_component(component) -> None:
    result = component("echo 'pip install failed' >&2\nexit 3\n")
    assert result.returncode == 1
    assert "started:" not in result.stdout
    assert "pip install failed" in result.stderr
    assert "startup script failed (exit code 3); not starting" in result.stderr


def test_startup_script_past_the_limit_stops_the_component(component) -> None:
    result = component("sleep 20\n", timeout_seconds=1)
    assert result.returncode == 1
    assert "started:" not in result.stdout
    assert "still running after 1s" in result.stderr


def test_no_startup_script_starts_the_component(component) -> None:
    result = component(None)
    assert result.returncode == 0
    assert "started: celery worker" in result.stdout
    assert "no startup script at" in result.stderr


def test_writtenset_by_startup_are_never_logged(component) -> None:
    result = component("export DB_TOKEN=s3cr3t-value\n")
    assert result.returncode == 0
    assert "DB_TOKEN" in result.stderr
    assert "s3cr3t-value" not in result.stderr


def test_login_comes_from_local_env_user(component) -> None:
    derived = component(None, extra_env={"AIRFLOW_LOGIN_USER": "dana"})
    assert printed_env(derived.stdout)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "dana:admin"
    explicit = component(
        None, extra_env={"AIRFLOW_LOGIN_USER": "dana", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:op"}
    )
    assert printed_env(explicit.stdout)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "ops:op"


def test_changed_requirements_are_reported_until_rebuilt(component, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("aiobotocore==3.9.0\n", encoding="utf-8")
    built = tmp_path / "requirements.txt.sha256"
    digest = subprocess.run(["sha256sum", requirements], capture_output=True, text=True, check=True)
    built.write_text(digest.stdout.split()[0] + "\n", encoding="utf-8")
    env = {
        "MWAA__CORE__REQUIREMENTS_PATH": str(requirements),
        "CLEAN_ZONE_BUILT_REQUIREMENTS_SHA256_FILE": str(built),
    }

    assert "requirements.txt changed" not in component(None, extra_env=env).stderr
    requirements.write_text("aiobotocore==3.9.0\npandas==2.3.3\n", encoding="utf-8")
    changed = component(None, extra_env=env)
    assert changed.returncode == 0
    assert "requirements.txt changed since the image was built" in changed.stderr
    assert "docker compose up -d --build" in changed.stderr


def test_entrypoint_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    result = subprocess.run([shellcheck, ENTRYPOINT], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_the_project_startup_script_runs_through_the_entrypoint(component) -> None:
    result = component((REPO / "startup.sh").read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr
    assert "clean-zone startup: worker" in result.stdout


# --- .env for the secrets --------------------------------------------------------------------------------


def run_docker_env(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clean_zone_tools.devstack.docker_env", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def read_env(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )


def test_docker_env_generates_every_secret_compose_needs(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    result = run_docker_env("--output", env_file)
    assert result.returncode == 0, result.stderr

    written = read_env(env_file)
    assert set(SECRETS) <= set(written)
    assert all(written[key] for key in SECRETS)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    fernet = Fernet(written["AIRFLOW__CORE__FERNET_KEY"].encode())
    assert fernet.decrypt(fernet.encrypt(b"connection password")) == b"connection password"
    assert len(base64.urlsafe_b64decode(written["AIRFLOW__CORE__FERNET_KEY"])) == 32
    assert written["POSTGRES_PASSWORD"].isalnum()  # embedded in a database URL unescaped
    assert not any(written[key] in result.stdout + result.stderr for key in SECRETS)

    # Every ${VAR} the compose file interpolates resolves from this .env (or has a default).
    compose = (REPO / "docker-compose.yaml").read_text(encoding="utf-8").replace("$$", "")
    for match in INTERPOLATION.finditer(compose):
        assert match.group(1) in written or (match.group(2) or "").startswith((":-", "-")), match.group(0)


def test_docker_env_keeps_existing_writtenand_fills_the_gaps(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    kept_password = "kept0from0before"  # noqa: S105 (a placeholder the test writes and reads back)
    env_file.write_text(f"POSTGRES_PASSWORD={kept_password}\nMY_OWN_SETTING=1\n", encoding="utf-8")
    result = run_docker_env("--output", env_file)
    assert result.returncode == 0, result.stderr
    written = read_env(env_file)
    assert written["POSTGRES_PASSWORD"] == kept_password
    assert written["MY_OWN_SETTING"] == "1"
    assert written["AIRFLOW__CORE__FERNET_KEY"]

    again = run_docker_env("--output", env_file)
    assert again.returncode == 0
    assert "nothing to do" in again.stdout
    assert read_env(env_file) == written


def test_docker_env_rotate_renews_every_secret(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    assert run_docker_env("--output", env_file).returncode == 0
    before = read_env(env_file)
    result = run_docker_env("--output", env_file, "--rotate")
    assert result.returncode == 0
    after = read_env(env_file)
    assert all(before[key] != after[key] for key in SECRETS)
    assert "docker compose down -v" in result.stdout


def test_docker_env_errors(tmp_path: Path) -> None:
    missing = run_docker_env("--template", tmp_path / "absent", "--output", tmp_path / ".env")
    assert missing.returncode == 1
    assert "cannot read the template" in missing.stderr
    assert not (tmp_path / ".env").exists()
    assert run_docker_env("--no-such-option").returncode == 2


# --- docker compose itself, where its client is installed ---------------------------------------------


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode
    ):
        pytest.skip("the docker compose client is not installed")
    env_file = tmp_path / ".env"
    assert run_docker_env("--output", env_file).returncode == 0
    result = subprocess.run(
        [docker, "compose", "--env-file", env_file, "-f", REPO / "docker-compose.yaml", "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_yaml_merges_resolve_per_service(stack: Stack) -> None:
    """The YAML anchors give every Airflow service the common settings plus its own component."""
    raw = yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))
    worker = raw["services"]["airflow-worker"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["environment"]["MWAA_AIRFLOW_COMPONENT"] == "worker"
    assert set(worker["depends_on"]) == {"postgres", "redis", "moto", "airflow-init", "airflow-apiserver"}
    assert stack.service("airflow-init")["depends_on"].keys() == {"postgres", "moto"}


def test_the_worker_may_finish_its_tasks_on_stop() -> None:
    # `docker compose stop` sends SIGTERM, then kills after stop_grace_period (10 s by default):
    # Celery's warm shutdown needs longer than that to let running tasks finish.
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    grace = compose["services"]["airflow-worker"].get("stop_grace_period", "10s")
    assert grace.endswith("m") and int(grace[:-1]) >= 1, grace
