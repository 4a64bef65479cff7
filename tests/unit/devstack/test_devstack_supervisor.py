"""clean_zone_tools.devstack.supervisor: the login password the stack gives Airflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clean_zone.config import load_for_parsing
from clean_zone_tools.devstack.settings import Context, StackError
from clean_zone_tools.devstack.supervisor import command_overrides, ensure_ui_password


def _context(root: Path) -> Context:
    ctx = Context(
        repo_root=root,
        values={"AIRFLOW_LOGIN_USER": "alice"},
        settings=load_for_parsing({}),
        endpoint="http://127.0.0.1:4566",
    )
    ctx.airflow_home.mkdir(parents=True)
    return ctx


def test_the_ui_password_is_generated_once_and_private(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    (ctx.airflow_home / "simple_auth_manager_passwords.json.generated").write_text('{"bob": "kept"}')

    path = ensure_ui_password(ctx)
    first = json.loads(path.read_text())
    ensure_ui_password(ctx)

    assert json.loads(path.read_text()) == first
    assert first["bob"] == "kept"
    assert len(first["alice"]) == 16
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_damaged_password_file_is_reported_not_overwritten(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    damaged = ctx.airflow_home / "simple_auth_manager_passwords.json.generated"
    damaged.write_text("{not json")

    with pytest.raises(StackError, match="is not valid JSON: fix it, or delete it"):
        ensure_ui_password(ctx)
    assert damaged.read_text() == "{not json"


def test_a_command_override_must_name_commands() -> None:
    assert command_overrides('{"triggerer": ["false"]}') == {"triggerer": ["false"]}
    with pytest.raises(StackError, match="is not JSON"):
        command_overrides("{triggerer")
    with pytest.raises(StackError, match="must map component names to commands"):
        command_overrides('{"triggerer": "false"}')
