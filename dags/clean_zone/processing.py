"""Checking and writing a processed file, for every pipeline: the one place the CSV engine is chosen.

:data:`engine` is the columnar engine (:mod:`clean_zone.csv_engine`, pyarrow's
streaming reader; pyarrow is imported inside its functions, so importing this
module at parse time costs nothing). :mod:`clean_zone.csv_validation`, the
pure-Python engine, has the same API and rules; it stays as the reference.

:func:`write_outputs` streams the source through the engine's ``normalize``
(which validates as it writes: one read of the bytes does both) into a spooled
temporary file (memory up to :data:`SPOOL_MAX_MEMORY`, disk
past it: constant memory for any file size), uploaded beside the file's
processed key, and described in a summary written after the output.

The single-file pipeline keeps the reference's steps apart (validate, the
failure generator, write) and still reads the file once: :func:`stage_output`
validates and normalises into a staged object, and :func:`publish_output`
later copies it beside the processed file on the server (no second read).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from clean_zone import csv_engine as engine
from clean_zone.clock import now_iso
from clean_zone.csv_validation import CsvStats
from clean_zone.keys import output_keys
from clean_zone.storage import ObjectStore

SPOOL_MAX_MEMORY = 8 * 1024 * 1024


def validate(
    chunks: Iterable[bytes], *, gzipped: bool, max_inflated_bytes: int = engine.MAX_INFLATED_BYTES
) -> CsvStats:
    """Check a CSV with the chosen engine; raises :class:`~clean_zone.failures.DataQualityError`."""
    return engine.validate(chunks, gzipped=gzipped, max_inflated_bytes=max_inflated_bytes)


@dataclass(frozen=True)
class ProcessedOutput:
    stats: CsvStats
    output: str  # s3:// URL of the normalised CSV
    summary_url: str
    summary: dict[str, Any]


def write_outputs(
    store: ObjectStore,
    chunks: Iterable[bytes],
    base: str,
    *,
    gzipped: bool,
    fields: dict[str, Any],
    before_upload: Callable[[CsvStats], dict[str, Any]] | None = None,
    processed_at: str | None = None,
    max_inflated_bytes: int = engine.MAX_INFLATED_BYTES,
) -> ProcessedOutput:
    """Normalise ``chunks`` and write ``<base>.normalized.csv`` and ``<base>.summary.json``.

    ``fields`` go into the summary beside the CSV measurements. ``before_upload``
    sees the measurements once the whole file was read and may refuse it (raise)
    before anything is written, or add summary fields. A data-quality problem
    raises :class:`~clean_zone.failures.DataQualityError` and writes nothing.
    """
    output_key, _ = output_keys(base)
    stats, extra = _normalise_to(store, chunks, output_key, gzipped, max_inflated_bytes, before_upload)
    return _summarise(store, base, stats, {**fields, **extra}, processed_at)


def stage_output(
    store: ObjectStore,
    chunks: Iterable[bytes],
    staged_key: str,
    *,
    gzipped: bool,
    max_inflated_bytes: int = engine.MAX_INFLATED_BYTES,
) -> CsvStats:
    """Validate and normalise ``chunks`` in one read; the normalised CSV waits at ``staged_key``.

    A data-quality problem raises :class:`~clean_zone.failures.DataQualityError` and stages nothing.
    """
    return _normalise_to(store, chunks, staged_key, gzipped, max_inflated_bytes, None)[0]


def _normalise_to(
    store: ObjectStore,
    chunks: Iterable[bytes],
    key: str,
    gzipped: bool,
    max_inflated_bytes: int,
    before_upload: Callable[[CsvStats], dict[str, Any]] | None,
) -> tuple[CsvStats, dict[str, Any]]:
    """One read that validates and normalises into a spool, ``before_upload``'s say, then the upload."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY) as sink:
        stats = engine.normalize(chunks, sink, gzipped=gzipped, max_inflated_bytes=max_inflated_bytes)
        extra = before_upload(stats) if before_upload is not None else {}
        sink.seek(0)
        store.upload_stream(key, sink)
    return stats, extra


def publish_output(
    store: ObjectStore,
    staged_key: str,
    base: str,
    stats: CsvStats,
    *,
    fields: dict[str, Any],
    processed_at: str | None = None,
) -> ProcessedOutput:
    """Copy a staged output to ``<base>.normalized.csv`` (server-side), write the summary, drop the stage."""
    output_key, _ = output_keys(base)
    store.copy(staged_key, output_key)
    written = _summarise(store, base, stats, fields, processed_at)
    store.delete(staged_key)
    return written


def _summarise(
    store: ObjectStore, base: str, stats: CsvStats, fields: dict[str, Any], processed_at: str | None
) -> ProcessedOutput:
    """The summary, written after the output it describes."""
    output_key, summary_key = output_keys(base)
    summary = {
        **fields,
        "output": store.url(output_key),
        **stats.to_dict(),  # rows, columns, header, bytes, decoded_bytes, sha256
        "processed_at": processed_at or now_iso(),
    }
    store.put_json(summary_key, summary)
    return ProcessedOutput(stats, store.url(output_key), store.url(summary_key), summary)
