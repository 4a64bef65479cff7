"""AWS clients for tasks, built through the Airflow AWS connection.

Locally the connection carries the moto endpoint; on MWAA the default
connection uses the execution role and AWS's own endpoints. Tasks never build
boto3 clients any other way, so the endpoint is configuration, not code.
"""

from __future__ import annotations

from typing import Any

from clean_zone.config import Settings
from clean_zone.storage import ObjectStore


def client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``service`` using the configured Airflow connection."""
    # Imported here: DAG files import this module, and the hook is slow to import at parse time.
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type=service, region_name=settings.region)
    return hook.get_conn()


def object_store(settings: Settings, bucket: str | None = None) -> ObjectStore:
    """``bucket`` (the clean-zone bucket by default) through the task's S3 client."""
    return ObjectStore(client("s3", settings), bucket or settings.bucket)
