"""The incremental sync against the moto server's S3: what gets uploaded, skipped and deleted."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import RequestLog, body, deploy, keys, make_bucket, make_deployer, make_project, write

from clean_zone_tools.mwaa_deploy import plugins_zip
from clean_zone_tools.mwaa_deploy.plan import DeployRefusedError
from clean_zone_tools.mwaa_deploy.project import ProjectLayout

pytestmark = pytest.mark.e2e

DAG_KEYS = {
    "dags/hello.py",
    "dags/helpers/__init__.py",
    "dags/helpers/greetings.py",
    "dags/sql/report.sql",
    "dags/.airflowignore",
}


def test_first_deploy_uploads_everything_and_records_it(s3: Any, bucket: str, project: ProjectLayout) -> None:
    run = deploy(s3, bucket, project)

    assert keys(s3, bucket, "dags/") == DAG_KEYS
    for key in DAG_KEYS:
        assert body(s3, bucket, key) == (project.root / key).read_bytes()
    assert body(s3, bucket, "plugins.zip") == plugins_zip.build(project.plugins_dir).data
    assert body(s3, bucket, "requirements.txt") == project.requirements.read_bytes()
    assert body(s3, bucket, "startup.sh") == project.startup_script.read_bytes()

    record = run.outcome.record
    assert record is not None and record.previous is None
    latest = json.loads(body(s3, bucket, "deployments/latest.json"))
    assert latest["id"] == record.id
    assert json.loads(body(s3, bucket, f"deployments/history/{record.id}.json")) == latest
    # The record names the exact versions now in the bucket.
    for key in DAG_KEYS:
        assert latest["dags"][key]["version_id"] == s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    assert (
        latest["artifacts"]["requirements"]["version_id"]
        == s3.head_object(Bucket=bucket, Key="requirements.txt")["VersionId"]
    )
    assert any(line.startswith("Deployed ") for line in run.output)


def test_second_deploy_without_changes_writes_nothing(
    s3: Any, bucket: str, project: ProjectLayout, request_log: RequestLog
) -> None:
    deploy(s3, bucket, project)
    request_log.clear()

    run = deploy(s3, bucket, project)

    assert request_log.writes() == []
    assert run.outcome.record is None
    assert not run.plan.dags.uploads and not run.plan.dags.deletions
    assert not any(action.upload for action in run.plan.artifacts.values())
    assert any("Nothing to deploy" in line for line in run.output)
    # Unchanged is decided from the record and one listing, not one request per file.
    assert not [call for call in request_log.calls if call[0] == "HeadObject"]


def test_touching_files_without_changing_them_uploads_nothing(
    s3: Any, bucket: str, project: ProjectLayout, request_log: RequestLog
) -> None:
    deploy(s3, bucket, project)
    later = 2_000_000_000
    for path in [*project.dags_dir.rglob("*"), *project.plugins_dir.rglob("*")]:
        os.utime(path, (later, later))
    request_log.clear()

    run = deploy(s3, bucket, project)

    assert request_log.writes() == []
    assert not run.plan.artifacts["plugins"].upload


def test_one_changed_file_uploads_one_object(
    s3: Any, bucket: str, project: ProjectLayout, request_log: RequestLog
) -> None:
    deploy(s3, bucket, project)
    changed = project.dags_dir / "helpers" / "greetings.py"
    changed.write_text('def greeting() -> str:\n    return "hello again"\n')
    request_log.clear()

    run = deploy(s3, bucket, project)

    uploads = [key for operation, key in request_log.writes() if operation == "PutObject"]
    shipped = [key for key in uploads if not key.startswith("deployments/")]
    assert shipped == ["dags/helpers/greetings.py"]
    assert body(s3, bucket, "dags/helpers/greetings.py") == changed.read_bytes()
    assert [action.key for action in run.plan.dags.uploads] == ["dags/helpers/greetings.py"]
    assert "    ~ dags/helpers/greetings.py  (changed)" in run.output


def test_deleted_dag_is_removed_and_nothing_outside_the_prefix_is_touched(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    s3.put_object(Bucket=bucket, Key="landing/partner.csv", Body=b"a,b\n")
    s3.put_object(Bucket=bucket, Key="dags-archive/old.py", Body=b"x = 1\n")  # shares "dags", not "dags/"
    deploy(s3, bucket, project)
    (project.dags_dir / "sql" / "report.sql").unlink()

    output: list[str] = []
    deployer = make_deployer(s3, bucket, project, output)
    plan = deployer.plan(plugins_zip.build(project.plugins_dir))
    deployer.print_plan(plan)
    assert [action.key for action in plan.dags.deletions] == ["dags/sql/report.sql"]
    assert "    - dags/sql/report.sql  (not in the local dags folder)" in output
    assert "dags/sql/report.sql" in keys(s3, bucket), "planning must not delete"

    deployer.apply(plan)

    assert keys(s3, bucket, "dags/") == DAG_KEYS - {"dags/sql/report.sql"}
    assert {"landing/partner.csv", "dags-archive/old.py"} <= keys(s3, bucket)


def test_stale_files_already_in_the_bucket_are_deleted_on_first_deploy(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    s3.put_object(Bucket=bucket, Key="dags/removed_long_ago.py", Body=b"x = 1\n")

    run = deploy(s3, bucket, project)

    assert run.outcome.deleted == ["dags/removed_long_ago.py"]
    assert keys(s3, bucket, "dags/") == DAG_KEYS


def test_caches_hidden_and_git_ignored_files_are_never_uploaded(s3: Any, bucket: str, tmp_path: Path) -> None:
    layout = make_project(tmp_path / "project")
    write(layout.dags_dir / "__pycache__" / "hello.cpython-312.pyc", b"\x00compiled")
    write(layout.dags_dir / "helpers" / "greetings.pyc", b"\x00compiled")
    write(layout.dags_dir / ".DS_Store", b"\x00")
    write(layout.dags_dir / ".pytest_cache" / "v" / "x", "cache")
    write(layout.dags_dir / "hello.py~", "editor backup")
    write(layout.dags_dir / "local_only.env", "NOT_FOR_MWAA=1\n")
    write(layout.root / ".gitignore", "*.env\n")
    subprocess.run(["git", "init", "-q", str(layout.root)], check=True)

    deploy(s3, bucket, layout)

    assert keys(s3, bucket, "dags/") == DAG_KEYS


def test_an_edit_made_in_the_bucket_by_hand_is_put_right(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    deploy(s3, bucket, project)
    s3.put_object(Bucket=bucket, Key="dags/hello.py", Body=b"# edited in the console\n")

    run = deploy(s3, bucket, project)

    assert [(a.key, a.reason) for a in run.plan.dags.uploads] == [
        ("dags/hello.py", "changed in the bucket since the last deployment")
    ]
    assert body(s3, bucket, "dags/hello.py") == (project.dags_dir / "hello.py").read_bytes()


def test_a_bucket_filled_by_hand_is_adopted_without_reuploading_identical_files(
    s3: Any, bucket: str, project: ProjectLayout, request_log: RequestLog
) -> None:
    # What `aws s3 sync dags/ s3://bucket/dags/` leaves: same bytes, no record, none of our metadata.
    for path in project.dags_dir.rglob("*"):
        if path.is_file():
            s3.put_object(
                Bucket=bucket,
                Key=f"dags/{path.relative_to(project.dags_dir).as_posix()}",
                Body=path.read_bytes(),
            )
    s3.put_object(Bucket=bucket, Key="requirements.txt", Body=project.requirements.read_bytes())
    request_log.clear()

    run = deploy(s3, bucket, project)

    uploads = {key for operation, key in request_log.writes() if operation == "PutObject"}
    assert not {key for key in uploads if key and key.startswith("dags/")}
    assert "requirements.txt" not in uploads
    assert {"plugins.zip", "startup.sh"} <= uploads  # these were not there
    assert run.outcome.record is not None  # the baseline for the next deploy and for rollback


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"versioning": False}, "versioning is never enabled"),
        ({"public_access_block": False}, "Block Public Access is not fully on"),
    ],
)
def test_an_unsafe_bucket_is_refused_and_left_untouched(
    s3: Any, project: ProjectLayout, settings: dict[str, bool], expected: str
) -> None:
    unsafe = make_bucket(s3, **settings)

    with pytest.raises(DeployRefusedError) as refused:
        deploy(s3, unsafe, project)

    assert any(expected in reason for reason in refused.value.reasons)
    assert keys(s3, unsafe) == set()


def test_partial_block_public_access_names_the_missing_settings(s3: Any, project: ProjectLayout) -> None:
    partial = make_bucket(s3)
    s3.put_public_access_block(
        Bucket=partial,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )

    with pytest.raises(DeployRefusedError) as refused:
        deploy(s3, partial, project)

    assert any("off: BlockPublicPolicy" in reason for reason in refused.value.reasons)


def test_a_bucket_without_default_encryption_gets_a_warning_not_a_refusal(
    s3: Any, project: ProjectLayout
) -> None:
    plain = make_bucket(s3, encryption=False)

    run = deploy(s3, plain, project)

    assert run.outcome.record is not None
    assert any("no default encryption" in line for line in run.output)


def test_an_empty_dags_folder_is_refused_rather_than_deleting_every_dag(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    deploy(s3, bucket, project)
    for path in sorted(project.dags_dir.rglob("*.py"), reverse=True):
        path.unlink()

    with pytest.raises(DeployRefusedError) as refused:
        deploy(s3, bucket, project)

    assert any("no Python files" in reason for reason in refused.value.reasons)
    assert "dags/hello.py" in keys(s3, bucket)


def test_uploaded_objects_carry_sha256_checksums(s3: Any, bucket: str, project: ProjectLayout) -> None:
    deploy(s3, bucket, project)

    head = s3.head_object(Bucket=bucket, Key="dags/hello.py", ChecksumMode="ENABLED")

    local = (project.dags_dir / "hello.py").read_bytes()
    assert base64.b64decode(head["ChecksumSHA256"]) == hashlib.sha256(local).digest()
