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

Concurrent deploys: S3 conditional writes keep the history from forking. A deploy takes
``<prefix>lock.json`` (``IfNoneMatch="*"``: only one writer can create it) before it changes
anything, checks that ``latest.json`` is still the one its plan read, and finally replaces
``latest.json`` only if its ETag is still that one (``IfMatch``), then writes its history entry
(``IfNoneMatch="*"``). A lock left by a deploy that died expires; the next deploy takes it over, again
conditionally, so two cannot both take it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

FORMAT_VERSION = 1
DEFAULT_PREFIX = "deployments/"
ARTIFACT_ROLES = ("plugins", "requirements", "startup")
# S3's answers to a failed conditional write: the ETag no longer matches (or the key now exists), or
# another conditional write to the key was in flight.
_CONDITION_FAILED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


class RecordError(RuntimeError):
    """A deployment record or the deploy lock cannot be read or written as needed."""


class ConcurrentDeployError(RecordError):
    """Another deployment holds the lock, or finished since this one was planned."""


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


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
    dag_ids: list[str] = field(default_factory=list)  # what the environment should list after parsing
    verification: dict[str, Any] = field(default_factory=dict)

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
            dag_ids=list(data.get("dag_ids") or []),
            verification=data.get("verification") or {},
        )


def new_id(now: datetime | None = None) -> str:
    """Sortable by time, unique across concurrent runs: ``20261123T084525.123Z-1a2b3c``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Lock:
    """The deploy lock this run holds: its content and the ETag that proves it is still ours."""

    key: str
    etag: str
    holder: dict[str, Any]


class RecordStore:
    """Reads and writes records under ``prefix`` in ``bucket``, and the lock that serialises deploys."""

    def __init__(self, s3: Any, bucket: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        # ETag of latest.json when it was read (None: there was none); the final write is
        # conditional on it.
        self.latest_etag: str | None = None

    @property
    def latest_key(self) -> str:
        return f"{self.prefix}latest.json"

    @property
    def lock_key(self) -> str:
        return f"{self.prefix}lock.json"

    def history_key(self, record_id: str) -> str:
        return f"{self.prefix}history/{record_id}.json"

    def _read(self, key: str) -> tuple[bytes, str] | None:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                return None
            raise
        return response["Body"].read(), str(response["ETag"])

    def _parse(self, key: str, body: bytes) -> DeploymentRecord:
        try:
            return DeploymentRecord.from_json(body)
        except (ValueError, KeyError, TypeError) as error:
            raise RecordError(
                f"s3://{self.bucket}/{key} is not a readable deployment record ({type(error).__name__}: "
                f"{error}). Every record is also kept under {self.prefix}history/: copy the newest good one "
                f"over {key} (`scripts/deploy status` lists them), or delete {key} to start a new history"
            ) from error

    def latest(self) -> DeploymentRecord | None:
        found = self._read(self.latest_key)
        self.latest_etag = found[1] if found else None
        return self._parse(self.latest_key, found[0]) if found else None

    def get(self, record_id: str) -> DeploymentRecord | None:
        key = self.history_key(record_id)
        found = self._read(key)
        return self._parse(key, found[0]) if found else None

    def _put(self, key: str, body: bytes, **condition: str) -> str:
        response = self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            **condition,
        )
        return str(response["ETag"])

    def save(self, record: DeploymentRecord) -> None:
        """Make ``record`` the latest, only if latest.json is still what :meth:`latest` read.

        latest.json first: it is the point of no return, and the condition on it is what stops a
        second writer. The history entry follows (a new key; refused if it exists).
        """
        body = record.to_json()
        condition = {"IfMatch": self.latest_etag} if self.latest_etag else {"IfNoneMatch": "*"}
        try:
            self.latest_etag = self._put(self.latest_key, body, **condition)
        except ClientError as error:
            if _error_code(error) in _CONDITION_FAILED:
                raise ConcurrentDeployError(
                    f"another deployment replaced s3://{self.bucket}/{self.latest_key} while this one ran; "
                    f"this one ({record.id}) is not recorded. Run `scripts/deploy status`, then deploy again"
                ) from error
            raise
        self._put(self.history_key(record.id), body, IfNoneMatch="*")

    def acquire_lock(self, run_id: str, *, hold_seconds: float, git_commit: str | None) -> Lock:
        """Take the deploy lock, or raise :class:`ConcurrentDeployError` saying who holds it.

        Also refuses when latest.json changed since this run read it: the plan is then stale.
        """
        now = datetime.now(UTC)
        holder = {
            "id": run_id,
            "started_at": now.isoformat(timespec="seconds"),
            "expires_at": (now + timedelta(seconds=hold_seconds)).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "git_commit": git_commit,
        }
        body = (json.dumps(holder, indent=2, sort_keys=True) + "\n").encode()
        condition: dict[str, str] = {"IfNoneMatch": "*"}
        existing = self._read(self.lock_key)
        if existing is not None:
            held = _lock_holder(existing[0])
            expires = _parse_time(held.get("expires_at"))
            if expires is None or expires > now:
                raise ConcurrentDeployError(_held_message(self.bucket, self.lock_key, held))
            condition = {"IfMatch": existing[1]}  # take over an expired lock, unless someone else does
        try:
            etag = self._put(self.lock_key, body, **condition)
        except ClientError as error:
            if _error_code(error) not in _CONDITION_FAILED:
                raise
            again = self._read(self.lock_key)
            held = _lock_holder(again[0]) if again else {}
            raise ConcurrentDeployError(_held_message(self.bucket, self.lock_key, held)) from error
        lock = Lock(self.lock_key, etag, holder)
        found = self._read(self.latest_key)
        if (found[1] if found else None) != self.latest_etag:
            self.release_lock(lock)
            raise ConcurrentDeployError(
                f"another deployment finished since this plan was made (s3://{self.bucket}/"
                f"{self.latest_key} changed); nothing was changed. Run the command again to plan afresh"
            )
        return lock

    def release_lock(self, lock: Lock) -> None:
        """Delete the lock if it is still ours (a taken-over lock is left to its new holder)."""
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=lock.key, IfMatch=lock.etag)
        except ClientError as error:
            if _error_code(error) not in _CONDITION_FAILED | {"NoSuchKey", "404"}:
                raise

    def lock_holder(self) -> dict[str, Any] | None:
        found = self._read(self.lock_key)
        return _lock_holder(found[0]) if found else None

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


def _lock_holder(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _held_message(bucket: str, key: str, holder: dict[str, Any]) -> str:
    who = (
        f"deployment {holder.get('id', '?')} (started {holder.get('started_at', '?')} on "
        f"{holder.get('host', '?')}, git {str(holder.get('git_commit') or '?')[:12]})"
    )
    return (
        f"another deployment is running: {who} holds s3://{bucket}/{key} until "
        f"{holder.get('expires_at', '?')}; nothing was changed. Wait for it to finish; if it died, the lock "
        "expires by itself, or delete the key once you are sure no deploy runs"
    )
