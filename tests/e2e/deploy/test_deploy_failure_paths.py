"""The failure paths an operator meets: a failed environment update, a bucket whose current objects are
not what the environment runs, two deploys at once, a damaged record, and an environment that did not
load what was shipped. S3 is the moto server; the MWAA control plane is botocore's Stubber, which checks
each request and response against the real service model."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from deploy_helpers import (
    ENV,
    body,
    deploy,
    environment,
    keys,
    make_deployer,
    make_project,
    mwaa_client,
    versions_in_bucket,
    write,
)

from clean_zone_tools.mwaa_deploy import cli, plugins_zip
from clean_zone_tools.mwaa_deploy.apply import DeployFailedError
from clean_zone_tools.mwaa_deploy.project import ProjectLayout
from clean_zone_tools.mwaa_deploy.record import ConcurrentDeployError, RecordStore
from tests.support.clock import FakeClock

pytestmark = pytest.mark.e2e

ARN = {"Arn": f"arn:aws:airflow:us-east-1:123456789012:environment/{ENV}"}


def expect_a_successful_first_update(stub: Stubber, bucket: str) -> None:
    """A new environment (nothing configured) that takes the three new versions."""
    stub.add_response("get_environment", environment(bucket), {"Name": ENV})
    stub.add_response("update_environment", ARN)
    stub.add_response(
        "get_environment",
        environment(bucket, last_update={"Status": "SUCCESS", "CreatedAt": datetime.now(UTC)}),
    )


def first_deploy(s3: Any, bucket: str, project: ProjectLayout, mwaa: Any, clock: FakeClock) -> dict[str, str]:
    with Stubber(mwaa) as stub:
        expect_a_successful_first_update(stub, bucket)
        deploy(s3, bucket, project, environment=ENV, mwaa=mwaa, sleep=clock.sleep, clock=clock.clock)
    return versions_in_bucket(s3, bucket)


# --- defect 2: the bucket's current objects are what the environment runs ------------------------------
# (a failed update putting them back: the failed-update test in test_deploy_mwaa_update.py)


def test_a_bad_current_object_left_behind_is_shown_by_status_and_put_right_by_the_next_deploy(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    mwaa, clock = mwaa_client(), FakeClock(start=0.0)
    shipped = first_deploy(s3, bucket, project, mwaa, clock)
    good = project.requirements.read_bytes()
    # As a deploy interrupted between its upload and its update (or a hand upload) leaves it.
    s3.put_object(Bucket=bucket, Key="requirements.txt", Body=b"broken==0.0\n")

    status: list[str] = []
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket, versions=shipped), {"Name": ENV})
        make_deployer(s3, bucket, project, status, environment=ENV, mwaa=mwaa).status()
    assert any("the bucket's current requirements.txt is not the deployed version" in line for line in status)

    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", environment(bucket, versions=shipped), {"Name": ENV})
        run = deploy(s3, bucket, project, environment=ENV, mwaa=mwaa)
        stub.assert_no_pending_responses()  # the environment already runs that version: no update

    assert run.plan.artifacts["requirements"].restore
    assert body(s3, bucket, "requirements.txt") == good
    assert run.outcome.record is not None
    assert run.outcome.record.artifacts["requirements"].version_id == shipped["requirements"]


def test_rollback_makes_the_previous_objects_current_again(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    first = deploy(s3, bucket, project).outcome.record
    good = project.requirements.read_bytes()
    project.requirements.write_bytes(good + b"# v2\n")
    deploy(s3, bucket, project)
    assert first is not None

    deployer = make_deployer(s3, bucket, project)
    plan = deployer.plan_rollback()
    deployer.apply_rollback(plan)

    assert [entry.key for entry in plan.artifact_restores] == ["requirements.txt"]
    assert body(s3, bucket, "requirements.txt") == good
    # The environment is pointed at the version it ran before; its bytes are also the current ones.
    latest = RecordStore(s3, bucket).latest()
    assert latest is not None
    assert latest.artifacts["requirements"].version_id == first.artifacts["requirements"].version_id


# --- defect 6: one deployment at a time; the history never forks ---------------------------------------


def copy_project(project: ProjectLayout, root: Path) -> ProjectLayout:
    shutil.copytree(project.root, root)
    return ProjectLayout.at(root)


def test_two_deploys_racing_one_wins_the_other_fails_clearly_and_history_does_not_fork(
    s3: Any, bucket: str, project: ProjectLayout, tmp_path: Path
) -> None:
    base = deploy(s3, bucket, project).outcome.record
    assert base is not None
    racers = [copy_project(project, tmp_path / name) for name in ("alice", "bob")]
    for racer in racers:
        write(racer.dags_dir / "helpers" / f"{racer.root.name}.py", f"WHO = {racer.root.name!r}\n")
    planned = threading.Barrier(2)
    results: dict[str, Any] = {}

    def race(layout: ProjectLayout) -> None:
        deployer = make_deployer(s3, bucket, layout)
        plan = deployer.plan(plugins_zip.build(layout.plugins_dir))
        planned.wait(timeout=30)  # both have planned on the same latest.json before either applies
        try:
            results[layout.root.name] = deployer.apply(plan)
        except ConcurrentDeployError as error:
            results[layout.root.name] = error

    threads = [threading.Thread(target=race, args=(racer,)) for racer in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    failures = [r for r in results.values() if isinstance(r, ConcurrentDeployError)]
    wins = [r for r in results.values() if not isinstance(r, ConcurrentDeployError)]
    assert len(wins) == 1 and len(failures) == 1, results
    # Refused at the lock (before any change), or, if both got past it, at the final record write.
    message = str(failures[0])
    assert message.startswith("another deployment")
    assert "nothing was changed" in message or "deploy again" in message
    store = RecordStore(s3, bucket)
    winner = wins[0].record
    assert store.history_ids() == sorted([base.id, winner.id])
    assert winner.previous == base.id
    latest = store.latest()
    assert latest is not None and latest.id == winner.id
    assert not keys(s3, bucket, "deployments/lock.json")


def test_a_deploy_planned_before_another_finished_changes_nothing(
    s3: Any, bucket: str, project: ProjectLayout, tmp_path: Path
) -> None:
    deploy(s3, bucket, project)
    late = copy_project(project, tmp_path / "late")
    write(late.dags_dir / "helpers" / "late.py", "LATE = True\n")
    stale = make_deployer(s3, bucket, late)
    stale_plan = stale.plan(plugins_zip.build(late.plugins_dir))
    hello = project.dags_dir / "hello.py"
    hello.write_text(hello.read_text() + "# meanwhile\n")
    meanwhile = deploy(s3, bucket, project).outcome.record

    with pytest.raises(ConcurrentDeployError, match="another deployment finished since this plan"):
        stale.apply(stale_plan)

    assert "dags/helpers/late.py" not in keys(s3, bucket)
    latest = RecordStore(s3, bucket).latest()
    assert meanwhile is not None and latest is not None and latest.id == meanwhile.id


def test_a_held_lock_refuses_and_an_expired_one_is_taken_over(
    s3: Any, bucket: str, project: ProjectLayout
) -> None:
    now = datetime.now(UTC)
    held = {
        "id": "20261123T084525.123Z-aaaaaa",
        "started_at": now.isoformat(),
        "host": "ci-runner-7",
        "expires_at": (now + timedelta(hours=1)).isoformat(),
        "git_commit": "4f1c2e9a0b7d",
    }
    s3.put_object(Bucket=bucket, Key="deployments/lock.json", Body=cli_json(held))

    with pytest.raises(ConcurrentDeployError) as refused:
        deploy(s3, bucket, project)
    assert "another deployment is running: deployment 20261123T084525.123Z-aaaaaa" in str(refused.value)
    assert "ci-runner-7" in str(refused.value) and "nothing was changed" in str(refused.value)
    assert keys(s3, bucket, "dags/") == set()

    expired = {**held, "expires_at": (now - timedelta(minutes=1)).isoformat()}
    s3.put_object(Bucket=bucket, Key="deployments/lock.json", Body=cli_json(expired))
    run = deploy(s3, bucket, project)
    assert run.outcome.record is not None
    assert not keys(s3, bucket, "deployments/lock.json")


def cli_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


# --- defect 7: a damaged record is an error message, not a usage error ----------------------------------


def test_a_corrupt_latest_record_is_reported_with_what_to_do(
    s3: Any, bucket: str, project: ProjectLayout, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy(s3, bucket, project)
    s3.put_object(Bucket=bucket, Key="deployments/latest.json", Body=b"{not json")

    code = cli.main(["status", "--bucket", bucket, "--project-root", str(project.root)], clients=(s3, None))

    err = capsys.readouterr().err
    assert code == 1
    assert "usage:" not in err
    assert f"s3://{bucket}/deployments/latest.json is not a readable deployment record" in err
    assert "deployments/history/" in err


# --- verify what MWAA parsed ------------------------------------------------------------------------------


def test_a_dag_the_environment_could_not_load_fails_the_deploy_with_its_error(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project")
    mwaa, clock = mwaa_client(), FakeClock(start=0.0)
    output: list[str] = []
    trace = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'helpers'"
    with Stubber(mwaa) as stub:
        expect_a_successful_first_update(stub, bucket)
        stub.add_response(
            "invoke_rest_api",
            {"RestApiStatusCode": 200, "RestApiResponse": {"dags": [], "total_entries": 0}},
            {"Name": ENV, "Path": "/dags", "Method": "GET", "QueryParameters": {"limit": 100, "offset": 0}},
        )
        stub.add_response(
            "invoke_rest_api",
            {
                "RestApiStatusCode": 200,
                "RestApiResponse": {
                    "import_errors": [
                        {
                            "import_error_id": 1,
                            "filename": "hello.py",
                            "timestamp": (datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
                            "stack_trace": trace,
                        }
                    ],
                    "total_entries": 1,
                },
            },
        )
        deployer = make_deployer(
            s3,
            bucket,
            project,
            output,
            environment=ENV,
            mwaa=mwaa,
            sleep=clock.sleep,
            clock=clock.clock,
            verify_timeout_seconds=600.0,
        )
        with pytest.raises(DeployFailedError) as failed:
            deployer.apply(
                deployer.plan(plugins_zip.build(project.plugins_dir)), dag_ids=["deploy_test_hello"]
            )
        stub.assert_no_pending_responses()

    message = str(failed.value)
    assert "is in the bucket, but environment clean-zone did not load what was deployed" in message
    assert "hello.py: ModuleNotFoundError: No module named 'helpers'" in message
    assert "scripts/deploy rollback" in message
    latest = RecordStore(s3, bucket).latest()
    assert latest is not None and latest.verification["status"] == "FAILED"
    assert latest.dag_ids == ["deploy_test_hello"]
