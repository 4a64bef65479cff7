"""
### Clean-zone manifest batch pipeline

Processes a partner's **batch** of files as one unit, started by the batch's
**manifest** (format: `docs/manifests.md`). The partner uploads the data files
under `batches/<batch_id>/` and then one manifest under `manifests/`; the data
files alone never start anything.

1. **resume_or_wait_for_manifest**: a re-run of a run that already took a
   manifest goes straight back to it; otherwise:
2. **wait_for_manifest** (a deferrable S3KeySensor on `manifests/*`, folder
   markers excluded) waits in the triggerer until a manifest arrives, then
   takes the oldest one no other run has taken (moved to `processing/`; a
   conditional put on a record of that very upload decides between runs that
   see it at the same moment, and the runs that lose go back to waiting);
3. **take_manifest** hands this run's manifest record to the steps that need
   it;
4. **read_manifest** checks it against the JSON Schema and the rules a schema
   cannot express. A bad manifest is quarantined with a report naming every
   problem (one alert); a manifest whose batch id another run already took is
   set aside in `duplicates/` and the run ends without processing anything;
5. **wait_for_listed_files** gives late files until the window closes
   (`clean_zone_batch_late_file_window_seconds`, like Glue's batch window); a
   sensor in reschedule mode, so it holds no worker slot between looks; it
   then hands the listed files to the verification;
6. **verify_file** (dynamic task mapping, one task per file, at most
   `clean_zone_batch_max_parallel_verifications` at once: the Map state's
   analogue) checks presence, size and checksum, using S3's stored checksum
   where it has one and streaming the file otherwise;
7. **accept_or_quarantine_batch**: if any file is missing or differs, the whole
   batch goes to `quarantine/` with a report and the run fails with one alert;
   otherwise the batch is claimed (exactly once per batch id);
8. **process_file** (mapped) runs each file through the single-file pipeline's
   steps: extension check, CSV validation, the failure generator (retried with
   backoff), normalised output;
9. **finish_batch** writes `summary.json` (files, rows, bytes, duration) next to
   the outputs in `processed/batches/<batch_id>/`, or quarantines the batch if a
   file was refused.

**How it is triggered:** every minute a run is started (`schedule`, no
catchup) while fewer than `clean_zone_batch_max_parallel_batches` runs (default
4, `max_active_runs`) are active. Each run waits for, and takes, one manifest,
so that many batches are in flight side by side: while a large batch is
verified, another run takes a small manifest that arrived after it and
finishes it. When a run ends, a new one is waiting within a minute. A run that
sees no manifest for `clean_zone_sensor_timeout_seconds` ends as skipped.

Why not `@continuous`: Airflow allows it only with one active run, which is
what held a small batch behind a large one. Why not one Asset-triggered run
per manifest: that needs S3 event notifications for `manifests/` (a queue and
a watcher); the sensor needs nothing but the bucket, here and on MWAA, and
waiting runs cost a trigger each, not a worker slot.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, DeltaTriggerTimetable, task

from clean_zone import config, keys
from clean_zone.airflow_glue import batch_tasks as steps
from clean_zone.airflow_glue.dag_defaults import default_args

settings = config.load_for_parsing()
parallel = settings.batch_max_parallel_verifications
# How soon a new run starts waiting once one ends: the scheduler creates none beyond max_active_runs.
START_A_RUN_EVERY = DeltaTriggerTimetable(timedelta(minutes=1))

with DAG(
    dag_id="clean_zone_manifest_batch",
    description="Wait for a batch manifest, verify every listed file, then process the batch as one",
    doc_md=__doc__,
    schedule=START_A_RUN_EVERY,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=settings.batch_max_parallel_batches,
    default_args=default_args(settings, object_task_id=steps.TAKE_TASK),
    tags=["clean-zone", "s3", "manifest", "batch"],
):
    resume_or_wait = task.branch(steps.resume_or_wait_for_manifest, task_id=steps.RESUME_TASK)()
    wait_for_manifest = steps.ManifestSensor(
        task_id=steps.SENSOR_TASK,
        aws_conn_id=settings.aws_conn_id,
        bucket_name=config.variable_template("bucket", settings.bucket),
        bucket_key=keys.files_pattern(settings.manifests_prefix),
        wildcard_match=True,
        deferrable=True,
        poke_interval=settings.sensor_poke_interval_seconds,
        timeout=settings.sensor_timeout_seconds,
        soft_fail=True,
    )
    taken = task(steps.take_manifest, task_id=steps.TAKE_TASK, trigger_rule="none_failed_min_one_success")()
    batch = task(steps.read_manifest, task_id=steps.READ_TASK, multiple_outputs=True)(taken)
    batch_id, verified = batch["batch_id"], batch["verified"]
    listed = task.sensor(
        steps.wait_for_listed_files,
        task_id=steps.WAIT_TASK,
        mode="reschedule",
        poke_interval=settings.sensor_poke_interval_seconds,
        # The poke ends the wait when the late-file window closes; this only bounds a stuck run.
        timeout=settings.sensor_timeout_seconds,
    )(taken, batch_id, batch["files"], batch["deadline"], verified)
    checks = (
        task(
            steps.verify_file,
            task_id="verify_file",
            map_index_template="{{ file_key }}",
            max_active_tis_per_dagrun=parallel,
        )
        .partial(batch_id=batch_id, verified=verified)
        .expand(entry=listed)
    )
    accepted = task(steps.accept_or_quarantine_batch, task_id="accept_or_quarantine_batch")(
        checks, taken, batch_id, listed
    )
    results = (
        task(
            steps.process_file,
            task_id="process_file",
            map_index_template="{{ file_key }}",
            max_active_tis_per_dagrun=parallel,
        )
        .partial(taken=taken, batch_id=batch_id)
        .expand(entry=listed)
    )
    task(steps.finish_batch, task_id="finish_batch")(results, taken, batch_id, listed)

    resume_or_wait >> [wait_for_manifest, taken]
    wait_for_manifest >> taken
    accepted >> results
