"""Deploys that update the MWAA environment: S3 on the moto server, the MWAA control plane
through botocore's Stubber (moto has no MWAA; the Stubber checks every request and response
against the real service model)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber
from deploy_helpers import (
    ENV,
    Captured,
    body,
    deploy,
    environment,
    keys,
    make_deployer,
    mwaa_client,
    versions_in_bucket,
    write,
)

from clean_zone_tools.mwaa_deploy import cli, plugins_zip
from clean_zone_tools.mwaa_deploy.apply import DeployFailedError
from clean_zone_tools.mwaa_deploy.plan import DeployRefusedError
from clean_zone_tools.mwaa_deploy.project import ProjectLayout
from clean_zone_tools.mwaa_deploy.record import RecordStore
from tests.support.clock import FakeClock

pytestmark = pytest.mark.e2e


def test_update_names_exactly_the_new_versions_then_waits_then_syncs_dags(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    mwaa = mwaa_client()
    clock = FakeClock(start=0.0)
    first_update: dict[str, Captured] = {
        name: Captured()
        for name in ("PluginsS3ObjectVersion", "RequirementsS3ObjectVersion", "StartupScriptS3ObjectVersion")
    }
    now = datetime.now(UTC)
    with Stubber(mwaa) as stub:
        # 1. A new environment (from the template): nothing configured yet, so all three are new.
        stub.add_response("get_environment", environment(bucket), {"Name": ENV})
        stub.add_response(
            "update_environment",
            {"Arn": f"arn:aws:airflow:us-east-1:123456789012:environment/{ENV}"},
            {
                "Name": ENV,
                "PluginsS3Path": "plugins.zip",
                "RequirementsS3Path": "requirements.txt",
                "StartupScriptS3Path": "startup.sh",
                **first_update,
            },
        )
        stub.add_response("get_environment", environment(bucket, "UPDATING"), {"Name": ENV})
        stub.add_response("get_environment", environment(bucket, "UPDATING"), {"Name": ENV})
        stub.add_response(
            "get_environment",
            environment(bucket, "AVAILABLE", last_update={"Status": "SUCCESS", "CreatedAt": now}),
            {"Name": ENV},
        )

        run = deploy(s3, bucket, project, environment=ENV, mwaa=mwaa, sleep=clock.sleep, clock=clock.clock)
        stub.assert_no_pending_responses()

    shipped = versions_in_bucket(s3, bucket)
    assert first_update["PluginsS3ObjectVersion"].value == shipped["plugins"]
    assert first_update["RequirementsS3ObjectVersion"].value == shipped["requirements"]
    assert first_update["StartupScriptS3ObjectVersion"].value == shipped["startup"]
    assert clock.sleeps == [30.0, 30.0]
    assert any("UPDATING" in line for line in run.output)
    assert "dags/hello.py" in keys(s3, bucket)
    assert run.outcome.record is not None and run.outcome.environment_update["status"] == "SUCCESS"

    # 2. Nothing changed and the environment runs what was shipped: no UpdateEnvironment at all
    #    (the Stubber fails on any call not queued).
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket, versions=shipped), {"Name": ENV})
        again = deploy(s3, bucket, project, environment=ENV, mwaa=mwaa, sleep=clock.sleep, clock=clock.clock)
        stub.assert_no_pending_responses()
    assert again.outcome.record is None

    # 3. Only requirements.txt changed: the update names only its version.
    project.requirements.write_text(project.requirements.read_text() + "# changed\n")
    requirements_version = Captured()
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket, versions=shipped), {"Name": ENV})
        stub.add_response(
            "update_environment",
            {"Arn": f"arn:aws:airflow:us-east-1:123456789012:environment/{ENV}"},
            {
                "Name": ENV,
                "RequirementsS3Path": "requirements.txt",
                "RequirementsS3ObjectVersion": requirements_version,
            },
        )
        stub.add_response(
            "get_environment",
            environment(bucket, "AVAILABLE", shipped, {"Status": "SUCCESS", "CreatedAt": datetime.now(UTC)}),
            {"Name": ENV},
        )
        deploy(s3, bucket, project, environment=ENV, mwaa=mwaa, sleep=clock.sleep, clock=clock.clock)
        stub.assert_no_pending_responses()
    assert requirements_version.value == s3.head_object(Bucket=bucket, Key="requirements.txt")["VersionId"]
    assert requirements_version.value != shipped["requirements"]


def test_a_failed_update_is_reported_and_the_dags_are_left_alone(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    mwaa = mwaa_client()
    clock = FakeClock(start=0.0)
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket), {"Name": ENV})
        stub.add_response(
            "update_environment", {"Arn": "arn:aws:airflow:us-east-1:123456789012:environment/x"}
        )
        stub.add_response(
            "get_environment",
            environment(bucket, last_update={"Status": "SUCCESS", "CreatedAt": datetime.now(UTC)}),
        )
        shipped_run = deploy(
            s3, bucket, project, environment=ENV, mwaa=mwaa, sleep=clock.sleep, clock=clock.clock
        )
    shipped = versions_in_bucket(s3, bucket)
    before = shipped_run.outcome.record
    assert before is not None

    # A requirement that cannot install on MWAA, and a new DAG that would need it.
    good = project.requirements.read_bytes()
    project.requirements.write_bytes(good + b"some-private-package==1.0\n")
    write(project.dags_dir / "needs_private_package.py", "import some_private_package\n")
    failure = {
        "Status": "FAILED",
        "CreatedAt": datetime.now(UTC),
        "Error": {
            "ErrorCode": "INCORRECT_CONFIGURATION",
            "ErrorMessage": "requirements.txt: No matching distribution found for some-private-package==1.0",
        },
    }
    output: list[str] = []
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket, versions=shipped), {"Name": ENV})
        stub.add_response(
            "update_environment", {"Arn": "arn:aws:airflow:us-east-1:123456789012:environment/x"}
        )
        stub.add_response("get_environment", environment(bucket, "UPDATING", shipped), {"Name": ENV})
        stub.add_response("get_environment", environment(bucket, "ROLLING_BACK", shipped), {"Name": ENV})
        stub.add_response(
            "get_environment", environment(bucket, "AVAILABLE", shipped, failure), {"Name": ENV}
        )
        # Which versions the environment still runs, to make them the current objects again.
        stub.add_response(
            "get_environment", environment(bucket, "AVAILABLE", shipped, failure), {"Name": ENV}
        )
        with pytest.raises(DeployFailedError) as failed:
            deployer = make_deployer(
                s3, bucket, project, output, environment=ENV, mwaa=mwaa, sleep=clock.sleep, clock=clock.clock
            )
            deployer.apply(deployer.plan(plugins_zip.build(project.plugins_dir)))
        stub.assert_no_pending_responses()

    message = str(failed.value)
    assert "INCORRECT_CONFIGURATION" in message and "some-private-package==1.0" in message
    assert "were not changed" in message
    assert "dags/needs_private_package.py" not in keys(s3, bucket)
    assert any("ROLLING_BACK" in line for line in output)
    # No record for a deployment that did not happen: rollback still targets the good one.
    latest = RecordStore(s3, bucket).latest()
    assert latest is not None and latest.id == before.id
    # Defect 2: the refused requirements.txt does not stay the bucket's current object; the version
    # the environment still runs is made current again (the refused one stays in the history).
    assert "the versions it runs are the bucket's current objects again: requirements.txt" in message
    assert body(s3, bucket, "requirements.txt") == good
    assert not keys(s3, bucket, "deployments/lock.json")

    # The operator reverts the file (and drops the DAG): "nothing to deploy" is now the truth.
    project.requirements.write_bytes(good)
    (project.dags_dir / "needs_private_package.py").unlink()
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket, versions=shipped), {"Name": ENV})
        again = deploy(s3, bucket, project, environment=ENV, mwaa=mwaa)
    assert any("Nothing to deploy" in line for line in again.output)
    assert body(s3, bucket, "requirements.txt") == good


def test_an_environment_reading_another_bucket_is_refused(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    mwaa = mwaa_client()
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment("some-other-bucket"), {"Name": ENV})
        with pytest.raises(DeployRefusedError) as refused:
            deploy(s3, bucket, project, environment=ENV, mwaa=mwaa)

    assert any("reads from s3://some-other-bucket" in reason for reason in refused.value.reasons)
    assert keys(s3, bucket) == set()


def test_an_update_cannot_start_while_the_environment_is_updating(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    mwaa = mwaa_client()
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket, "UPDATING"), {"Name": ENV})
        with pytest.raises(DeployRefusedError) as refused:
            deploy(s3, bucket, project, environment=ENV, mwaa=mwaa)

    assert any("is UPDATING" in reason for reason in refused.value.reasons)
    assert keys(s3, bucket) == set()


def test_no_update_uploads_but_leaves_the_environment_and_the_next_deploy_applies_it(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    mwaa = mwaa_client()
    clock = FakeClock(start=0.0)
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket), {"Name": ENV})
        run = deploy(s3, bucket, project, update=False, environment=ENV, mwaa=mwaa)
        stub.assert_no_pending_responses()
    assert run.outcome.environment_update == {
        "status": "skipped",
        "pending": ["plugins", "requirements", "startup"],
    }
    assert any("--no-update" in line for line in run.output)

    # Nothing changed locally, but the environment still runs nothing: the pending versions are applied.
    pending = Captured()
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket), {"Name": ENV})
        stub.add_response(
            "update_environment",
            {"Arn": "arn:aws:airflow:us-east-1:123456789012:environment/x"},
            {
                "Name": ENV,
                "PluginsS3Path": "plugins.zip",
                "PluginsS3ObjectVersion": pending,
                "RequirementsS3Path": "requirements.txt",
                "RequirementsS3ObjectVersion": Captured(),
                "StartupScriptS3Path": "startup.sh",
                "StartupScriptS3ObjectVersion": Captured(),
            },
        )
        stub.add_response(
            "get_environment",
            environment(bucket, last_update={"Status": "SUCCESS", "CreatedAt": datetime.now(UTC)}),
        )
        again = deploy(s3, bucket, project, environment=ENV, mwaa=mwaa, sleep=clock.sleep, clock=clock.clock)
        stub.assert_no_pending_responses()
    assert not any(action.upload for action in again.plan.artifacts.values())
    assert pending.value == versions_in_bucket(s3, bucket)["plugins"]


def test_cli_finds_the_bucket_from_the_environment(
    s3: Any, bucket: str, project: ProjectLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    mwaa = mwaa_client()
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket), {"Name": ENV})
        code = cli.main(
            ["--plan", "--environment", ENV, "--project-root", str(project.root), "--skip-resolve"],
            clients=(s3, mwaa),
        )
        stub.assert_no_pending_responses()

    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"Plan for s3://{bucket}" in printed
    assert "environment clean-zone: update plugins (new version), requirements (new version)" in printed
    assert keys(s3, bucket) == set()
