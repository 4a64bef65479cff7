"""Rules of the sync that hold without a bucket: the DAG prefix, and which keys may be deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from clean_zone_tools.mwaa_deploy import sync
from clean_zone_tools.mwaa_deploy.apply import Deployer
from clean_zone_tools.mwaa_deploy.plan import DeployTarget
from clean_zone_tools.mwaa_deploy.project import ProjectLayout


@pytest.mark.parametrize(
    ("given", "expected"), [("dags", "dags/"), ("/dags/", "dags/"), ("team/dags", "team/dags/")]
)
def test_prefixes_are_normalised(given: str, expected: str) -> None:
    assert sync.normalise_prefix(given) == expected


@pytest.mark.parametrize("given", ["", "/", "  "])
def test_the_bucket_root_is_never_a_dag_prefix(given: str) -> None:
    with pytest.raises(ValueError, match="whole bucket"):
        sync.normalise_prefix(given)


def test_deleting_outside_the_prefix_is_refused_before_any_request() -> None:
    class NoRequests:
        def delete_objects(self, **_: object) -> None:
            raise AssertionError("no request may be made")

    with pytest.raises(ValueError, match="outside 'dags/'"):
        sync.delete_keys(NoRequests(), "bucket", "dags/", ["dags/a.py", "landing/partner.csv"])


def test_the_record_prefix_may_not_overlap_the_dag_prefix(tmp_path: Path) -> None:
    layout = ProjectLayout.at(tmp_path)
    with pytest.raises(ValueError, match="must not contain each other"):
        target = DeployTarget(bucket="b", dags_prefix="dags/", record_prefix="dags/deployments/")
        Deployer(object(), target, layout)
