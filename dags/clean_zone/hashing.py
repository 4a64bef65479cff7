"""Streamed checksums in constant memory, in the forms partners and S3 write them.

Two algorithms are accepted in manifests: ``SHA256`` (preferred) and ``MD5``
(for partners whose tools only have that). Names are S3's spelling
(``ChecksumAlgorithm``). A digest can be written two ways and both are
accepted on input:

* hex, as ``sha256sum`` / ``md5sum`` print it (64 / 32 characters);
* base64 of the raw digest, as S3 reports it (``ChecksumSHA256``, 44 / 24
  characters).

Internally a digest is always lower-case hex. Hashing reads fixed-size chunks
and never holds more than one chunk, so memory does not grow with the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK_SIZE = 1024 * 1024

SHA256 = "SHA256"
MD5 = "MD5"
ALGORITHMS: tuple[str, ...] = (SHA256, MD5)

_DIGEST_BYTES = {SHA256: 32, MD5: 16}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class ChecksumFormatError(ValueError):
    """A checksum value or algorithm that cannot be read."""


def _unknown(algorithm: str) -> ChecksumFormatError:
    return ChecksumFormatError(f"unknown checksum algorithm {algorithm!r}; use {' or '.join(ALGORITHMS)}")


def new_hasher(algorithm: str) -> Any:
    """A fresh hashlib object for ``algorithm`` (``SHA256`` or ``MD5``)."""
    if algorithm == SHA256:
        return hashlib.sha256()
    if algorithm == MD5:
        # MD5 here checks integrity against a partner's stated value, not security;
        # saying so keeps it usable on FIPS-mode hosts.
        return hashlib.md5(usedforsecurity=False)
    raise _unknown(algorithm)


@dataclass(frozen=True)
class Digest:
    """A finished checksum and how many bytes it covers."""

    algorithm: str
    hex: str
    size: int

    @property
    def base64(self) -> str:
        return hex_to_base64(self.hex)


def hex_to_base64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def base64_to_hex(b64_digest: str) -> str:
    return base64.b64decode(b64_digest, validate=True).hex()


def normalize_digest(value: str, algorithm: str) -> str:
    """``value`` (hex or base64) as lower-case hex; ChecksumFormatError if it is neither for ``algorithm``."""
    if algorithm not in _DIGEST_BYTES:
        raise _unknown(algorithm)
    size = _DIGEST_BYTES[algorithm]
    text = value.strip()
    if len(text) == 2 * size and _HEX.match(text):
        return text.lower()
    # Hex and base64 lengths differ for both algorithms (64/44, 32/24), so there is no ambiguity.
    if len(text) == 4 * ((size + 2) // 3) and _BASE64.match(text):
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) == size:
            return raw.hex()
    raise ChecksumFormatError(
        f"{value!r} is not a {algorithm} digest: expected {2 * size} hex characters "
        f"or {4 * ((size + 2) // 3)} base64 characters"
    )


def read_ahead(chunks: Iterable[bytes], depth: int = 2) -> Iterator[bytes]:
    """``chunks``, fetched by a helper thread up to ``depth`` chunks ahead of the consumer.

    Reading an S3 body and hashing it then overlap instead of taking turns
    (both release the GIL for most of their work), so a streamed checksum runs
    at the slower of the two speeds rather than their harmonic sum. Memory
    stays bounded: at most ``depth + 2`` chunks exist at once (the queue's, the
    one being read, the one being hashed). An error in the reader is raised in
    the consumer.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        source = iter(chunks)
        try:
            for chunk in source:
                if not offer(("chunk", chunk)):
                    return
            offer(("end", None))
        except BaseException as error:  # handed to the consumer, which raises it
            offer(("error", error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # e.g. an S3 body: release its connection

    thread = threading.Thread(target=reader, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "chunk":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()  # the consumer stopped early (or failed): let the reader finish
        thread.join(timeout=5)


def hash_chunks(
    chunks: Iterable[bytes],
    algorithm: str,
    *,
    progress: Callable[[int], None] | None = None,
    prefetch: bool = False,
) -> Digest:
    """Hash a stream of byte chunks (for example an S3 body read 1 MiB at a time).

    ``prefetch`` reads the next chunks in a helper thread while this one is
    hashed (see :func:`read_ahead`): worth it when reading costs CPU or waits
    on the network, as an S3 body does.
    """
    hasher = new_hasher(algorithm)
    size = 0
    for chunk in read_ahead(chunks) if prefetch else chunks:
        hasher.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return Digest(algorithm, hasher.hexdigest(), size)


def hash_file(
    path: str | Path,
    algorithm: str,
    *,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> Digest:
    """Hash a local file, reusing one buffer (no allocation per chunk)."""
    hasher = new_hasher(algorithm)
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(view[:count])
            size += count
            if progress is not None:
                progress(count)
    return Digest(algorithm, hasher.hexdigest(), size)
