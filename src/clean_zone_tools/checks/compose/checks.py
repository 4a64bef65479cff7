"""The compose checks: each takes a :class:`~.parsing.Stack` and returns its problems (empty: all well).

The sources of truth are the no-Docker path's own files and code: requirements-mwaa-base.txt (Airflow
version), constraints/ (Python version and pins), requirements.txt, requirements-dev.txt (moto),
local.env (ports, login, Variables, connection id), the provisioning script, scripts/bootstrap.sh and
the no-Docker stack's settings (:func:`clean_zone_tools.devstack.settings.stack_environment`).
:func:`run_checks` runs them all; :data:`CHECKS` lists them in order.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from clean_zone_tools.devstack.settings import stack_environment
from clean_zone_tools.envfile import read_env_file

from .image import (
    check_celery_provider,
    check_constraint_stripping,
    check_requirements_install,
    check_versions,
)
from .parsing import (
    AIRFLOW_HOME,
    AIRFLOW_SERVICES,
    API_SERVER_DEFAULT_PORT,
    API_SERVICE,
    BACKING_SERVICES,
    COMPOSE_FILE,
    DIFFERENT_BY_DESIGN,
    DOCKERFILE,
    ENDPOINT_MODULE,
    ENDPOINT_SOURCE,
    ENTRYPOINT_FILE,
    ENV_EXAMPLE,
    INIT_SERVICE,
    INTERPOLATION,
    LOCAL_ENV,
    MOTO_SERVICE,
    MWAA_MOUNTS,
    PROVISION_MODULE,
    PROVISION_SOURCE,
    SECRET_NAME,
    SECRETS,
    URL_PASSWORD,
    WORKER_SERVICE,
    Stack,
    StackFileError,
    command_text,
    command_words,
    copy_sources,
    depends_on,
    docker_ignored,
    dockerignore,
    env_files,
    environment,
    find_cycle,
    has_healthcheck,
    image_tag,
    mounts,
    option_value,
    port_host_addresses,
    published_ports,
    read,
)


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
            return [f"clean_zone_tools.devstack.settings: cannot compute the no-Docker settings: {error}"]
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


def check_loopback_ports(stack: Stack) -> list[str]:
    """Every published port binds 127.0.0.1 only, as the no-Docker stack listens: the UI's
    dev-only auth manager and moto's credential-less API must not be reachable from the network."""
    problems: list[str] = []
    for name, service in sorted(stack.services.items()):
        for address, port in port_host_addresses(service):
            if address != "127.0.0.1":
                problems.append(
                    f"{name}: port {port} is published on {address or 'every interface'}; "
                    "write it as 127.0.0.1:HOST:CONTAINER"
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


def check_endpoint(stack: Stack) -> list[str]:
    """moto runs the no-Docker stack's durable endpoint, its state in a named volume.

    Plain moto lets racing conditional puts (If-None-Match: *) all win and forgets everything on a
    restart; the endpoint applies puts one at a time, as S3 does, and keeps its state in a folder.
    """
    problems: list[str] = []
    moto = stack.service(MOTO_SERVICE)
    words = command_words(moto)
    run = f"python -m {ENDPOINT_MODULE}"
    if not (stack.root / ENDPOINT_SOURCE).is_file():
        problems.append(f"{ENDPOINT_SOURCE} does not exist (the {MOTO_SERVICE} service runs it)")
    if not any(words[i : i + 3] == ["python", "-m", ENDPOINT_MODULE] for i in range(len(words))):
        problems.append(
            f"{MOTO_SERVICE}: must run `{run}` (the no-Docker stack's endpoint: atomic conditional puts, "
            f"state kept across restarts); it runs {shlex.join(words) or 'the image default'}"
        )
        return problems
    host = option_value(words, "--host")
    if host != "0.0.0.0":  # noqa: S104 (inside the container; the host publishes it on 127.0.0.1)
        shown = host or "127.0.0.1 (the default)"
        problems.append(
            f"{MOTO_SERVICE}: the endpoint must listen on 0.0.0.0 in its container (--host), not {shown}: "
            "the other services could not reach it"
        )
    moto_port = stack.local_env.get("MOTO_PORT", "")
    port = option_value(words, "--port")
    if port != moto_port:
        problems.append(
            f"{MOTO_SERVICE}: --port is {port!r}, expected {moto_port} (MOTO_PORT in {LOCAL_ENV})"
        )
    state_dir = option_value(words, "--state-dir")
    if not state_dir:
        problems.append(f"{MOTO_SERVICE}: the endpoint needs --state-dir")
        return problems
    source = mounts(moto).get(state_dir.rstrip("/"), "")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", source) or source not in (
        stack.compose.get("volumes") or {}
    ):
        problems.append(
            f"{MOTO_SERVICE}: the endpoint's --state-dir {state_dir} must be a named volume "
            "(its data then survives `docker compose restart` and `down`)"
        )
    if not any(
        word == "RUN" and "mkdir" in args and state_dir.rstrip("/") in args.split()
        for word, args in stack.dockerfile
    ):
        problems.append(
            f"{DOCKERFILE}: does not create {state_dir}: a new volume there would be root's, "
            "and the endpoint (user airflow) could not write its state"
        )
    if moto.get("restart") != "always":
        problems.append(f"{MOTO_SERVICE}: restart must be always (the endpoint restores its state)")
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
    check_celery_provider,
    check_constraint_stripping,
    check_mwaa_layout,
    check_shared_settings,
    check_no_docker_agreement,
    check_ports,
    check_loopback_ports,
    check_provisioning,
    check_endpoint,
    check_startup_order,
    check_executor,
    check_secrets,
)


def run_checks(root: Path) -> dict[str, list[str]]:
    """Every check on the checkout at ``root``: check name -> problems."""
    try:
        stack = Stack.load(root)
    except StackFileError as error:
        return {"load": [str(error)]}
    results: dict[str, list[str]] = {}
    for check in CHECKS:
        try:
            results[check.__name__] = check(stack)
        except StackFileError as error:
            results[check.__name__] = [str(error)]
    return results
