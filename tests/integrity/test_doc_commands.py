"""Every command README.md and docs/*.md show works as written (issue #13).

* This project's commands (scripts/*, ``python -m clean_zone_tools...``, the clean-zone-* console
  scripts): the program exists and its own argument parser accepts exactly the arguments shown.
  Nothing runs: :func:`clean_zone_tools.checks.doc_commands.capture_parser` stops the program's
  ``main`` when it asks its parser to parse. ``scripts/dev test ARGS`` is checked by pytest itself.
* Other programs (docker, aws, curl, ...) are on an allow-list below, each with the reason it does not
  run here; Airflow command lines are parsed by Airflow's own CLI parser, and a triggered DAG run must
  name a DAG of dags/ with a conf its params accept. A command on neither list fails, with the
  document and line, so a new doc cannot slip past.
* ``--help`` of every program, and of each subcommand, exits 0 and prints its usage.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import ParamValidationError

from clean_zone_tools.checks import doc_commands
from clean_zone_tools.checks.doc_commands import DocCommand, Resolved

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# Programs the test does not run, and why. Each entry must be used by some document (checked below).
NOT_RUN_HERE = {
    "docker": "needs a Docker engine; tests/integrity/test_compose.py checks the compose stack statically",
    "aws": "the AWS CLI is not a dependency, and it needs an account or a running endpoint",
    "curl": "talks to a running stack's fault proxy (tests/e2e/faults/test_fault_proxy.py drives its API)",
    "grep": "reads .env, which only exists after scripts/docker-env",
    "export": "a shell builtin: sets variables for the lines after it",
}
# Airflow command lines are parsed by Airflow's own parser, but none of them runs here: they need a
# metadata database, a running stack or a container.
AIRFLOW = "airflow"

# Documented commands that a test really runs (program [subcommand] -> test id in tests/).
EXERCISED_BY = {
    "scripts/dev start": (
        "tests/stack/test_stack_healing.py::test_killed_components_restart_and_no_data_is_lost"
    ),
    "scripts/dev drop": "tests/e2e/devstack/test_devstack_cli.py::test_drop_sample_uploads_a_generated_csv",
    "scripts/dev inbox": (
        "tests/e2e/devstack/test_devstack_cli.py::test_inbox_prints_an_alert_then_leaves_the_queue_empty"
    ),
    "scripts/dev reset": (
        "tests/stack/test_stack_healing.py::test_reset_of_a_running_stack_wipes_data_and_runs_together"
    ),
    "scripts/deploy": "tests/e2e/deploy/test_deploy_user_loop.py::test_plan_deploy_change_rollback",
    "scripts/deploy rollback": "tests/e2e/deploy/test_deploy_user_loop.py::test_plan_deploy_change_rollback",
    "python -m clean_zone_tools.faults.suite": "tests/stack/test_fault_suite.py::test_scenario_holds",
    "python -m clean_zone_tools.checks.compose": "tests/integrity/test_compose.py::test_repository_passes",
    "python -m clean_zone_tools.checks.dag_integrity": (
        "tests/integrity/test_dags.py::test_whole_gate_reports_no_problems"
    ),
}

COMMANDS = doc_commands.documented_commands(REPO)
FENCED = [command for command in COMMANDS if not command.inline]
OWN = [command for command in COMMANDS if doc_commands.program_name(command.argv)]


def _airflow_args(argv: tuple[str, ...]) -> list[str] | None:
    """The arguments of the ``airflow`` command inside ``argv`` (also behind docker compose exec)."""
    for index, word in enumerate(argv):
        if word == AIRFLOW or word.endswith(f"/bin/{AIRFLOW}"):
            return list(argv[index + 1 :])
    return None


def _ids(commands: list[DocCommand]) -> list[str]:
    return [f"{command.where}:{' '.join(command.argv)[:60]}" for command in commands]


# --- extraction --------------------------------------------------------------------------------------


def test_the_docs_show_commands() -> None:
    """The extraction finds the blocks: a parser that silently found nothing would pass everything."""
    assert len(FENCED) >= 40
    assert {command.doc for command in FENCED} >= {"README.md", "docs/deploy.md", "docs/docker.md"}


def test_extraction_handles_prompts_continuations_comments_and_environment(tmp_path: Path) -> None:
    doc = tmp_path / "docs" / "x.md"
    doc.parent.mkdir()
    doc.write_text(
        "```console\n$ A=1 B='two words' scripts/dev start --timeout 5   # why\noutput line\n"
        "$ scripts/deploy --plan \\\n    --bucket b\n```\n"
        "```bash\n# a comment\naws s3 ls \\\n  s3://b; curl x | tr a b\n```\n"
        "```text\nscripts/dev nonsense\n```\n"
        "Inline: `scripts/dev trigger DAG_ID` and `not a command`.\n",
        encoding="utf-8",
    )
    found = doc_commands.fenced_commands(doc, tmp_path)
    assert [(command.line, command.argv) for command in found] == [
        (2, ("scripts/dev", "start", "--timeout", "5")),
        (4, ("scripts/deploy", "--plan", "--bucket", "b")),
        (9, ("aws", "s3", "ls", "s3://b")),
        (9, ("curl", "x")),
        (9, ("tr", "a", "b")),
    ]
    assert found[0].env == (("A", "1"), ("B", "two words"))
    inline = doc_commands.inline_commands(doc, tmp_path)
    assert [(command.line, command.argv) for command in inline] == [
        (15, ("scripts/dev", "trigger", "DAG_ID"))
    ]
    assert doc_commands.has_placeholder(inline[0])


# --- every command is recognised ---------------------------------------------------------------------


@pytest.mark.parametrize("command", FENCED, ids=_ids(FENCED))
def test_every_command_is_ours_or_known(command: DocCommand) -> None:
    """Ours (checked below), the test runner (pytest checks its arguments), Airflow, or allow-listed."""
    if doc_commands.program_name(command.argv) is not None:
        return None
    pytest_args = _pytest_args(command.argv)
    if pytest_args is not None:
        return _check_pytest_accepts(pytest_args, command)
    program = Path(command.argv[0]).name
    assert program in NOT_RUN_HERE or program == AIRFLOW, (
        f"{command}: `{command.argv[0]}` is neither one of this project's programs nor on the allow-list "
        "in tests/integrity/test_doc_commands.py (add it there with the reason it does not run here)"
    )


def test_every_allow_list_entry_is_used() -> None:
    assert set(NOT_RUN_HERE) - {Path(command.argv[0]).name for command in FENCED} == set()


# --- this project's commands parse -------------------------------------------------------------------


def _pytest_args(argv: tuple[str, ...]) -> list[str] | None:
    """The arguments of ``python -m pytest ...`` (the project's test runner), else None."""
    if Path(argv[0]).name in doc_commands.PYTHONS and argv[1:3] == ("-m", "pytest"):
        return list(argv[3:])
    return None


def _check_pytest_accepts(args: list[str], command: DocCommand) -> None:
    if args:  # none at all is the default run, nothing to check
        problem = _pytest_refuses(tuple(args))
        assert problem is None, f"{command}: pytest refuses the arguments: {problem}"


@cache
def _pytest_refuses(args: tuple[str, ...]) -> str | None:
    """pytest parses ``args`` (loading the conftests of the paths they name, which add options) and
    collects nothing (``--ignore-glob '*'``): exit 4 is a usage error, 5 "no tests" is a pass. --help
    would not do: pytest prints it without checking the other arguments."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--collect-only", "-q", "--ignore-glob", "*"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return None if result.returncode in (0, 5) else f"exit {result.returncode}\n{result.stderr[-2000:]}"


def _check_shell_command(resolved: Resolved, command: DocCommand) -> None:
    if resolved.shell_command == "test":
        _check_pytest_accepts(resolved.args, command)
    else:
        assert resolved.args in ([], ["--help"], ["-h"]), f"{command}: {resolved.program} takes no arguments"


@pytest.mark.parametrize("command", OWN, ids=_ids(OWN))
def test_our_command_parses_as_written(command: DocCommand) -> None:
    program = doc_commands.program_name(command.argv)
    assert program is not None
    if doc_commands.PLACEHOLDER.search(program):  # `python -m clean_zone_tools.benchmarks.<name>`
        return None
    _check_exists(program, command)
    resolved = doc_commands.resolve(program, doc_commands.program_args(command.argv))
    if resolved.shell_command is not None:
        return _check_shell_command(resolved, command) if not doc_commands.has_placeholder(command) else None
    if command.inline:
        # Prose names a command without all it needs (a target, a DAG id): check the words it gives.
        problems = doc_commands.reference_problems(resolved)
        assert not problems, f"{command}: {'; '.join(problems)}"
        return None
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            doc_commands.parse_documented(resolved)
    except SystemExit as exit_:
        if not (resolved.args[-1:] == ["--help"] and exit_.code == 0):
            pytest.fail(
                f"{command}: the program refuses these arguments (exit {exit_.code}):\n{stderr.getvalue()}"
            )
    return None


def _check_exists(program: str, command: DocCommand) -> None:
    if program.startswith("scripts/"):
        assert os.access(REPO / program, os.X_OK), f"{command}: {program} is missing or not executable"
    elif program.startswith("python -m "):
        assert callable(doc_commands.module_main(program.removeprefix("python -m "))), str(command)
    else:
        assert program in doc_commands.console_scripts(REPO), str(command)


# --- DAG runs the docs trigger -----------------------------------------------------------------------


@cache
def _dag_params() -> dict[str, Any]:
    from clean_zone_tools.checks.dag_integrity import load_folder

    return {dag_id: dag.params for dag_id, dag in load_folder(REPO / "dags").dags.items()}


def _validate_run(params: Any, conf: dict[str, Any]) -> None:
    """What Airflow does when a run is triggered with ``conf``: the DAG's params, updated, validated."""
    run_params = copy.deepcopy(params)
    run_params.update(conf)
    run_params.validate()


def _triggered_runs() -> list[tuple[DocCommand, str, str | None]]:
    """(command, DAG id, conf) for every documented `airflow dags trigger` and `scripts/dev trigger`."""
    runs = []
    for command in COMMANDS:
        if doc_commands.has_placeholder(command):
            continue
        airflow = _airflow_args(command.argv)
        if airflow is not None and airflow[:2] == ["dags", "trigger"] and len(airflow) > 2:
            namespace = _parse_airflow(airflow, command)
            runs.append((command, namespace.dag_id, namespace.conf))
        elif doc_commands.program_name(command.argv) == "scripts/dev" and command.argv[1:2] == ("trigger",):
            args = doc_commands.program_args(command.argv)
            if len(args) > 1:  # `scripts/dev trigger` alone is prose naming the command
                namespace = doc_commands.parse_documented(doc_commands.resolve("scripts/dev", args))
                runs.append((command, namespace.dag_id, namespace.conf))
    return runs


def _parse_airflow(args: list[str], command: DocCommand) -> argparse.Namespace:
    from airflow.cli.cli_parser import get_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()) as stderr:
            return get_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{command}: Airflow's CLI refuses it:\n{stderr.getvalue()}")


def test_the_docs_trigger_runs() -> None:
    assert _triggered_runs(), "no `airflow dags trigger` / `scripts/dev trigger` line found in the docs"


@pytest.mark.parametrize("command, dag_id, conf", _triggered_runs(), ids=lambda value: str(value)[:50])
def test_a_triggered_run_names_a_dag_and_a_conf_its_params_accept(
    command: DocCommand, dag_id: str, conf: str | None
) -> None:
    params = _dag_params()
    assert dag_id in params, f"{command}: no DAG {dag_id!r} in dags/ (there are {sorted(params)})"
    try:
        _validate_run(params[dag_id], json.loads(conf) if conf else {})
    except Exception as problem:
        pytest.fail(f"{command}: Airflow would refuse this run: {problem}")


def test_a_run_without_the_required_key_is_caught() -> None:
    """The check above can fail: the file pipeline refuses a run without a key."""
    with pytest.raises(ParamValidationError, match="key"):
        _validate_run(_dag_params()["clean_zone_file_pipeline"], {"bucket": "clean-zone"})


@pytest.mark.parametrize(
    "command",
    [command for command in FENCED if _airflow_args(command.argv) is not None],
    ids=lambda command: command.where,
)
def test_airflow_command_lines_parse(command: DocCommand) -> None:
    args = _airflow_args(command.argv)
    assert args is not None
    _parse_airflow(args, command)


# --- a wrong doc is caught ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("scripts/deploy", "--environment"),  # an option without its value
        ("scripts/deploy", "--plan"),  # no target: the program's own usage rule
        ("scripts/dev", "start", "--no-such-option"),
        ("scripts/dev", "drop", "a", "b"),
        (".venv/bin/python", "-m", "clean_zone_tools.faults.suite", "--scenarios", "x"),
        ("clean-zone-manifest", "--algorithm", "CRC7"),
    ],
)
def test_arguments_the_program_refuses_are_reported(argv: tuple[str, ...]) -> None:
    program = doc_commands.program_name(argv)
    assert program is not None
    resolved = doc_commands.resolve(program, doc_commands.program_args(argv))
    with (
        pytest.raises(SystemExit) as exit_,
        contextlib.redirect_stderr(io.StringIO()),
    ):
        doc_commands.parse_documented(resolved)
    assert exit_.value.code == 2


def test_a_program_that_does_not_exist_is_not_ours() -> None:
    assert doc_commands.program_name(("scripts/dag_checks.py",)) is None
    assert doc_commands.program_name((".venv/bin/python", "scripts/dag_checks.py")) is None


# --- --help everywhere -------------------------------------------------------------------------------

# Each program as a user starts it (shell wrapper, console script, python -m), and its usage line.
HELP_COMMANDS = [
    ["scripts/dev", "--help"],
    ["scripts/dev", "setup", "--help"],
    ["scripts/dev", "test", "--help"],
    ["scripts/dev", "lint", "--help"],
    ["scripts/deploy", "--help"],
    ["scripts/docker-env", "--help"],
    ["scripts/install-browser", "--help"],
    ["scripts/bootstrap.sh", "--help"],
    *[[str(VENV_BIN / name), "--help"] for name in doc_commands.console_scripts(REPO)],
]
# Every module with a command line: python -m MODULE --help.
MODULES = sorted(
    {
        ".".join(path.relative_to(REPO / "src").with_suffix("").parts).removesuffix(".__main__")
        for path in (REPO / "src" / "clean_zone_tools").rglob("*.py")
        if "def main(" in path.read_text(encoding="utf-8") or path.name == "__main__.py"
    }
    - {"clean_zone_tools.devstack.cli", "clean_zone_tools.mwaa_deploy.cli"}  # run through their packages
)


@pytest.mark.parametrize("argv", HELP_COMMANDS, ids=lambda argv: " ".join([Path(argv[0]).name, *argv[1:]]))
def test_program_help_exits_0_with_usage(argv: list[str]) -> None:
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, f"{' '.join(argv)}: exit {result.returncode}\n{result.stderr[-2000:]}"
    assert "usage" in result.stdout.lower(), f"{' '.join(argv)} prints no usage:\n{result.stdout[:500]}"


@pytest.mark.parametrize("module", MODULES)
def test_module_help_exits_0_with_usage(module: str) -> None:
    """In-process, through the same main ``python -m`` runs (one subprocess per module would be slow)."""
    main = doc_commands.module_main(module)
    stdout = io.StringIO()
    with pytest.raises(SystemExit) as exit_, contextlib.redirect_stdout(stdout):
        captured = doc_commands.capture_parser(main, ["--help"])
        captured.parser.parse_args(captured.args)
    assert exit_.value.code == 0
    assert stdout.getvalue().startswith("usage: ")
    assert "__main__" not in stdout.getvalue().splitlines()[0], "set the parser's prog to the real command"


SUBCOMMANDS = [
    (program, name)
    for program in ("scripts/dev", "scripts/deploy")
    for name in doc_commands.capture_parser(doc_commands.resolve(program, []).main, ["x"]).subcommands
]


@pytest.mark.parametrize("program, subcommand", SUBCOMMANDS)
def test_subcommand_help_exits_0_with_usage(program: str, subcommand: str) -> None:
    resolved = doc_commands.resolve(program, [subcommand, "--help"])
    stdout = io.StringIO()
    with pytest.raises(SystemExit) as exit_, contextlib.redirect_stdout(stdout):
        doc_commands.parse_documented(resolved)
    assert exit_.value.code == 0
    assert stdout.getvalue().startswith(f"usage: {program} {subcommand}")


def test_every_module_main_is_covered() -> None:
    assert "clean_zone_tools.benchmarks.bench_parse" in MODULES
    assert "clean_zone_tools.devstack" in MODULES
    assert len(SUBCOMMANDS) >= 14


# --- commands that a test really runs ----------------------------------------------------------------


@pytest.mark.parametrize("label, test_id", sorted(EXERCISED_BY.items()))
def test_exercised_by_names_a_real_test_of_a_documented_command(label: str, test_id: str) -> None:
    path, _, function = test_id.partition("::")
    assert f"def {function}(" in (REPO / path).read_text(encoding="utf-8"), f"{test_id} does not exist"
    documented = {
        " ".join(
            [doc_commands.program_name(command.argv) or "", *doc_commands.program_args(command.argv)[:1]]
        )
        for command in OWN
    } | {doc_commands.program_name(command.argv) for command in OWN}
    assert label in documented, f"{label} is not a documented command"
