"""Streaming CSV validation and normalisation, in constant memory.

The input is an iterable of byte chunks (an S3 body read 1 MiB at a time), so
a 1 GB file never needs 1 GB of RAM. Rules (each a data-quality failure with
a reason code):

* ``empty``: no bytes at all;
* ``binary``: a NUL byte anywhere (a binary file named ``.csv``);
* ``not_utf8``: bytes that are not UTF-8 (a leading UTF-8 BOM is tolerated);
* ``not_gzip``: a ``.csv.gz`` that does not decompress;
* ``gzip_bomb``: a ``.csv.gz`` that inflates past ``max_inflated_bytes``
  (the ``clean_zone_max_inflated_bytes`` setting), stopped as it passes it;
* ``no_header`` / ``no_data_rows``: a blank first line, or a header only;
* ``ragged_rows``: a row whose column count differs from the header's;
* ``malformed_csv``: what Python's csv module refuses (e.g. a field over
  its size limit), or a physical line longer than ``MAX_LINE_CHARS`` (a
  file without line breaks, such as minified JSON, is not a CSV; holding it
  whole would break the constant-memory promise).

Lines end at ``\n``, ``\r\n`` or ``\r`` only, as the csv module reads them;
other Unicode line separators (form feed, NEL, U+2028) are field data.
A ``.csv.gz`` is inflated at most ``gunzip.INFLATE_BLOCK`` bytes at a time, so a
highly compressible file cannot expand in memory.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from clean_zone.failures import DataQualityError
from clean_zone.gunzip import inflate

# Most decompressed bytes produced from one compressed chunk at a time.
# Longest physical line held while waiting for its end (characters).
MAX_LINE_CHARS = 8 * 1024 * 1024

# Characters str.splitlines() breaks at that the csv module treats as data.
_NON_CSV_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_CSV_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


@dataclass
class CsvStats:
    """What a validation pass measured."""

    rows: int = 0  # data rows, header excluded
    columns: int = 0
    bytes: int = 0  # bytes of the object as stored (compressed for .csv.gz)
    decoded_bytes: int = 0  # bytes after decompression
    sha256: str = ""  # of the object as stored
    header: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CsvStats:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class _Source:
    """Counts and hashes the stored bytes, then yields them decompressed if asked."""

    def __init__(
        self, chunks: Iterable[bytes], gzipped: bool, stats: CsvStats, max_inflated_bytes: int | None = None
    ) -> None:
        self._chunks = chunks
        self._gzipped = gzipped
        self._limit = max_inflated_bytes
        self._stats = stats
        self._hash = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        yield from inflate(self._stored(), self._limit) if self._gzipped else self._stored()
        self._stats.sha256 = self._hash.hexdigest()

    def _stored(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._stats.bytes += len(chunk)
            self._hash.update(chunk)
            yield chunk


def _split_lines(text: str) -> list[str]:
    """``text`` cut after each ``\\n``, ``\\r\\n`` or ``\\r`` (endings kept; the last may be unfinished)."""
    # Eight substring scans cost far less than one regex pass, and these characters are rare.
    if not any(separator in text for separator in _NON_CSV_BREAKS):
        return text.splitlines(keepends=True)  # the fast path, and the same cuts here
    return _CSV_LINE.findall(text)


def _lines(source: Iterable[bytes], stats: CsvStats) -> Iterator[str]:
    """Decoded text lines with their line endings, from byte chunks."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    pending = ""
    for chunk in source:
        if b"\x00" in chunk:
            raise DataQualityError(
                f"binary content: NUL byte near byte {stats.decoded_bytes + chunk.index(b'\x00')}",
                reason="binary",
            )
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as error:
            raise DataQualityError(
                f"not UTF-8: invalid byte near byte {stats.decoded_bytes + error.start}", reason="not_utf8"
            ) from error
        stats.decoded_bytes += len(chunk)
        if not text:
            continue
        pending += text
        parts = _split_lines(pending)
        # The last part may be an unfinished line, or end in a "\r" whose "\n" is in the next chunk.
        pending = parts.pop() if not parts[-1].endswith("\n") else ""
        if len(pending) > MAX_LINE_CHARS:
            raise DataQualityError(
                f"a line longer than {MAX_LINE_CHARS} characters near byte {stats.decoded_bytes}: "
                "not a CSV (no line breaks?)",
                reason="malformed_csv",
            )
        yield from parts
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise DataQualityError("not UTF-8: truncated character at end of file", reason="not_utf8") from error
    if pending:
        yield pending


def iter_rows(
    chunks: Iterable[bytes],
    *,
    gzipped: bool = False,
    stats: CsvStats | None = None,
    max_inflated_bytes: int | None = None,
) -> Iterator[list[str]]:
    """Yield the header, then every data row; raise DataQualityError at the first problem."""
    stats = stats if stats is not None else CsvStats()
    source = _Source(chunks, gzipped, stats, max_inflated_bytes)
    reader = csv.reader(_lines(source, stats), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DataQualityError("the file is empty", reason="empty")
        if not any(cell.strip() for cell in header):
            raise DataQualityError("the first line is blank: a CSV header is required", reason="no_header")
        stats.header = header
        stats.columns = len(header)
        yield header
        for row in reader:
            if not row:
                continue  # blank lines carry no data; tolerated as csv readers do
            if len(row) != stats.columns:
                raise DataQualityError(
                    f"ragged rows: line {reader.line_num} has {len(row)} columns, "
                    f"the header has {stats.columns}",
                    reason="ragged_rows",
                )
            stats.rows += 1
            yield row
    except csv.Error as error:
        raise DataQualityError(
            f"malformed CSV near line {reader.line_num}: {error}", reason="malformed_csv"
        ) from error
    if stats.rows == 0:
        raise DataQualityError("the file has a header but no data rows", reason="no_data_rows")


def validate(
    chunks: Iterable[bytes], *, gzipped: bool = False, max_inflated_bytes: int | None = None
) -> CsvStats:
    """Validate a whole stream; return what was measured."""
    stats = CsvStats()
    for _ in iter_rows(chunks, gzipped=gzipped, stats=stats, max_inflated_bytes=max_inflated_bytes):
        pass
    return stats


def normalize(chunks: Iterable[bytes], sink: BinaryIO, *, gzipped: bool = False) -> CsvStats:
    """Validate and write the rows as plain UTF-8 CSV (no BOM, ``\\n`` line endings) to ``sink``."""
    stats = CsvStats()
    writer_target = codecs.getwriter("utf-8")(sink)
    writer = csv.writer(writer_target, lineterminator="\n")
    for row in iter_rows(chunks, gzipped=gzipped, stats=stats):
        writer.writerow(row)
    return stats
