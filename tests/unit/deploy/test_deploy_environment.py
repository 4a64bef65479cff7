"""The MWAA control plane through botocore's Stubber (requests and responses checked against the
real service model): reading an environment, the update request, and the wait loop's outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from clean_zone_tools.mwaa_deploy import environment
from tests.support.clock import FakeClock

NAME = "clean-zone"
NOW = datetime.now(UTC)


def env(status: str, last_update: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Name": NAME, "Status": status, "AirflowVersion": "3.3.1", **extra}
    if last_update is not None:
        body["LastUpdate"] = last_update
    return {"Environment": body}


def wait(mwaa: Any, fake: FakeClock, lines: list[str], **options: Any) -> environment.EnvironmentInfo:
    return environment.wait_until_available(
        mwaa, NAME, requested_at=NOW, progress=lines.append, sleep=fake.sleep, clock=fake.clock, **options
    )


def test_describe_reads_bucket_paths_and_versions(mwaa: Any) -> None:
    with Stubber(mwaa) as stub:
        stub.add_response(
            "get_environment",
            env(
                "AVAILABLE",
                SourceBucketArn="arn:aws:s3:::my-dags",
                DagS3Path="dags",
                RequirementsS3Path="requirements.txt",
                RequirementsS3ObjectVersion="v7",
            ),
            {"Name": NAME},
        )
        info = environment.describe(mwaa, NAME)

    assert info.source_bucket == "my-dags" and info.dag_s3_path == "dags"
    assert info.paths == {"plugins": None, "requirements": "requirements.txt", "startup": None}
    assert info.versions["requirements"] == "v7"


def test_the_update_request_names_only_what_changed(mwaa: Any) -> None:
    with Stubber(mwaa) as stub:
        stub.add_response(
            "update_environment",
            {"Arn": "arn:aws:airflow:us-east-1:123456789012:environment/clean-zone"},
            {"Name": NAME, "PluginsS3Path": "plugins.zip", "PluginsS3ObjectVersion": "p2"},
        )
        sent = environment.request_update(mwaa, NAME, {"plugins": ("plugins.zip", "p2")})
        stub.assert_no_pending_responses()

    assert sent == {"Name": NAME, "PluginsS3Path": "plugins.zip", "PluginsS3ObjectVersion": "p2"}


def test_waits_through_updating_until_available_with_progress(mwaa: Any) -> None:
    fake, lines = FakeClock(start=0.0), []
    with Stubber(mwaa) as stub:
        for status in ("UPDATING", "UPDATING", "UPDATING"):
            stub.add_response("get_environment", env(status), {"Name": NAME})
        stub.add_response(
            "get_environment", env("AVAILABLE", {"Status": "SUCCESS", "CreatedAt": NOW}), {"Name": NAME}
        )
        info = wait(mwaa, fake, lines, poll_seconds=20)
        stub.assert_no_pending_responses()

    assert info.status == "AVAILABLE"
    assert fake.sleeps == [20, 20, 20]
    assert lines == [
        "environment clean-zone: UPDATING after 0s",
        "environment clean-zone: still UPDATING (20s)",
        "environment clean-zone: still UPDATING (40s)",
        "environment clean-zone: AVAILABLE after 1m00s",
    ]


def test_a_failed_update_raises_with_mwaas_error(mwaa: Any) -> None:
    failure = {
        "Status": "FAILED",
        "CreatedAt": NOW,
        "Error": {
            "ErrorCode": "INCORRECT_CONFIGURATION",
            "ErrorMessage": "plugins.zip: cannot import my_plugin",
        },
    }
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", env("UPDATING"), {"Name": NAME})
        stub.add_response("get_environment", env("ROLLING_BACK"), {"Name": NAME})
        stub.add_response("get_environment", env("AVAILABLE", failure), {"Name": NAME})
        with pytest.raises(environment.UpdateFailedError) as failed:
            wait(mwaa, FakeClock(start=0.0), [])

    assert str(failed.value) == "INCORRECT_CONFIGURATION: plugins.zip: cannot import my_plugin"


def test_update_failed_status_raises(mwaa: Any) -> None:
    with Stubber(mwaa) as stub:
        stub.add_response(
            "get_environment",
            env(
                "UPDATE_FAILED",
                {"Status": "FAILED", "CreatedAt": NOW, "Error": {"ErrorCode": "X", "ErrorMessage": "y"}},
            ),
        )
        with pytest.raises(environment.UpdateFailedError, match="X: y"):
            wait(mwaa, FakeClock(start=0.0), [])


def test_an_old_last_update_is_not_mistaken_for_ours(mwaa: Any) -> None:
    # Right after UpdateEnvironment the environment may still read AVAILABLE with yesterday's result.
    yesterday = {
        "Status": "FAILED",
        "CreatedAt": NOW - timedelta(days=1),
        "Error": {"ErrorCode": "OLD", "ErrorMessage": "old"},
    }
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", env("AVAILABLE", yesterday))
        stub.add_response("get_environment", env("UPDATING", yesterday))
        stub.add_response("get_environment", env("AVAILABLE", {"Status": "SUCCESS", "CreatedAt": NOW}))
        info = wait(mwaa, FakeClock(start=0.0), [])

    assert info.last_update["Status"] == "SUCCESS"


def test_gives_up_after_the_timeout(mwaa: Any) -> None:
    fake = FakeClock(start=0.0)
    with Stubber(mwaa) as stub:
        for _ in range(4):
            stub.add_response("get_environment", env("UPDATING"))
        with pytest.raises(environment.UpdateTimeoutError, match="still UPDATING after 1m30s"):
            wait(mwaa, fake, [], poll_seconds=30, timeout_seconds=90)

    assert fake.sleeps == [30, 30, 30]


def test_yesterdays_update_failed_is_not_this_updates_failure(mwaa: Any) -> None:
    # Defect 1: UPDATE_FAILED is an allowed starting state, and the first poll (no delay) still shows
    # it with yesterday's error while our update has only just been accepted.
    yesterday = {
        "Status": "FAILED",
        "CreatedAt": NOW - timedelta(days=1),
        "Error": {"ErrorCode": "OLD_ERROR", "ErrorMessage": "yesterday's requirements"},
    }
    lines: list[str] = []
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", env("UPDATE_FAILED", yesterday), {"Name": NAME})
        stub.add_response("get_environment", env("UPDATING", yesterday), {"Name": NAME})
        stub.add_response(
            "get_environment", env("AVAILABLE", {"Status": "SUCCESS", "CreatedAt": NOW}), {"Name": NAME}
        )
        info = wait(mwaa, FakeClock(start=0.0), lines)
        stub.assert_no_pending_responses()

    assert info.status == "AVAILABLE" and info.last_update["Status"] == "SUCCESS"
    assert lines[0] == "environment clean-zone: UPDATE_FAILED after 0s"


def test_this_updates_failure_is_still_reported_from_update_failed(mwaa: Any) -> None:
    ours = {"Status": "FAILED", "CreatedAt": NOW, "Error": {"ErrorCode": "NEW", "ErrorMessage": "bad pin"}}
    with Stubber(mwaa) as stub:
        stub.add_response("get_environment", env("UPDATING"), {"Name": NAME})
        stub.add_response("get_environment", env("UPDATE_FAILED", ours), {"Name": NAME})
        with pytest.raises(environment.UpdateFailedError, match="NEW: bad pin"):
            wait(mwaa, FakeClock(start=0.0), [])


def test_quiet_available_polls_are_not_taken_as_success(mwaa: Any) -> None:
    # Defect 1: six AVAILABLE polls with an old LastUpdate used to be recorded as SUCCESS.
    old = {"Status": "SUCCESS", "CreatedAt": NOW - timedelta(days=2)}
    fake = FakeClock(start=0.0)
    with Stubber(mwaa) as stub:
        for _ in range(9):
            stub.add_response("get_environment", env("AVAILABLE", old), {"Name": NAME})
        with pytest.raises(environment.UpdateTimeoutError, match="showed no sign of the update"):
            wait(mwaa, fake, [], poll_seconds=30, timeout_seconds=240)


def test_the_worker_replacement_strategy_is_sent_when_chosen(mwaa: Any) -> None:
    with Stubber(mwaa) as stub:
        stub.add_response(
            "update_environment",
            {"Arn": "arn:aws:airflow:us-east-1:123456789012:environment/clean-zone"},
            {
                "Name": NAME,
                "WorkerReplacementStrategy": "GRACEFUL",
                "StartupScriptS3Path": "startup.sh",
                "StartupScriptS3ObjectVersion": "s3",
            },
        )
        environment.request_update(mwaa, NAME, {"startup": ("startup.sh", "s3")}, "GRACEFUL")
        stub.assert_no_pending_responses()
