"""The DAGs' shapes: the operators the design names, and data passed as arguments, not pulled by id."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk.bases.sensor import BaseSensorOperator

REPO = Path(__file__).resolve().parents[3]
GLUE = REPO / "dags" / "clean_zone" / "airflow_glue"


ROUTE_ENV = "AIRFLOW_VAR_CLEAN_ZONE_TRIGGER_ROUTE"


def _parse(route: str) -> dict[str, Any]:
    """The folder's DAGs as the DAG processor sees them with ``clean_zone_trigger_route`` = ``route``."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ROUTE_ENV, route)
        bag = DagBag(dag_folder=str(REPO / "dags"), safe_mode=True)
    assert not bag.import_errors, bag.import_errors
    return bag.dags


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    return _parse("both")


@pytest.mark.parametrize(
    ("route", "generated", "omitted"),
    [
        ("events", "clean_zone_s3_events", "clean_zone_landing_watcher"),
        ("sensor", "clean_zone_landing_watcher", "clean_zone_s3_events"),
    ],
)
def test_the_route_not_chosen_is_not_generated(route: str, generated: str, omitted: str) -> None:
    found = _parse(route)
    assert generated in found
    assert omitted not in found
    assert {"clean_zone_file_pipeline", "clean_zone_file_burst", "clean_zone_manifest_batch"} <= set(found)


def test_the_events_route_gathers_queued_asset_events_into_one_run(dags: dict) -> None:
    assert dags["clean_zone_s3_events"].max_active_runs == 1


def test_a_burst_run_has_a_fixed_number_of_tasks_and_bounded_chunks(dags: dict) -> None:
    dag = dags["clean_zone_file_burst"]
    assert set(dag.task_ids) == {"plan_chunks", "process_chunk", "report_burst"}
    chunk = dag.get_task("process_chunk")
    assert chunk.max_active_tis_per_dagrun == 4
    assert dag.get_task("report_burst").trigger_rule == "all_done"


def test_the_file_pipeline_checks_with_a_python_operator_and_routes_with_a_branch(dags: dict) -> None:
    dag = dags["clean_zone_file_pipeline"]
    assert isinstance(dag.get_task("check_file_extension"), PythonOperator)
    route = dag.get_task("route_by_extension")
    assert isinstance(route, BranchPythonOperator)
    assert route.downstream_task_ids == {"validate_csv", "reject_file"}
    # What each step works on is visible as its upstreams: the claim flows into every file step.
    for task_id in (
        "check_file_extension",
        "validate_csv",
        "run_failure_generator",
        "write_processed_output",
    ):
        assert "claim_file" in dag.get_task(task_id).upstream_task_ids, task_id
    assert "run_failure_generator" in dag.get_task("write_processed_output").upstream_task_ids


@pytest.mark.parametrize(
    ("dag_id", "task_id"),
    [
        ("clean_zone_landing_watcher", "wait_for_landing_file"),
        ("clean_zone_manifest_batch", "wait_for_manifest"),
    ],
)
def test_the_s3_sensors_are_deferrable(dags: dict, dag_id: str, task_id: str) -> None:
    sensor = dags[dag_id].get_task(task_id)
    assert isinstance(sensor, S3KeySensor)
    assert sensor.deferrable
    assert sensor.bucket_key.endswith("*[!/]")  # folder markers never wake it


def test_the_late_file_wait_gives_its_worker_slot_back(dags: dict) -> None:
    wait = dags["clean_zone_manifest_batch"].get_task("wait_for_listed_files")
    assert isinstance(wait, BaseSensorOperator)
    assert wait.mode == "reschedule"


def test_the_batch_reads_the_manifest_into_several_outputs(dags: dict) -> None:
    dag = dags["clean_zone_manifest_batch"]
    assert dag.get_task("read_manifest").multiple_outputs
    # The verification expands over what the wait hands on, and knows the taken manifest's batch.
    assert dag.get_task("verify_file").upstream_task_ids == {"wait_for_listed_files", "read_manifest"}
    assert "take_manifest" in dag.get_task("finish_batch").upstream_task_ids


def test_no_task_callable_pulls_another_tasks_result_by_id() -> None:
    pulls = {
        path.name: re.findall(r"xcom_(?:pull|push)\(.*", path.read_text()) for path in GLUE.glob("*_tasks.py")
    }
    assert pulls and all(found == [] for found in pulls.values()), pulls
