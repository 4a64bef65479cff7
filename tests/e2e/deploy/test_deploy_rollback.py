"""Rollback against the moto server's S3: the previous deployment's files and versions come back."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_helpers import body, deploy, keys, make_deployer, write

from clean_zone_tools.mwaa_deploy.plan import DeployRefusedError
from clean_zone_tools.mwaa_deploy.project import ProjectLayout

pytestmark = pytest.mark.e2e


def snapshot(s3: Any, bucket: str) -> dict[str, bytes]:
    """Every shipped key (DAG files and the three MWAA objects) with its current content."""
    shipped = {key for key in keys(s3, bucket) if not key.startswith("deployments/")}
    return {key: body(s3, bucket, key) for key in shipped}


def test_rollback_restores_the_previous_deployment(s3: Any, bucket: str, project: ProjectLayout) -> None:
    first = deploy(s3, bucket, project).outcome.record
    before = snapshot(s3, bucket)
    # The second deployment edits a DAG, adds one, deletes one, and changes requirements.txt.
    (project.dags_dir / "hello.py").write_text((project.dags_dir / "hello.py").read_text() + "# v2\n")
    write(project.dags_dir / "helpers" / "extra.py", "EXTRA = True\n")
    (project.dags_dir / "sql" / "report.sql").unlink()
    project.requirements.write_text(project.requirements.read_text() + "# v2\n")
    second = deploy(s3, bucket, project).outcome.record
    assert first is not None and second is not None and second.previous == first.id
    assert snapshot(s3, bucket) != before

    output: list[str] = []
    deployer = make_deployer(s3, bucket, project, output)
    plan = deployer.plan_rollback()
    deployer.print_rollback_plan(plan)
    outcome = deployer.apply_rollback(plan)

    assert [entry.key for entry in plan.restores] == ["dags/hello.py", "dags/sql/report.sql"]
    assert plan.deletions == ["dags/helpers/extra.py"]
    # The DAG prefix holds exactly the first deployment's bytes again.
    now = snapshot(s3, bucket)
    assert {k: v for k, v in now.items() if k.startswith("dags/")} == {
        k: v for k, v in before.items() if k.startswith("dags/")
    }
    # MWAA references requirements.txt by version: the record points back at the first one.
    rolled_back = outcome.record
    assert rolled_back is not None and rolled_back.kind == "rollback" and rolled_back.restored == first.id
    assert rolled_back.artifacts["requirements"].version_id == first.artifacts["requirements"].version_id
    assert (
        body(s3, bucket, "requirements.txt", first.artifacts["requirements"].version_id)
        == before["requirements.txt"]
    )
    assert any(line.startswith("Rolled back to") for line in output)


def test_a_deploy_after_a_rollback_ships_the_local_changes_again(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    deploy(s3, bucket, project)
    hello = project.dags_dir / "hello.py"
    hello.write_text(hello.read_text() + "# v2\n")
    deploy(s3, bucket, project)
    deployer = make_deployer(s3, bucket, project)
    deployer.apply_rollback(deployer.plan_rollback())

    again = deploy(s3, bucket, project)

    assert [action.key for action in again.plan.dags.uploads] == ["dags/hello.py"]
    assert body(s3, bucket, "dags/hello.py") == hello.read_bytes()


def test_rolling_back_twice_steps_back_twice(s3: Any, bucket: str, project: ProjectLayout) -> None:
    hello = project.dags_dir / "hello.py"
    contents = []
    for version in range(3):
        hello.write_text(hello.read_text() + f"# v{version}\n")
        contents.append(hello.read_bytes())
        deploy(s3, bucket, project)

    for expected in (contents[1], contents[0]):
        deployer = make_deployer(s3, bucket, project)
        deployer.apply_rollback(deployer.plan_rollback())
        assert body(s3, bucket, "dags/hello.py") == expected

    deployer = make_deployer(s3, bucket, project)
    assert any("first one recorded" in reason for reason in deployer.plan_rollback().refusals)


def test_rollback_to_a_named_deployment(s3: Any, bucket: str, project: ProjectLayout) -> None:
    hello = project.dags_dir / "hello.py"
    first = deploy(s3, bucket, project).outcome.record
    original = hello.read_bytes()
    for version in range(2):
        hello.write_text(hello.read_text() + f"# v{version}\n")
        deploy(s3, bucket, project)
    assert first is not None

    deployer = make_deployer(s3, bucket, project)
    deployer.apply_rollback(deployer.plan_rollback(to=first.id))

    assert body(s3, bucket, "dags/hello.py") == original


def test_rollback_with_nothing_recorded_is_refused(s3: Any, bucket: str, project: ProjectLayout) -> None:
    deployer = make_deployer(s3, bucket, project)
    plan = deployer.plan_rollback()

    assert any("no deployment recorded" in reason for reason in plan.refusals)
    with pytest.raises(DeployRefusedError):
        deployer.apply_rollback(plan)


def test_rollback_refuses_before_changing_anything_when_an_old_version_is_gone(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    first = deploy(s3, bucket, project).outcome.record
    hello = project.dags_dir / "hello.py"
    hello.write_text(hello.read_text() + "# v2\n")
    deploy(s3, bucket, project)
    assert first is not None
    # As a lifecycle rule expiring old versions would.
    s3.delete_object(Bucket=bucket, Key="dags/hello.py", VersionId=first.dags["dags/hello.py"].version_id)
    current = body(s3, bucket, "dags/hello.py")

    deployer = make_deployer(s3, bucket, project)
    plan = deployer.plan_rollback()

    assert any("dags/hello.py version" in reason and "no longer exists" in reason for reason in plan.refusals)
    with pytest.raises(DeployRefusedError):
        deployer.apply_rollback(plan)
    assert body(s3, bucket, "dags/hello.py") == current
