"""Hostile files, each with its documented outcome (docs/file-checks.md, "Hostile input"): a gzip
bomb stopped by the configured limit, a 1 MB single line, NUL bytes, a header with thousands of
columns. Lying manifests are in tests/e2e/test_hostile_manifests.py (they need the batch DAG)."""

from __future__ import annotations

import gzip
import io

import pytest

from clean_zone import config, csv_validation, gunzip
from clean_zone.failures import DataQualityError

MB = 1024 * 1024


def chunks(data: bytes, size: int = MB) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def refused(data: bytes, **kwargs: object) -> str:
    with pytest.raises(DataQualityError) as caught:
        csv_validation.validate(chunks(data), **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_a_gzip_bomb_is_stopped_at_the_configured_limit_before_it_is_all_inflated() -> None:
    # 256 MiB of one repeated line squeezed to about 256 KB: a 1,000:1 bomb. Concatenated gzip members
    # (valid gzip, as `cat a.gz b.gz` makes) build it without compressing 256 MiB here.
    member = gzip.compress(b"1,0\n" * (MB // 4), compresslevel=9)
    bomb = gzip.compress(b"id,pad\n") + member * 256
    assert len(bomb) < MB

    limit = 2 * MB
    with pytest.raises(DataQualityError) as caught:
        csv_validation.validate(chunks(bomb), gzipped=True, max_inflated_bytes=limit)

    assert caught.value.reason == "gzip_bomb"
    assert "clean_zone_max_inflated_bytes" in str(caught.value)
    stopped_after = int(str(caught.value).split("stopped after ")[1].split(" ")[0])
    assert limit < stopped_after <= limit + gunzip.INFLATE_BLOCK  # stopped as it passed


def test_the_gzip_limit_is_a_setting() -> None:
    settings = config.load_for_parsing({"AIRFLOW_VAR_CLEAN_ZONE_MAX_INFLATED_BYTES": "262144"})
    assert settings.max_inflated_bytes == MB // 4
    assert config.Settings().max_inflated_bytes == 64 * 1024**3
    small = gzip.compress(b"a,b\n" + b"1,2\n" * 100_000)  # 400 KB inflated
    assert refused(small, gzipped=True, max_inflated_bytes=settings.max_inflated_bytes) == "gzip_bomb"
    assert csv_validation.validate(chunks(small), gzipped=True).rows == 100_000  # no limit, no refusal


def test_a_1_mb_single_line_is_a_header_without_rows() -> None:
    line = b",".join(b"c%d" % i for i in range(150_000))[: MB - 1] + b"\n"
    assert len(line) == MB
    assert refused(line) == "no_data_rows"


def test_a_1_mb_single_cell_is_malformed() -> None:
    assert refused(b"a\n" + b"x" * MB + b"\n") == "malformed_csv"  # a field over 131,072 characters


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",
        b"id,name\n1,al\x00pha\n",
        b"\xff\xfei\x00d\x00,\x00n\x00\n\x00",  # UTF-16 text
        b"id,name\n" + b"1,alpha\n" * 200_000 + b"\x00",  # past the first chunk
    ],
    ids=["only-nul", "nul-in-a-cell", "utf16", "nul-after-1-mb"],
)
def test_nul_bytes_anywhere_are_binary(data: bytes) -> None:
    assert refused(data) == "binary"


def test_a_header_with_thousands_of_columns_is_processed() -> None:
    columns = 20_000
    header = b",".join(b"col_%d" % i for i in range(columns)) + b"\n"
    row = b",".join(b"%d" % i for i in range(columns)) + b"\n"
    data = header + row * 3
    sink = io.BytesIO()

    stats = csv_validation.normalize(chunks(data), sink)

    assert (stats.columns, stats.rows) == (columns, 3)
    assert sink.getvalue() == data


def test_a_row_short_of_thousands_of_columns_is_ragged() -> None:
    header = b",".join(b"c%d" % i for i in range(5_000)) + b"\n"
    assert refused(header + b"1,2,3\n") == "ragged_rows"
