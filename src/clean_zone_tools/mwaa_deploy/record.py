"""The deployment record: what each deployment shipped, kept in the bucket itself.

Every deployment writes ``<prefix>history/<id>.json`` and overwrites
``<prefix>latest.json`` with the same content. A record lists, for every DAG file
and for plugins.zip, requirements.txt and startup.sh, the S3 key, object version,
ETag and content digest, plus the git commit. That gives:

* fast no-change deploys: local digests are compared with the latest record and
  one listing of the DAG prefix (ETags there reveal edits made behind our back),
  instead of one request per file;
* rollback: the previous record names the exact object versions to restore.

Records chain through ``previous``. A rollback's record points ``previous`` at
the restored deployment's predecessor, so running rollback again steps further
back, like undo.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

FORMAT_VERSION = 1
DEFAULT_PREFIX = "deployments/"
ARTIFACT_ROLES = ("plugins", "requirements", "startup")


@dataclass(frozen=True)
class ObjectEntry:
    """One shipped S3 object version."""

    key: str
    version_id: str | None
    etag: str
    digest: str
    size: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectEntry:
        return cls(
            key=data["key"],
            version_id=data.get("version_id"),
            etag=data["etag"],
            digest=data["digest"],
            size=int(data.get("size", 0)),
        )


@dataclass
class DeploymentRecord:
    id: str
    created_at: str
    kind: str  # "deploy" or "rollback"
    bucket: str
    dags_prefix: str
    environment: str | None
    git: dict[str, Any]
    dags: dict[str, ObjectEntry]  # full S3 key -> entry
    artifacts: dict[str, ObjectEntry]  # "plugins" | "requirements" | "startup" -> entry
    previous: str | None = None
    restored: str | None = None
    environment_update: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {"format": FORMAT_VERSION, **asdict(self)}
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DeploymentRecord:
        data = json.loads(raw)
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"deployment record format {data.get('format')!r} is not {FORMAT_VERSION}")
        return cls(
            id=data["id"],
            created_at=data["created_at"],
            kind=data["kind"],
            bucket=data["bucket"],
            dags_prefix=data["dags_prefix"],
            environment=data.get("environment"),
            git=data.get("git") or {},
            dags={key: ObjectEntry.from_dict(entry) for key, entry in data["dags"].items()},
            artifacts={role: ObjectEntry.from_dict(entry) for role, entry in data["artifacts"].items()},
            previous=data.get("previous"),
            restored=data.get("restored"),
            environment_update=data.get("environment_update") or {},
            changes=data.get("changes") or {},
        )


def new_id(now: datetime | None = None) -> str:
    """Sortable by time, unique across concurrent runs: ``20261123T084525.123Z-1a2b3c``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RecordStore:
    """Reads and writes records under ``prefix`` in ``bucket``."""

    def __init__(self, s3: Any, bucket: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    @property
    def latest_key(self) -> str:
        return f"{self.prefix}latest.json"

    def history_key(self, record_id: str) -> str:
        return f"{self.prefix}history/{record_id}.json"

    def _get(self, key: str) -> DeploymentRecord | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return DeploymentRecord.from_json(body)

    def latest(self) -> DeploymentRecord | None:
        return self._get(self.latest_key)

    def get(self, record_id: str) -> DeploymentRecord | None:
        return self._get(self.history_key(record_id))

    def save(self, record: DeploymentRecord) -> None:
        body = record.to_json()
        # History first: if the second write fails, latest.json still names a
        # record that exists.
        for key in (self.history_key(record.id), self.latest_key):
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
            )

    def history_ids(self) -> list[str]:
        """Every recorded deployment id, oldest first."""
        ids: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}history/"):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if name.endswith(".json"):
                    ids.append(name.removesuffix(".json"))
        return sorted(ids)
