"""Columnar CSV validation and normalisation on pyarrow's streaming reader.

(Over 500 lines on purpose: the feed, the parse, the rules and the writer share one pass's state;
split, each piece would need the others' internals.)

A drop-in replacement for :mod:`clean_zone.csv_validation` (same ``validate``,
``normalize``, ``iter_rows``, ``CsvStats``, rules and reason codes) that parses
at several times its speed: pyarrow's C++ reader cuts and converts whole
blocks (``BLOCK_BYTES``) while this module only looks at columns. One pass
over the bytes does everything: ``normalize`` validates as it writes and
returns the stats. SHA-256 of the stored bytes runs in a helper thread,
overlapping the parse. Memory is constant: pyarrow may read at most
``_READ_AHEAD`` blocks ahead of the batches taken (left alone, its streaming
reader reads a whole file ahead), so a 1 GiB file peaks well under 200 MB RSS.

``validate`` first runs the validation scan (:mod:`clean_zone.csv_scan`: field
counts and record lengths from bit masks, with numpy, two to three times pyarrow's
parse) and hands pyarrow the rest of the file from the first record the scan cannot
vouch for (a ragged row, a quote in the middle of an unquoted field, a record longer
than ``FIELD_SIZE_LIMIT`` bytes, a quote left open), the header sent again in front
of it; so its verdicts and messages are pyarrow's. ``normalize`` does the same,
vouching only for records without quotes, which it copies as they are (their
normalised form); pyarrow parses and formats from the first record with a quote.

pyarrow and numpy are imported inside the functions, never at module import, so a DAG
file that imports this module costs nothing extra at parse time. MWAA preinstalls
neither: both are in ``requirements.txt``. pyarrow allocates with jemalloc here, not its
bundled mimalloc (``_allocator``).

Rules and reason codes (as in ``csv_validation``):

* ``empty``: no bytes at all, or only a UTF-8 BOM;
* ``binary``: a NUL byte anywhere;
* ``not_utf8``: bytes that are not UTF-8 (a leading UTF-8 BOM is tolerated);
* ``not_gzip``: a ``.csv.gz`` that does not decompress (inflated at most
  ``gunzip.INFLATE_BLOCK`` bytes at a time; concatenated members are read);
* ``gzip_bomb``: a ``.csv.gz`` that inflates past ``max_inflated_bytes``
  (default ``MAX_INFLATED_BYTES``), stopped before it is all inflated;
* ``no_header`` / ``no_data_rows``: a blank first line, or a header only;
* ``ragged_rows``: a row whose column count differs from the header's;
* ``malformed_csv``: a quoted field left open at the end of the file, a
  field over ``FIELD_SIZE_LIMIT`` characters (Python's csv limit), or a
  physical line longer than ``MAX_LINE_CHARS`` bytes (a file without line breaks).

Lines end at ``\\n``, ``\\r\\n`` or ``\\r``; other Unicode separators are data.
Blank lines between rows are skipped.

Deliberate differences from ``csv_validation`` (Python's csv module, strict):

* Text after a closing quote (``1,"x"y``) is accepted and joined to the field
  (``xy``), as pyarrow, pandas and spreadsheets read it. Python's strict mode
  refuses it (``malformed_csv``); telling the two apart needs the quote state
  of every byte, which only a full parser knows, and pyarrow does not report it.
* ``ragged_rows`` messages number records (the header is record 1), not
  physical lines: pyarrow counts a record with quoted newlines once, and does
  not count blank lines.
* ``MAX_LINE_CHARS`` counts bytes, not characters; and a record (quoted
  newlines included) longer than about two blocks is refused too.
* When a file has several faults, the one reported may differ: the byte
  checks (NUL, gzip) run ahead of parsing, so they win.
* A ``.csv.gz`` that inflates past ``max_inflated_bytes`` is refused
  (``gzip_bomb``); the old engine has no such limit.

The normalised output is byte-identical to ``csv_validation.normalize``
(Python's ``csv.writer``: minimal quoting, ``\\n`` line endings, no BOM); it is
built from each record batch with ``pyarrow.compute``, because pyarrow's own
CSV writer quotes every string.
"""

from __future__ import annotations

import csv
import hashlib
import io
import queue
import re
import struct
import threading
from collections.abc import Iterable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, BinaryIO

# The same CsvStats (one class: stats compare equal across engines) and the same inflate step size.
from clean_zone.csv_validation import CsvStats
from clean_zone.failures import DataQualityError
from clean_zone.gunzip import inflate

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from clean_zone.csv_scan import Scan

# Bytes pyarrow parses per block: bigger blocks parse no faster here, and cost memory.
BLOCK_BYTES = 4 * 1024 * 1024
# Longest physical line, in bytes here (the old engine counted characters). pyarrow also refuses a
# record (quoted newlines included) that does not fit in about two blocks, which bounds its memory.
MAX_LINE_CHARS = 8 * 1024 * 1024
# Python's csv.field_size_limit() default: a longer field is malformed_csv, as before.
FIELD_SIZE_LIMIT = 131_072
# Default limit on the inflated size of a .csv.gz (the gzip bomb guard); callers may pass their own.
MAX_INFLATED_BYTES = 64 * 1024**3

_BOM = b"\xef\xbb\xbf"
# Appended after the data: a row of its own when the last record ended, swallowed by an open quote if not.
# NUL cannot be in the data (binary files are refused before parsing), so the sentinel is unambiguous.
_SENTINEL = "\x00"
_END = b"\n" + _SENTINEL.encode()
# Blocks pyarrow may read ahead of the batches taken from it (it needs two to finish the first batch):
# with BLOCK_BYTES, the engine's memory bound.
_READ_AHEAD = 2
# Past this wait with no batch coming, one more block is read anyway: a record that spans more than
# two blocks would otherwise hold the reader and the engine waiting on each other.
_STALL_SECONDS = 2.0
# Stored bytes are hashed in a thread in pieces of at least this size (hashlib drops the GIL above 2 KiB).
_HASH_PIECE = 256 * 1024
# Pieces (of the source's chunk size, or inflated blocks) the read thread may run ahead of pyarrow.
_PREFETCH = 4


class _Sha256Thread:
    """SHA-256 in a helper thread, so hashing overlaps parsing instead of adding to it."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)  # bounded: constant memory
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._thread = threading.Thread(target=self._run, name="csv-engine-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._queue.get()) is not None:
            self._hash.update(piece)

    def update(self, chunk: bytes) -> None:
        # Small chunks are gathered first: a queue hand-off per 1-byte chunk would cost more than hashing.
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= _HASH_PIECE:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._queue.put(self._pending[0] if len(self._pending) == 1 else b"".join(self._pending))
            self._pending, self._pending_size = [], 0

    def hexdigest(self) -> str:
        self._flush()
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _Utf8Check:
    """UTF-8 validation of the decoded stream, piece by piece, with Arrow's validator (GB/s).

    pyarrow's own ``check_utf8`` costs more than its parse (about half the engine's time); every
    field is a slice of the stream cut at ASCII bytes, so a valid stream has valid fields. A
    character cut between two pieces is carried to the next one.
    """

    def __init__(self) -> None:
        self._carry = b""

    def check(self, piece: bytes, offset: int) -> None:
        import pyarrow as pa

        data = self._carry + piece if self._carry else piece
        start = len(self._carry)
        end = _complete_end(data)
        self._carry = data[end:]
        if not end:
            return
        view = memoryview(data)[:end]
        text = pa.Array.from_buffers(pa.string(), 1, [None, _offsets(end), pa.py_buffer(view)])
        try:
            text.validate(full=True)
        except pa.ArrowInvalid:
            try:
                bytes(view).decode("utf-8")
                position = 0
            except UnicodeDecodeError as error:
                position = error.start
            raise DataQualityError(
                f"not UTF-8: invalid byte near byte {offset - start + position}", reason="not_utf8"
            ) from None

    def finish(self) -> None:
        if self._carry:
            raise DataQualityError("not UTF-8: truncated character at end of file", reason="not_utf8")


def _complete_end(data: bytes) -> int:
    """Where the last complete UTF-8 character of ``data`` ends (a cut character's lead byte, or len)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)
        if byte >= 0xC0:  # a lead byte: is its character complete?
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if needed > back else len(data)
    return len(data)  # only continuation bytes: invalid, and the validator says so


def _offsets(size: int) -> Any:
    import pyarrow as pa

    return pa.py_buffer(struct.pack("<ii", 0, size))


@cache
def _allocator() -> None:
    """Have pyarrow allocate with jemalloc (malloc where a build has none), not mimalloc; once per process.

    pyarrow 25's bundled mimalloc crashes (SIGSEGV in ``mi_thread_init``) when a thread makes its
    first allocation while another is ending, and the engine's threads come and go with every file.
    While the scan was built it crashed 2 of 8 runs of ``normalize``, and 3 of 3 processes that
    called ``validate`` three times. With jemalloc: none in 18, and the same speed (the C library's
    malloc held 226 MiB at the peak of a 1 GiB ``normalize``).
    """
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
        # Freed pages go back to the system at once, not after jemalloc's default second: the
        # batches come and go faster than that (1 GiB normalize peaked at 185 MB, now about 155).
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc (macOS and Windows wheels)
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)


class _Prefetch:
    """The byte pipeline (read, hash, inflate, check) run in a thread of its own, a few pieces ahead.

    pyarrow parses in the calling thread with the GIL released; without this, its reads of the
    feed (Python) and its parse take turns on one core. Bounded (``_PREFETCH`` pieces): constant
    memory. An exception in the pipeline is handed over and raised where the piece was wanted.
    """

    _DONE = object()

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_PREFETCH)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csv-engine-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for piece in self._pieces:
                if not self._put(piece):
                    return
            self._put(self._DONE)
        except BaseException as error:  # a data-quality finding or a read failure: the reader raises it
            self._put(error)
        finally:
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()  # the source's own clean-up (an S3 body is closed) in the thread that used it

    def _put(self, item: Any) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> bytes | None:
        """The next piece, None at the end; raises what the pipeline raised."""
        item = self._queue.get()
        if item is self._DONE:
            self._queue.put(item)  # asked again, the end is still the end
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)


class _Feed:
    """The file object pyarrow reads: stored chunks hashed, inflated, checked for NUL, BOM dropped.

    A DataQualityError found here is kept in ``error`` and the stream ends, so that pyarrow never
    has to carry a Python exception through its threads; the caller raises it.
    """

    closed = False

    def __init__(
        self, chunks: Iterable[bytes], *, gzipped: bool, stats: CsvStats, max_inflated_bytes: int
    ) -> None:
        self._stats = stats
        self._hasher = _Sha256Thread()
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._line = 0  # bytes of the physical line still open at the end of the pieces so far
        self.error: DataQualityError | None = None
        self._turn = threading.Condition()
        self._blocks_read = 0
        self._blocks_taken = 0
        self._stopped = False
        self._parsing = False
        # Last: its thread starts at once and uses the state above.
        self._pieces = _Prefetch(self._checked(self._inflated(iter(chunks), gzipped, max_inflated_bytes)))

    # --- the byte pipeline ---------------------------------------------------

    def _inflated(self, chunks: Iterator[bytes], gzipped: bool, limit: int) -> Iterator[bytes]:
        stored = self._stored(chunks)
        yield from inflate(stored, limit) if gzipped else stored
        self._stats.sha256 = self._hasher.hexdigest()

    def _stored(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._stats.bytes += len(chunk)
            self._hasher.update(chunk)
            yield chunk

    def _checked(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        utf8 = _Utf8Check()
        for piece in pieces:
            if b"\x00" in piece:
                raise DataQualityError(
                    f"binary content: NUL byte near byte {self._stats.decoded_bytes + piece.index(b'\x00')}",
                    reason="binary",
                )
            self._check_line_length(piece)
            utf8.check(piece, self._stats.decoded_bytes)
            self._stats.decoded_bytes += len(piece)
            yield piece
        utf8.finish()

    def _check_line_length(self, piece: bytes) -> None:
        """Refuse a physical line longer than MAX_LINE_CHARS bytes, a few finds per piece, not per line."""
        last = max(piece.rfind(b"\n"), piece.rfind(b"\r"))
        if last < 0:
            self._line += len(piece)
        else:
            first = min(p for p in (piece.find(b"\n"), piece.find(b"\r")) if p >= 0)
            self._line, longest = len(piece) - last - 1, self._line + first
            self._line_check(longest)
        self._line_check(self._line)

    def _line_check(self, length: int) -> None:
        if length > MAX_LINE_CHARS:
            raise DataQualityError(
                f"a line longer than {MAX_LINE_CHARS} bytes near byte {self._stats.decoded_bytes}: "
                "not a CSV (no line breaks?)",
                reason="malformed_csv",
            )

    def _fill(self, size: int) -> None:
        """Buffer at least ``size`` bytes, or everything that is left (then the sentinel, once)."""
        while self._buffered < size and not self._eof:
            try:
                piece = self._pieces.next()
            except DataQualityError as error:
                self.error, self._eof = error, True
                return
            if piece is None:
                self._eof = True
                piece = _END
            self._buffer.append(piece)
            self._buffered += len(piece)

    # --- before parsing ----------------------------------------------------------

    def header_columns(self) -> int:
        """Read the start of the stream, apply the header rules, and return an upper bound on its columns."""
        self._fill(len(_BOM))
        if self.error is None and self._peek(len(_BOM)) == _BOM:
            self._take(len(_BOM))
        self._fill(1)
        if self.error is not None:
            raise self.error
        if self._eof and self._buffer == [_END]:
            raise DataQualityError("the file is empty", reason="empty")
        if self._peek(1) in (b"\r", b"\n"):
            raise DataQualityError("the first line is blank: a CSV header is required", reason="no_header")
        # The header ends at the first line break outside quotes; count the commas before it.
        size = 64 * 1024
        while True:
            self._fill(size)
            data = self._peek(size)
            end = _header_end(data)
            if end is not None or self._eof or size >= BLOCK_BYTES:
                break
            size *= 4
        if self.error is not None:
            raise self.error
        return data.count(b",", 0, end if end is not None else len(data)) + 1

    # --- the scan's way in (validate) -------------------------------------------------------

    def next_piece(self) -> bytes | None:
        """The next decoded bytes (what was buffered first), None at the end; no sentinel is added."""
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer, self._buffered = [], 0
            if self._eof:  # the end was reached while buffering: the sentinel is not data
                data, self._eof = data[: -len(_END)], False
            if data:
                return data
        return self._pieces.next()

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of the stream, for pyarrow to read next."""
        if data:
            self._buffer.insert(0, data)
            self._buffered += len(data)

    def _peek(self, size: int) -> bytes:
        data = b"".join(self._buffer)
        self._buffer = [data] if data else []
        return data[:size]

    # --- the file object pyarrow reads ------------------------------------------------

    def read(self, size: int = -1) -> bytes:
        # pyarrow's streaming reader reads ahead without bound (a whole file, if parsing is slower than
        # reading), so its read-ahead thread is held here until the batches have caught up.
        with self._turn:
            while not (self._stopped or self._blocks_read - self._blocks_taken < _READ_AHEAD):
                if not self._turn.wait(_STALL_SECONDS) and self._parsing:
                    break  # no batch for a long while: pyarrow may need one more block to finish a record
            if self._stopped:
                return b""
            self._blocks_read += 1
        return self._take(size if size >= 0 else 1 << 62)

    def _take(self, size: int) -> bytes:
        self._fill(size)
        # Exactly ``size`` bytes in one copy: whole pieces, and the head of the piece that straddles the end.
        taken, count = [], 0
        while self._buffer and count < size:
            piece = self._buffer.pop(0)
            if count + len(piece) > size:
                self._buffer.insert(0, piece[size - count :])
                piece = piece[: size - count]
            taken.append(piece)
            count += len(piece)
        self._buffered -= count
        return taken[0] if len(taken) == 1 else b"".join(taken)

    def parsing(self, waiting: bool) -> None:
        """The engine waits on pyarrow for a batch (True) or works on one (False)."""
        self._parsing = waiting

    def took_batch(self) -> None:
        """A batch has been taken from pyarrow: one more block may be read."""
        with self._turn:
            self._blocks_taken += 1
            self._turn.notify_all()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """pyarrow is done with the stream (the engine's own clean-up is ``stop``)."""

    def stop(self) -> None:
        """Let a waiting read return (end of stream), and stop the hash thread."""
        with self._turn:
            self._stopped = True
            self._turn.notify_all()
        self._pieces.stop()
        self._hasher.close()


def _header_end(data: bytes) -> int | None:
    """Offset of the first line break in ``data`` outside double quotes, or None."""
    position = 0
    while True:
        newline = min(
            (p for p in (data.find(b"\n", position), data.find(b"\r", position)) if p >= 0), default=-1
        )
        if newline < 0:
            return None
        if data.count(b'"', 0, newline) % 2 == 0:
            return newline
        position = newline + 1


@cache
def _quoted_characters() -> tuple[str, ...]:
    """The characters Python's csv.writer quotes a field for (with ``lineterminator="\\n"``).

    Asked of the running interpreter rather than written down: the output must stay
    byte-identical to csv.writer's, and whether it quotes a lone ``\\r`` depends on the version.
    """
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["a\rb", "x"])
    return ('"', ",", "\n", "\r") if out.getvalue().startswith('"') else ('"', ",", "\n")


def _options(
    columns: int, on_invalid: Any
) -> tuple[pa_csv.ReadOptions, pa_csv.ParseOptions, pa_csv.ConvertOptions]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    # Columns get generated names (f0, f1, ...) so the header comes through as the first row,
    # converted and UTF-8-checked like any other; every column is read as a string.
    # use_threads=False: the streaming reader parses one block at a time either way (reading ahead
    # in its own thread), and only without threads does it number the physical line of a ragged row.
    return (
        pa_csv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES, autogenerate_column_names=True),
        pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        # check_utf8=False: the feed has checked every byte already (_Utf8Check), several times faster.
        pa_csv.ConvertOptions(column_types={f"f{i}": pa.string() for i in range(columns)}, check_utf8=False),
    )


def _format(batch: pa.RecordBatch) -> pa.Buffer:
    """The rows of ``batch`` as csv.writer writes them (minimal quoting), ``\\n`` between them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for cells in batch.columns:
        # Most columns hold none of these characters anywhere: one scan of the column's bytes
        # (memchr, many GB/s) spares the per-cell search, which costs more than parsing.
        data = cells.buffers()[2]
        scan = data.to_pybytes() if data is not None else b""
        needs_quotes = None
        for character in _quoted_characters():
            if character.encode() in scan:
                found = pc.match_substring(cells, character)
                needs_quotes = found if needs_quotes is None else pc.or_(needs_quotes, found)
        if batch.num_columns == 1:
            # csv.writer writes a row of one empty field as "" so that it is not a blank line.
            empty = pc.equal(cells, "")
            needs_quotes = empty if needs_quotes is None else pc.or_(needs_quotes, empty)
        if needs_quotes is None or not pc.any(needs_quotes).as_py():
            columns.append(cells)
            continue
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(cells, '"', '""'), '"', "")
        columns.append(pc.if_else(needs_quotes, quoted, cells))
    lines = pc.binary_join_element_wise(*columns, ",") if len(columns) > 1 else columns[0]
    # One list holding every line, joined: the whole batch becomes one contiguous buffer.
    text = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines), "\n")
    return text[0].as_buffer()


def _batches(feed: _Feed, stats: CsvStats, rows_before: int = 0) -> Iterator[pa.RecordBatch]:
    """Every record as record batches, the header first (the sentinel removed); ``stats`` filled in.

    ``rows_before``: data rows the scan vouched for before the feed's first data row (``validate``
    hands over from the first record it cannot vouch for, the header sent again in front of it).
    Stops the feed when done.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    ragged: list[Any] = []
    sentinel_skipped = False

    def on_invalid(row: Any) -> str:
        nonlocal sentinel_skipped
        if row.text == _SENTINEL:
            sentinel_skipped = True  # the sentinel, in a file of several columns
            return "skip"
        ragged.append(row)
        return "error"

    reader = None
    try:
        read_options, parse_options, convert_options = _options(feed.header_columns(), on_invalid)
        # One batch is held back: only the last one can end with the sentinel.
        previous: pa.RecordBatch | None = None
        try:
            feed.parsing(True)
            reader = pa_csv.open_csv(
                feed, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            )
            for batch in reader:
                feed.parsing(False)
                feed.took_batch()
                if batch.num_rows:
                    if previous is None:
                        _take_header(batch, stats)
                        stats.rows += rows_before
                    _check_field_sizes(batch)
                    if previous is not None:
                        stats.rows += previous.num_rows
                        yield previous
                    previous = batch
                feed.parsing(True)
            feed.parsing(False)
        except pa.ArrowInvalid as error:
            raise feed.error or _data_quality_error(error, ragged, stats, rows_before) from error
        if feed.error is not None:
            raise feed.error
        if previous is None:
            raise DataQualityError("the file is empty", reason="empty")
        if not sentinel_skipped:
            if stats.columns != 1 or previous.column(0)[-1].as_py() != _SENTINEL:
                raise DataQualityError(
                    "malformed CSV: a quoted field is still open at the end of the file",
                    reason="malformed_csv",
                )
            previous = previous.slice(0, previous.num_rows - 1)  # the sentinel, in a file of one column
        stats.rows += previous.num_rows
        yield previous
    finally:
        feed.stop()  # first: a read-ahead waiting in feed.read must return before the reader can close
        if reader is not None:
            reader.close()  # its read-ahead thread ends now, not at garbage collection
    if stats.rows == 0:
        raise DataQualityError("the file has a header but no data rows", reason="no_data_rows")


def _take_header(batch: pa.RecordBatch, stats: CsvStats) -> None:
    import pyarrow as pa

    if any(not pa.types.is_string(column.type) for column in batch.columns):
        # More columns than the commas before the first line break said: quotes we could not pair.
        raise DataQualityError("malformed CSV: the header could not be read", reason="malformed_csv")
    header = [column[0].as_py() for column in batch.columns]
    if not any(cell.strip() for cell in header):
        raise DataQualityError("the first line is blank: a CSV header is required", reason="no_header")
    stats.header, stats.columns = header, len(header)
    stats.rows = -1  # the header is counted with the rows of its batch


def _check_field_sizes(batch: pa.RecordBatch) -> None:
    import pyarrow.compute as pc

    for index, column in enumerate(batch.columns):
        # Bytes first (offsets only); characters, which cost a scan, only when the bytes could be over.
        if pc.max(pc.binary_length(column)).as_py() > FIELD_SIZE_LIMIT:
            longest = pc.max(pc.utf8_length(column)).as_py()
            if longest > FIELD_SIZE_LIMIT:
                raise DataQualityError(
                    f"malformed CSV: a field of {longest} characters in column {index + 1} "
                    f"(limit {FIELD_SIZE_LIMIT})",
                    reason="malformed_csv",
                )


def _data_quality_error(
    error: Exception, ragged: list[Any], stats: CsvStats, rows_before: int
) -> DataQualityError:
    message = str(error)
    if ragged:
        row = ragged[0]
        return DataQualityError(
            f"ragged rows: record {row.number + rows_before} (the header is record 1) has "
            f"{row.actual_columns} columns, "
            f"the header has {row.expected_columns}",
            reason="ragged_rows",
        )
    if "invalid UTF8" in message:
        return DataQualityError(f"not UTF-8: {message}", reason="not_utf8")
    if "straddling" in message:
        return DataQualityError(
            f"a record longer than {BLOCK_BYTES} bytes near byte {stats.decoded_bytes}: not a CSV",
            reason="malformed_csv",
        )
    return DataQualityError(f"malformed CSV: {message}", reason="malformed_csv")


def iter_rows(
    chunks: Iterable[bytes],
    *,
    gzipped: bool = False,
    stats: CsvStats | None = None,
    max_inflated_bytes: int = MAX_INFLATED_BYTES,
) -> Iterator[list[str]]:
    """Yield the header, then every data row; raise DataQualityError at the first problem.

    Row by row costs Python objects per cell; ``validate`` and ``normalize`` stay in whole batches.
    """
    stats = stats if stats is not None else CsvStats()
    _allocator()
    feed = _Feed(chunks, gzipped=gzipped, stats=stats, max_inflated_bytes=max_inflated_bytes)
    for batch in _batches(feed, stats):
        yield from (list(row) for row in zip(*(column.to_pylist() for column in batch.columns), strict=True))


def validate(
    chunks: Iterable[bytes], *, gzipped: bool = False, max_inflated_bytes: int = MAX_INFLATED_BYTES
) -> CsvStats:
    """Validate a whole stream; return what was measured.

    The scan (``clean_zone.csv_scan``) vouches for every record it can; pyarrow parses from the
    first record it cannot, and gives the verdict. Same rules, reasons and messages as ``normalize``.
    """
    stats = CsvStats()
    for _ in _scanned(chunks, gzipped, max_inflated_bytes, stats, None):
        pass
    return stats


def _scanned(
    chunks: Iterable[bytes], gzipped: bool, max_inflated_bytes: int, stats: CsvStats, sink: BinaryIO | None
) -> Iterator[pa.RecordBatch]:
    """The scan (writing what it vouched for to ``sink``, if given), then pyarrow's batches of the
    rest of the file, the header row sent again in front of them left out. ``stats`` filled in."""
    _allocator()
    feed = _Feed(chunks, gzipped=gzipped, stats=stats, max_inflated_bytes=max_inflated_bytes)
    try:
        handed_over = _scan(feed, stats, sink)
    except BaseException:
        feed.stop()
        raise
    if handed_over is None:
        feed.stop()
        return
    rows_before, header_again = handed_over
    for batch in _batches(feed, stats, rows_before):
        yield batch.slice(1) if header_again else batch
        header_again = False


def _scan(feed: _Feed, stats: CsvStats, sink: BinaryIO | None = None) -> tuple[int, bool] | None:
    """Scan the feed; None if every record was vouched for (``stats`` filled in), else hand over.

    To hand over, the bytes from the first record the scan could not vouch for go back into the
    feed, after the header (sent again, so pyarrow reads the same columns); returned are the data
    rows vouched for before it and whether the header was sent again. A scan that stops at the
    header hands over everything. With a ``sink`` (``normalize``), the records vouched for (no
    quotes in them) are written to it as they are, line breaks made ``\\n`` and blank lines left out:
    what csv.writer would write for them.
    """
    from clean_zone.csv_scan import SCAN_BLOCK, Scan

    bound = feed.header_columns()  # the BOM, empty and blank-first-line rules; then bytes in order
    scan = Scan(FIELD_SIZE_LIMIT, plain=sink is not None)
    blocks = _Blocks(feed, SCAN_BLOCK)
    header: bytes | None = None
    open_record, open_start = b"", 0  # the bytes of the record not yet ended, and where it starts
    offset = 0  # where the block being scanned starts
    while (block := blocks.next()) is not None:
        stopped = scan.feed(block)
        if header is None and scan.records:
            assert scan.header_end is not None  # in the first block: a header fits in one
            header = bytes(block[: scan.header_end])
            if not _header_agrees(header, bound, scan.columns, stats):
                stopped = 0
        if sink is not None and stopped != 0 and header is not None:
            end = scan.record_start if stopped is None else stopped  # the records vouched for end here
            _write_plain(sink, open_record[: end - open_start] + block[: max(end - offset, 0)])
        if stopped is not None:
            if stopped >= offset:
                rest = bytes(block[stopped - offset :])
            else:
                rest = open_record[stopped - open_start :] + block
            return _hand_over(feed, header if stopped else None, rest + blocks.left(), scan.records)
        if scan.record_start >= offset:
            open_record, open_start = bytes(block[scan.record_start - offset :]), scan.record_start
        else:
            open_record += block
        offset += len(block)
    return _scan_end(feed, stats, sink, scan, (header, bound), open_record, open_start)


def _scan_end(
    feed: _Feed,
    stats: CsvStats,
    sink: BinaryIO | None,
    scan: Scan,
    header_and_bound: tuple[bytes | None, int],
    open_record: bytes,
    open_start: int,
) -> tuple[int, bool] | None:
    """The stream has ended: the last record (no line break after it), then hand over or finish."""
    header, bound = header_and_bound
    stopped = scan.finish()
    if header is None and scan.records:
        header = open_record[: scan.header_end]
        if not _header_agrees(header, bound, scan.columns, stats):
            stopped = 0
    if stopped is not None:
        rest = open_record[stopped - open_start :]
        return _hand_over(feed, header if stopped else None, rest, scan.records)
    if sink is not None and open_record:
        _write_plain(sink, open_record)
    stats.rows = scan.records - 1
    if stats.rows == 0:
        raise DataQualityError("the file has a header but no data rows", reason="no_data_rows")
    return None


_BLANK_LINES = re.compile(rb"\n{2,}")


def _write_plain(sink: BinaryIO, records: bytes) -> None:
    """Write records without quotes as csv.writer would: ``\\n`` after each, no blank lines."""
    if b"\r" in records:
        records = records.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\n\n" in records or records.startswith(b"\n"):
        records = _BLANK_LINES.sub(b"\n", records).lstrip(b"\n")
    if records:
        sink.write(records)
        if not records.endswith(b"\n"):
            sink.write(b"\n")


def _hand_over(feed: _Feed, header: bytes | None, rest: bytes, records: int) -> tuple[int, bool]:
    feed.unread(rest)
    if header is None:
        return 0, False  # from the very start: pyarrow reads the header itself
    feed.unread(header + b"\n")
    return records - 1, True  # the data rows before the record handed over; the header sent again


def _header_agrees(header: bytes, bound: int, columns: int | None, stats: CsvStats) -> bool:
    """Read the header the scan found as pyarrow reads a header (``stats`` filled in); same column count?"""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    read_options, parse_options, convert_options = _options(bound, lambda row: "error")
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(header + b"\n"),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
        batch = table.combine_chunks().to_batches()[0]
        _take_header(batch, stats)
    except (pa.ArrowInvalid, DataQualityError, IndexError):
        return False  # pyarrow, reading from the start, says what is wrong
    return batch.num_rows == 1 and stats.columns == columns


class _Blocks:
    """The feed's bytes as blocks of at most ``size`` for the scan: views of its pieces where they
    are big enough (no copy), small pieces gathered first (a numpy pass costs the same per call)."""

    def __init__(self, feed: _Feed, size: int) -> None:
        self._feed, self._size = feed, size
        self._piece, self._at = b"", 0

    def next(self) -> memoryview | None:
        left = len(self._piece) - self._at
        while left < self._size // 2:
            more = self._feed.next_piece()
            if more is None:
                break
            self._piece, self._at = (self._piece[self._at :] + more) if left else more, 0
            left = len(self._piece)
        if not left:
            return None
        block = memoryview(self._piece)[self._at : self._at + self._size]
        self._at += len(block)
        return block

    def left(self) -> bytes:
        """What was read from the feed and not yet given out."""
        left, self._piece, self._at = self._piece[self._at :], b"", 0
        return left


def normalize(
    chunks: Iterable[bytes],
    sink: BinaryIO,
    *,
    gzipped: bool = False,
    max_inflated_bytes: int = MAX_INFLATED_BYTES,
) -> CsvStats:
    """Validate and write the rows as plain UTF-8 CSV (no BOM, ``\\n`` line endings) to ``sink``.

    Records without quotes are copied as they are while the scan vouches for them (that is their
    normalised form); from the first record it cannot vouch for, pyarrow parses and formats.
    """
    stats = CsvStats()
    for rows in _scanned(chunks, gzipped, max_inflated_bytes, stats, sink):
        if rows.num_rows:
            sink.write(memoryview(_format(rows)))
            sink.write(b"\n")
    return stats
