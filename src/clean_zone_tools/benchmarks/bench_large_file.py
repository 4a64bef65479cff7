"""One large CSV end to end against the S3 endpoint, as a ratio of a raw PUT plus GET of its bytes.

Measured in one run, on the same endpoint (a moto server this script starts on a free loopback
port, or ``--endpoint``):

* **raw**: PUT of the file (boto3's managed upload) plus a streamed GET of it: what moving the bytes
  once each way costs on this endpoint;
* **pipeline**: the burst path's whole way for one file (``clean_zone.burst.process_file``) on the
  default events route: claim (a ledger record; the file stays where it landed, its version
  pinned), one read that validates and normalises together (the columnar engine), upload of the
  normalised output, summary, and the move to ``processed/`` (the file's one server-side
  CopyObject, then a delete). The failure generator is held at success.

The figure of merit is raw seconds / pipeline seconds (1.0 would be as fast as moving the bytes).
Peak RSS is printed too: the engine reads in constant memory.

Usage: ``python -m clean_zone_tools.benchmarks.bench_large_file [--mib 1024] [--endpoint URL] [--json]``.
Exit codes: 0 measured, 1 a measurement failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clean_zone import burst
from clean_zone.config import Settings
from clean_zone.lifecycle import Lifecycle
from clean_zone.storage import ObjectStore
from clean_zone_tools.benchmarks.bench_manifest import _table, s3_client, say, start_moto

BUCKET = "bench-large-file"
MIB = 1024 * 1024
TARGET_RATIO = 0.3


def write_csv(path: Path, mib: int) -> int:
    """A CSV of about ``mib`` MiB: a header and short mixed rows (some quoted), written in blocks."""
    rows = "".join(f'{n},p-{n % 97},"{n * 7 % 1000}.5",2026-10-{n % 28 + 1:02}\n' for n in range(20_000))
    block = rows.encode()
    with path.open("wb") as sink:
        sink.write(b"id,partner,amount,day\n")
        while sink.tell() < mib * MIB:
            sink.write(block)
        return sink.tell()


def _drain(store: ObjectStore, key: str) -> int:
    return sum(len(chunk) for chunk in store.iter_chunks(key, 8 * MIB))


def measure(endpoint: str, mib: int) -> dict[str, Any]:
    client = s3_client(endpoint, 4)
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    store = ObjectStore(client, BUCKET)
    settings = Settings(bucket=BUCKET)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.csv"
        size = write_csv(path, mib)
        say(f"raw PUT + GET of {size / MIB:.0f} MiB ...")
        started = time.perf_counter()
        with path.open("rb") as source:
            store.upload_stream("raw/big.csv", source)
        put = time.perf_counter() - started
        started = time.perf_counter()
        _drain(store, "raw/big.csv")
        get = time.perf_counter() - started
        store.delete("raw/big.csv")
        with path.open("rb") as source:
            store.upload_stream("landing/big.csv", source)
    say("pipeline: claim, validate + normalise in one read, write, finish ...")
    started = time.perf_counter()
    outcome = burst.process_file(
        Lifecycle(store, settings),
        burst.Arrival(BUCKET, "landing/big.csv", None, None),
        "bench",
        lambda _label, _attempt: 10.0,
        [],
    )
    pipeline = time.perf_counter() - started
    if outcome.place != "processed":
        raise RuntimeError(f"the file did not reach processed/: {outcome}")
    raw = put + get
    return {
        "mib": round(size / MIB),
        "raw_put_s": round(put, 1),
        "raw_get_s": round(get, 1),
        "raw_s": round(raw, 1),
        "pipeline_s": round(pipeline, 1),
        "ratio": round(raw / pipeline, 3),
        "target": TARGET_RATIO,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.benchmarks.bench_large_file", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--mib", type=int, default=1024, help="size of the CSV in MiB (default 1024)")
    parser.add_argument("--endpoint", help="an S3 endpoint to use instead of starting a moto server")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.mib < 1:
        parser.error("--mib must be at least 1")
    process = None
    try:
        endpoint = args.endpoint
        if endpoint is None:
            say("starting a moto server ...")
            process, endpoint = start_moto()
        row = measure(endpoint, args.mib)
    except Exception as error:  # a benchmark reports what failed rather than a traceback
        say(f"measurement failed: {error}")
        return 1
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    if args.json:
        print(json.dumps(row))
    else:
        print("\n".join(_table([row], list(row))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
