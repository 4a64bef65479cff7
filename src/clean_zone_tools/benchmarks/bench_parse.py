"""DAG parse-time benchmark: each DAG file's parse seconds and the whole folder's, against a target.

The figures are DagBag's own per-file timings (what ``airflow dags report`` prints), taken through
``dag_checks.parse_report``, the code the deploy preflight uses. Three measurements, each the median of
``--runs``:

* cold: a fresh interpreter per run, nothing pre-imported; the first file pays for the provider and
  boto imports. The worst case, and the figure the target applies to.
* processor: a fresh interpreter per run that first imports the ``airflow.*`` modules the files name,
  as the DAG processor's parent does before it forks a parser per file
  (``[dag_processor] parsing_pre_import_modules``, on by default and on MWAA).
* warm: the folder parsed again in a process that has parsed it once; DAG files are re-executed,
  already imported libraries are not.

Usage: ``python -m clean_zone_tools.benchmarks.bench_parse [--runs 5] [--dags-folder dags] [--target 1.0]``.
Exit codes: 0 measured (even over the target, unless ``--fail-over-target``), 1 a run failed or the
folder has import errors (timings of a broken folder mean little) or over target with
``--fail-over-target``, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clean_zone_tools.checks import dag_integrity as dag_checks

TARGET_SECONDS = 1.0  # the whole folder, cold (issue #2)
MODES = ("cold", "processor", "warm")
# What dag_checks.load_folder imports before it starts DagBag.
AIRFLOW_CORE_MODULES = (
    "airflow.dag_processing.dagbag",
    "airflow.serialization.serialized_objects",
    "airflow.utils.dag_version_inflation_checker",
)


def _worker(mode: str, dags_folder: Path, runs: int) -> dict[str, Any]:
    """Runs inside the child interpreter; returns every measurement it took."""
    import_errors: dict[str, str] = {}
    cpu_seconds: float | None = None  # measured for the fresh-process modes only
    if mode == "warm":
        # The first, cold, parse is discarded; it also tells whether the folder imports cleanly.
        import_errors = dag_checks.load_folder(dags_folder).import_error_summaries()
        reports = [dag_checks.parse_report(dags_folder) for _ in range(runs)]
    else:
        # Airflow's own modules load before DagBag's clock starts anyway; keep them out of the CPU figure.
        dag_checks.prepare_environment()
        for module in AIRFLOW_CORE_MODULES:
            importlib.import_module(module)
        cpu_started = time.process_time()
        reports = [dag_checks.parse_report(dags_folder, pre_import=mode == "processor")]
        cpu_seconds = time.process_time() - cpu_started
    return {
        "reports": [{"per_file": dict(per_file), "total": total} for per_file, total in reports],
        "import_errors": import_errors,
        # CPU spent in the process on the measured parse (and, in processor mode, the pre-imports).
        "cpu_seconds": cpu_seconds,
    }


def _run_child(mode: str, dags_folder: Path, runs: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        __spec__.name,
        "--worker",
        mode,
        "--dags-folder",
        str(dags_folder),
        "--runs",
        str(runs),
    ]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{mode} run failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_wall_seconds"] = wall
    return result


def measure(dags_folder: Path, runs: int, progress: bool = True) -> dict[str, Any]:
    """Medians per mode: ``{"per_file": {mode: {file: s}}, "total": {mode: s}, ...}``."""
    samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    process_walls: list[float] = []
    cold_cpu: list[float] = []
    load_before = os.getloadavg()[0]
    import_errors: dict[str, str] = {}
    for mode in ("cold", "processor"):
        for index in range(runs):
            if progress:
                print(f"  {mode} run {index + 1}/{runs} ...", file=sys.stderr, flush=True)
            child = _run_child(mode, dags_folder, 1)
            samples[mode].extend(child["reports"])
            if mode == "cold":
                process_walls.append(child["process_wall_seconds"])
                cold_cpu.append(child["cpu_seconds"])
    if progress:
        print(f"  warm: {runs} parses in one process ...", file=sys.stderr, flush=True)
    child = _run_child("warm", dags_folder, runs)
    samples["warm"].extend(child["reports"])
    import_errors.update(child["import_errors"])

    files = sorted({name for mode in MODES for report in samples[mode] for name in report["per_file"]})
    per_file = {
        mode: {
            name: statistics.median(report["per_file"].get(name, 0.0) for report in samples[mode])
            for name in files
        }
        for mode in MODES
    }
    total = {mode: statistics.median(report["total"] for report in samples[mode]) for mode in MODES}
    return {
        "dags_folder": str(dags_folder.resolve()),
        "runs": runs,
        "files": files,
        "per_file": per_file,
        "total": total,
        "cold_process_wall_seconds": statistics.median(process_walls),
        "cold_parse_cpu_seconds": statistics.median(cold_cpu),
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "cpus": os.cpu_count(),
        "import_errors": import_errors,
    }


def render(result: dict[str, Any], target: float) -> str:
    name_width = max([len("whole folder"), *(len(name) for name in result["files"])])
    header = f"{'file':<{name_width}}  " + "  ".join(f"{mode + ' s':>12}" for mode in MODES)
    lines = [
        f"DAG parse time, {result['dags_folder']} (median of {result['runs']} runs, DagBag timings)",
        "",
        header,
        "-" * len(header),
    ]
    by_cold = sorted(result["files"], key=lambda name: result["per_file"]["cold"][name], reverse=True)
    for name in by_cold:
        cells = "  ".join(f"{result['per_file'][mode][name]:>12.4f}" for mode in MODES)
        lines.append(f"{name:<{name_width}}  {cells}")
    lines.append("-" * len(header))
    totals = "  ".join(f"{result['total'][mode]:>12.4f}" for mode in MODES)
    lines.append(f"{'whole folder':<{name_width}}  {totals}")
    ratios = "  ".join(f"{result['total'][mode] / target:>12.3f}" for mode in MODES)
    lines.append(f"{'total/target':<{name_width}}  {ratios}")
    lines += [
        "",
        f"target: whole folder under {target:.2f} s (cold); "
        f"cold total {result['total']['cold']:.3f} s = {result['total']['cold'] / target:.2f} x target: "
        + ("within target" if result["total"]["cold"] <= target else "OVER TARGET"),
        f"cold parse CPU time (wall less waiting for a CPU): {result['cold_parse_cpu_seconds']:.3f} s; "
        f"1-min load average {result['load_average_1min'][0]:.1f} before, "
        f"{result['load_average_1min'][1]:.1f} after, on {result['cpus']} CPUs",
        f"a fresh process (interpreter + Airflow import + parse), for scale: "
        f"{result['cold_process_wall_seconds']:.2f} s wall",
        "MWAA's limits for scale: dagbag_import_timeout 30 s per file, dag_file_processor_timeout 50 s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.benchmarks.bench_parse",
        description="Measure each DAG file's parse time and the whole folder's (cold, DAG-processor-like "
        "and warm; medians of --runs), and compare the total with the target.",
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument(
        "--dags-folder", type=Path, default=dag_checks.DEFAULT_DAGS_FOLDER, help="default: dags/ of this repo"
    )
    parser.add_argument(
        "--target", type=float, default=TARGET_SECONDS, help=f"seconds (default {TARGET_SECONDS})"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--fail-over-target", action="store_true", help="exit 1 when the cold total exceeds the target"
    )
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.target <= 0:
        parser.error("--target must be positive")
    if not args.dags_folder.is_dir():
        parser.error(f"--dags-folder {args.dags_folder} is not a directory")

    if args.worker:
        # Airflow's log lines go to stdout; the parent reads only the last line, the JSON.
        print(json.dumps(_worker(args.worker, args.dags_folder, args.runs)))
        return 0

    print(f"measuring {args.dags_folder} ({args.runs} runs per mode) ...", file=sys.stderr)
    try:
        result = measure(args.dags_folder, args.runs)
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    result["target_seconds"] = args.target
    print(json.dumps(result, indent=2) if args.json else render(result, args.target))
    if result["import_errors"]:
        print("the folder has import errors, so these timings are not the real folder's:", file=sys.stderr)
        for path, summary in result["import_errors"].items():
            print(f"  {path}: {summary}", file=sys.stderr)
        return 1
    if args.fail_over_target and result["total"]["cold"] > args.target:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
