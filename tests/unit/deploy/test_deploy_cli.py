"""The command line's own behaviour: per-command help with defaults, usage errors, and errors reported
in a user's terms (no traceback, no usage banner for things that are not usage mistakes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clean_zone_tools.mwaa_deploy import cli, sync

REPO = Path(__file__).resolve().parents[3]


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_each_command_has_its_own_help_with_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    # Defect 10: `scripts/deploy status --help` printed the global help, without defaults.
    status = help_of(capsys, "status")
    rollback = help_of(capsys, "rollback")
    apply = help_of(capsys, "apply")

    assert "usage: scripts/deploy status" in status
    assert "--poll-interval" not in status and "--parse-budget" not in status
    assert "--to ID" in rollback and "--parse-budget" not in rollback
    assert "seconds between environment status polls (default: 30.0)" in " ".join(apply.split())
    assert "minutes to wait for an environment update (default: 90.0)" in " ".join(apply.split())
    assert "--worker-replacement {FORCED,GRACEFUL}" in apply


def test_apply_is_the_default_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MWAA_ENVIRONMENT", raising=False)
    monkeypatch.delenv("MWAA_BUCKET", raising=False)
    assert cli.main(["--plan", "--project-root", str(REPO)]) == 2  # parsed as apply: no target given
    assert "no target: give --environment" in capsys.readouterr().err


def test_a_local_endpoint_with_an_environment_says_what_to_do_instead(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defect 8: botocore used to retry "http://api.127.0.0.1:4599/..." for about 8 s, then fail obscurely.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4599")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    started = time.monotonic()

    code = cli.main(["status", "--environment", "clean-zone", "--project-root", str(REPO)])

    err = capsys.readouterr().err
    assert code == 2
    assert time.monotonic() - started < 5
    assert "there is no local MWAA API" in err and "AWS_ENDPOINT_URL_S3 (S3 only)" in err
    assert "Could not connect" not in err


def test_a_refused_deletion_is_an_error_message_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    # Defect 7: S3 refusing a deletion raised an uncaught RuntimeError.
    refused = sync.DeleteRefusedError("S3 refused 1 deletion(s) under s3://b/dags/: dags/x.py: AccessDenied")

    assert isinstance(refused, cli.HANDLED_ERRORS)
    assert cli._explain(refused) == 1
    assert capsys.readouterr().err == (
        "error: S3 refused 1 deletion(s) under s3://b/dags/: dags/x.py: AccessDenied\n"
    )
