"""boto3 clients for the local endpoint (the moto server, the durable endpoint, or the fault proxy).

moto accepts any credentials; these placeholders are not secrets. One place, so the tools, the
benchmarks and the tests build their clients alike.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

PLACEHOLDER_KEY = "testing"
REGION = "us-east-1"


def client(
    service: str, endpoint_url: str, *, attempts: int = 3, pool: int = 10, region: str = REGION
) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=PLACEHOLDER_KEY,
        aws_secret_access_key=PLACEHOLDER_KEY,
        config=Config(
            max_pool_connections=pool, retries={"total_max_attempts": attempts, "mode": "standard"}
        ),
    )
