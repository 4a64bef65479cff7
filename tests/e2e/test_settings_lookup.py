"""A task reads its settings with one listing of the stored Variables, not a request per setting.

Run with ``dag.test()`` against the migrated metadata database: the task's Variable requests go
through Airflow's in-process supervisor, as in a worker, and are counted as they are sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clean_zone import config

pytestmark = pytest.mark.e2e


DAG_FILE = """
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from clean_zone import config

with DAG("settings_lookup_check", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def settings_seen() -> dict[str, Any]:
        from airflow.sdk.execution_time import task_runner

        comms = task_runner.SUPERVISOR_COMMS
        sent: list[str] = []

        class Counting:  # the task's channel to its supervisor, each request counted on its way
            def send(self, message: Any) -> Any:
                sent.append(type(message).__name__)
                return comms.send(message)

            def __getattr__(self, name: str) -> Any:
                return getattr(comms, name)

        task_runner.SUPERVISOR_COMMS = Counting()
        try:
            settings = config.load()
        finally:
            task_runner.SUPERVISOR_COMMS = comms
        return {
            "bucket": settings.bucket,
            "quarantine_prefix": settings.quarantine_prefix,
            "processed_prefix": settings.processed_prefix,
            "retry_max_attempts": settings.retry_max_attempts,
            "requests": sent,
        }

    settings_seen()
"""


def _settings_task_dag(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The DAG above, in a DAG bundle of its own (dag.test() serialises the DAGs of its bundle)."""
    import json

    from airflow.dag_processing.dagbag import DagBag

    bundle = {"name": "settings-check", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}
    bundle["kwargs"] = {"path": str(folder), "refresh_interval": 0}  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
    path = folder / "settings_lookup_check.py"
    path.write_text(DAG_FILE)
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return bag.dags["settings_lookup_check"]


@pytest.fixture
def stored_variables(airflow_db: None) -> Any:
    from airflow.models import Variable

    names: list[str] = []

    def store(name: str, value: str) -> None:
        Variable.set(config.variable_name(name), value)
        names.append(config.variable_name(name))

    yield store
    for name in names:
        Variable.delete(name)


def test_stored_variables_are_fetched_and_the_rest_are_not_asked_for(
    stored_variables: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stored_variables("quarantine_prefix", "held-back/")
    stored_variables("processed_prefix", "done-in-db/")
    monkeypatch.setenv(config.env_name("bucket"), "bucket-from-env")
    monkeypatch.setenv(config.env_name("processed_prefix"), "done-in-env/")  # the environment wins

    run = _settings_task_dag(tmp_path, monkeypatch).test()
    seen = run.get_task_instances()[0].xcom_pull(task_ids="settings_seen")

    assert seen["bucket"] == "bucket-from-env"
    assert seen["quarantine_prefix"] == "held-back/"
    assert seen["processed_prefix"] == "done-in-env/"
    assert seen["retry_max_attempts"] == config.load_for_parsing().retry_max_attempts  # not stored
    # One listing, then the one stored Variable the environment does not override (was: 38 requests).
    lookups = [request for request in seen["requests"] if request.startswith("Get")]
    assert lookups == ["GetVariableKeys", "GetVariable"]
