"""Render each DAG's graph to docs/images/<dag_id>.png (the pictures in the README).

Needs Graphviz's ``dot`` (Debian: ``apt-get install graphviz``) and the
``graphviz`` Python package (in requirements-dev.txt). Parses the DAG files
only: no database, no AWS. Exit codes: 0 rendered, 1 a DAG failed to load,
2 Graphviz is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from clean_zone_tools import REPO_ROOT as REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.devstack.render_graphs", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("dag_ids", nargs="*", help="DAG ids (default: every DAG in dags/)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="output folder")
    args = parser.parse_args(argv)
    if shutil.which("dot") is None:
        print("render_graphs: Graphviz 'dot' is not installed (apt-get install graphviz)", file=sys.stderr)
        return 2
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="render-graphs-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # As on every Airflow component: the plugins folder is importable (the events DAG's trigger is there).
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.dot_renderer import render_dag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        print(f"render_graphs: import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for dag_id in args.dag_ids or sorted(bag.dags):
        graph = render_dag(bag.dags[dag_id])
        graph.attr(rankdir="LR")
        path = graph.render(str(args.out / dag_id), format="png", cleanup=True)
        print(f"wrote {Path(path).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
