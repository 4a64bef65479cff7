"""clean_zone_tools.devstack.docker_env (scripts/docker-env): .env from .env.example, in-process.
tests/integrity/test_compose.py runs it as a command against the compose file."""

from __future__ import annotations

from pathlib import Path

import pytest

from clean_zone_tools.devstack.docker_env import GENERATORS, main, render
from clean_zone_tools.envfile import read_env_file

TEMPLATE = """# About this template (left out of .env).

# Secrets
AIRFLOW__CORE__FERNET_KEY=
POSTGRES_PASSWORD=
# Not a secret
COMPOSE_PROJECT_NAME=clean-zone
"""


def test_render_fills_the_gaps_keeps_what_exists_and_extra_settings() -> None:
    text, generated, kept = render(TEMPLATE, {"POSTGRES_PASSWORD": "kept0", "MINE": "1"}, rotate=False)

    assert generated == ["AIRFLOW__CORE__FERNET_KEY"]
    assert kept == ["POSTGRES_PASSWORD", "MINE"]
    assert "About this template" not in text
    assert "POSTGRES_PASSWORD=kept0\n" in text
    assert "COMPOSE_PROJECT_NAME=clean-zone\n" in text
    assert "MINE=1\n" in text


def test_what_it_writes_reads_back_with_the_project_parser(tmp_path: Path) -> None:
    output = tmp_path / ".env"
    template = tmp_path / ".env.example"
    template.write_text(TEMPLATE)

    assert main(["--template", str(template), "--output", str(output)]) == 0

    values = read_env_file(output)
    assert set(values) == {"AIRFLOW__CORE__FERNET_KEY", "POSTGRES_PASSWORD", "COMPOSE_PROJECT_NAME"}
    assert all(values.values())
    assert set(GENERATORS) >= {"AIRFLOW__CORE__FERNET_KEY", "POSTGRES_PASSWORD"}


def test_a_damaged_env_file_is_reported_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / ".env"
    output.write_text("POSTGRES_PASSWORD\n")
    template = tmp_path / ".env.example"
    template.write_text(TEMPLATE)

    assert main(["--template", str(template), "--output", str(output)]) == 1

    assert ".env:1: expected KEY=VALUE" in capsys.readouterr().err
    assert output.read_text() == "POSTGRES_PASSWORD\n"


def test_the_jwt_secret_is_long_enough_for_hs512() -> None:
    # PyJWT warns about HS512 keys shorter than 64 bytes; Airflow signs its API tokens with HS512.
    from clean_zone_tools.devstack.docker_env import GENERATORS

    secret = GENERATORS["AIRFLOW__API_AUTH__JWT_SECRET"]()
    assert len(secret.encode()) >= 64
