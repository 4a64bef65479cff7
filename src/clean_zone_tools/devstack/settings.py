"""The local stack's settings: ``local.env`` layered under the environment, the ports, the
variables the stack gives Airflow (:func:`stack_environment`) and the :class:`Context` every
command works from."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from clean_zone.config import ConfigError, Settings, load_for_parsing
from clean_zone_tools import REPO_ROOT
from clean_zone_tools.envfile import read_env_file

ENV_FILE_NAME = "local.env"
DEFAULT_MOTO_PORT = 4566
DEFAULT_UI_PORT = 8080
DEFAULT_LOGIN_USER = "admin"
DEFAULT_STATE_DIR = ".state"
# Airflow's own defaults for its log servers (the scheduler's worker logs, the triggerer's).
DEFAULT_WORKER_LOG_PORT = 8793
DEFAULT_TRIGGER_LOG_PORT = 8794
WORKER_LOG_PORT_KEY = "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"
TRIGGER_LOG_PORT_KEY = "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"
HEALTH_PATH = "/api/v2/monitor/health"
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json.generated"

# Settings of the stack itself (not Airflow's), read from local.env or the environment.
STACK_KEYS = (
    "MOTO_PORT", "AIRFLOW_UI_PORT", "AIRFLOW_LOGIN_USER", "FAULT_PROXY_PORT", "CLEAN_ZONE_STATE_DIR",
    WORKER_LOG_PORT_KEY, TRIGGER_LOG_PORT_KEY,
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
    # The supervisor's restart budget, and a component's command replaced (tests inject a
    # component that always dies): docs/local-stack.md "Healing".
    "DEVSTACK_MAX_RESTARTS", "DEVSTACK_RESTART_WINDOW_SECONDS", "DEVSTACK_COMMAND_OVERRIDES",
)

# Airflow settings of the local stack that a developer may override from the environment.
LOCAL_AIRFLOW_DEFAULTS = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    # What `airflow standalone` forced, kept now that the components run one by one.
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__AUTH_MANAGER": (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    ),
    # A dropped file should be picked up at once; MWAA keeps Airflow's default
    # (new DAGs start paused).
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    # LocalExecutor starts one worker process per slot (about 120 MB each): 32,
    # Airflow's default, would take 4 GB of a laptop.
    "AIRFLOW__CORE__PARALLELISM": "8",
    # The scheduler and the api-server start together; on a busy
    # machine the api-server needs a minute or more, and a task started before it
    # answers fails after the default 5 tries (about 15 s). 12 tries ride it out.
    "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "12",
    # A killed scheduler leaves its tasks "running" with nobody behind them; the restarted one finds
    # them after these (Airflow's defaults: 300 s each), and until then a one-run-at-a-time DAG
    # (the events watcher) waits. MWAA restarts whole hosts and keeps the defaults.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
}


class StackError(RuntimeError):
    """A problem the user must act on; the message says what to do."""


class UsageError(StackError):
    """Bad arguments (exit 2)."""


def layered_settings(repo_root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """local.env's values, each overridden by the environment when set there.

    The stack's own knobs (ports, login, AWS placeholders) are taken from the
    environment even when local.env does not list them.
    """
    env_file = repo_root / ENV_FILE_NAME
    values = read_env_file(env_file) if env_file.is_file() else {}
    layered = {key: environ.get(key, value) for key, value in values.items()}
    layered.update({key: environ[key] for key in STACK_KEYS if key in environ})
    return layered


def state_dir(repo_root: Path, values: Mapping[str, str] | None = None) -> Path:
    """CLEAN_ZONE_STATE_DIR (relative to the checkout unless absolute), by default ``.state``."""
    configured = (values or {}).get("CLEAN_ZONE_STATE_DIR") or DEFAULT_STATE_DIR
    return repo_root / Path(configured).expanduser()


def stack_environment(
    repo_root: Path, endpoint: str, *, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables the local stack sets for Airflow, provisioning and the CLI wrappers.

    local.env's settings (the environment overrides each), the AWS endpoint and
    the Airflow connection that carries it, and the Airflow configuration of the
    no-Docker stack (home, SQLite database, folders, port, login). Only these
    keys: callers lay them over ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    env = layered_settings(repo_root, environ)
    settings = load_for_parsing({**env, **environ})
    ui_port = int(env.get("AIRFLOW_UI_PORT", DEFAULT_UI_PORT))
    airflow_home = state_dir(repo_root, env) / "airflow"
    login_user = env.get("AIRFLOW_LOGIN_USER", DEFAULT_LOGIN_USER)
    connection = {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": settings.region}}
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", settings.region),
            f"AIRFLOW_CONN_{settings.aws_conn_id.upper()}": json.dumps(connection),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(repo_root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo_root / "plugins"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{login_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / PASSWORDS_FILE_NAME),
            # The UI (with its dev-only auth manager) listens on this machine only.
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(ui_port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{ui_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ui_port}/execution/",
            WORKER_LOG_PORT_KEY: env.get(WORKER_LOG_PORT_KEY, str(DEFAULT_WORKER_LOG_PORT)),
            TRIGGER_LOG_PORT_KEY: env.get(TRIGGER_LOG_PORT_KEY, str(DEFAULT_TRIGGER_LOG_PORT)),
        }
    )
    # Local defaults the environment may override (docs/local-stack.md lists them).
    for name, default in LOCAL_AIRFLOW_DEFAULTS.items():
        env[name] = environ.get(name, default)
    return env


@dataclass(frozen=True)
class Context:
    """What every subcommand needs: paths, resolved settings, the endpoint."""

    repo_root: Path
    values: dict[str, str]  # local.env with environment overrides
    settings: Settings
    endpoint: str

    @property
    def state(self) -> Path:
        return state_dir(self.repo_root, self.values)

    @property
    def endpoint_state(self) -> Path:
        """The durable endpoint's snapshot, journal and object bodies."""
        return self.state / "endpoint"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pid_file(self) -> Path:
        return self.state / "stack.pid"

    @property
    def info_file(self) -> Path:
        """The supervisor's account of each component (pid, up/down, restarts), rewritten on every
        change: ``status`` reads it, and ``stop`` cleans up after a crashed supervisor with it."""
        return self.state / "stack.json"

    @property
    def airflow_home(self) -> Path:
        return self.state / "airflow"

    @property
    def moto_port(self) -> int:
        return port_setting(self.values, "MOTO_PORT", DEFAULT_MOTO_PORT)

    @property
    def ui_port(self) -> int:
        return port_setting(self.values, "AIRFLOW_UI_PORT", DEFAULT_UI_PORT)

    @property
    def proxy_port(self) -> int | None:
        """FAULT_PROXY_PORT: when set, Airflow talks to the endpoint through the fault proxy."""
        if not self.values.get("FAULT_PROXY_PORT"):
            return None
        return port_setting(self.values, "FAULT_PROXY_PORT", 0)

    @property
    def airflow_endpoint(self) -> str:
        """The AWS endpoint Airflow is given: the fault proxy when one runs, else the endpoint."""
        return f"http://127.0.0.1:{self.proxy_port}" if self.proxy_port else self.endpoint

    def ports(self) -> dict[str, int]:
        """Every port the stack listens on, by the setting that chooses it."""
        ports = {
            "MOTO_PORT": self.moto_port,
            "AIRFLOW_UI_PORT": self.ui_port,
            WORKER_LOG_PORT_KEY: port_setting(self.values, WORKER_LOG_PORT_KEY, DEFAULT_WORKER_LOG_PORT),
            TRIGGER_LOG_PORT_KEY: port_setting(self.values, TRIGGER_LOG_PORT_KEY, DEFAULT_TRIGGER_LOG_PORT),
        }
        if self.proxy_port:
            ports["FAULT_PROXY_PORT"] = self.proxy_port
        return ports

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ui_port}"

    @property
    def login_user(self) -> str:
        return self.values.get("AIRFLOW_LOGIN_USER", DEFAULT_LOGIN_USER)

    def relative(self, path: Path) -> str:
        """``path`` as the user sees it: relative to the checkout when inside it."""
        try:
            return str(path.relative_to(self.repo_root))
        except ValueError:
            return str(path)

    def process_environment(self, endpoint: str | None = None) -> dict[str, str]:
        """os.environ with the stack's variables on top, and .venv/bin first on PATH."""
        env = {**os.environ, **stack_environment(self.repo_root, endpoint or self.endpoint)}
        venv_bin = str(Path(sys.prefix) / "bin")
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
        return env

    def client(self, service: str) -> Any:
        # Few retries and short timeouts: a stopped stack should say so at once,
        # not after botocore's backoff.
        config = Config(connect_timeout=2, read_timeout=30, retries={"total_max_attempts": 2})
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.settings.region,
            aws_access_key_id=self.values.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=self.values.get("AWS_SECRET_ACCESS_KEY")
            or os.environ.get("AWS_SECRET_ACCESS_KEY"),
            config=config,
        )


def port_setting(values: Mapping[str, str], name: str, default: int) -> int:
    raw = values.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise UsageError(f"{name} must be a port number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise UsageError(f"{name} must be a port number (1-65535), got {port}")
    return port


def make_context(repo_root: Path = REPO_ROOT, *, for_stack: bool = False) -> Context:
    """Resolve settings. The stack itself always serves on 127.0.0.1:MOTO_PORT; the other
    commands honour AWS_ENDPOINT_URL from the environment (tests point it at their own server)."""
    try:
        values = layered_settings(repo_root, os.environ)
    except ValueError as error:
        raise UsageError(f"cannot read {ENV_FILE_NAME}: {error}") from None
    try:
        settings = load_for_parsing({**values, **os.environ})
    except ConfigError as error:
        raise UsageError(str(error)) from None
    local_endpoint = f"http://127.0.0.1:{port_setting(values, 'MOTO_PORT', DEFAULT_MOTO_PORT)}"
    endpoint = local_endpoint if for_stack else os.environ.get("AWS_ENDPOINT_URL") or local_endpoint
    return Context(repo_root=repo_root, values=values, settings=settings, endpoint=endpoint)
