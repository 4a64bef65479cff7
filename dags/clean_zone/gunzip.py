"""A .csv.gz's bytes inflated as they stream in, with the gzip bomb guard: both CSV engines use it.

Concatenated members (``cat a.gz b.gz``) are one valid stream, as gzip itself reads them. Output
comes in pieces of at most ``INFLATE_BLOCK`` bytes, however much one compressed chunk holds
(1 MiB of compressed input may inflate to 1 GB), and stops with ``gzip_bomb`` as soon as the
total passes the limit. A stream that does not decompress, or ends mid-member, is ``not_gzip``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from clean_zone.failures import DataQualityError

INFLATE_BLOCK = 1024 * 1024
_GZIP_FRAMING = 16 + zlib.MAX_WBITS


def inflate(chunks: Iterable[bytes], limit: int | None) -> Iterator[bytes]:
    """The inflated bytes of the gzip stream ``chunks`` (the stored bytes, in any pieces)."""
    inflater = zlib.decompressobj(_GZIP_FRAMING)
    stored = inflated = 0

    def checked(out: bytes) -> bytes:
        nonlocal inflated
        inflated += len(out)
        if limit is not None and inflated > limit:
            raise DataQualityError(
                f"the .csv.gz inflates past {limit} bytes (clean_zone_max_inflated_bytes): "
                f"stopped after {inflated} bytes of {stored} stored; a gzip bomb, "
                "or a file too large to process",
                reason="gzip_bomb",
            )
        return out

    try:
        for chunk in chunks:
            stored += len(chunk)
            data = chunk
            while data:
                if inflater.eof:
                    inflater = zlib.decompressobj(_GZIP_FRAMING)  # the next member
                if out := inflater.decompress(data, INFLATE_BLOCK):
                    yield checked(out)
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        # Output zlib may still hold once every input byte has been given to it.
        while not inflater.eof and (out := inflater.decompress(b"", INFLATE_BLOCK)):
            yield checked(out)
    except zlib.error as error:
        raise DataQualityError(f"not a valid gzip stream: {error}", reason="not_gzip") from error
    if not inflater.eof and stored:
        raise DataQualityError("gzip stream is truncated", reason="not_gzip")
