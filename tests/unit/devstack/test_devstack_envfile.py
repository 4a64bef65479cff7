"""clean_zone_tools.envfile: the one parser of local.env, .env and .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest

from clean_zone_tools.envfile import read_env_file

REPO = Path(__file__).resolve().parents[3]


def test_read_env_file_reads_values_comments_quotes_and_export(tmp_path: Path) -> None:
    env_file = tmp_path / "local.env"
    env_file.write_text(
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "  SPACED = padded  \n"
        "export EXPORTED=yes\n"
        'DOUBLE="with # hash and spaces"\n'
        "SINGLE='single'\n"
        "INLINE=value # trailing comment\n"
        "HASH_IN_VALUE=a#b\n"
        "EQUALS=a=b=c\n"
        "EMPTY=\n"
    )

    assert read_env_file(env_file) == {
        "PLAIN": "value",
        "SPACED": "padded",
        "EXPORTED": "yes",
        "DOUBLE": "with # hash and spaces",
        "SINGLE": "single",
        "INLINE": "value",
        "HASH_IN_VALUE": "a#b",
        "EQUALS": "a=b=c",
        "EMPTY": "",
    }


@pytest.mark.parametrize("line", ["NO_EQUALS_SIGN", "BAD-KEY=1", "=value", "1ABC=2"])
def test_read_env_file_names_the_file_and_line_of_a_bad_line(tmp_path: Path, line: str) -> None:
    env_file = tmp_path / "local.env"
    env_file.write_text(f"GOOD=1\n{line}\n")

    with pytest.raises(ValueError, match=r"local\.env:2: expected KEY=VALUE"):
        read_env_file(env_file)


def test_the_repository_local_env_is_readable_and_names_the_ports() -> None:
    values = read_env_file(REPO / "local.env")

    assert values["MOTO_PORT"].isdigit()
    assert values["AIRFLOW_UI_PORT"].isdigit()


def test_the_repository_env_example_is_readable_and_lists_the_secrets_empty() -> None:
    values = read_env_file(REPO / ".env.example")

    assert "AIRFLOW__CORE__FERNET_KEY" in values
    assert values["AIRFLOW__CORE__FERNET_KEY"] == ""
