"""The batch DAG's schedule: several manifests in flight at once (bounded by a parse-time setting),
each run waiting in a deferrable sensor that ends only when the run has taken a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import DeltaTriggerTimetable

from clean_zone import config
from clean_zone.airflow_glue.batch_tasks import ManifestSensor

DAG_FILE = Path(__file__).resolve().parents[3] / "dags" / "clean_zone_manifest_batch.py"
SETTING_ENV = config.env_name("batch_max_parallel_batches")


def _parse(env: dict[str, str]) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        bag = DagBag(dag_folder=str(DAG_FILE), safe_mode=True)
    assert not bag.import_errors, bag.import_errors
    return bag.dags["clean_zone_manifest_batch"]


def test_several_runs_are_active_at_once_by_default() -> None:
    dag = _parse({})
    # @continuous would force one active run: a large batch would hold back every later one.
    assert isinstance(dag.timetable, DeltaTriggerTimetable)
    assert dag.timetable.can_be_scheduled
    assert not dag.catchup
    assert dag.max_active_runs == config.Settings().batch_max_parallel_batches == 4


def test_the_bound_is_the_setting_read_when_the_dag_is_parsed() -> None:
    assert _parse({SETTING_ENV: "2"}).max_active_runs == 2


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(config.ConfigError, match="clean_zone_batch_max_parallel_batches"):
        config.load_for_parsing({SETTING_ENV: "0"})


def test_each_run_waits_in_a_deferrable_sensor_that_takes_its_manifest() -> None:
    dag = _parse({})
    sensor = dag.get_task("wait_for_manifest")
    assert isinstance(sensor, ManifestSensor)
    assert isinstance(sensor, S3KeySensor)
    assert sensor.deferrable
    assert sensor.check_fn is None  # the trigger only lists; the take happens on the worker
    # Mapped work inside each run stays bounded as before.
    assert dag.get_task("verify_file").max_active_tis_per_dagrun == 16
    assert dag.get_task("process_file").max_active_tis_per_dagrun == 16
