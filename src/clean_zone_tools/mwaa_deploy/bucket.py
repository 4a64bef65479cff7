"""Refuse to deploy into a bucket that MWAA (or prudence) says is unsafe.

MWAA requires the environment's bucket to have versioning enabled (plugins.zip,
requirements.txt and startup.sh are referenced by object version, and rollback
needs old versions) and Block Public Access on. Default encryption is strongly
advised; S3 applies SSE-S3 to new buckets by default, so a bucket without it is
an old or deliberately changed one: that gets a warning, not a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

PUBLIC_ACCESS_SETTINGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


@dataclass
class BucketSafety:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return not self.problems


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def check(s3: Any, bucket: str) -> BucketSafety:
    """Versioning, Block Public Access and default encryption of ``bucket``.

    Errors other than "not configured" (no such bucket, access denied) propagate:
    the caller reports them as they are.
    """
    result = BucketSafety()

    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning != "Enabled":
        state = "suspended" if versioning == "Suspended" else "never enabled"
        result.problems.append(
            f"s3://{bucket}: versioning is {state}; MWAA needs it (and rollback needs old versions). "
            f"Enable it: aws s3api put-bucket-versioning --bucket {bucket} "
            "--versioning-configuration Status=Enabled"
        )

    try:
        config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as error:
        if _error_code(error) != "NoSuchPublicAccessBlockConfiguration":
            raise
        config = {}
    missing = [name for name in PUBLIC_ACCESS_SETTINGS if not config.get(name)]
    if missing:
        result.problems.append(
            f"s3://{bucket}: Block Public Access is not fully on (off: {', '.join(missing)}); "
            f"MWAA needs all four. Turn them on: aws s3api put-public-access-block --bucket {bucket} "
            "--public-access-block-configuration "
            "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"
        )

    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"].get("Rules", [])
    except ClientError as error:
        if _error_code(error) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = []
    if not any(rule.get("ApplyServerSideEncryptionByDefault") for rule in rules):
        result.warnings.append(
            f"s3://{bucket}: no default encryption configured; set SSE-S3 or SSE-KMS "
            "(infra/mwaa-environment.yaml does)"
        )
    return result
