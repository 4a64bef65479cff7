"""Batch manifests: the format, and turning a manifest's bytes into a checked :class:`Manifest`.

A partner uploads a batch's data files under ``<batches_prefix><batch_id>/``
and then one manifest (JSON, version 1) under ``<manifests_prefix>``. The
manifest lists every file with its size and checksum; the published JSON
Schema is ``schemas/manifest-v1.schema.json`` and docs/manifests.md
describes it for partners.

:func:`parse` never crashes on bad input: every way a manifest can be wrong
becomes a :class:`ManifestError` carrying one or more :class:`Problem`, each
with a stable reason code (:class:`Reason`). The error's ``reason`` is the
most important problem's code (see ``_PRIORITY``), so an alert or a report
can say in one word why the batch was refused, and list the rest.

The schema is the contract; the Python checks here add what a schema cannot
say (duplicate keys, a manifest listing itself, S3's 1024-byte key limit)
and give each schema violation a precise reason code.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator

from clean_zone.failures import DataQualityError
from clean_zone.hashing import ALGORITHMS, ChecksumFormatError, normalize_digest
from clean_zone.keys import MAX_KEY_BYTES, batch_prefix, is_folder_marker

MANIFEST_VERSION = 1
# One verification task per file, and Airflow refuses to map more than
# [core] max_map_length (default 1024) items; 1000 leaves room and is a round
# number to tell partners. Larger deliveries are split into several batches.
MAX_FILES = 1000
# A 1000-entry manifest is about 250 KB; 8 MiB leaves room for long keys and
# extension fields while refusing to read an arbitrary object into memory.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
# A report names every problem up to this many; beyond it, it counts them.
MAX_REPORTED_PROBLEMS = 200

SCHEMA_PATH = Path(__file__).with_name("schemas") / "manifest-v1.schema.json"

_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Reason(StrEnum):
    """Why a manifest was refused. Stable codes: reports and alerts carry them."""

    MANIFEST_TOO_LARGE = "manifest_too_large"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_MANY_FILES = "too_many_files"
    EMPTY_FILE_LIST = "empty_file_list"
    INVALID_BATCH_ID = "invalid_batch_id"
    UNKNOWN_CHECKSUM_ALGORITHM = "unknown_checksum_algorithm"
    INVALID_CHECKSUM_VALUE = "invalid_checksum_value"
    KEY_ESCAPES_BATCH_PREFIX = "key_escapes_batch_prefix"
    INVALID_KEY = "invalid_key"
    LISTS_ITSELF = "lists_itself"
    DUPLICATE_ENTRIES = "duplicate_entries"
    SCHEMA_VIOLATION = "schema_violation"


# When a manifest has several problems, the first of these found is "the" reason.
_PRIORITY: tuple[Reason, ...] = tuple(Reason)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest; ``where`` points into the document (``files[3].key``)."""

    reason: Reason
    message: str
    where: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason.value, "message": self.message, "where": self.where}

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ManifestError(DataQualityError):
    """A manifest the pipeline refuses; ``problems`` lists every reason found."""

    def __init__(self, problems: Sequence[Problem], *, omitted: int = 0) -> None:
        ordered = sorted(problems, key=lambda p: _PRIORITY.index(p.reason))
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.omitted = omitted
        primary = ordered[0]
        count = len(problems) + omitted
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        reason = primary.reason.value
        super().__init__(f"bad manifest: {reason}: {primary}{more}", reason=reason)

    @property
    def reasons(self) -> list[str]:
        """Every distinct reason code, most important first."""
        found = {p.reason for p in self.problems}
        return [r.value for r in _PRIORITY if r in found]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "reasons": self.reasons,
            "problems": [p.to_dict() for p in self.problems],
            "problems_not_listed": self.omitted,
        }


@dataclass(frozen=True)
class FileEntry:
    """One listed file. ``key`` is relative to the batch prefix; ``checksum`` is lower-case hex."""

    key: str
    size: int
    algorithm: str
    checksum: str
    rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        return cls(
            key=data["key"],
            size=int(data["size"]),
            algorithm=data["algorithm"],
            checksum=data["checksum"],
            rows=data.get("rows"),
        )

    def to_manifest_entry(self) -> dict[str, Any]:
        """The entry as a manifest file writes it."""
        entry: dict[str, Any] = {
            "key": self.key,
            "size": self.size,
            "checksum": {"algorithm": self.algorithm, "value": self.checksum},
        }
        if self.rows is not None:
            entry["rows"] = self.rows
        return entry


@dataclass(frozen=True)
class Manifest:
    """A manifest that passed every check."""

    batch_id: str
    files: tuple[FileEntry, ...]
    version: int = MANIFEST_VERSION
    created_at: str | None = None
    producer: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def batch_prefix(self, batches_prefix: str) -> str:
        return batch_prefix(batches_prefix, self.batch_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "version": self.version,
            "created_at": self.created_at,
            "producer": self.producer,
            "extensions": self.extensions,
            "files": [f.to_dict() for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            batch_id=data["batch_id"],
            files=tuple(FileEntry.from_dict(f) for f in data["files"]),
            version=data.get("version", MANIFEST_VERSION),
            created_at=data.get("created_at"),
            producer=data.get("producer"),
            extensions=dict(data.get("extensions") or {}),
        )


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema (version 1)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


_ESCAPES = Reason.KEY_ESCAPES_BATCH_PREFIX
# (test on the key and its '/'-separated, percent-decoded segments; reason; what is wrong). First match wins.
_KEY_RULES: tuple[tuple[Callable[[str, list[str]], bool], Reason, str], ...] = (
    (
        lambda key, _: key.startswith("/") or bool(_DRIVE.match(key)),
        _ESCAPES,
        "is an absolute path; keys are relative to the batch prefix",
    ),
    (
        lambda key, _: bool(_URL.match(key)) or key.startswith("arn:"),
        _ESCAPES,
        "names another location (URL or ARN); a batch's files must be in its own prefix",
    ),
    (lambda _, parts: ".." in parts, _ESCAPES, "has a '..' segment that leaves the batch prefix"),
    (lambda key, _: bool(_CONTROL.search(key)), Reason.INVALID_KEY, "contains control characters"),
    (lambda key, _: "\\" in key, Reason.INVALID_KEY, "contains a backslash; separate folders with '/'"),
    (lambda key, _: is_folder_marker(key), Reason.INVALID_KEY, "ends with '/': that is a folder, not a file"),
    (lambda _, parts: "." in parts, Reason.INVALID_KEY, "has a '.' segment; write the plain relative path"),
    (lambda _, parts: "" in parts, Reason.INVALID_KEY, "has an empty segment ('//' or nothing at all)"),
)


def key_problem(key: str) -> Problem | None:
    """Why ``key`` cannot name a file inside the batch prefix, or None if it can."""
    # Backslashes count as separators too: "..\\x" written on Windows is still an escape.
    segments = [unquote(s) for s in key.replace("\\", "/").split("/")]
    for test, reason, what in _KEY_RULES:
        if test(key, segments):
            return Problem(reason, f"{key!r} {what}")
    return None


def _where(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _schema_problem(error: Any, document: dict[str, Any]) -> Problem:
    """A jsonschema ValidationError as a Problem with a precise reason."""
    path = list(error.absolute_path)
    where = _where(path)
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    match path:
        case ["batch_id"]:
            rule = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
            problem = Problem(Reason.INVALID_BATCH_ID, f"batch_id must be {rule} (it names a folder)", where)
        case ["files"] if error.validator == "minItems":
            problem = Problem(Reason.EMPTY_FILE_LIST, "the manifest lists no files", where)
        case ["files"] if error.validator == "maxItems":
            problem = _too_many(len(document["files"]))
        case ["files", int(), "checksum", "algorithm"]:
            accepted = " or ".join(ALGORITHMS)
            message = f"checksum algorithm {error.instance!r} is not accepted; use {accepted}"
            problem = Problem(Reason.UNKNOWN_CHECKSUM_ALGORITHM, message, where)
        case ["files", int(), "checksum", "value"]:
            problem = Problem(Reason.INVALID_CHECKSUM_VALUE, message, where)
        case ["files", int(), "key"] if isinstance(error.instance, str):
            found = key_problem(error.instance) or Problem(
                Reason.INVALID_KEY, f"{error.instance!r} is not an acceptable key ({error.validator})"
            )
            problem = Problem(found.reason, found.message, where)
        case _:
            problem = Problem(Reason.SCHEMA_VIOLATION, message, where)
    return problem


def _too_many(count: int) -> Problem:
    return Problem(
        Reason.TOO_MANY_FILES,
        f"the manifest lists {count} files; at most {MAX_FILES} are accepted per batch "
        "(split the delivery into several batches)",
        "files",
    )


class _DuplicateFieldError(ValueError):
    pass


def _reject_duplicate_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON allows a field twice and json.loads silently keeps the last; a manifest must be unambiguous.
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateFieldError(f"field {name!r} appears twice in one object")
        result[name] = value
    return result


def decode(data: bytes) -> Any:
    """The JSON document in ``data``; ManifestError (not_json / manifest_too_large) if there is none."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            [
                Problem(
                    Reason.MANIFEST_TOO_LARGE,
                    f"the manifest is {len(data)} bytes; at most {MAX_MANIFEST_BYTES} are read",
                )
            ]
        )
    if not data.strip():
        raise ManifestError([Problem(Reason.NOT_JSON, "the manifest is empty")])
    try:
        return json.loads(data, object_pairs_hook=_reject_duplicate_fields)
    except _DuplicateFieldError as error:
        raise ManifestError([Problem(Reason.SCHEMA_VIOLATION, str(error))]) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ManifestError([Problem(Reason.NOT_JSON, f"the manifest is not valid JSON: {error}")]) from None


def parse(data: bytes, *, manifest_key: str = "", batches_prefix: str = "batches/") -> Manifest:
    """Check a manifest's bytes and return the :class:`Manifest`; ManifestError lists every problem.

    ``manifest_key`` (where the manifest was found) lets the parser refuse a
    manifest that lists itself; ``batches_prefix`` lets it check that every
    file's full key fits S3's 1024-byte limit.
    """
    return validate(decode(data), manifest_key=manifest_key, batches_prefix=batches_prefix)


def validate(document: Any, *, manifest_key: str = "", batches_prefix: str = "batches/") -> Manifest:
    """Like :func:`parse`, for an already decoded document."""
    if not isinstance(document, dict):
        raise ManifestError(
            [
                Problem(
                    Reason.NOT_AN_OBJECT, f"the manifest must be a JSON object, not {type(document).__name__}"
                )
            ]
        )
    version = document.get("manifest_version")
    # bool is an int in Python; JSON's true is not version 1.
    if type(version) is not int or version != MANIFEST_VERSION:
        found = "missing" if version is None else repr(version)
        message = f"manifest_version is {found}; this pipeline reads version {MANIFEST_VERSION}"
        raise ManifestError([Problem(Reason.UNSUPPORTED_VERSION, message, "manifest_version")])
    files = document.get("files")
    if isinstance(files, list) and len(files) > MAX_FILES:
        # Refused before the entries are examined: the cost of looking must not grow with abuse.
        raise ManifestError([_too_many(len(files))])

    problems: list[Problem] = []
    seen: set[tuple[Reason, str]] = set()

    def add(problem: Problem) -> None:
        if (problem.reason, problem.where) not in seen:
            seen.add((problem.reason, problem.where))
            problems.append(problem)

    for error in _validator().iter_errors(document):
        add(_schema_problem(error, document))

    entries = files if isinstance(files, list) else []
    batch_id = document.get("batch_id") if isinstance(document.get("batch_id"), str) else ""
    for problem in _semantic_problems(entries, batch_id, manifest_key, batches_prefix):
        add(problem)

    if problems:
        listed = problems[:MAX_REPORTED_PROBLEMS]
        raise ManifestError(listed, omitted=len(problems) - len(listed))
    return Manifest(
        batch_id=document["batch_id"],
        files=tuple(_entry(item) for item in entries),
        created_at=document.get("created_at"),
        producer=document.get("producer"),
        extensions={k: v for k, v in document.items() if k.startswith("x-")},
    )


def _semantic_problems(
    entries: list[Any], batch_id: str, manifest_key: str, batches_prefix: str
) -> Iterable[Problem]:
    """What the schema cannot say: duplicates, self-listing, S3's key length."""
    first_seen: dict[str, int] = {}
    manifest_name = posixpath.basename(manifest_key)
    prefix = batch_prefix(batches_prefix, batch_id) if _BATCH_ID.match(batch_id) else ""
    for index, item in enumerate(entries):
        key = item.get("key") if isinstance(item, dict) else None
        if not isinstance(key, str):
            continue
        where = f"files[{index}].key"
        # The schema says the same; checked again so the two can never disagree in the pipeline's favour.
        found = key_problem(key)
        if found is not None:
            yield Problem(found.reason, found.message, where)
        if key in first_seen:
            message = f"{key!r} is listed twice (also files[{first_seen[key]}])"
            yield Problem(Reason.DUPLICATE_ENTRIES, message, where)
        else:
            first_seen[key] = index
        if manifest_key and (key == manifest_name or prefix + key == manifest_key):
            message = (
                f"{key!r} is the manifest itself; a manifest cannot list its own file "
                "(its checksum would have to include itself)"
            )
            yield Problem(Reason.LISTS_ITSELF, message, where)
        if prefix and len((prefix + key).encode("utf-8")) > MAX_KEY_BYTES:
            message = f"{prefix + key!r} is longer than S3's {MAX_KEY_BYTES}-byte key limit"
            yield Problem(Reason.INVALID_KEY, message, where)


def _entry(item: dict[str, Any]) -> FileEntry:
    algorithm = item["checksum"]["algorithm"]
    try:
        checksum = normalize_digest(item["checksum"]["value"], algorithm)
    except ChecksumFormatError as error:  # pragma: no cover - the schema's patterns already refuse these
        raise ManifestError([Problem(Reason.INVALID_CHECKSUM_VALUE, str(error))]) from None
    return FileEntry(
        key=item["key"], size=item["size"], algorithm=algorithm, checksum=checksum, rows=item.get("rows")
    )


def build(
    batch_id: str,
    files: Iterable[FileEntry],
    *,
    created_at: str | None = None,
    producer: str | None = None,
) -> dict[str, Any]:
    """A version-1 manifest document (what a partner uploads); checked before it is returned."""
    document: dict[str, Any] = {"manifest_version": MANIFEST_VERSION, "batch_id": batch_id}
    if created_at:
        document["created_at"] = created_at
    if producer:
        document["producer"] = producer
    document["files"] = [f.to_manifest_entry() for f in files]
    validate(document)
    return document


def dumps(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
