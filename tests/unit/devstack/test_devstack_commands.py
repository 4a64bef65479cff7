"""clean_zone_tools.devstack.commands that need no AWS endpoint (the rest: tests/e2e/devstack)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from clean_zone_tools.devstack.cli import main
from clean_zone_tools.devstack.commands import write_sample_csv


def test_sample_csv_is_well_formed_and_uniquely_named(tmp_path: Path) -> None:
    first = write_sample_csv(tmp_path)
    second = write_sample_csv(tmp_path)

    assert first.name != second.name
    assert first.suffix == ".csv"
    rows = list(csv.reader(first.open(encoding="utf-8")))
    assert len(rows) > 2
    assert {len(row) for row in rows} == {len(rows[0])}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["drop"], "drop: give a FILE or --sample (one of them)"),
        (["drop", "x.csv", "--sample"], "drop: give a FILE or --sample (one of them)"),
        (["drop", "--sample", "--key", "a/b.csv", "--prefix", "c"], "--key and --prefix exclude each other"),
        (["trigger", "some_dag", "--conf", "{nope"], "trigger: --conf is not valid JSON"),
        (["trigger", "some_dag", "--conf", "[1]"], "trigger: --conf must be a JSON object"),
    ],
)
def test_bad_arguments_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert main(["--root", str(tmp_path), *arguments]) == 2
    assert message in capsys.readouterr().err


def test_airflow_commands_need_the_database_start_creates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(tmp_path), "runs", "clean_zone_file_pipeline"]) == 1
    assert "run scripts/dev start once" in capsys.readouterr().err


def test_help_lists_every_stack_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])

    assert exit_info.value.code == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("    ")}
    assert {"start", "stop", "status", "drop", "inbox", "trigger", "runs", "provision"} <= listed


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["launch"])

    assert exit_info.value.code == 2
    assert "invalid choice: 'launch'" in capsys.readouterr().err
