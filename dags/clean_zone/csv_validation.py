"""Streaming CSV validation and normalisation, in constant memory.

The input is an iterable of byte chunks (an S3 body read 1 MiB at a time), so
a 1 GB file never needs 1 GB of RAM. Rules (each a data-quality failure with
a reason code):

* ``empty``: no bytes at all;
* ``binary``: a NUL byte anywhere (a binary file named ``.csv``);
* ``not_utf8``: bytes that are not UTF-8 (a leading UTF-8 BOM is tolerated);
* ``not_gzip``: a ``.csv.gz`` that does not decompress;
* ``no_header`` / ``no_data_rows``: a blank first line, or a header only;
* ``ragged_rows``: a row whose column count differs from the header's;
* ``malformed_csv``: what Python's csv module refuses (e.g. a field over
  its size limit).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from clean_zone.failures import DataQualityError


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


class _Source:
    """Counts and hashes the stored bytes, then yields them decompressed if asked."""

    def __init__(self, chunks: Iterable[bytes], gzipped: bool, stats: CsvStats) -> None:
        self._chunks = chunks
        self._gzipped = gzipped
        self._stats = stats
        self._hash = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        # wbits=16+MAX_WBITS: gzip framing; concatenated members are handled by the loop.
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzipped else None
        for chunk in self._chunks:
            self._stats.bytes += len(chunk)
            self._hash.update(chunk)
            if inflater is None:
                yield chunk
                continue
            try:
                data = inflater.decompress(chunk)
                while inflater.eof and inflater.unused_data:
                    rest = inflater.unused_data
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data += inflater.decompress(rest)
            except zlib.error as error:
                raise DataQualityError(f"not a valid gzip stream: {error}", reason="not_gzip") from error
            if data:
                yield data
        if inflater is not None and not inflater.eof and self._stats.bytes:
            raise DataQualityError("gzip stream is truncated", reason="not_gzip")
        self._stats.sha256 = self._hash.hexdigest()


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
        parts = pending.splitlines(keepends=True)
        # The last part may be an unfinished line; keep it for the next chunk.
        pending = parts.pop() if parts and not parts[-1].endswith(("\n", "\r")) else ""
        yield from parts
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise DataQualityError("not UTF-8: truncated character at end of file", reason="not_utf8") from error
    if pending:
        yield pending


def iter_rows(chunks: Iterable[bytes], *, gzipped: bool = False, stats: CsvStats | None = None) -> Iterator[list[str]]:
    """Yield the header, then every data row; raise DataQualityError at the first problem."""
    stats = stats if stats is not None else CsvStats()
    reader = csv.reader(_lines(_Source(chunks, gzipped, stats), stats), strict=True)
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
                    f"ragged rows: line {reader.line_num} has {len(row)} columns, the header has {stats.columns}",
                    reason="ragged_rows",
                )
            stats.rows += 1
            yield row
    except csv.Error as error:
        raise DataQualityError(f"malformed CSV near line {reader.line_num}: {error}", reason="malformed_csv") from error
    if stats.rows == 0:
        raise DataQualityError("the file has a header but no data rows", reason="no_data_rows")


def validate(chunks: Iterable[bytes], *, gzipped: bool = False) -> CsvStats:
    """Validate a whole stream; return what was measured."""
    stats = CsvStats()
    for _ in iter_rows(chunks, gzipped=gzipped, stats=stats):
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
