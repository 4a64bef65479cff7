"""Asking the environment what it parsed: MWAA's InvokeRestApi through botocore's Stubber, which
checks each request (Name, Path, Method, QueryParameters) against the real service model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from clean_zone_tools.mwaa_deploy import verify
from tests.support.clock import FakeClock

NAME = "clean-zone"
SYNCED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def dags(*dag_ids: str) -> dict[str, Any]:
    body = {"dags": [{"dag_id": d, "fileloc": f"/usr/local/airflow/dags/{d}.py"} for d in dag_ids]}
    return {"RestApiStatusCode": 200, "RestApiResponse": {**body, "total_entries": len(dag_ids)}}


def import_errors(*errors: tuple[str, datetime, str]) -> dict[str, Any]:
    items = [
        {"import_error_id": n, "filename": f, "timestamp": t.isoformat(), "stack_trace": text}
        for n, (f, t, text) in enumerate(errors)
    ]
    return {
        "RestApiStatusCode": 200,
        "RestApiResponse": {"import_errors": items, "total_entries": len(items)},
    }


def expect_poll(stub: Stubber, dag_response: dict[str, Any], error_response: dict[str, Any]) -> None:
    page = {"limit": 100, "offset": 0}
    stub.add_response(
        "invoke_rest_api",
        dag_response,
        {"Name": NAME, "Path": "/dags", "Method": "GET", "QueryParameters": page},
    )
    stub.add_response(
        "invoke_rest_api",
        error_response,
        {"Name": NAME, "Path": "/importErrors", "Method": "GET", "QueryParameters": page},
    )


def run(mwaa: Any, clock: FakeClock, lines: list[str], **options: Any) -> verify.ParsedState:
    return verify.wait_until_parsed(
        mwaa,
        NAME,
        expected_dag_ids={"hello", "report"},
        shipped_files={"hello.py", "report.py", "helpers/greetings.py"},
        synced_at=SYNCED,
        progress=lines.append,
        sleep=clock.sleep,
        clock=clock.clock,
        poll_seconds=30,
        timeout_seconds=options.pop("timeout_seconds", 300),
    )


def test_waits_until_every_deployed_dag_is_listed(mwaa: Any) -> None:
    clock, lines = FakeClock(start=0.0), []
    with Stubber(mwaa) as stub:
        expect_poll(stub, dags("hello"), import_errors())
        expect_poll(stub, dags("hello", "report", "someone_elses"), import_errors())
        state = run(mwaa, clock, lines)
        stub.assert_no_pending_responses()

    assert state.dag_ids == {"hello", "report", "someone_elses"}
    assert clock.sleeps == [30]
    assert lines[-1] == "environment clean-zone parsed all 2 DAG(s), no import errors"


def test_a_fresh_import_error_in_a_shipped_file_fails_at_once_with_the_error(mwaa: Any) -> None:
    trace = (
        'Traceback (most recent call last):\n  File "report.py", line 3\n'
        "ModuleNotFoundError: No module named 'polars'"
    )
    with Stubber(mwaa) as stub:
        expect_poll(stub, dags("hello"), import_errors(("report.py", SYNCED + timedelta(seconds=40), trace)))
        with pytest.raises(verify.VerifyFailedError) as failed:
            run(mwaa, FakeClock(start=0.0), [])

    assert "report.py: ModuleNotFoundError: No module named 'polars'" in str(failed.value)
    assert "did not load what was deployed" in str(failed.value)


def test_an_old_import_error_may_clear_but_a_missing_dag_fails_at_the_timeout(mwaa: Any) -> None:
    old = ("/usr/local/airflow/dags/report.py", SYNCED - timedelta(hours=1), "SyntaxError: old")
    clock = FakeClock(start=0.0)
    with Stubber(mwaa) as stub:
        for _ in range(3):
            expect_poll(stub, dags("hello"), import_errors(old))
        with pytest.raises(verify.VerifyFailedError) as failed:
            run(mwaa, clock, [], timeout_seconds=60)

    assert clock.sleeps == [30, 30]
    assert "/usr/local/airflow/dags/report.py: SyntaxError: old" in str(failed.value)
    assert "not loaded after 60 s: report" in str(failed.value)


def test_someone_elses_import_error_does_not_fail_the_deploy(mwaa: Any) -> None:
    theirs = ("other_team.py", SYNCED + timedelta(seconds=5), "ImportError: theirs")
    with Stubber(mwaa) as stub:
        expect_poll(stub, dags("hello", "report"), import_errors(theirs))
        state = run(mwaa, FakeClock(start=0.0), [])

    assert "other_team.py" in state.import_errors


def test_without_permission_the_message_says_what_is_needed(mwaa: Any) -> None:
    with Stubber(mwaa) as stub:
        stub.add_client_error("invoke_rest_api", "AccessDeniedException", "not authorized", 403)
        with pytest.raises(verify.VerifyFailedError, match=r"airflow:InvokeRestApi .* --no-verify"):
            run(mwaa, FakeClock(start=0.0), [])


def test_long_lists_are_read_page_by_page(mwaa: Any) -> None:
    first = {"dags": [{"dag_id": f"d{n:03d}"} for n in range(100)], "total_entries": 150}
    second = {"dags": [{"dag_id": f"d{n:03d}"} for n in range(100, 150)], "total_entries": 150}
    with Stubber(mwaa) as stub:
        for offset, body in ((0, first), (100, second)):
            stub.add_response(
                "invoke_rest_api",
                {"RestApiStatusCode": 200, "RestApiResponse": body},
                {
                    "Name": NAME,
                    "Path": "/dags",
                    "Method": "GET",
                    "QueryParameters": {"limit": 100, "offset": offset},
                },
            )
        stub.add_response("invoke_rest_api", import_errors())
        state = verify.parsed_state(mwaa, NAME)

    assert len(state.dag_ids) == 150
