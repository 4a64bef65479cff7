"""The columnar engine: every case of test_csv_validation run on it, and its output against the old one's.

The old engine's tests are imported and run here with their module's engine swapped for
``csv_engine`` (an autouse fixture patches the names they call), so a rule added there is
checked here too. The two cases whose answers differ by design are re-stated below.
"""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import test_csv_validation as old_cases
from test_csv_validation import *  # noqa: F403  (every old case, collected again in this module)
from test_csv_validation import BOM, MIB, TRICKY, in_chunks, normalized, reason_of, two_chunks

from clean_zone import csv_engine, csv_validation
from clean_zone.failures import DataQualityError

# Cases whose answers differ by design (see csv_engine's docstring); re-stated below.
del test_malformed_csv, test_ragged_rows, test_crlf_split_keeps_line_numbers_right  # noqa: F821


@pytest.fixture(autouse=True)
def _old_cases_use_the_new_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # The old cases look these names up in their own module at call time.
    for name in ("validate", "normalize", "iter_rows", "CsvStats"):
        monkeypatch.setattr(old_cases, name, getattr(csv_engine, name))
    monkeypatch.setattr(old_cases, "csv_validation", csv_engine)


def test_the_old_cases_really_run_the_new_engine() -> None:
    # Without the swap this would call csv_validation, whose strict parser refuses the row.
    assert old_cases.validate([b'a,b\n1,"x"y\n']).rows == 1


# --- the cases that differ by design -------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'a,b\n1,"never closed\n2,3\n',  # a quote left open at the end of the file
        b'a\n"never closed\nx\n',  # the same with one column
        b'a,b\n1,"never closed',
        b"a,b\n1," + b"x" * 200_000 + b"\n",  # a field over the csv module's size limit
        b"a,b\n1," + "é".encode() * 131_073 + b"\n",  # counted in characters, as csv counts
    ],
)
def test_malformed_csv(data: bytes) -> None:
    assert reason_of([data]) == "malformed_csv"


def test_a_field_at_the_size_limit_in_characters_is_accepted() -> None:
    # 131,072 two-byte characters: over the limit in bytes, at it in characters.
    assert csv_engine.validate([b"a,b\n1," + "é".encode() * 131_072 + b"\n"]).rows == 1


def test_text_after_a_closing_quote_is_joined_to_the_field() -> None:
    # Python's strict csv refuses this; pyarrow (like pandas and spreadsheets) reads "xy".
    data = b'a,b\n1,"x"y\n'
    assert csv_engine.validate([data]).rows == 1
    assert normalized([data]) == b"a,b\n1,xy\n"
    with pytest.raises(DataQualityError):
        csv_validation.validate([data])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,b,c\n1,2,3\n4,5\n", "record 3 (the header is record 1) has 2 columns, the header has 3"),
        (b"a,b\n1,2\n3,4,5\n", "record 3 (the header is record 1) has 3 columns, the header has 2"),
        (
            b'a,b\n"x\ny",1\n2\n',
            "record 3 (the header is record 1) has 1 columns",
        ),  # quoted newline: one record
        (b"a,b\n\n\n1,2,3\n", "record 2 (the header is record 1) has 3 columns"),  # blank lines not counted
        (b"a,b\r\n1,2\r\n3\r\n", "record 3 (the header is record 1) has 1 columns"),  # CRLF split anywhere
        (b"a\n1\n2,3\n", "record 3 (the header is record 1) has 2 columns, the header has 1"),
    ],
)
def test_ragged_rows(data: bytes, message: str) -> None:
    for chunks in two_chunks(data):
        with pytest.raises(DataQualityError) as caught:
            csv_engine.validate(chunks)
        assert caught.value.reason == "ragged_rows"
        assert message in str(caught.value)


# --- the end-of-file sentinel, one column ---------------------------------------


@pytest.mark.parametrize(
    ("data", "rows"),
    [(b"a\n1\n", 1), (b"a\n1", 1), (b"a\n1\n\n", 1), (b'a\n""\n2\n', 2), (b'a\n"x\n"\n', 1)],
)
def test_one_column_files(data: bytes, rows: int) -> None:
    assert csv_engine.validate([data]).rows == rows
    assert normalized([data]) == _old_normalized([data])


def test_one_column_header_only_has_no_data_rows() -> None:
    assert reason_of([b"a\n"]) == "no_data_rows"


# --- output byte-identical to the old engine -------------------------------------


def _old_normalized(chunks: list[bytes], *, gzipped: bool = False) -> bytes:
    sink = io.BytesIO()
    csv_validation.normalize(chunks, sink, gzipped=gzipped)
    return sink.getvalue()


CORPUS = {
    "tricky": TRICKY,
    "quotes": b'a,b\n"he said ""hi""","""quoted"""\n"",""""\n',
    "embedded newlines": b'a,b\n"one\ntwo","three\r\nfour"\n"\n","\r\n"\n',
    "lone cr in a quoted field": b'a,b\n"x\ry",1\n',
    "crlf": b"a,b\r\n1,2\r\n3,4\r\n",
    "lone cr endings": b"a,b\r1,2\r3,4",
    "bom": BOM + b"a,b\n1,2\n",
    "unicode": "名前,ville\nZoë,Córdoba\n日本語,\u2028sep\n€,\x85nel\n".encode(),
    "empty fields": b"a,b,c\n,,\n1,,\n,,3\n",
    "one column, empty cells": b'only\n""\nx\n""\n',
    "spaces kept": b"a,b\n x , y \n",
    "unquoted quotes": b'a,b\n1,a"b\n',
    "blank lines": b"a,b\n\n1,2\n\r\n\n3,4\n\n",
    "no final newline": b"a,b\n1,2",
    "commas": b'a,b\n"x,y",","\n',
    "wide": (
        ",".join(f"c{i}" for i in range(3000)) + "\n" + ",".join(str(i) for i in range(3000)) + "\n"
    ).encode(),
    "quoted header": b'"a,1","b\nc"\n1,2\n',
}


@pytest.mark.parametrize("name", CORPUS)
def test_output_is_byte_identical_to_the_old_engine(name: str) -> None:
    data = CORPUS[name]
    expected = _old_normalized([data])
    for chunks in ([data], in_chunks(data, 7), in_chunks(data, 1)):
        assert normalized(chunks) == expected
        assert csv_engine.validate(chunks).to_dict() == csv_validation.validate(chunks).to_dict()
    assert list(csv_engine.iter_rows([data])) == list(csv_validation.iter_rows([data]))


@pytest.mark.parametrize("name", ["tricky", "embedded newlines", "unicode", "one column, empty cells"])
def test_gzip_output_is_byte_identical_to_the_old_engine(name: str) -> None:
    data = CORPUS[name]
    half = len(data) // 2
    for packed in (gzip.compress(data), gzip.compress(data[:half]) + gzip.compress(data[half:])):
        expected = _old_normalized([packed], gzipped=True)
        assert normalized(in_chunks(packed, 5), gzipped=True) == expected
        new, old = (
            csv_engine.validate([packed], gzipped=True),
            csv_validation.validate([packed], gzipped=True),
        )
        assert new.to_dict() == old.to_dict()


def test_output_spanning_many_blocks_is_byte_identical() -> None:
    # Past several pyarrow blocks, with quoted newlines and multi-byte characters across block edges.
    rows = "".join(f'{n},"Zoë ""{n}""\nsecond line",日本{n},\n' for n in range(400_000))
    data = ("id,note,city,empty\n" + rows).encode()
    assert len(data) > 2 * csv_engine.BLOCK_BYTES
    chunks = in_chunks(data, MIB)
    assert normalized(chunks) == _old_normalized(chunks)
    assert csv_engine.validate(chunks).to_dict() == csv_validation.validate(chunks).to_dict()


# --- limits -------------------------------------------------------------------


def test_gzip_bomb_is_stopped_by_the_configured_limit() -> None:
    # 256 MiB of valid rows pack into well under 1 MB; the limit stops them after 16 MiB inflated.
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"1,2\n" * (MIB // 4)
    packed = packer.compress(b"a,b\n") + b"".join(packer.compress(block) for _ in range(256)) + packer.flush()
    assert len(packed) < MIB
    with pytest.raises(DataQualityError, match="inflates past 16777216 bytes") as caught:
        csv_engine.validate(in_chunks(packed, MIB), gzipped=True, max_inflated_bytes=16 * MIB)
    assert caught.value.reason == "gzip_bomb"


def test_inflated_size_at_the_limit_is_accepted() -> None:
    raw = b"a,b\n" + b"1,2\n" * 1000
    packed = gzip.compress(raw)
    assert csv_engine.validate([packed], gzipped=True, max_inflated_bytes=len(raw)).rows == 1000
    assert reason_of_limit(packed, len(raw) - 1) == "gzip_bomb"


def reason_of_limit(packed: bytes, limit: int) -> str:
    with pytest.raises(DataQualityError) as caught:
        csv_engine.validate([packed], gzipped=True, max_inflated_bytes=limit)
    return caught.value.reason


def test_a_record_at_the_block_size_is_accepted() -> None:
    # The long-record bound is the block: a record just under it still parses.
    data = b"a,b\n1," + b"x" * (csv_engine.BLOCK_BYTES - 16) + b"\n"
    with pytest.raises(DataQualityError) as caught:  # over the field limit, not over the block
        csv_engine.validate(in_chunks(data, MIB))
    assert "characters in column 2" in str(caught.value)


def test_hash_thread_is_stopped_when_validation_fails() -> None:
    import threading

    for _ in range(20):
        with pytest.raises(DataQualityError):
            csv_engine.validate([b"a,b\n1,2,3\n"])
    assert not [t for t in threading.enumerate() if t.name in ("csv-engine-sha256", "csv-engine-read")]


def test_utf8_is_checked_across_pieces_and_names_the_byte() -> None:
    text = "name,n\n" + "日本語,1\n" * 10
    data = text.encode()
    # Every cut, a multi-byte character split between pieces included, is valid.
    for size in (1, 2, 5, 7):
        assert csv_engine.validate(in_chunks(data, size)).rows == 10
    bad = data[:30] + b"\xff" + data[30:]
    with pytest.raises(DataQualityError) as caught:
        csv_engine.validate(in_chunks(bad, 7))
    assert caught.value.reason == "not_utf8"
    assert "near byte 30" in str(caught.value)


def test_a_source_that_fails_mid_read_raises_its_own_error() -> None:
    class SourceBroke(RuntimeError):
        pass

    def chunks():
        yield b"a,b\n1,2\n"
        raise SourceBroke("connection reset")

    with pytest.raises(SourceBroke, match="connection reset"):
        csv_engine.validate(chunks())


def test_importing_the_engine_does_not_import_pyarrow_or_numpy() -> None:
    code = "import sys, clean_zone.csv_engine; print('pyarrow' in sys.modules, 'numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False False"


def test_the_engine_runs_pyarrow_on_jemalloc_not_mimalloc() -> None:
    # pyarrow 25's mimalloc crashed in mi_thread_init as the engine's threads came and went.
    code = (
        "import pyarrow, clean_zone.csv_engine as e; before = pyarrow.default_memory_pool().backend_name; "
        "e.validate([b'a,b\\n1,2\\n']); e.normalize([b'a\\n1\\n'], open('/dev/null', 'wb')); "
        "print(before, pyarrow.default_memory_pool().backend_name)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["mimalloc", "jemalloc"]


def test_benchmark_runs_end_to_end_on_a_small_file(tmp_path: Path) -> None:
    # Figures are printed, never asserted (machines differ); this proves every pass runs and is reported.
    command = [sys.executable, "-m", "clean_zone_tools.benchmarks.bench_csv_engine"]
    args = ["--size-mb", "0.5", "--rss-size-mb", "0.5", "--repeat", "1", "--pairs", "2"]
    args += ["--dir", str(tmp_path)]
    done = subprocess.run([*command, *args], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    passes = ("raw read + SHA-256", "old engine", "csv_engine.validate", "csv_engine.normalize", "no quotes")
    for label in passes:
        assert label in done.stdout
    assert "peak RSS, validate of" in done.stdout and "peak RSS, normalize of" in done.stdout
    assert "validate / raw in back-to-back pairs: median" in done.stdout and "2 pairs)" in done.stdout
    assert list(tmp_path.iterdir()) == []  # the generated files are removed
