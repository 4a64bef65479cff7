"""The file pipeline's plain steps called directly: the extension check and the route it decides."""

from __future__ import annotations

import pytest

from clean_zone.airflow_glue import file_tasks

CLAIM = {
    "bucket": "clean-zone",
    "key": "landing/partner/Orders.CSV.GZ",
    "relative_key": "partner/Orders.CSV.GZ",
    "size": 42,
    "etag": "e1",
    "run_id": "manual__1",
    "location": "s3://clean-zone/processing/partner/Orders.CSV.GZ",
}


def test_the_extension_check_describes_the_claimed_file() -> None:
    assert file_tasks.check_file_extension(CLAIM) == {
        "bucket": "clean-zone",
        "key": "landing/partner/Orders.CSV.GZ",
        "size": 42,
        "extension": ".csv.gz",
        "kind": "csv_gzip",
    }


@pytest.mark.parametrize(
    ("key", "route"),
    [
        ("landing/a.csv", file_tasks.VALIDATE_TASK),
        ("landing/a.CSV.gz", file_tasks.VALIDATE_TASK),
        ("landing/a.json", file_tasks.REJECT_TASK),
        ("landing/a.gz", file_tasks.REJECT_TASK),
        ("landing/README", file_tasks.REJECT_TASK),
    ],
)
def test_the_route_follows_the_check(key: str, route: str) -> None:
    checked = file_tasks.check_file_extension({**CLAIM, "key": key})
    assert file_tasks.route_by_extension(checked) == route
