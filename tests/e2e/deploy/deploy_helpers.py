"""Helpers for the deploy tests: a small deployable project, safe and unsafe buckets on the moto
server (real S3 protocol), a log of the S3 calls made, and plan+apply as scripts/deploy does it."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from clean_zone_tools.mwaa_deploy import plugins_zip
from clean_zone_tools.mwaa_deploy.apply import Deployer, Outcome
from clean_zone_tools.mwaa_deploy.plan import DeployPlan, DeployTarget
from clean_zone_tools.mwaa_deploy.project import ProjectLayout

REPO = Path(__file__).resolve().parents[3]
ENV = "clean-zone"  # the MWAA environment the Stubber-backed tests talk to

# A DAG that passes the DAG integrity gate (owner, tags, description, failure callback, retries)
# and imports a helper module that .airflowignore keeps away from the DAG processor.
HELLO_DAG = '''"""A small DAG for the deploy tests."""
from datetime import datetime

from airflow.sdk import DAG, task

from helpers.greetings import greeting


def _on_failure(context):
    return None


with DAG(
    dag_id="deploy_test_hello",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    tags=["deploy-test"],
    description="Says hello; deployed by the deploy tests.",
    default_args={"owner": "deploy-tests", "retries": 1},
    on_failure_callback=_on_failure,
):
    @task
    def say() -> str:
        return greeting()

    say()
'''


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def make_project(root: Path, extra_dag_files: int = 0) -> ProjectLayout:
    """A project shaped like this repository: dags/ (a DAG, a helper package, .airflowignore, a
    non-Python file), plugins/, the real requirements.txt, startup.sh and constraints/."""
    write(root / "dags" / "hello.py", HELLO_DAG)
    write(root / "dags" / "helpers" / "__init__.py", "")
    write(root / "dags" / "helpers" / "greetings.py", 'def greeting() -> str:\n    return "hello"\n')
    write(root / "dags" / "sql" / "report.sql", "select 1;\n")
    write(root / "dags" / ".airflowignore", "helpers/\n")
    for number in range(extra_dag_files):
        write(root / "dags" / "generated" / f"module_{number:03d}.py", f"VALUE = {number}\n")
    write(root / "plugins" / "deploy_test_plugin" / "__init__.py", "PLUGIN_VERSION = 1\n")
    shutil.copy(REPO / "requirements.txt", root / "requirements.txt")
    write(root / "startup.sh", "#!/usr/bin/env bash\nset -euo pipefail\necho starting\n")
    shutil.copytree(REPO / "constraints", root / "constraints")
    return ProjectLayout.at(root)


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto accepts any credentials
    )


@dataclass
class RequestLog:
    """Every S3 operation a client made, as (operation name, key or None)."""

    calls: list[tuple[str, str | None]] = field(default_factory=list)

    def record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, params.get("Key")))

    def writes(self) -> list[tuple[str, str | None]]:
        return [
            call
            for call in self.calls
            if call[0] in {"PutObject", "DeleteObjects", "DeleteObject", "CopyObject"}
        ]

    def clear(self) -> None:
        self.calls.clear()


def make_bucket(
    s3: Any, *, versioning: bool = True, public_access_block: bool = True, encryption: bool = True
) -> str:
    name = f"deploy-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    if versioning:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if public_access_block:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    if encryption:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
    return name


def keys(s3: Any, bucket: str, prefix: str = "") -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def body(s3: Any, bucket: str, key: str, version_id: str | None = None) -> bytes:
    extra = {"VersionId": version_id} if version_id else {}
    return s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()


@dataclass
class Run:
    plan: DeployPlan
    outcome: Outcome
    output: list[str]


def make_deployer(
    s3: Any, bucket: str, layout: ProjectLayout, output: list[str] | None = None, **options: Any
) -> Deployer:
    target = DeployTarget(bucket=bucket, environment=options.pop("environment", None))
    lines = output if output is not None else []
    return Deployer(s3, target, layout, out=lines.append, **options)


def deploy(s3: Any, bucket: str, layout: ProjectLayout, *, update: bool = True, **options: Any) -> Run:
    """Plan and apply as ``scripts/deploy`` does after a passing preflight."""
    output: list[str] = []
    deployer = make_deployer(s3, bucket, layout, output, **options)
    plan = deployer.plan(plugins_zip.build(layout.plugins_dir))
    deployer.print_plan(plan)
    outcome = deployer.apply(plan, update=update)
    return Run(plan, outcome, output)


# --- the MWAA control plane, through botocore's Stubber --------------------------------------------


class Captured:
    """Matches any value in a Stubber expectation and remembers it."""

    def __init__(self) -> None:
        self.value: Any = None

    def __eq__(self, other: object) -> bool:
        self.value = other
        return True

    __hash__ = None  # type: ignore[assignment]


def environment(
    bucket: str,
    status: str = "AVAILABLE",
    versions: dict[str, str] | None = None,
    last_update: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A GetEnvironment response as MWAA sends it."""
    env: dict[str, Any] = {
        "Name": ENV,
        "Status": status,
        "AirflowVersion": "3.3.1",
        "SourceBucketArn": f"arn:aws:s3:::{bucket}",
        "DagS3Path": "dags",
        "Arn": f"arn:aws:airflow:us-east-1:123456789012:environment/{ENV}",
    }
    names = {"plugins": "Plugins", "requirements": "Requirements", "startup": "StartupScript"}
    keys_by_role = {"plugins": "plugins.zip", "requirements": "requirements.txt", "startup": "startup.sh"}
    for role, version in (versions or {}).items():
        env[f"{names[role]}S3Path"] = keys_by_role[role]
        env[f"{names[role]}S3ObjectVersion"] = version
    if last_update is not None:
        env["LastUpdate"] = last_update
    return {"Environment": env}


def mwaa_client() -> Any:
    return boto3.client(
        "mwaa",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def versions_in_bucket(s3: Any, bucket: str) -> dict[str, str]:
    keys_by_role = {"plugins": "plugins.zip", "requirements": "requirements.txt", "startup": "startup.sh"}
    return {role: s3.head_object(Bucket=bucket, Key=key)["VersionId"] for role, key in keys_by_role.items()}
