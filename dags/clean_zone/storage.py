"""The one place that talks to S3.

:class:`ObjectStore` wraps a boto3 S3 client and one bucket. It streams
(never reads a whole object into memory), copies before it deletes, and
turns S3's error codes into the project's failure classes so retries treat
them right. It does not import Airflow: tasks build the client through
:func:`clean_zone.airflow_glue.aws.client`, scripts through plain boto3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NoReturn

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from clean_zone.failures import EndpointError, FailureClass, classify

CHUNK_SIZE = 1024 * 1024
# S3's limit for a single CopyObject; above it a copy must be multipart.
MAX_SINGLE_COPY_BYTES = 5 * 1024**3
_LARGE_COPY = TransferConfig(multipart_threshold=MAX_SINGLE_COPY_BYTES, multipart_chunksize=512 * 1024**2)

# S3 error codes that mean "the object is not there" rather than "S3 is unwell".
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
# A version that is a delete marker answers 405; a malformed or unknown version id 400.
_BAD_VERSION_CODES = {"405", "MethodNotAllowed", "400", "InvalidArgument", "NoSuchVersion"}
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class ObjectMissing(LookupError):
    """The object does not exist (or vanished while we worked on it)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What S3 says about one object."""

    key: str
    size: int
    etag: str
    version_id: str | None = None
    checksum_sha256: str | None = None
    checksum_type: str | None = None
    last_modified: str | None = None  # ISO 8601, as S3 reports it

    @classmethod
    def from_head(cls, key: str, head: dict[str, Any]) -> ObjectInfo:
        return cls(
            key=key,
            size=int(head["ContentLength"]),
            etag=str(head.get("ETag", "")).strip('"'),
            version_id=head.get("VersionId"),
            checksum_sha256=head.get("ChecksumSHA256"),
            checksum_type=head.get("ChecksumType"),
            last_modified=_iso(head.get("LastModified")),
        )


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _fail(action: str, bucket: str, key: str, error: Exception) -> NoReturn:
    """Raise S3 trouble as an EndpointError (retried); anything else (a bug, a bad request) as it is."""
    if classify(error) is FailureClass.ENDPOINT:
        raise EndpointError(f"S3 {action} s3://{bucket}/{key} failed: {error}") from error
    raise error


class ObjectStore:
    """One bucket, seen through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # --- reading -------------------------------------------------------------
    def head(
        self, key: str, *, with_checksum: bool = False, version_id: str | None = None
    ) -> ObjectInfo | None:
        """Metadata of ``key`` (or of its version ``version_id``), or None if absent.

        ``with_checksum`` asks S3 for stored checksums.
        """
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        if with_checksum:
            kwargs["ChecksumMode"] = "ENABLED"
        try:
            return ObjectInfo.from_head(key, self.client.head_object(**kwargs))
        except ClientError as error:
            # A version id that was never there answers 400 InvalidArgument: absent all the same.
            if _code(error) in _MISSING_CODES or (version_id and _code(error) in _BAD_VERSION_CODES):
                return None
            _fail("head", self.bucket, key, error)
        except BotoCoreError as error:
            _fail("head", self.bucket, key, error)

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """A streaming, file-like body of ``key`` or of its version ``version_id`` (read it in chunks)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            return self.client.get_object(**kwargs)["Body"]
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                raise ObjectMissing(self.url(key)) from error
            _fail("get", self.bucket, key, error)
        except BotoCoreError as error:
            _fail("get", self.bucket, key, error)

    def iter_chunks(
        self, key: str, chunk_size: int = CHUNK_SIZE, *, version_id: str | None = None
    ) -> Iterator[bytes]:
        body = self.open(key, version_id)
        try:
            while chunk := body.read(chunk_size):
                yield chunk
        finally:
            body.close()

    def read_bytes(self, key: str, limit: int) -> bytes:
        """A small object's bytes; refuses objects over ``limit`` bytes (manifests, sidecars)."""
        body = self.open(key)
        try:
            data = body.read(limit + 1)
        finally:
            body.close()
        if len(data) > limit:
            raise ValueError(f"{self.url(key)} is larger than {limit} bytes")
        return data

    def get_json(self, key: str, limit: int = 16 * 1024 * 1024) -> Any:
        return json.loads(self.read_bytes(key, limit))

    def list_keys(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"],
                        size=int(item["Size"]),
                        etag=str(item.get("ETag", "")).strip('"'),
                        last_modified=_iso(item.get("LastModified")),
                    )
        except (ClientError, BotoCoreError) as error:
            _fail("list", self.bucket, prefix, error)

    # --- writing -------------------------------------------------------------
    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> bool:
        """Write ``data``. With ``if_absent``, write only if no object is there; False if one was."""
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
        }
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**kwargs)
        except ClientError as error:
            if if_absent and _code(error) in _PRECONDITION_CODES:
                return False
            _fail("put", self.bucket, key, error)
        except BotoCoreError as error:
            _fail("put", self.bucket, key, error)
        return True

    def put_json(self, key: str, document: Any, *, if_absent: bool = False) -> bool:
        data = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
        return self.put_bytes(key, data, content_type="application/json", if_absent=if_absent)

    def upload_stream(self, key: str, stream: BinaryIO, *, content_type: str = "text/csv") -> None:
        """Upload a file-like object in parts (multipart for large data); constant memory."""
        try:
            self.client.upload_fileobj(stream, self.bucket, key, ExtraArgs={"ContentType": content_type})
        except (ClientError, BotoCoreError) as error:
            _fail("upload", self.bucket, key, error)

    def copy(
        self,
        source_key: str,
        target_key: str,
        *,
        version_id: str | None = None,
        source: ObjectInfo | None = None,
    ) -> ObjectInfo:
        """Copy within the bucket and confirm the copy landed whole.

        One CopyObject up to S3's 5 GB limit for it: the server copies the bytes in one request.
        boto3's managed copy would split anything over 8 MB into part copies (a 1 GiB claim took
        80 s that way); parts are used only above 5 GB, where S3 requires them, in 512 MiB pieces.
        ``version_id`` copies that version of the source rather than its current one. ``source``
        is the source's head when the caller has it already (one request fewer).
        """
        if source is None:
            source = self.head(source_key, version_id=version_id)
        if source is None:
            raise ObjectMissing(self.url(source_key))
        origin = {"Bucket": self.bucket, "Key": source_key}
        if version_id:
            origin["VersionId"] = version_id
        try:
            if source.size <= MAX_SINGLE_COPY_BYTES:
                # CRC32 asks for a whole-object checksum of the copy: a multipart upload's composite
                # checksum carried over as it is would not match the bytes a reader validates.
                answer = self.client.copy_object(
                    CopySource=origin, Bucket=self.bucket, Key=target_key, ChecksumAlgorithm="CRC32"
                )
                return self._copied(source, target_key, answer)
            self.client.copy(origin, self.bucket, target_key, Config=_LARGE_COPY)
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                raise ObjectMissing(self.url(source_key)) from error
            _fail("copy", self.bucket, source_key, error)
        except BotoCoreError as error:
            _fail("copy", self.bucket, source_key, error)
        copied = self.head(target_key)
        if copied is None or copied.size != source.size:
            raise EndpointError(f"copy of {self.url(source_key)} to {target_key} did not land whole")
        return copied

    def _copied(self, source: ObjectInfo, target_key: str, answer: dict[str, Any]) -> ObjectInfo:
        """The copy, from CopyObject's answer: S3 answers only once the copy is whole, so no HEAD.

        A single-part object's ETag is the MD5 of its bytes: the copy's must be the source's.
        """
        result = answer.get("CopyObjectResult") or {}
        etag = str(result.get("ETag", "")).strip('"')
        if "-" not in source.etag and etag and etag != source.etag:
            raise EndpointError(f"copy of {self.url(source.key)} to {target_key} did not land whole")
        return ObjectInfo(
            key=target_key,
            size=source.size,
            etag=etag,
            version_id=answer.get("VersionId"),
            last_modified=_iso(result.get("LastModified")),
        )

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            _fail("delete", self.bucket, key, error)

    def move(
        self,
        source_key: str,
        target_key: str,
        *,
        version_id: str | None = None,
        source: ObjectInfo | None = None,
    ) -> ObjectInfo:
        """Copy, confirm, then delete the source: the object is never only in flight.

        ``version_id`` moves that version of the source, and deletes the source only while it still
        shows that version: a newer upload to the key is never hidden behind a delete marker.
        ``source``: the source's head, when the caller has it (see :meth:`copy`).
        """
        copied = self.copy(source_key, target_key, version_id=version_id, source=source)
        if version_id is not None:
            current = self.head(source_key)
            if current is None or current.version_id != version_id:
                return copied
        self.delete(source_key)
        return copied
