"""The scan: it vouches only for records pyarrow would accept, and hands the rest over.

``csv_engine.validate`` scans first and hands pyarrow the first record it cannot vouch for;
``csv_engine.normalize`` copies the records without quotes the scan vouches for and hands pyarrow
the rest. Both must agree with pyarrow alone on every file: the same stats (and for ``normalize``
the same bytes out), or the same reason and message. Random files (valid, ragged, mid-field quotes,
CRLF, blank lines, quoted newlines, long fields, open quotes) are validated both ways, with
blocks of a few bytes so that every carry from one block to the next is exercised.
"""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Iterator

import pytest

from clean_zone import csv_engine, csv_scan
from clean_zone.csv_scan import Scan
from clean_zone.csv_validation import CsvStats
from clean_zone.failures import DataQualityError


def _outcome(run: object) -> tuple[str, object]:
    try:
        stats = run()  # type: ignore[operator]
    except DataQualityError as error:
        return ("refused", (error.reason, str(error)))
    return ("accepted", stats)


def _by_pyarrow_alone(chunks: list[bytes]) -> tuple[CsvStats, bytes]:
    """The engine without the scan: pyarrow parses and formats every record."""
    stats, out = CsvStats(), io.BytesIO()
    limit = csv_engine.MAX_INFLATED_BYTES
    feed = csv_engine._Feed(chunks, gzipped=False, stats=stats, max_inflated_bytes=limit)
    for batch in csv_engine._batches(feed, stats):
        out.write(memoryview(csv_engine._format(batch)))
        out.write(b"\n")
    return stats, out.getvalue()


def _normalized(chunks: list[bytes]) -> tuple[CsvStats, bytes]:
    out = io.BytesIO()
    return csv_engine.normalize(chunks, out), out.getvalue()


def _both_ways(chunks: list[bytes]) -> tuple[tuple[str, object], tuple[str, object]]:
    """(validate, normalize with its output) against pyarrow alone; the same answer expected of each."""
    reference = _outcome(lambda: _by_pyarrow_alone(chunks))
    scanned = _outcome(lambda: csv_engine.validate(chunks))
    normalized = _outcome(lambda: _normalized(chunks))
    assert normalized == reference
    expected = (reference[0], reference[1][0]) if reference[0] == "accepted" else reference  # type: ignore[index]
    return scanned, expected


def _field(rng: random.Random, plain: float) -> str:
    kind = rng.random()
    if kind < plain:
        return rng.choice(["", "1", "abc", "é", "x y", "北京", "12.5"])
    if kind < plain + (1 - plain) * 0.9:  # quoted: commas, escaped quotes, line breaks inside
        pieces = ["a", ",", '""', "\n", "\r\n", "é", " "]
        inner = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        tail = "z" if rng.random() < 0.03 else ""  # text after the closing quote
        return f'"{inner}"{tail}'
    if kind < plain + (1 - plain) * 0.95:  # a quote in the middle of an unquoted field: data to pyarrow
        return rng.choice(['55" tv', 'a"b', 'x""y', 'o"k,"'])
    return rng.choice(["a" * 30, "b" * 70])  # over the (lowered) field limit now and then


def _file(rng: random.Random, plain: float) -> bytes:
    columns = rng.randint(1, 4)
    newline = rng.choice(["\n", "\r\n", "\r"])
    lines = [",".join(f"h{i}" for i in range(columns))]
    for _ in range(rng.randint(0, 25)):
        width = columns if rng.random() < 0.98 else rng.randint(1, columns + 2)
        lines.append(",".join(_field(rng, plain) for _ in range(width)))
        if rng.random() < 0.05:
            lines.append("")  # a blank line
    text = newline.join(lines) + (newline if rng.random() < 0.8 else "")
    if rng.random() < 0.05:
        text += '"never closed'
    data = text.encode()
    return (b"\xef\xbb\xbf" + data) if rng.random() < 0.1 else data


def _chunks(rng: random.Random, data: bytes) -> list[bytes]:
    cuts = rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 4))) if len(data) > 1 else []
    edges = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize(("block", "plain"), [(64, 0.5), (100, 0.5), (4096, 0.5), (64, 0.97), (700, 0.97)])
def test_the_scan_and_pyarrow_agree_on_random_files(
    monkeypatch: pytest.MonkeyPatch, block: int, plain: float
) -> None:
    # plain: the share of fields without quotes (at 0.97 normalize copies long runs of records).
    monkeypatch.setattr(csv_scan, "SCAN_BLOCK", block)
    monkeypatch.setattr(csv_engine, "FIELD_SIZE_LIMIT", 40)  # so that long fields and records come up
    rng = random.Random(block + int(plain * 100))
    outcomes: dict[str, int] = {"accepted": 0, "refused": 0}
    for case in range(400):
        data = _file(rng, plain)
        scanned, parsed = _both_ways(_chunks(rng, data))
        assert scanned == parsed, f"case {case}: {data!r}"
        outcomes[scanned[0]] += 1
    # Both kinds of answer come up often enough for the agreement to mean something.
    assert min(outcomes.values()) > 60, outcomes


def _records(count: int) -> Iterator[bytes]:
    for n in range(count):
        yield f'{n},"note, {n}","say ""hi""\nthen go"\r\n'.encode()


def test_a_plain_file_is_vouched_for_by_the_scan_alone() -> None:
    data = b"id,note,text\r\n" + b"".join(_records(20_000))
    scan = Scan(csv_engine.FIELD_SIZE_LIMIT)
    for start in range(0, len(data), csv_scan.SCAN_BLOCK):
        assert scan.feed(data[start : start + csv_scan.SCAN_BLOCK]) is None
    assert scan.finish() is None
    assert (scan.records, scan.columns) == (20_001, 3)
    assert csv_engine.validate([data]).rows == 20_000


def test_a_ragged_record_far_into_a_file_is_numbered_from_the_start() -> None:
    # The scan vouches for 20,000 records (over a MiB), then pyarrow numbers the ragged one.
    data = b"id,note,text\n" + b"".join(_records(20_000)) + b"1,2\n" + b"".join(_records(10))

    with pytest.raises(DataQualityError) as raised:
        csv_engine.validate([data])

    assert raised.value.reason == "ragged_rows"
    assert "record 20002 (the header is record 1) has 2 columns, the header has 3" in str(raised.value)
    assert _both_ways([data])[0] == _both_ways([data])[1]


@pytest.mark.parametrize(
    ("data", "stopped", "records"),
    [
        (b"a,b\n1,2\n3\n", 8, 2),  # a record with the wrong field count
        (b'a,b\n1,2\n3,55" tv\n4,5\n', 8, 2),  # a quote in the middle of an unquoted field
        (b'a,b\n1,"open\n', 4, 1),  # a quote still open at the end
        (b'a",b\n1,2\n', 0, 0),  # the header itself
        (b"a,b\n1," + b"x" * 50 + b"\n", 4, 1),  # a record longer than the limit
    ],
)
def test_the_scan_stops_at_the_record_it_cannot_vouch_for(data: bytes, stopped: int, records: int) -> None:
    scan = Scan(40)
    result = scan.feed(data)
    result = scan.finish() if result is None else result
    assert (result, scan.records) == (stopped, records)


def test_blank_lines_and_every_line_ending_are_not_records() -> None:
    scan = Scan(40)
    assert scan.feed(b"a,b\r\n\r\n1,2\r\r3,4\n\n5,6") is None
    assert scan.finish() is None
    assert scan.records == 4
