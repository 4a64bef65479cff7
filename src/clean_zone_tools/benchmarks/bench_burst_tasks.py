"""Task instances per file for a burst, from the real dispatch code and the real DAGs.

A burst of ``--files`` files that landed at once is cut into runs by the trigger DAGs' own
``dispatch`` (``clean_zone_burst_max_files``, ``clean_zone_burst_window_seconds``); each run's task
instances are counted from the parsed ``clean_zone_file_burst`` DAG: one per unmapped task and one
per chunk of ``clean_zone_burst_chunk_files`` for the mapped chunk task. The hand-over adds one
trigger run (``clean_zone_s3_events``: its one task, ``start_file_runs``, starts every run).
Against it: the single-file pipeline's 8 tasks per file and two hand-overs per file (both routes on,
before bursts). ``tests/e2e/test_file_burst.py`` counts the same with ``dag.test`` for 30 files.

Usage: ``python -m clean_zone_tools.benchmarks.bench_burst_tasks [--files 1000] [--json]``.
Settings come from the environment (``AIRFLOW_VAR_CLEAN_ZONE_BURST_*``) as the DAGs read them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TARGET = 0.2
DAGS = Path(__file__).resolve().parents[3] / "dags"


def count(files: int) -> list[dict[str, Any]]:
    # As on every Airflow component: the plugins folder is importable (the events DAG's trigger is there).
    if str(DAGS.parent / "plugins") not in sys.path:
        sys.path.append(str(DAGS.parent / "plugins"))
    from airflow.dag_processing.dagbag import DagBag

    from clean_zone import config
    from clean_zone.airflow_glue.trigger_tasks import dispatch
    from clean_zone.burst import Arrival

    settings = config.load_for_parsing()
    bag = DagBag(dag_folder=str(DAGS), safe_mode=True)
    burst_dag, single_dag = bag.dags["clean_zone_file_burst"], bag.dags["clean_zone_file_pipeline"]
    landed = datetime(2026, 10, 1, tzinfo=UTC).isoformat()
    arrivals = [Arrival(settings.bucket, f"landing/f{n:05}.csv", "e", landed) for n in range(files)]
    triggers = dispatch(arrivals, settings)
    unmapped = sum(1 for task in burst_dag.tasks if task.task_id != "process_chunk")
    burst_tis = sum(
        unmapped + math.ceil(len(t["conf"]["files"]) / settings.burst_chunk_files)
        for t in triggers
        if t["trigger_dag_id"] == "clean_zone_file_burst"
    )
    singles = sum(1 for t in triggers if t["trigger_dag_id"] == "clean_zone_file_pipeline")
    hand_over = 1
    bursts = burst_tis + singles * len(single_dag.tasks) + hand_over
    before = files * len(single_dag.tasks) * 2 + 2 * (1 + files)
    return [
        {
            "path": "bursts (this change)",
            "files": files,
            "runs": len(triggers),
            "task_instances": bursts,
            "per_file": round(bursts / files, 3),
            "target": TARGET,
        },
        {
            "path": "one run per file, both routes",
            "files": files,
            "runs": files * 2,
            "task_instances": before,
            "per_file": round(before / files, 3),
            "target": TARGET,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.benchmarks.bench_burst_tasks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--files", type=int, default=1000, help="files in the burst (default 1000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.files < 1:
        parser.error("--files must be at least 1")
    from clean_zone_tools.benchmarks.bench_manifest import _table

    rows = count(args.files)
    print(json.dumps(rows) if args.json else "\n".join(_table(rows, list(rows[0]))))
    print(f"ratio (bursts / one run per file): {rows[0]['per_file'] / rows[1]['per_file']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
