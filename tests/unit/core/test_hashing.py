"""Streamed checksums: the digests partners and S3 write, in both their forms, in constant memory."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from clean_zone.hashing import (
    ChecksumFormatError,
    base64_to_hex,
    hash_chunks,
    hash_file,
    hex_to_base64,
    new_hasher,
    normalize_digest,
    read_ahead,
)

DATA = b"id,name\n1,alpha\n2,beta\n"
SHA256_HEX = hashlib.sha256(DATA).hexdigest()
MD5_HEX = hashlib.md5(DATA, usedforsecurity=False).hexdigest()


def test_sha256_as_sha256sum_prints_it_and_as_s3_reports_it_normalise_to_the_same_hex():
    s3_form = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert len(s3_form) == 44
    assert normalize_digest(SHA256_HEX, "SHA256") == SHA256_HEX
    assert normalize_digest(SHA256_HEX.upper(), "SHA256") == SHA256_HEX
    assert normalize_digest(s3_form, "SHA256") == SHA256_HEX
    assert hex_to_base64(SHA256_HEX) == s3_form
    assert base64_to_hex(s3_form) == SHA256_HEX


def test_md5_in_hex_and_base64_normalise_to_the_same_hex():
    b64 = base64.b64encode(hashlib.md5(DATA, usedforsecurity=False).digest()).decode()
    assert normalize_digest(MD5_HEX, "MD5") == MD5_HEX
    assert normalize_digest(b64, "MD5") == MD5_HEX


@pytest.mark.parametrize(
    ("value", "algorithm"),
    [
        (MD5_HEX, "SHA256"),  # an MD5 where a SHA-256 is claimed
        (SHA256_HEX, "MD5"),
        ("z" * 64, "SHA256"),  # right length, not hex
        ("", "SHA256"),
        ("!" * 44, "SHA256"),  # right length, not base64
        (SHA256_HEX + "00", "SHA256"),
    ],
)
def test_a_value_that_is_not_a_digest_of_the_algorithm_is_refused(value: str, algorithm: str):
    with pytest.raises(ChecksumFormatError):
        normalize_digest(value, algorithm)


def test_unknown_algorithms_are_refused_by_name():
    with pytest.raises(ChecksumFormatError, match="CRC32"):
        new_hasher("CRC32")
    with pytest.raises(ChecksumFormatError, match="sha1"):
        normalize_digest("a" * 40, "sha1")


def test_hashing_chunks_gives_the_digest_of_the_whole_and_counts_bytes():
    progress: list[int] = []
    digest = hash_chunks([DATA[:5], DATA[5:], b""], "SHA256", progress=progress.append)
    assert digest.hex == SHA256_HEX
    assert digest.size == len(DATA)
    assert sum(progress) == len(DATA)
    assert digest.base64 == base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert hash_chunks([DATA], "MD5").hex == MD5_HEX


def test_hash_file_matches_hashlib(tmp_path):
    path = tmp_path / "data.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)  # not a multiple of the chunk size
    path.write_bytes(payload)
    digest = hash_file(path, "SHA256", chunk_size=1024 * 1024)
    assert digest.hex == hashlib.sha256(payload).hexdigest()
    assert digest.size == len(payload)
    assert hash_file(path, "MD5").hex == hashlib.md5(payload, usedforsecurity=False).hexdigest()


def test_streaming_memory_does_not_grow_with_the_size_of_the_stream():
    chunk = os.urandom(256 * 1024)

    def stream(total_chunks: int) -> Iterator[bytes]:
        for _ in range(total_chunks):
            yield chunk  # the same buffer again: the stream itself holds nothing

    peaks = []
    for total in (4, 256):  # 1 MiB and 64 MiB
        tracemalloc.start()
        hash_chunks(stream(total), "SHA256")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 64 * 1024, peaks  # tens of KiB, not the 64 MiB that went through
    assert peaks[1] < peaks[0] + 16 * 1024, peaks


def test_read_ahead_yields_the_same_chunks_in_order_and_hashes_the_same():
    chunks = [os.urandom(1000) for _ in range(50)]
    assert list(read_ahead(iter(chunks))) == chunks
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()
    assert hash_chunks(iter(chunks), "SHA256", prefetch=True).hex == expected


def test_read_ahead_raises_the_readers_error_in_the_consumer():
    def failing() -> Iterator[bytes]:
        yield b"first"
        raise ConnectionResetError("the S3 connection dropped")

    consumed = []
    with pytest.raises(ConnectionResetError, match="dropped"):
        for chunk in read_ahead(failing()):
            consumed.append(chunk)
    assert consumed == [b"first"]


def test_read_ahead_stays_a_bounded_number_of_chunks_ahead_and_closes_the_source_when_abandoned():
    produced: list[int] = []
    closed = threading.Event()

    def source() -> Iterator[bytes]:
        try:
            for number in range(1000):
                produced.append(number)
                yield b"x"
        finally:
            closed.set()

    stream = read_ahead(source(), depth=2)
    assert next(stream) == b"x"
    time.sleep(0.3)  # give the reader every chance to run ahead
    assert len(produced) <= 4  # the one consumed, two queued, one waiting to be queued
    stream.close()  # the consumer gives up (e.g. an exception while hashing)
    assert closed.wait(timeout=5)
    assert len(produced) < 1000
