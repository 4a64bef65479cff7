"""Checksum-based comparison and transfer between the project and the MWAA bucket.

What counts as "changed" is decided by content, never by timestamps:

* a DAG file is unchanged when the latest deployment record has the same SHA-256
  for its key *and* the bucket's ETag for that key is still the recorded one (so an
  upload made by hand since is noticed);
* a key the record does not know (first deploy, a bucket filled by ``aws s3 sync``)
  is compared by one HEAD request: our ``content-digest`` metadata, else the S3
  SHA-256 checksum, else a single-part ETag (an MD5).

This module only ever writes the keys it is given: DAG files under the DAG prefix
and the three MWAA objects. Deletions are limited to keys under the DAG prefix.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from .project import LocalFile
from .record import ObjectEntry

DIGEST_METADATA = "content-digest"
_SINGLE_PART_ETAG = re.compile(r"^[0-9a-f]{32}$")
_DELETE_BATCH = 1000  # DeleteObjects' limit


class DeleteRefusedError(RuntimeError):
    """S3 refused to delete some keys (e.g. missing s3:DeleteObject, object lock)."""


@dataclass(frozen=True)
class Artifact:
    """plugins.zip, requirements.txt or startup.sh as it would be uploaded."""

    role: str
    key: str
    data: bytes
    digest: str
    content_type: str


@dataclass(frozen=True)
class RemoteObject:
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class FileAction:
    key: str
    reason: str
    local: LocalFile | None = None


@dataclass(frozen=True)
class ArtifactAction:
    role: str
    key: str
    upload: bool
    reason: str
    artifact: Artifact
    entry: ObjectEntry | None = None  # the version already in the bucket when not uploading
    # The deployed version is not the bucket's current object (a failed or interrupted deploy left
    # another one current): copy it back on top, so the bucket shows what the environment runs.
    restore: bool = False


@dataclass
class DagPlan:
    uploads: list[FileAction] = field(default_factory=list)
    deletions: list[FileAction] = field(default_factory=list)
    unchanged: dict[str, ObjectEntry] = field(default_factory=dict)


def strip_etag(etag: str) -> str:
    return etag.strip('"')


def normalise_prefix(prefix: str) -> str:
    """``dags`` -> ``dags/``; refuses the bucket root, which would put every key in reach."""
    cleaned = prefix.strip().lstrip("/")
    if not cleaned or cleaned == "/":
        raise ValueError("the DAG prefix must not be empty or '/': deletions would reach the whole bucket")
    return cleaned if cleaned.endswith("/") else cleaned + "/"


def list_prefix(s3: Any, bucket: str, prefix: str) -> dict[str, RemoteObject]:
    """Latest objects under ``prefix`` (folder markers ending in '/' left out)."""
    found: dict[str, RemoteObject] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if not key.endswith("/"):
                found[key] = RemoteObject(key=key, etag=strip_etag(item["ETag"]), size=int(item["Size"]))
    return found


def _b64_sha256_to_hex(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 32 else None


def head(s3: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None:
    """HEAD with checksums, or None when the key (or that version) does not exist."""
    arguments: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
    if version_id is not None:
        arguments["VersionId"] = version_id
    try:
        return s3.head_object(**arguments)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        # HEAD responses have no body, so the code is the bare status; S3 answers a
        # malformed version id with 400.
        if code in {"404", "NoSuchKey", "NoSuchVersion"} or (code == "400" and version_id is not None):
            return None
        raise


def head_matches(
    response: dict[str, Any], digest: str, *, sha256_hex: str | None, read: Callable[[], bytes]
) -> bool:
    """Whether a HEAD response shows the same content as the local one.

    ``digest`` is what we store in metadata; ``sha256_hex`` is the plain SHA-256 of
    the bytes (None for plugins.zip, whose digest is over entries, not bytes).
    """
    stored = (response.get("Metadata") or {}).get(DIGEST_METADATA)
    if stored:
        return stored == digest
    if sha256_hex is None:
        return False
    checksum = response.get("ChecksumSHA256")
    if checksum and response.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
        return _b64_sha256_to_hex(checksum) == sha256_hex
    etag = strip_etag(response.get("ETag", ""))
    if _SINGLE_PART_ETAG.match(etag) and "SSEKMSKeyId" not in response:
        return hashlib.md5(read(), usedforsecurity=False).hexdigest() == etag
    return False


def entry_from_head(key: str, response: dict[str, Any], digest: str) -> ObjectEntry:
    return ObjectEntry(
        key=key,
        version_id=response.get("VersionId"),
        etag=strip_etag(response["ETag"]),
        digest=digest,
        size=int(response.get("ContentLength", 0)),
    )


def plan_dags(
    s3: Any,
    bucket: str,
    prefix: str,
    local: dict[str, LocalFile],
    recorded: dict[str, ObjectEntry],
    *,
    workers: int = 8,
) -> DagPlan:
    plan = DagPlan()
    remote = list_prefix(s3, bucket, prefix)
    local_by_key = {prefix + relpath: file for relpath, file in local.items()}
    to_head: list[
        tuple[str, LocalFile, bool]
    ] = []  # (key, file, known to the record but edited in the bucket)

    for key, file in sorted(local_by_key.items()):
        remote_object = remote.get(key)
        entry = recorded.get(key)
        if remote_object is None:
            reason = "missing from the bucket" if entry is not None else "new"
            plan.uploads.append(FileAction(key, reason, file))
        elif entry is not None and entry.etag == remote_object.etag:
            if entry.digest == file.sha256:
                plan.unchanged[key] = entry
            else:
                plan.uploads.append(FileAction(key, "changed", file))
        else:
            to_head.append((key, file, entry is not None))

    def compare(item: tuple[str, LocalFile, bool]) -> tuple[str, LocalFile, bool, dict[str, Any] | None]:
        key, file, drifted = item
        return key, file, drifted, head(s3, bucket, key)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for key, file, drifted, response in pool.map(compare, to_head):
            if response is not None and head_matches(
                response, file.sha256, sha256_hex=file.sha256, read=file.read
            ):
                plan.unchanged[key] = entry_from_head(key, response, file.sha256)
            else:
                reason = "changed in the bucket since the last deployment" if drifted else "changed"
                plan.uploads.append(FileAction(key, reason, file))

    plan.uploads.sort(key=lambda action: action.key)
    plan.deletions = [
        FileAction(key, "not in the local dags folder") for key in sorted(remote) if key not in local_by_key
    ]
    return plan


def current_objects(s3: Any, bucket: str, keys: Iterable[str]) -> dict[str, RemoteObject]:
    """The current objects at ``keys``: one delimited listing per folder they are in, not one HEAD each."""
    wanted = set(keys)
    found: dict[str, RemoteObject] = {}
    for folder in sorted({key.rpartition("/")[0] + "/" if "/" in key else "" for key in wanted}):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/")
        for page in pages:
            for item in page.get("Contents", []):
                if item["Key"] in wanted:
                    found[item["Key"]] = RemoteObject(
                        item["Key"], strip_etag(item["ETag"]), int(item["Size"])
                    )
    return found


def plan_artifact(
    s3: Any,
    bucket: str,
    artifact: Artifact,
    recorded: ObjectEntry | None,
    current: RemoteObject | None,
) -> ArtifactAction:
    """Upload, restore or leave one of the three objects. ``current`` is the bucket's current object."""
    sha256_hex = hashlib.sha256(artifact.data).hexdigest() if artifact.role != "plugins" else None
    if recorded is not None and recorded.key == artifact.key and recorded.digest == artifact.digest:
        if current is not None and current.etag == recorded.etag:
            return ArtifactAction(artifact.role, artifact.key, False, "unchanged", artifact, recorded)
        # The ETag differs: another object is current, unless only the ETag differs (SSE-KMS).
        response = head(s3, bucket, artifact.key) if current is not None else None
        if response is not None and head_matches(
            response, recorded.digest, sha256_hex=sha256_hex, read=lambda: artifact.data
        ):
            return ArtifactAction(artifact.role, artifact.key, False, "unchanged", artifact, recorded)
        return ArtifactAction(
            artifact.role,
            artifact.key,
            False,
            "the bucket's current object is not the deployed version (left by a failed or interrupted "
            "deploy, or a hand upload); the deployed version is made current again",
            artifact,
            recorded,
            restore=True,
        )
    response = head(s3, bucket, artifact.key)
    if response is not None and head_matches(
        response, artifact.digest, sha256_hex=sha256_hex, read=lambda: artifact.data
    ):
        entry = entry_from_head(artifact.key, response, artifact.digest)
        return ArtifactAction(
            artifact.role, artifact.key, False, "unchanged (already in the bucket)", artifact, entry
        )
    reason = "new" if response is None else "changed"
    return ArtifactAction(artifact.role, artifact.key, True, reason, artifact)


def put(s3: Any, bucket: str, key: str, *, data: bytes, digest: str, content_type: str) -> ObjectEntry:
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        ChecksumAlgorithm="SHA256",
        Metadata={DIGEST_METADATA: digest},
    )
    return ObjectEntry(
        key=key,
        version_id=response.get("VersionId"),
        etag=strip_etag(response["ETag"]),
        digest=digest,
        size=len(data),
    )


def content_type_for(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key)
    if key.endswith(".py"):
        return "text/x-python"
    return guessed or "application/octet-stream"


def upload_files(
    s3: Any,
    bucket: str,
    actions: list[FileAction],
    *,
    progress: Callable[[int, int], None],
    workers: int = 8,
) -> dict[str, ObjectEntry]:
    def send(action: FileAction) -> ObjectEntry:
        assert action.local is not None
        return put(
            s3,
            bucket,
            action.key,
            data=action.local.read(),
            digest=action.local.sha256,
            content_type=content_type_for(action.key),
        )

    entries: dict[str, ObjectEntry] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, entry in enumerate(pool.map(send, actions), start=1):
            entries[entry.key] = entry
            progress(done, len(actions))
    return entries


def delete_keys(s3: Any, bucket: str, prefix: str, keys: Iterable[str]) -> list[str]:
    """Delete ``keys`` (all under ``prefix``; anything else is refused). Returns what was deleted."""
    keys = list(keys)
    outside = [key for key in keys if not key.startswith(prefix)]
    if outside:
        raise ValueError(f"refusing to delete keys outside {prefix!r}: {outside[:5]}")
    deleted: list[str] = []
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start : start + _DELETE_BATCH]
        response = s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
        )
        errors = response.get("Errors", [])
        if errors:
            details = "; ".join(
                f"{e.get('Key')}: {e.get('Code')} {e.get('Message', '')}".strip() for e in errors[:5]
            )
            raise DeleteRefusedError(
                f"S3 refused {len(errors)} deletion(s) under s3://{bucket}/{prefix}: {details}. "
                f"{len(deleted)} deleted before; the caller needs s3:DeleteObject there"
            )
        deleted.extend(batch)
    return deleted


def copy_version(s3: Any, bucket: str, entry: ObjectEntry) -> ObjectEntry:
    """Make ``entry``'s old version the latest again (a new version with the same bytes)."""
    response = s3.copy_object(
        Bucket=bucket,
        Key=entry.key,
        CopySource={"Bucket": bucket, "Key": entry.key, "VersionId": entry.version_id},
        ChecksumAlgorithm="SHA256",
        MetadataDirective="COPY",
    )
    return ObjectEntry(
        key=entry.key,
        version_id=response.get("VersionId"),
        etag=strip_etag(response["CopyObjectResult"]["ETag"]),
        digest=entry.digest,
        size=entry.size,
    )
