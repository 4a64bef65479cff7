"""Extension rules: which keys are CSV, which are rejected, which are not files at all."""

from __future__ import annotations

import json
import os

import pytest

from clean_zone.extensions import FileKind, check_file, classify_key, extension_of
from clean_zone.keys import is_folder_marker


@pytest.mark.parametrize(
    ("key", "extension"),
    [
        ("landing/data.csv", ".csv"),
        ("landing/DATA.CSV", ".csv"),  # the reference's Choice state would have rejected this
        ("landing/Mixed.CsV", ".csv"),
        ("landing/a/b/data.csv.gz", ".csv.gz"),
        ("landing/DATA.CSV.GZ", ".csv.gz"),
        ("landing/archive.tar.gz", ".tar.gz"),
        ("landing/plain.gz", ".gz"),
        ("landing/README", ""),
        ("landing/.hidden", ""),  # a dotfile: its whole name is the "extension" part
        ("landing/.csv", ""),  # a dotfile called ".csv" is not a CSV file
        ("landing/.hidden.csv", ".csv"),
        ("landing/dir.with.dots/README", ""),  # dots in folders do not count
        ("landing/report.csv.bak", ".bak"),
        ("landing/data.json", ".json"),
        ("landing/trailing.", "."),
        ("landing/with space/file name.csv", ".csv"),
        ("landing/données/été.CSV", ".csv"),
        ("landing/a+b%20c.csv", ".csv"),
        ("no-prefix.csv", ".csv"),
    ],
)
def test_extension_of(key: str, extension: str) -> None:
    assert extension_of(key) == extension


@pytest.mark.parametrize(
    "name", ["data.csv", "README", ".hidden", "x.json", "a.b.c", "trailing.", ".hidden.csv", "dir.d/file"]
)
def test_single_extensions_agree_with_the_reference_lambda_apart_from_case(name: str) -> None:
    # The reference Lambda used os.path.splitext; only case (and .csv.gz) differ here.
    assert extension_of(name.upper()) == os.path.splitext(name)[1].lower()


@pytest.mark.parametrize(
    ("key", "size", "kind"),
    [
        ("landing/data.csv", 10, FileKind.CSV),
        ("landing/DATA.CSV", 10, FileKind.CSV),
        ("landing/data.csv.gz", 10, FileKind.CSV_GZIP),
        ("landing/Data.Csv.Gz", 10, FileKind.CSV_GZIP),
        ("landing/data.csv", 0, FileKind.CSV),  # an empty CSV is a data-quality problem, not a folder
        ("landing/archive.tar.gz", 10, FileKind.OTHER),
        ("landing/plain.gz", 10, FileKind.OTHER),
        ("landing/data.json", 10, FileKind.OTHER),
        ("landing/README", 10, FileKind.OTHER),
        ("landing/.hidden", 10, FileKind.OTHER),
        ("landing/subdir/", 0, FileKind.FOLDER_MARKER),
        ("landing/", 0, FileKind.FOLDER_MARKER),
        ("landing/subdir/", 5, FileKind.OTHER),  # has content: a real object, so it is routed and rejected
    ],
)
def test_classify_key(key: str, size: int, kind: FileKind) -> None:
    assert classify_key(key, size) is kind


def test_only_csv_kinds_are_processed() -> None:
    assert {kind for kind in FileKind if kind.is_csv} == {FileKind.CSV, FileKind.CSV_GZIP}


def test_folder_marker_needs_the_slash_and_zero_bytes() -> None:
    assert is_folder_marker("landing/dir/", 0)
    assert not is_folder_marker("landing/dir/", 1)
    assert not is_folder_marker("landing/dir", 0)


def test_check_file_is_the_xcom_the_router_reads() -> None:
    result = check_file("clean-zone", "landing/in/Sales.CSV.gz", 1234).to_dict()
    assert result == {
        "bucket": "clean-zone",
        "key": "landing/in/Sales.CSV.gz",
        "size": 1234,
        "extension": ".csv.gz",
        "kind": "csv_gzip",
    }
    # XCom stores JSON: the dict must survive a round trip unchanged.
    assert json.loads(json.dumps(result)) == result
    assert FileKind(result["kind"]).is_csv


def test_check_file_for_a_folder_marker() -> None:
    result = check_file("clean-zone", "landing/new folder/", 0)
    assert result.kind is FileKind.FOLDER_MARKER
    assert result.extension == ""
