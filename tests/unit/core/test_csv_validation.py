"""Streaming CSV validation: the rules, and that chunk boundaries never change the answer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from clean_zone import csv_validation, gunzip
from clean_zone.csv_validation import CsvStats, iter_rows, normalize, validate
from clean_zone.failures import DataQualityError, FailureClass, classify

BOM = b"\xef\xbb\xbf"
MIB = 1024 * 1024

# BOM, multi-byte UTF-8, CRLF endings, a quoted comma, quoted CRLF and LF newlines, escaped quotes.
TRICKY = (
    BOM
    + b"id,name,note\r\n"
    + '1,Zoë,"a, b"\r\n'.encode()
    + '2,日本語,"two\r\nlines"\r\n'.encode()
    + '3,€uro,"he said ""hi""\nthen left"\r\n'.encode()
)
TRICKY_NORMALIZED = (
    'id,name,note\n1,Zoë,"a, b"\n2,日本語,"two\r\nlines"\n3,€uro,"he said ""hi""\nthen left"\n'
).encode()


def two_chunks(data: bytes) -> Iterator[list[bytes]]:
    """``data`` cut in two at every position (the first or second part may be empty)."""
    for cut in range(len(data) + 1):
        yield [data[:cut], data[cut:]]


def in_chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def reason_of(chunks: list[bytes], *, gzipped: bool = False) -> str:
    with pytest.raises(DataQualityError) as caught:
        validate(chunks, gzipped=gzipped)
    return caught.value.reason


def normalized(chunks: list[bytes], *, gzipped: bool = False) -> bytes:
    sink = io.BytesIO()
    normalize(chunks, sink, gzipped=gzipped)
    return sink.getvalue()


# --- what a valid file yields ------------------------------------------------


def test_valid_csv_stats() -> None:
    data = b"a,b,c\n1,2,3\n4,5,6\n"
    stats = validate([data])
    assert stats.rows == 2
    assert stats.columns == 3
    assert stats.header == ["a", "b", "c"]
    assert stats.bytes == len(data)
    assert stats.decoded_bytes == len(data)
    assert stats.sha256 == hashlib.sha256(data).hexdigest()
    assert json.loads(json.dumps(stats.to_dict())) == stats.to_dict()


def test_iter_rows_yields_header_then_rows() -> None:
    assert list(iter_rows([b"a,b\n1,2\n3,4"])) == [["a", "b"], ["1", "2"], ["3", "4"]]


def test_bom_is_tolerated_and_not_part_of_the_header() -> None:
    stats = validate([BOM + b"id,name\n1,x\n"])
    assert stats.header == ["id", "name"]


def test_blank_lines_between_rows_are_tolerated() -> None:
    assert validate([b"a,b\n1,2\n\n\n3,4\n"]).rows == 2


def test_lone_cr_line_endings() -> None:
    assert validate([b"a,b\r1,2\r3,4\r"]).rows == 2


def test_tricky_file_in_one_piece() -> None:
    stats = validate([TRICKY])
    assert (stats.rows, stats.columns) == (3, 3)
    assert stats.header == ["id", "name", "note"]
    assert normalized([TRICKY]) == TRICKY_NORMALIZED


# --- chunk boundaries --------------------------------------------------------


def test_every_two_chunk_split_gives_the_same_result() -> None:
    # Covers the BOM split across chunks, multi-byte characters split mid-sequence,
    # CRLF split between CR and LF, and quoted newlines split anywhere.
    expected = validate([TRICKY])
    for chunks in two_chunks(TRICKY):
        assert validate(chunks) == expected, chunks
        assert normalized(chunks) == TRICKY_NORMALIZED, chunks


def test_one_byte_chunks() -> None:
    assert validate(in_chunks(TRICKY, 1)) == validate([TRICKY])
    assert normalized(in_chunks(TRICKY, 1)) == TRICKY_NORMALIZED


def test_bom_split_inside_its_three_bytes() -> None:
    data = BOM + b"col\nv\n"
    for cut in (1, 2):
        assert validate([data[:cut], data[cut:]]).header == ["col"]


def test_crlf_split_keeps_line_numbers_right() -> None:
    data = b"a,b\r\n1,2\r\n3\r\n"
    for chunks in two_chunks(data):
        with pytest.raises(DataQualityError, match="line 3 has 1 columns") as caught:
            validate(chunks)
        assert caught.value.reason == "ragged_rows"


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_other_unicode_line_separators_are_field_data(separator: str) -> None:
    # str.splitlines() breaks at these; the csv module (and every CSV reader) does not.
    data = f"note,n\nhello{separator}world,1\nplain,2\n".encode()
    for chunks in ([data], in_chunks(data, 1), [data[: data.index(b"world")], data[data.index(b"world") :]]):
        stats = validate(chunks)
        assert stats.rows == 2
    assert normalized([data]) == data  # the value survives normalisation unchanged


def test_quoted_newlines_are_one_row() -> None:
    data = b'id,text\n1,"line one\nline two\nline three"\n2,x\n'
    for chunks in two_chunks(data):
        assert validate(chunks).rows == 2
    assert list(iter_rows([data]))[1] == ["1", "line one\nline two\nline three"]


# --- gzip --------------------------------------------------------------------


def test_gzip_csv_is_decompressed_while_streaming() -> None:
    raw = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(5000))
    packed = gzip.compress(raw)
    stats = validate(in_chunks(packed, 1000), gzipped=True)
    assert stats.rows == 5000
    assert stats.bytes == len(packed)
    assert stats.decoded_bytes == len(raw)
    assert stats.sha256 == hashlib.sha256(packed).hexdigest()  # of the object as stored
    assert normalized(in_chunks(packed, 1000), gzipped=True) == raw


def test_gzip_inflating_past_the_block_size_loses_nothing() -> None:
    raw = b"n,square\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(120_000))  # about 1.7 MB
    assert len(raw) > gunzip.INFLATE_BLOCK
    packed = gzip.compress(raw)
    for chunks in ([packed], in_chunks(packed, 4096)):
        stats = validate(chunks, gzipped=True)
        assert (stats.rows, stats.decoded_bytes) == (120_000, len(raw))
    assert normalized([packed], gzipped=True) == raw


def test_gzip_with_concatenated_members() -> None:
    # `cat part1.gz part2.gz > all.csv.gz` is a valid gzip file; gunzip reads both members.
    first, second = gzip.compress(b"a,b\n1,2\n"), gzip.compress(b"3,4\n5,6\n")
    packed = first + second
    for chunks in two_chunks(packed):  # includes a cut exactly at the member boundary
        assert validate(chunks, gzipped=True).rows == 3
    assert normalized([first, second], gzipped=True) == b"a,b\n1,2\n3,4\n5,6\n"


@pytest.mark.parametrize("keep", [10, 20, -8, -1])
def test_truncated_gzip(keep: int) -> None:
    packed = gzip.compress(b"a,b\n" + b"1,2\n" * 100)
    assert reason_of([packed[:keep]], gzipped=True) == "not_gzip"


def test_plain_text_named_csv_gz() -> None:
    assert reason_of([b"a,b\n1,2\n"], gzipped=True) == "not_gzip"


def test_garbage_after_the_gzip_member() -> None:
    assert reason_of([gzip.compress(b"a,b\n1,2\n") + b"not gzip at all"], gzipped=True) == "not_gzip"


def test_gzip_that_inflates_enormously_stays_in_bounded_memory() -> None:
    # 64 MiB of NULs packs into ~64 KB; inflating a whole chunk at once would hold all 64 MiB.
    packed = gzip.compress(b"\x00" * (64 * MIB), compresslevel=9)
    chunks = in_chunks(packed, MIB)
    tracemalloc.start()
    try:
        assert reason_of(chunks, gzipped=True) == "binary"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MIB


# --- data-quality failures ---------------------------------------------------


@pytest.mark.parametrize("chunks", [[], [b""], [b"", b""]])
def test_empty(chunks: list[bytes]) -> None:
    assert reason_of(chunks) == "empty"


def test_empty_gzip_object() -> None:
    assert reason_of([b""], gzipped=True) == "empty"


def test_only_a_bom_is_empty() -> None:
    assert reason_of([BOM]) == "empty"


@pytest.mark.parametrize("data", [b"a,b\n", b"a,b", b"a,b\r\n\r\n\n", BOM + b"a,b\n"])
def test_header_only(data: bytes) -> None:
    assert reason_of([data]) == "no_data_rows"


@pytest.mark.parametrize("data", [b"\n1,2\n", b" , \n1,2\n", b",,\n1,2,3\n"])
def test_blank_header(data: bytes) -> None:
    assert reason_of([data]) == "no_header"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,b,c\n1,2,3\n4,5\n", "line 3 has 2 columns, the header has 3"),
        (b"a,b\n1,2\n3,4,5\n", "line 3 has 3 columns, the header has 2"),
        (b'a,b\n"x\ny",1\n2\n', "line 4 has 1 columns"),  # physical line numbers, quoted newline counted
    ],
)
def test_ragged_rows(data: bytes, message: str) -> None:
    with pytest.raises(DataQualityError, match=message) as caught:
        validate([data])
    assert caught.value.reason == "ragged_rows"
    assert classify(caught.value) is FailureClass.DATA_QUALITY


def test_binary_file_named_csv() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    assert reason_of([png]) == "binary"


def test_utf16_is_binary_to_us() -> None:
    assert reason_of(["a,b\n1,2\n".encode("utf-16")]) == "binary"


def test_nul_in_a_later_chunk_is_found_and_located() -> None:
    good = b"a,b\n" + b"1,2\n" * 50_000  # the NUL lands in the fourth 64 KiB chunk
    offset = len(good) + 2
    data = good + b"3,\x004\n"
    with pytest.raises(DataQualityError, match=f"NUL byte near byte {offset}") as caught:
        validate(in_chunks(data, 64 * 1024))
    assert caught.value.reason == "binary"


def test_not_utf8() -> None:
    assert reason_of(["name\ncafé\n".encode("latin-1")]) == "not_utf8"


def test_utf8_cut_short_at_the_end() -> None:
    assert reason_of(["name\n日本".encode()[:-1]]) == "not_utf8"


@pytest.mark.parametrize(
    "data",
    [
        b'a,b\n1,"x"y\n',  # text after a closing quote
        b'a,b\n1,"never closed\n2,3\n',  # a quote left open at the end of the file
        b"a,b\n1," + b"x" * 200_000 + b"\n",  # a field over the csv module's size limit
    ],
)
def test_malformed_csv(data: bytes) -> None:
    assert reason_of([data]) == "malformed_csv"


def test_json_named_csv_is_a_data_quality_failure() -> None:
    document = json.dumps({"orders": [{"id": 1, "items": ["a", "b"]}, {"id": 2}]}, indent=2).encode()
    with pytest.raises(DataQualityError) as caught:
        validate([document])
    assert classify(caught.value) is FailureClass.DATA_QUALITY


def test_a_line_without_end_is_refused_before_it_fills_memory() -> None:
    # Minified JSON, or any file without line breaks: refused once a line passes the limit.
    data = b"a,b\n" + b"x" * (csv_validation.MAX_LINE_CHARS + 2 * MIB)
    with pytest.raises(DataQualityError, match="longer than") as caught:
        validate(in_chunks(data, MIB))
    assert caught.value.reason == "malformed_csv"


# --- normalisation -----------------------------------------------------------


def test_normalize_output_bytes() -> None:
    data = BOM + b'a,b,c\r\n"x, y","he said ""hi""",plain\r\n"quoted",,\r\n'
    assert normalized([data]) == b'a,b,c\n"x, y","he said ""hi""",plain\nquoted,,\n'


def test_normalize_returns_the_same_stats_as_validate() -> None:
    sink = io.BytesIO()
    stats = normalize([TRICKY], sink)
    assert isinstance(stats, CsvStats)
    assert stats == validate([TRICKY])


def test_normalize_of_gzip_writes_plain_csv() -> None:
    raw = "h1,h2\r\nä,ö\r\n".encode()
    assert normalized([gzip.compress(raw)], gzipped=True) == "h1,h2\nä,ö\n".encode()
