"""The loop a new user runs, through the command line: ``deploy --plan``, ``deploy``, a change,
``deploy`` again, ``rollback``, ``status``. AWS is reached the standard way (AWS_ENDPOINT_URL and
credentials in the environment, set by tests/conftest.py's ``aws_env``) against the moto server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REPO, body, keys, make_bucket

from clean_zone_tools.mwaa_deploy import cli
from clean_zone_tools.mwaa_deploy.project import ProjectLayout

pytestmark = pytest.mark.e2e


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_plan_deploy_change_rollback(
    aws_env: str,
    s3: Any,
    project: ProjectLayout,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "loop-test-secret-0123456789abcdefghijklmnop"  # noqa: S105 - fake; must never be printed
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto takes any; it must never be printed
    bucket = make_bucket(s3)
    common = ["--bucket", bucket, "--project-root", str(project.root), "--skip-resolve"]
    printed: list[str] = []

    def run(*args: str) -> tuple[int, str]:
        code, out = run_cli(capsys, *args)
        printed.append(out)
        return code, out

    code, out = run("--plan", *common)
    assert code == 0, out
    assert "  ok    DAG integrity" in out
    assert "    + dags/hello.py  (new)" in out
    assert "  plugins.zip: upload (new)" in out
    assert "Plan only: nothing was changed." in out
    assert keys(s3, bucket) == set()

    code, out = run(*common)
    assert code == 0, out
    assert "Deployed " in out
    assert body(s3, bucket, "dags/hello.py") == (project.dags_dir / "hello.py").read_bytes()

    code, out = run(*common)
    assert code == 0, out
    assert "Nothing to deploy" in out

    hello = project.dags_dir / "hello.py"
    original = hello.read_bytes()
    hello.write_text(hello.read_text().replace('"Says hello', '"Says hello politely'))
    code, out = run(*common)
    assert code == 0, out
    assert "    ~ dags/hello.py  (changed)" in out
    assert "1 uploaded, 0 deleted" in out

    code, out = run("rollback", "--bucket", bucket, "--project-root", str(project.root))
    assert code == 0, out
    assert "    < dags/hello.py" in out
    assert body(s3, bucket, "dags/hello.py") == original

    code, out = run("status", "--bucket", bucket, "--project-root", str(project.root))
    assert code == 0, out
    assert "(rollback," in out and "history (newest last, 3 in all)" in out
    assert not any(secret in out for out in printed)


def test_a_failing_preflight_refuses_to_deploy_and_lists_every_problem(
    aws_env: str, s3: Any, project: ProjectLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = make_bucket(s3)
    (project.dags_dir / "broken.py").write_text(
        "from airflow.sdk import DAG\nimport module_that_is_not_there\n"
    )
    key_id = "AKIA" + "Q7X2" * 4  # built here so no scanner flags this test file
    (project.dags_dir / "helpers" / "settings.py").write_text(f'AWS_KEY = "{key_id}"\n')

    code, out = run_cli(capsys, "--bucket", bucket, "--project-root", str(project.root), "--skip-resolve")

    assert code == 1
    assert "Refusing to deploy: preflight found 2 problem(s)" in out
    assert "broken.py: import error" in out
    assert "helpers/settings.py:1: AWS access key id" in out
    assert key_id not in out
    assert keys(s3, bucket) == set()


def test_usage_errors_exit_2_before_any_work(
    capsys: pytest.CaptureFixture[str], project: ProjectLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MWAA_ENVIRONMENT", raising=False)
    monkeypatch.delenv("MWAA_BUCKET", raising=False)
    root = ["--project-root", str(project.root)]

    # Each command takes only its own options (scripts/deploy status --help lists them).
    with pytest.raises(SystemExit) as rejected:
        cli.main(["status", "--bucket", "b", "--to", "x", *root])
    assert rejected.value.code == 2 and "unrecognized arguments: --to x" in capsys.readouterr().err
    code, out = run_cli(capsys, "--bucket", "b", "--parse-budget", "0", *root)
    assert code == 2 and "must be positive" in out
    code, out = run_cli(capsys, "--plan", *root)
    assert code == 2 and "no target: give --environment" in out
    assert "Preflight" not in out


def test_the_shim_runs_with_the_venv_and_the_standard_credential_chain(
    s3: Any, moto_endpoint: str, project: ProjectLayout
) -> None:
    bucket = make_bucket(s3)
    secret = "shim-test-secret-0123456789abcdefghijklmnopq"  # noqa: S105 - fake; must never be printed
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [str(REPO / "scripts" / "deploy"), "status", "--bucket", bucket, "--project-root", str(project.root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"s3://{bucket} (DAG prefix dags/)" in result.stdout
    assert "no deployment recorded yet" in result.stdout
    assert secret not in result.stdout + result.stderr


def test_the_shim_without_a_venv_says_how_to_create_one(tmp_path: Path) -> None:
    scripts = tmp_path / "checkout" / "scripts"
    scripts.mkdir(parents=True)
    shim = scripts / "deploy"
    shim.write_bytes((REPO / "scripts" / "deploy").read_bytes())
    shim.chmod(0o755)

    result = subprocess.run([str(shim), "--help"], capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode == 2
    assert "scripts/dev setup" in result.stderr


def test_help_lists_the_commands_and_flags() -> None:
    # Through the thin entry point a user types, which runs the installed package (no PYTHONPATH).
    def help_of(*command: str) -> str:
        result = subprocess.run(
            [str(REPO / "scripts" / "deploy"), *command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    overview = help_of()
    for word in ("apply", "plan", "rollback", "status", "preflight", "COMMAND --help"):
        assert word in overview
    apply = help_of("apply")
    for word in ("--plan", "--no-update", "--environment", "--bucket", "--dags-prefix", "--skip-resolve"):
        assert word in apply
