"""
### Clean-zone landing watcher

Watches the landing prefix of the clean-zone bucket with a deferrable
**S3KeySensor** (it waits in the triggerer, holding no worker slot) and, in
one task (`start_file_runs`), hands the files it finds over: a file alone to
`clean_zone_file_pipeline`, files that landed together to
`clean_zone_file_burst` (up to `clean_zone_burst_max_files` per run, within
`clean_zone_burst_window_seconds` of the first). Generated only when
`clean_zone_trigger_route` is `sensor` or `both`.

**How it is triggered:** continuously (`@continuous`, one active run): when a
run ends, the next one starts waiting. A run that sees no new file for
`clean_zone_sensor_timeout_seconds` ends as skipped, not failed, and no one is
alerted. Folder markers (`landing/x/`, zero bytes) never wake it.

A claimed file stays where it landed until its terminal place, so the sensor
wakes only for files the hand-over has not handed over yet (its record is
`_state/watcher/handed-over.json`), and once every
`clean_zone_landing_sweep_minutes` while handed-over files still wait (those no
run has claimed are handed over again). Each run gets an id derived from the
uploads it takes, so a file is handed over once however often the sensor
fires; the pipeline's own claim makes processing exactly-once even when runs
overlap.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, task

from clean_zone import config, keys
from clean_zone.airflow_glue import trigger_tasks as steps
from clean_zone.airflow_glue.dag_defaults import default_args
from clean_zone.airflow_glue.landing_sensor import LandingFileSensor

settings = config.load_for_parsing()

# The route not chosen (clean_zone_trigger_route) costs nothing: its DAG is not generated.
if settings.trigger_route in ("sensor", "both"):
    with DAG(
        dag_id="clean_zone_landing_watcher",
        description="Wait for new files in the landing prefix and start file-pipeline runs for them",
        doc_md=__doc__,
        schedule="@continuous",
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(settings, object_task_id=None),
        tags=["clean-zone", "s3", "sensor"],
    ):
        wait = LandingFileSensor(
            task_id="wait_for_landing_file",
            aws_conn_id=settings.aws_conn_id,
            bucket_name=config.variable_template("bucket", settings.bucket),
            bucket_key=keys.files_pattern(settings.landing_prefix),
            wildcard_match=True,
            deferrable=True,
            poke_interval=settings.sensor_poke_interval_seconds,
            timeout=settings.sensor_timeout_seconds,
            soft_fail=True,
        )
        wait >> task(steps.landing_file_runs, task_id="start_file_runs")()
