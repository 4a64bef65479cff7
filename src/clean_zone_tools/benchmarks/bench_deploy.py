"""Benchmark: how long a deploy takes, and how many S3 requests it makes, for a 200-file dags/.

Starts its own moto server on a free port (the real S3 protocol over HTTP), generates a project
with a 200-file dags/ folder, and measures the sync stages of ``scripts/deploy`` (bucket safety
checks, plan, apply, record). The preflight checks are left out: they do not depend on the bucket,
and ``clean_zone_tools.benchmarks.bench_parse`` is the parse benchmark.

    .venv/bin/python -m clean_zone_tools.benchmarks.bench_deploy [--files 200] [--repeat 5]

Prints, for a first deploy, a no-change deploy and a one-file change: wall time (median of
--repeat runs) and the number of HTTP requests to S3, split by operation.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from clean_zone_tools import REPO_ROOT as REPO
from clean_zone_tools.mwaa_deploy import plugins_zip
from clean_zone_tools.mwaa_deploy.apply import Deployer
from clean_zone_tools.mwaa_deploy.plan import DeployTarget
from clean_zone_tools.mwaa_deploy.project import ProjectLayout


@contextmanager
def moto_server() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):  # noqa: S310 - local moto
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def make_project(root: Path, files: int) -> ProjectLayout:
    dags = root / "dags"
    for number in range(files):
        folder = dags / f"team_{number % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        # A few KB each, like a real DAG file or helper module.
        body = f'"""Module {number}."""\n' + "".join(f"VALUE_{i} = {number * 1000 + i}\n" for i in range(150))
        (folder / f"module_{number:03d}.py").write_text(body)
    (dags / ".airflowignore").write_text("team_.*/\n")
    plugin = root / "plugins" / "bench_plugin"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("X = 1\n")
    shutil.copy(REPO / "requirements.txt", root / "requirements.txt")
    shutil.copy(REPO / "startup.sh", root / "startup.sh")
    return ProjectLayout.at(root)


class RequestCounter:
    """Counts HTTP requests a client sends (retries included), by operation."""

    def __init__(self, client: Any) -> None:
        self.by_operation: Counter[str] = Counter()
        client.meta.events.register("before-send.s3", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        # The event is "before-send.s3.<Operation>", sent once per HTTP request.
        self.by_operation[event_name.rsplit(".", 1)[-1]] += 1

    def reset(self) -> None:
        self.by_operation.clear()

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())


def make_bucket(s3: Any) -> str:
    name = f"bench-deploy-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    return name


def one_deploy(s3: Any, bucket: str, layout: ProjectLayout) -> tuple[float, int, int]:
    """Wall seconds, files uploaded, files deleted for one plan+apply (what scripts/deploy does)."""
    started = time.perf_counter()
    deployer = Deployer(s3, DeployTarget(bucket=bucket), layout, out=lambda _line: None)
    plan = deployer.plan(plugins_zip.build(layout.plugins_dir))
    deployer.apply(plan)
    elapsed = time.perf_counter() - started
    return elapsed, len(plan.dags.uploads), len(plan.dags.deletions)


def describe(counter: RequestCounter) -> str:
    parts = ", ".join(f"{name} {count}" for name, count in sorted(counter.by_operation.items()))
    return f"{counter.total} S3 requests ({parts})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.benchmarks.bench_deploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--files", type=int, default=200, help="files in the generated dags/ (default 200)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the median is shown")
    args = parser.parse_args(argv)
    if args.files < 1 or args.repeat < 1:
        parser.error("--files and --repeat must be positive")

    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp, moto_server() as endpoint:
        layout = make_project(Path(tmp) / "project", args.files)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto accepts any credentials
        )
        counter = RequestCounter(s3)
        print(
            f"moto server at {endpoint}; dags/ with {args.files} files + .airflowignore; {args.repeat} runs"
        )

        first_times, no_change_times, one_change_times = [], [], []
        counts: dict[str, str] = {}
        for run in range(args.repeat):
            print(
                f"  run {run + 1}/{args.repeat}: first, no-change and one-file deploys ...",
                file=sys.stderr,
                flush=True,
            )
            bucket = make_bucket(s3)
            counter.reset()
            seconds, uploaded, _ = one_deploy(s3, bucket, layout)
            first_times.append(seconds)
            counts["first"] = f"{uploaded} DAG files uploaded; {describe(counter)}"

            counter.reset()
            seconds, uploaded, deleted = one_deploy(s3, bucket, layout)
            no_change_times.append(seconds)
            assert uploaded == 0 and deleted == 0, "a no-change deploy must upload nothing"
            counts["no-change"] = describe(counter)

            changed = layout.dags_dir / "team_0" / "module_000.py"
            changed.write_text(changed.read_text() + f"# run {run}\n")
            counter.reset()
            seconds, uploaded, _ = one_deploy(s3, bucket, layout)
            one_change_times.append(seconds)
            assert uploaded == 1
            counts["one-change"] = f"{uploaded} DAG file uploaded; {describe(counter)}"

        def median_ms(values: list[float]) -> str:
            low, high = min(values) * 1000, max(values) * 1000
            return f"{statistics.median(values) * 1000:.0f} ms (min {low:.0f}, max {high:.0f})"

        print(f"first deploy:      {median_ms(first_times)}; {counts['first']}")
        print(f"no-change deploy:  {median_ms(no_change_times)}; {counts['no-change']}")
        print(f"one-file change:   {median_ms(one_change_times)}; {counts['one-change']}")
        ratio = statistics.median(first_times) / statistics.median(no_change_times)
        print(f"no-change deploy is {ratio:.1f}x faster than the first deploy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
