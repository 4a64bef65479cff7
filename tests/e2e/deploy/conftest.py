"""Fixtures for the deploy tests (helpers in deploy_helpers.py). The moto server is
tests/conftest.py's ``moto_endpoint``: real S3 protocol over HTTP, one server per test worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REPO, RequestLog, make_bucket, make_project, s3_client

from clean_zone_tools.mwaa_deploy.project import ProjectLayout


@pytest.fixture
def project(tmp_path: Path) -> ProjectLayout:
    return make_project(tmp_path / "project")


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return s3_client(moto_endpoint)


@pytest.fixture
def request_log(s3: Any) -> RequestLog:
    log = RequestLog()
    s3.meta.events.register("before-parameter-build.s3.*", log.record)
    return log


@pytest.fixture
def bucket(s3: Any) -> str:
    """A bucket MWAA would accept: versioned, Block Public Access on, default encryption. Unique per test."""
    return make_bucket(s3)


@pytest.fixture(scope="session")
def mwaa_like_env() -> None:
    """The MWAA-like environment of this repository's constraints and requirements.txt, built (or found
    in .state/mwaa-env/) once per session, so the tests that import DAGs in it do not each wait for it.

    The projects from ``make_project`` copy the same files, so the preflight finds this build cached.
    """
    from clean_zone_tools.mwaa_deploy import mwaa_env, requirements

    constraints = REPO / "constraints"
    mwaa_env.ensure(
        mwaa_env.preinstalled_file(constraints, "3.3.1"),
        REPO / "requirements.txt",
        requirements.local_constraints(constraints, "3.3.1", "3.12"),
        REPO / "plugins",
        progress=print,
    )
