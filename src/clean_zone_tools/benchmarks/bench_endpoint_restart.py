"""How long the local endpoint takes to come back with its data, and what keeping it costs.

Starts ``python -m clean_zone_tools.devstack.endpoint`` on a free port and a temporary state
folder, writes N small objects (and N versions more of the same keys), then measures:

* a clean restart (SIGTERM, start): seconds to answer again, objects back;
* a crash restart (SIGKILL right after the writes, before any checkpoint): the journal replay;
* the cost of journaling: PUTs per second against a plain ``moto_server`` in the same run
  (a ratio, so the machine's speed cancels out).

    python -m clean_zone_tools.benchmarks.bench_endpoint_restart --objects 1000

Exit codes: 0 measured, 1 the endpoint lost objects or did not start.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from clean_zone_tools import local_aws

BUCKET = "bench-durable"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> float:
    started = time.perf_counter()
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()  # noqa: S310 - loopback http
            return time.perf_counter() - started
        except OSError:
            if process.poll() is not None or time.perf_counter() - started > timeout:
                raise SystemExit(f"endpoint at {url} did not start") from None
            time.sleep(0.05)


def _client(url: str) -> Any:
    return local_aws.client("s3", url, pool=16, attempts=3)


def _put_many(url: str, count: int) -> float:
    s3 = _client(url)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    body = b"id,name\n" + b"1,x\n" * 20
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: s3.put_object(Bucket=BUCKET, Key=f"landing/{i % (count // 2 or 1)}.csv", Body=body),
                range(count),
            )
        )
    return count / (time.perf_counter() - started)


def _count_versions(url: str) -> int:
    s3 = _client(url)
    return sum(
        len(page.get("Versions", []))
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET)
    )


def _endpoint(port: int, state: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clean_zone_tools.devstack.endpoint",
            "--port",
            str(port),
            "--state-dir",
            str(state),
            "--checkpoint-seconds",
            "3600",
        ],
        stdout=handle,
        stderr=handle,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.benchmarks.bench_endpoint_restart",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--objects", type=int, default=1000, help="object versions to write")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        root = Path(tmp)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"

        print(f"plain moto_server: {args.objects} PUTs ...", flush=True)
        plain = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(url, plain)
        plain_rate = _put_many(url, args.objects)
        plain.terminate()
        plain.wait(10)

        print(f"durable endpoint: {args.objects} PUTs ...", flush=True)
        state = root / "state"
        process = _endpoint(port, state, root / "endpoint.log")
        _wait(url, process)
        durable_rate = _put_many(url, args.objects)
        journal_bytes = (state / "journal.bin").stat().st_size

        print("crash restart (SIGKILL, journal replay) ...", flush=True)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process = _endpoint(port, state, root / "endpoint.log")
        crash_seconds = _wait(url, process)
        crash_count = _count_versions(url)

        print("clean restart (SIGTERM, snapshot) ...", flush=True)
        stop_started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        stop_seconds = time.perf_counter() - stop_started
        process = _endpoint(port, state, root / "endpoint.log")
        clean_seconds = _wait(url, process)
        clean_count = _count_versions(url)
        process.send_signal(signal.SIGTERM)
        process.wait(60)

    print()
    print(f"| measure ({args.objects} object versions) | value |")
    print("|---|---|")
    print(f"| PUT/s, plain moto_server | {plain_rate:.0f} |")
    print(f"| PUT/s, durable endpoint | {durable_rate:.0f} (ratio {durable_rate / plain_rate:.2f}) |")
    print(f"| journal size before the crash | {journal_bytes / 1024:.0f} KiB |")
    print(f"| restart after SIGKILL (replay), to first answer | {crash_seconds:.2f} s, {crash_count} back |")
    print(f"| clean stop (checkpoint) | {stop_seconds:.2f} s |")
    print(f"| restart after a clean stop, to first answer | {clean_seconds:.2f} s, {clean_count} back |")
    lost = args.objects - min(crash_count, clean_count)
    if lost:
        print(f"LOST {lost} object versions", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
