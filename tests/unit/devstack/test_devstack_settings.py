"""clean_zone_tools.devstack.settings: local.env under the environment, and what the stack gives Airflow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from airflow.models.connection import Connection

from clean_zone.config import load_for_parsing
from clean_zone_tools.devstack.settings import (
    Context,
    UsageError,
    layered_settings,
    make_context,
    stack_environment,
)


def _checkout(tmp_path: Path, local_env: str) -> Path:
    (tmp_path / "local.env").write_text(local_env)
    return tmp_path


def test_stack_environment_puts_the_endpoint_in_the_configured_connection(tmp_path: Path) -> None:
    root = _checkout(
        tmp_path,
        "AIRFLOW_VAR_CLEAN_ZONE_AWS_CONN_ID=local_aws\nAIRFLOW_VAR_CLEAN_ZONE_REGION=eu-west-1\n",
    )

    env = stack_environment(root, "http://127.0.0.1:4999", environ={})

    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999"
    assert "AIRFLOW_CONN_AWS_DEFAULT" not in env
    assert json.loads(env["AIRFLOW_CONN_LOCAL_AWS"]) == {
        "conn_type": "aws",
        "extra": {"endpoint_url": "http://127.0.0.1:4999", "region_name": "eu-west-1"},
    }
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_stack_environment_lets_the_environment_override_local_env(tmp_path: Path) -> None:
    root = _checkout(
        tmp_path, "AIRFLOW_VAR_CLEAN_ZONE_BUCKET=from-file\nAIRFLOW_UI_PORT=8080\nAIRFLOW_LOGIN_USER=admin\n"
    )
    environ = {
        "AIRFLOW_VAR_CLEAN_ZONE_BUCKET": "from-environment",
        "AIRFLOW_UI_PORT": "8181",
        "AIRFLOW_LOGIN_USER": "alice",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "UNRELATED": "x",
    }

    env = stack_environment(root, "http://127.0.0.1:4566", environ=environ)

    assert env["AIRFLOW_VAR_CLEAN_ZONE_BUCKET"] == "from-environment"
    assert env["AIRFLOW__API__PORT"] == "8181"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8181/execution/"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "alice:admin"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    # Only the stack's own keys: callers lay them over os.environ themselves.
    assert "UNRELATED" not in env


def test_stack_environment_reads_the_ports_from_the_environment_without_local_env(tmp_path: Path) -> None:
    env = stack_environment(tmp_path, "http://127.0.0.1:4566", environ={"AIRFLOW_UI_PORT": "8282"})

    assert env["AIRFLOW__API__PORT"] == "8282"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"


def test_stack_environment_keeps_airflow_state_inside_the_checkout(tmp_path: Path) -> None:
    root = _checkout(tmp_path, "")

    env = stack_environment(root, "http://127.0.0.1:4566", environ={})

    home = tmp_path / ".state" / "airflow"
    assert env["AIRFLOW_HOME"] == str(home)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(tmp_path / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(str(home))
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"


def test_the_connection_is_one_airflow_reads(tmp_path: Path) -> None:
    env = stack_environment(_checkout(tmp_path, ""), "http://127.0.0.1:4566", environ={})

    connection = Connection.from_json(env["AIRFLOW_CONN_AWS_DEFAULT"], conn_id="aws_default")
    assert connection.conn_type == "aws"
    assert connection.extra_dejson["endpoint_url"] == "http://127.0.0.1:4566"


def test_the_stack_serves_on_moto_port_while_other_commands_follow_aws_endpoint_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _checkout(tmp_path, "MOTO_PORT=4999\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5111")
    monkeypatch.delenv("MOTO_PORT", raising=False)

    assert make_context(root).endpoint == "http://127.0.0.1:5111"
    assert make_context(root, for_stack=True).endpoint == "http://127.0.0.1:4999"


@pytest.mark.parametrize(
    ("value", "message"),
    [("http", "MOTO_PORT must be a port number, got 'http'"),
     ("70000", "MOTO_PORT must be a port number (1-65535), got 70000")],
)
def test_a_bad_port_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("MOTO_PORT", value)

    with pytest.raises(UsageError, match=re.escape(message)):
        make_context(_checkout(tmp_path, ""))


def test_a_bad_local_env_line_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read local\.env: .*local\.env:1: expected KEY=VALUE"):
        make_context(_checkout(tmp_path, "not a setting\n"))


def test_paths_are_shown_relative_to_the_checkout(tmp_path: Path) -> None:
    ctx = Context(tmp_path, {}, load_for_parsing({}), "http://127.0.0.1:4566")

    assert ctx.relative(ctx.logs / "moto.log") == ".state/logs/moto.log"
    assert ctx.relative(Path("/elsewhere/x.log")) == "/elsewhere/x.log"


def test_the_state_folder_and_every_port_are_settings(tmp_path: Path) -> None:
    environ = {
        "CLEAN_ZONE_STATE_DIR": str(tmp_path / "elsewhere"),
        "MOTO_PORT": "5001", "AIRFLOW_UI_PORT": "5002", "FAULT_PROXY_PORT": "5003",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "5004",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "5005",
    }
    root = _checkout(tmp_path, "")
    values = layered_settings(root, environ)
    ctx = Context(root, values, load_for_parsing({}), "http://127.0.0.1:5001")

    assert ctx.state == tmp_path / "elsewhere"
    assert ctx.endpoint_state == tmp_path / "elsewhere" / "endpoint"
    assert sorted(ctx.ports().values()) == [5001, 5002, 5003, 5004, 5005]
    assert ctx.airflow_endpoint == "http://127.0.0.1:5003"
    env = stack_environment(root, ctx.airflow_endpoint, environ=environ)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "elsewhere" / "airflow")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5003"
    assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == "5005"


def test_without_a_fault_proxy_airflow_talks_to_the_endpoint(tmp_path: Path) -> None:
    ctx = Context(tmp_path, {"MOTO_PORT": "5001"}, load_for_parsing({}), "http://127.0.0.1:5001")

    assert ctx.proxy_port is None
    assert ctx.airflow_endpoint == "http://127.0.0.1:5001"
    assert ctx.state == tmp_path / ".state"
