"""The validation benchmark runs end to end on a small file (figures are not asserted: machines differ)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULE = "clean_zone_tools.benchmarks.bench_csv_validation"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_small_run_prints_the_figures(tmp_path: Path) -> None:
    done = run("--size-mb", "0.5", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    for figure in (
        "raw read+sha256",
        "MB/s of CSV",
        "throughput ratio",
        "peak memory (RSS)",
        "target < 200 MB: met",
    ):
        assert figure in done.stdout
    assert "validate: 100%" in done.stderr  # progress goes to stderr
    assert list(tmp_path.iterdir()) == []  # the temporary file is removed


def test_a_missed_memory_target_exits_1(tmp_path: Path) -> None:
    done = run("--size-mb", "0.5", "--gzip", "--target-mb", "1", "--dir", str(tmp_path))
    assert done.returncode == 1
    assert "MB/s of gzip" in done.stdout
    assert "target < 1 MB: MISSED" in done.stdout


def test_usage_errors_exit_2() -> None:
    assert run("--size-mb", "0").returncode == 2
    assert run("--no-such-option").returncode == 2
