"""Deployment records: what they keep, and that their ids sort by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clean_zone_tools.mwaa_deploy.record import DeploymentRecord, ObjectEntry, new_id


def test_a_record_survives_the_round_trip_through_json() -> None:
    entry = ObjectEntry(key="dags/a.py", version_id="v1", etag="abc", digest="d" * 64, size=10)
    record = DeploymentRecord(
        id=new_id(),
        created_at="2026-11-23T10:00:00+00:00",
        kind="deploy",
        bucket="b",
        dags_prefix="dags/",
        environment="env",
        git={"commit": "0" * 40, "dirty": False},
        dags={"dags/a.py": entry},
        artifacts={"requirements": ObjectEntry("requirements.txt", "v9", "e", "f" * 64, 3)},
        previous="older",
        environment_update={"status": "SUCCESS"},
        changes={"uploaded": ["dags/a.py"], "deleted": []},
    )

    assert DeploymentRecord.from_json(record.to_json()) == record


def test_a_record_of_another_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="format"):
        DeploymentRecord.from_json(b'{"format": 99}')


def test_ids_sort_in_time_order_and_do_not_collide() -> None:
    start = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    ids = [new_id(start + timedelta(milliseconds=step)) for step in (0, 1, 999, 1000, 60_000)]

    assert ids == sorted(ids)
    assert len({new_id(start) for _ in range(50)}) == 50
