"""Extension rules: what kind of file a key names.

The reference Lambda took ``os.path.splitext`` of the URL-decoded key and
routed on ``.csv`` case-sensitively. This project differs, on purpose:

* case-insensitive: ``DATA.CSV`` is CSV;
* compound extensions: ``x.csv.gz`` is gzip-compressed CSV, processed by
  streaming decompression; other ``.gz`` files are not CSV;
* no extension (``README``) and dotfiles (``.hidden``, whose name *is* the
  dot part) have the empty extension, and are not CSV;
* folder markers (a key ending in ``/``, zero bytes, as the S3 console makes)
  are not files at all: they are ignored, never routed or alerted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from clean_zone.keys import is_folder_marker


class FileKind(StrEnum):
    CSV = "csv"
    CSV_GZIP = "csv_gzip"
    OTHER = "other"
    FOLDER_MARKER = "folder_marker"

    @property
    def is_csv(self) -> bool:
        return self in {FileKind.CSV, FileKind.CSV_GZIP}


@dataclass(frozen=True)
class ExtensionCheck:
    """What the extension check returns (passed on as a dict)."""

    bucket: str
    key: str
    size: int
    extension: str
    kind: FileKind

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data


def extension_of(key: str) -> str:
    """The lower-cased extension, with its dot; compound for ``.csv.gz``; '' for none or dotfiles."""
    name = key.rsplit("/", 1)[-1].lower()
    stem, dot, last = name.rpartition(".")
    if not dot or not stem:
        # "README" has no dot; ".hidden" is a dotfile whose whole name follows the dot.
        return ""
    if last == "gz":
        inner_stem, inner_dot, inner = stem.rpartition(".")
        if inner_dot and inner_stem:
            return f".{inner}.gz"
    return f".{last}"


def classify_key(key: str, size: int) -> FileKind:
    if is_folder_marker(key, size):
        return FileKind.FOLDER_MARKER
    extension = extension_of(key)
    if extension == ".csv":
        return FileKind.CSV
    if extension == ".csv.gz":
        return FileKind.CSV_GZIP
    return FileKind.OTHER


def check_file(bucket: str, key: str, size: int) -> ExtensionCheck:
    return ExtensionCheck(
        bucket=bucket, key=key, size=size, extension=extension_of(key), kind=classify_key(key, size)
    )
