"""A validation-only scan of CSV bytes: where records end, how many fields each has, how long it is.

``csv_engine.validate`` does not need the columns pyarrow builds, only the answer to "does every
record have the header's number of fields, no field over the size limit, no quote left open".
This scan answers it from bit masks, 64 bytes to a machine word, with numpy (no Python per byte,
per field or per record), at two to three times pyarrow's parse:

* quote, comma and line-break bytes become bit masks; a running XOR of the quote bits (the
  "prefix XOR" of SIMD CSV parsers) marks every byte inside quotes;
* line breaks outside quotes end records; commas outside quotes, counted between them, give each
  record's field count; the distance between them, its length.

The quote rule is the parity of quotes before a byte. It is pyarrow's rule exactly when every run
of quotes starts a field or lies inside quotes: ``"a""b"`` (escaped quotes), ``"x"y`` (text after
a closing quote), ``""`` (an empty field). A run of quotes in the middle of an unquoted field
(``55" screen``) is data to pyarrow but flips the parity; the scan flags the first such run and
stops there.

The scan vouches only for what it is sure of. It stops at the first record it cannot vouch for:
one with the wrong number of fields (``ragged_rows``, or a field count pyarrow must explain), one
longer than ``field_limit`` bytes (a field in it may be over the limit; pyarrow measures it in
characters), one holding a flagged quote, or a quoted field open at the end of the data. The
caller parses from that record's start with pyarrow, which gives the verdict and the message it
always gave. So the scan changes how fast a file is validated, never what is said about it.

Pure numpy, no pyarrow and no Airflow; imported inside tasks only (numpy is not preinstalled on MWAA;
it is in ``requirements.txt``).
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np

# Bytes per kernel call. 512 KiB keeps every word-sized temporary (a bit per byte: 64 KiB) under
# glibc's 128 KiB mmap threshold: at 1 MiB each of them is a fresh mmap, and page faults halve
# the scan's speed.
SCAN_BLOCK = 512 * 1024

_QUOTE, _COMMA, _LF, _CR = ord('"'), ord(","), ord("\n"), ord("\r")
_DELIMITERS = frozenset((_COMMA, _LF, _CR))


class Scan:
    """Feed decoded CSV bytes in order (BOM removed); learn where the first doubtful record starts.

    ``plain``: a record holding a quote is doubtful too (``normalize`` copies the records vouched
    for as they are, which is their normalised form only without quotes).

    ``feed`` returns None while every record so far is vouched for, else the global offset of the
    first record it cannot vouch for (``stopped``), after which it takes nothing more. The first
    record is the header: its field count becomes the one every record must have.
    """

    def __init__(self, field_limit: int, *, plain: bool = False) -> None:
        import numpy as np

        _keep_freed_heap()
        self._np = np
        self._limit = field_limit
        self._plain = plain  # vouch only for records without quotes (their normalised form is their bytes)
        # Reused for every block's byte masks (a short block is padded to whole words).
        self._workspace = np.empty(SCAN_BLOCK + 64, dtype=bool)
        self._carriage_returns = np.empty(SCAN_BLOCK + 64, dtype=bool)
        self.columns: int | None = None
        self.header_end: int | None = None  # offset of the header's line break
        self.records = 0  # records vouched for, the header included (blank lines are not records)
        self.stopped: int | None = None
        self._offset = 0  # global offset of the next byte fed
        self._record_start = 0  # global offset where the open record starts
        self._open_commas = 0  # commas outside quotes seen in the open record
        self._inside = 0  # 1 when the next byte fed starts inside quotes
        self._after_delimiter = 1  # 1 when the byte before the next one ends a field (or is the start)
        self._after_quote = 0  # 1 when the byte before the next one is a quote

    @property
    def record_start(self) -> int:
        """Where the open record (the one not yet ended by a line break) starts."""
        return self._record_start

    def feed(self, block: bytes | memoryview) -> int | None:
        """Scan ``block`` (at most SCAN_BLOCK bytes); see the class."""
        if self.stopped is not None:
            return self.stopped
        size = len(block)
        if size:
            self._scan(block, size)
        return self.stopped

    def finish(self) -> int | None:
        """The data has ended: vouch for the last record (no line break after it), or stop at it."""
        if self.stopped is None and self._offset > self._record_start:
            if self._inside or not self._fits(self._open_commas, self._offset - self._record_start):
                self.stopped = self._record_start  # pyarrow reports the open quote or the bad record
            else:
                self._vouch_header(self._open_commas, self._offset)
                self.records += 1
                self._record_start = self._offset
        return self.stopped

    def _fits(self, commas: int, length: int) -> bool:
        columns = self.columns if self.columns is not None else commas + 1
        return commas == columns - 1 and length <= self._limit

    def _vouch_header(self, commas: int, end: int) -> None:
        if self.columns is None:
            self.columns, self.header_end = commas + 1, end

    def _masks(self, block: bytes | memoryview) -> Masks:
        """The part of a block's scan that does not depend on the blocks before it."""
        np = self._np
        size = len(block)
        data = np.frombuffer(block, dtype=np.uint8)
        if size % 64:
            # Whole words only: zeros (no quote, comma or break) to the next multiple of 64.
            data = np.concatenate((data, np.zeros(64 - size % 64, dtype=np.uint8)))
        work = self._workspace[: len(data)]

        def bits(byte: int) -> np.ndarray:
            return np.packbits(np.equal(data, byte, out=work), bitorder="little").view(np.uint64)

        quotes, commas = bits(_QUOTE), bits(_COMMA)
        carriage_returns = self._carriage_returns[: len(data)]
        np.equal(data, _LF, out=work)
        if np.equal(data, _CR, out=carriage_returns).any():
            work |= carriage_returns
        breaks_at = np.flatnonzero(work)
        breaks = np.packbits(work, bitorder="little").view(np.uint64)
        parity = quotes.copy()
        for step in (1, 2, 4, 8, 16, 32):  # prefix XOR within each word: quotes so far, odd or even
            parity ^= parity << np.uint64(step)
        flips = np.bitwise_count(quotes) & 1
        word_parity = (np.cumsum(flips) - flips) & 1  # quotes before each word, in this block
        # A run of quotes that starts where a field does not (the first byte's bit comes from the carry).
        mid_field_runs = quotes & ~_shifted(np, quotes) & ~_shifted(np, commas | breaks)
        mid_field_runs[0] &= ~np.uint64(1)  # byte 0 depends on the block before: see _carry
        last = block[size - 1] if size else 0
        return Masks(size, quotes, commas, breaks_at, parity, word_parity, mid_field_runs, last)

    def _scan(self, block: bytes | memoryview, size: int) -> None:
        np = self._np
        masks = self._masks(block)
        inside, unquoted_commas, ends, flagged_at = self._carry(masks)
        per_word = np.bitwise_count(unquoted_commas).astype(np.int64)
        if len(ends) and not self._count(ends, unquoted_commas, per_word):
            return
        if not len(ends):
            self._open_commas += int(per_word.sum())
        self._offset += size
        if flagged_at < size or self._offset - self._record_start > self._limit:
            self.stopped = self._record_start  # the open record holds a flagged quote, or is too long
            return
        self._inside = int(inside.view(np.uint8)[(size - 1) >> 3] >> ((size - 1) & 7) & 1)
        self._after_delimiter = int(masks.last in _DELIMITERS)
        self._after_quote = int(masks.last == _QUOTE)

    def _carry(self, masks: Masks) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Inside-quotes bits, unquoted comma bits, record ends (before the first flag), first flag."""
        np = self._np
        inside = masks.parity ^ ((masks.word_parity ^ self._inside).astype(np.uint64) * np.uint64(_ALL_ONES))
        flags = masks.mid_field_runs & ~(inside ^ masks.quotes)  # ... while outside quotes
        if self._plain:
            flags |= masks.quotes
        # The first byte: a quote run starts there unless the block before ended in a quote; mid-field
        # unless that block ended a field.
        first_byte_run = not (self._after_quote or self._after_delimiter)
        flags[0] |= masks.quotes[0] & np.uint64(first_byte_run) & ~(inside[0] ^ masks.quotes[0])
        size = masks.size
        flagged_at = size
        if flags.any():
            flagged = np.unpackbits(flags.view(np.uint8), bitorder="little").view(bool)
            flagged_at = int(np.flatnonzero(flagged)[0])
        inside_bytes = inside.view(np.uint8)
        breaks_at = masks.breaks_at
        ends = breaks_at[((inside_bytes[breaks_at >> 3] >> (breaks_at & 7).astype(np.uint8)) & 1) == 0]
        # Only records ended before the first flag are sure.
        return inside, masks.commas & ~inside, ends[: int(np.searchsorted(ends, flagged_at))], flagged_at

    def _count(self, ends: np.ndarray, unquoted_commas: np.ndarray, per_word: np.ndarray) -> bool:
        """Vouch for the records ending at ``ends``; False (``stopped`` set) at the first doubtful one."""
        np = self._np
        # Commas outside quotes before each record end: per-word counts, then within the word.
        before_word = np.cumsum(per_word) - per_word
        word, bit = ends >> 6, (ends & 63).astype(np.uint64)
        below = (np.uint64(1) << bit) - np.uint64(1)
        commas_before = before_word[word] + np.bitwise_count(unquoted_commas[word] & below)
        field_commas = np.diff(commas_before, prepend=-self._open_commas)
        ends_global = ends + self._offset
        starts = np.concatenate(([self._record_start], ends_global[:-1] + 1))
        lengths = ends_global - starts
        nonblank = lengths > 0
        self._vouch_header(int(field_commas[0]), int(ends_global[0]))
        assert self.columns is not None
        doubtful = nonblank & ((field_commas != self.columns - 1) | (lengths > self._limit))
        if doubtful.any():
            first = int(np.flatnonzero(doubtful)[0])
            self.records += int(np.count_nonzero(nonblank[:first]))
            self.stopped = int(starts[first])
            return False
        self.records += int(np.count_nonzero(nonblank))
        self._record_start = int(ends_global[-1]) + 1
        self._open_commas = int(per_word.sum() - commas_before[-1])
        return True


_ALL_ONES = 0xFFFF_FFFF_FFFF_FFFF
# glibc's mallopt parameters (malloc.h), and what they are set to (see _keep_freed_heap).
_M_TOP_PAD, _M_MMAP_THRESHOLD = -2, -3
_KEPT_HEAP, _MMAP_ABOVE = 16 * 1024 * 1024, 2 * 1024 * 1024


@cache
def _keep_freed_heap() -> None:
    """Ask glibc to keep freed memory for reuse rather than give it back at once (once per process).

    Every block allocates and frees a few dozen arrays of up to 64 KiB, and the byte pipeline a
    1 MiB piece per MiB read. glibc returns the top of its heap to the system as soon as more than
    128 KiB of it is free, and maps allocations over its threshold afresh each time, so every block
    page-faulted its memory in again. Measured on the 268 MB file of ``bench_csv_engine``: the
    scan alone 300 MB/s without this and 500-600 with it; ``validate`` 0.73-0.80 s, 0.58-0.76 s with
    it, and 2,000 page faults instead of 70,000 when only the pad is set. Elsewhere than glibc
    (no ``mallopt``) this does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_TOP_PAD, _KEPT_HEAP)  # keep up to 16 MiB of freed heap
    # 1 MiB pieces come from the heap and are reused; bigger buffers are mapped and given back whole,
    # which keeps normalize's peak on 1 GiB where it was (8 MiB here added some 5 MiB to it).
    mallopt(_M_MMAP_THRESHOLD, _MMAP_ABOVE)


class Masks(NamedTuple):
    """A block's bit masks (bit i of word w is byte 64w + i), before the state it starts in is known."""

    size: int
    quotes: Any
    commas: Any
    breaks_at: Any  # offsets of the line breaks, in or out of quotes
    parity: Any  # odd number of quotes in the block up to and including the byte, within its word
    word_parity: Any  # odd number of quotes in the block before each word
    mid_field_runs: Any  # quote runs that start after a byte that does not end a field (byte 0: no)
    last: int  # the block's last byte


def _shifted(np: Any, words: np.ndarray) -> np.ndarray:
    """Each bit moved one byte later: bit i says what byte i - 1 was (0 for the block's first byte)."""
    out = words << np.uint64(1)
    out[1:] |= words[:-1] >> np.uint64(63)
    return out
