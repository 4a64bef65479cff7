"""Benchmark streaming CSV validation: peak memory and throughput on a large file.

Writes a synthetic CSV of ``--size-mb`` MiB (default 1024, i.e. 1 GiB) to a
temporary file, streaming (the file is never held in memory), then
measures, each in a fresh child process so that neither the generator's nor
the other measurement's memory is counted:

* the machine's raw read-and-hash speed: the same file read in 1 MiB chunks
  and hashed with SHA-256 (what any single pass over the bytes costs);
* ``clean_zone.csv_validation.validate`` over the file's 1 MiB chunks, the
  way a task streams an S3 body.

It prints MB/s for both, the ratio validate / raw, and the validating
process's peak resident memory (``ru_maxrss``, interpreter included) against
the 200 MB target. ``--tracemalloc`` adds a run that reports the peak of
Python allocations (slower). ``--gzip`` validates a ``.csv.gz`` of the same
CSV instead (``--size-mb`` is then the uncompressed size). Sizes given are in
MiB (2**20 bytes); figures printed are in MB (10**6 bytes), and MB/s.

Both passes read the file just written, so both normally read from the page
cache; the ratio compares work per byte, not disk speed.

Run it as ``.venv/bin/python -m clean_zone_tools.benchmarks.bench_csv_validation [--help]``.

Exit codes: 0 measured and within the memory target; 1 validation failed or
peak memory over the target; 2 usage error.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from clean_zone import csv_validation
from clean_zone.failures import DataQualityError

CHUNK = 1024 * 1024
MIB = 1024 * 1024
MB = 1_000_000
DEFAULT_TARGET_MB = 200.0

HEADER = "order_id,customer,country,placed_at,amount,currency,note\n"
CUSTOMERS = ("Ada Lovelace", "Zoë Saldaña", "José Núñez", "北京贸易有限公司", "O'Brien & Sons", "Ng, Wei")
COUNTRIES = ("GB", "ES", "MX", "CN", "IE", "SG")
NOTES = ("", "express", '"fragile, handle with care"', '"said ""urgent"""', "gift wrap", '"two\nlines"')


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Progress:
    """Prints a line every ``step`` fraction of ``total`` bytes."""

    def __init__(self, label: str, total: int, step: float = 0.1) -> None:
        self.label, self.total, self.step = label, max(total, 1), step
        self.done = 0
        self.next_mark = step

    def advance(self, count: int) -> None:
        self.done += count
        if self.done / self.total >= self.next_mark:
            _say(f"  {self.label}: {min(self.done / self.total, 1.0):4.0%}")
            while self.done / self.total >= self.next_mark:
                self.next_mark += self.step


def _rows_block(start: int, count: int) -> str:
    # Varied rows: multi-byte UTF-8, quoted commas, escaped quotes and quoted newlines.
    return "".join(
        f"{n},{CUSTOMERS[n % 6] if n % 6 != 5 else chr(34) + CUSTOMERS[5] + chr(34)},{COUNTRIES[n % 6]},"
        f"2026-01-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z,{(n * 37) % 100000 / 100:.2f},EUR,"
        f"{NOTES[n % 6]}\n"
        for n in range(start, start + count)
    )


def generate(path: Path, size_bytes: int, *, compress: bool) -> int:
    """Write about ``size_bytes`` of CSV to ``path`` (gzip level 1 if ``compress``); return CSV bytes."""
    progress = _Progress("generate", size_bytes)
    written = 0
    row = 0
    sink: BinaryIO
    with gzip.open(path, "wb", compresslevel=1) if compress else path.open("wb") as sink:
        data = HEADER.encode()
        sink.write(data)
        written += len(data)
        while written < size_bytes:
            # Rows are 60-80 bytes: a smaller last block lands close to the size asked for.
            count = max(1, min(10_000, (size_bytes - written) // 70))
            data = _rows_block(row, count).encode()
            row += count
            sink.write(data)
            written += len(data)
            progress.advance(len(data))
    return written


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


def _peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


def child_main(mode: str, path: Path, gzipped: bool, use_tracemalloc: bool) -> int:
    """Runs in the measuring child: one pass over ``path``, a JSON line of figures on stdout."""
    size = path.stat().st_size
    progress = _Progress(mode, size, step=0.25 if mode == "raw" else 0.1)

    def chunks() -> Iterator[bytes]:
        for chunk in _file_chunks(path):
            progress.advance(len(chunk))
            yield chunk

    if use_tracemalloc:
        tracemalloc.start()
    result: dict[str, Any] = {"mode": mode, "bytes": size}
    started = time.perf_counter()
    if mode == "raw":
        digest = hashlib.sha256()
        for chunk in chunks():
            digest.update(chunk)
        result["sha256"] = digest.hexdigest()
    else:
        try:
            stats = csv_validation.validate(chunks(), gzipped=gzipped)
        except DataQualityError as error:
            result["error"] = f"{error.reason}: {error}"
        else:
            result.update(rows=stats.rows, columns=stats.columns, decoded_bytes=stats.decoded_bytes)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_bytes"] = _peak_rss_bytes()
    if use_tracemalloc:
        result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
    print(json.dumps(result), flush=True)
    return 0


def measure(mode: str, path: Path, *, gzipped: bool, use_tracemalloc: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", __spec__.name, "--child", mode, "--child-path", str(path)]
    if gzipped:
        command.append("--gzip")
    if use_tracemalloc:
        command.append("--tracemalloc")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} measurement failed (exit {done.returncode})")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _mb_per_s(result: dict[str, Any], key: str = "bytes") -> float:
    return result[key] / MB / result["seconds"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.benchmarks.bench_csv_validation",
        description="Measure peak memory and throughput of streaming CSV validation on a large file.",
    )
    parser.add_argument(
        "--size-mb",
        type=float,
        default=1024.0,
        help="size of the generated CSV in MiB (2**20 bytes); default 1024, i.e. 1 GiB",
    )
    parser.add_argument(
        "--gzip",
        action="store_true",
        help="validate a gzip-compressed CSV (.csv.gz); --size-mb is the uncompressed size",
    )
    parser.add_argument(
        "--target-mb",
        type=float,
        default=DEFAULT_TARGET_MB,
        help="peak-memory target for the validating process, in MB (default 200)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also report the peak of Python allocations (an extra, slower validation run)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to write the temporary file")
    parser.add_argument("--keep", action="store_true", help="keep the generated file and print its path")
    parser.add_argument("--child", choices=("raw", "validate"), help=argparse.SUPPRESS)
    parser.add_argument("--child-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size_mb <= 0:
        parser.error("--size-mb must be positive")
    if args.target_mb <= 0:
        parser.error("--target-mb must be positive")
    if args.dir is not None and not args.dir.is_dir():
        parser.error(f"--dir {args.dir} is not a directory")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, args.child_path, args.gzip, args.tracemalloc)

    suffix = ".csv.gz" if args.gzip else ".csv"
    handle, name = tempfile.mkstemp(prefix="bench-csv-validation-", suffix=suffix, dir=args.dir)
    os.close(handle)
    path = Path(name)
    try:
        _say(f"writing a {args.size_mb:g} MiB CSV{' (gzip level 1)' if args.gzip else ''} to {path} ...")
        started = time.perf_counter()
        csv_bytes = generate(path, int(args.size_mb * MIB), compress=args.gzip)
        _say(f"  done in {time.perf_counter() - started:.1f} s")
        stored = path.stat().st_size

        _say("raw read-and-hash (1 MiB chunks, SHA-256), best of two ...")
        raw = max((measure("raw", path, gzipped=args.gzip) for _ in range(2)), key=_mb_per_s)
        _say("validating (csv_validation.validate over 1 MiB chunks) ...")
        checked = measure("validate", path, gzipped=args.gzip)
        traced = (
            measure("validate", path, gzipped=args.gzip, use_tracemalloc=True) if args.tracemalloc else None
        )
    finally:
        if args.keep:
            _say(f"kept {path}")
        else:
            path.unlink(missing_ok=True)

    peak_mb = checked["peak_rss_bytes"] / MB
    within = peak_mb <= args.target_mb
    # Per CSV byte: for gzip that counts the decompressing, as a task must do it.
    csv_rate = _mb_per_s(checked, "decoded_bytes") if "decoded_bytes" in checked else 0.0
    ratio = csv_rate / _mb_per_s(raw)
    lines = [
        "",
        "CSV validation benchmark",
        f"  file                 {csv_bytes / MB:,.1f} MB ({csv_bytes / MIB / 1024:.2f} GiB) of CSV"
        + (f", {stored / MB:,.1f} MB stored (gzip)" if args.gzip else ""),
        f"  rows validated       {checked.get('rows', 0):,} ({checked.get('columns', 0)} columns)",
        f"  raw read+sha256      {_mb_per_s(raw):8.1f} MB/s  ({raw['seconds']:.2f} s, peak RSS "
        f"{raw['peak_rss_bytes'] / MB:.1f} MB)",
        f"  validate             {csv_rate:8.1f} MB/s of CSV  ({checked['seconds']:.2f} s"
        + (f"; {_mb_per_s(checked):.1f} MB/s of gzip" if args.gzip else "")
        + ")",
        f"  throughput ratio     {ratio:.3f} of raw read-and-hash (validate / raw, per CSV byte)",
        f"  peak memory (RSS)    {peak_mb:.1f} MB for the validating process, interpreter included "
        f"(target < {args.target_mb:g} MB: {'met' if within else 'MISSED'})",
    ]
    if traced is not None:
        traced_mb = traced["tracemalloc_peak_bytes"] / MB
        lines.append(f"  tracemalloc peak     {traced_mb:.1f} MB of Python allocations")
    print("\n".join(lines), flush=True)
    if "error" in checked:
        print(f"validation FAILED on the generated file: {checked['error']}", flush=True)
        return 1
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
