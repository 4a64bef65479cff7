"""Fixtures for the deploy unit tests (no server)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest


@pytest.fixture
def mwaa() -> Any:
    """An MWAA client for botocore's Stubber: it never reaches AWS (the Stubber answers every call, and
    checks each request and response against the real service model)."""
    return boto3.client(
        "mwaa",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )
