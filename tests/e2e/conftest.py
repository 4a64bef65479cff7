"""Running DAGs end to end with ``dag.test()``: the whole DAG in one process, real tasks,
real retries (short delays from tests/conftest.py), against the moto server."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@dataclass
class RunResult:
    state: str
    tasks: dict[str, str]  # task id (with [map index]) -> state
    tries: dict[str, int]  # task id -> try number of its last try
    xcom: dict[str, Any]

    def __repr__(self) -> str:
        return f"RunResult(state={self.state!r}, tasks={self.tasks!r})"


@functools.cache
def _load_dag(dag_id: str) -> Any:
    # Parsed once per worker: DAG files read only the environment, which tests/conftest.py fixed.
    # Each DAG lives in the file named after it (the integrity tests load the whole folder).
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"), safe_mode=True)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


@pytest.fixture
def run_dag(provisioned: Any, airflow_db: None) -> Any:
    """``run_dag(dag_id, conf)`` runs the DAG once and returns what a user sees in the UI."""

    def _run(dag_id: str, conf: dict[str, Any] | None = None) -> RunResult:
        dag = _load_dag(dag_id)
        # dag.test() runs tasks in this process and leaves each run's conf in the (cached) tasks' params;
        # a real task runs in a fresh process. Restored, so one test's conf never leaks into the next.
        saved = {task.task_id: copy.deepcopy(task.params) for task in dag.tasks}
        try:
            dag_run = dag.test(run_conf=conf or {})
        finally:
            for task in dag.tasks:
                task.params = saved[task.task_id]
        tasks: dict[str, str] = {}
        tries: dict[str, int] = {}
        xcom: dict[str, Any] = {}
        for ti in dag_run.get_task_instances():
            name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            tasks[name] = str(ti.state)
            tries[name] = ti.try_number
            if ti.state == "success":
                xcom[name] = ti.xcom_pull(
                    task_ids=ti.task_id, map_indexes=ti.map_index if ti.map_index >= 0 else None
                )
        return RunResult(str(dag_run.state), tasks, tries, xcom)

    return _run
