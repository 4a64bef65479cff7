"""What the manifest batch pipeline's steps hand each other, and how a batch can end.

Every record converts to and from a JSON-able dict: the DAG passes them
between tasks as XComs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from clean_zone.failures import DataQualityError, PipelineError


class Outcome(StrEnum):
    PROCESSED = "processed"
    QUARANTINED = "quarantined"  # the manifest was fine; the files were not
    REFUSED = "refused"  # the manifest itself was bad
    DUPLICATE = "duplicate"  # the batch id was already taken by another run


class FileStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    SIZE_MISMATCH = "size_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"


class BatchRefusedError(DataQualityError):
    """A batch that was quarantined (its files failed verification or processing)."""


class BatchStateError(PipelineError):
    """The batch's own records contradict each other: needs a person (not retried)."""


@dataclass(frozen=True)
class TakenManifest:
    """A manifest a run has taken. As XCom, ``bucket``/``key``/``location`` feed the failure alert."""

    bucket: str
    key: str  # where the partner put it
    held_key: str  # where it waits while the run works
    run_id: str
    taken_at: float  # epoch seconds: the late-file window starts here
    outcome: str | None = None
    location: str = ""  # s3:// URL of where it is now
    reason: str | None = None
    message: str | None = None
    version_id: str | None = None  # the upload taken (a versioned bucket); a later one is not this run's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TakenManifest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class FileVerification:
    """The verification of one listed file."""

    key: str  # relative to the batch prefix, as listed
    object_key: str
    status: FileStatus
    expected_size: int
    actual_size: int | None = None
    algorithm: str = ""
    expected_checksum: str = ""
    actual_checksum: str | None = None
    method: str = ""  # how the checksum was known: s3_checksum, etag_md5, streamed
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is FileStatus.OK

    def describe(self) -> str:
        if self.status is FileStatus.MISSING:
            return f"missing: {self.key}"
        if self.status is FileStatus.SIZE_MISMATCH:
            return f"size_mismatch: {self.key} (listed {self.expected_size} bytes, found {self.actual_size})"
        if self.status is FileStatus.CHECKSUM_MISMATCH:
            listed, found = self.expected_checksum[:12], (self.actual_checksum or "?")[:12]
            return f"checksum_mismatch: {self.key} ({self.algorithm} listed {listed}..., found {found}...)"
        return f"ok: {self.key}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileVerification:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        values["status"] = FileStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True)
class Arrival:
    """What the late-file wait saw when it stopped."""

    expected: int
    missing: list[str]
    waited_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FileResult:
    """The processing of one verified file."""

    key: str
    source: str
    ok: bool
    reason: str = ""
    detail: str = ""
    rows: int = 0
    bytes: int = 0
    output: str = ""
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
