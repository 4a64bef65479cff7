"""
### Clean-zone file burst

Processes files that landed together (a partner dropping many at once) in one
run, started by the trigger DAG of the chosen route with conf
`{"bucket": ..., "files": [{"key": ..., "etag": ...}, ...]}`: up to
`clean_zone_burst_max_files` files that landed within
`clean_zone_burst_window_seconds` of the first. A file alone goes to
`clean_zone_file_pipeline` instead.

1. **plan_chunks** cuts the files into chunks of `clean_zone_burst_chunk_files`.
2. **process_chunk** (mapped, at most `clean_zone_burst_max_parallel_chunks` at
   once) takes each file of its chunk the single-file way: claim (exactly once,
   its own ledger record), extension check, one read that validates and
   normalises, the failure generator, outputs, terminal place. A file whose
   generator fails, or that meets an S3 outage, is retried in process with the
   same backoff, but set aside
   meanwhile: the chunk goes on with its other files and comes back to it once
   its delay is up. One file's trouble never fails, holds or repeats the others.
3. **report_burst** sends ONE digest alert listing every bad file, its class and
   where it went (severity of the worst), and fails the run if a file still
   waits, claimed, after every retry: clear **process_chunk** to resume
   it (files already finished are not redone).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, task

from clean_zone import config
from clean_zone.airflow_glue import burst_tasks as steps
from clean_zone.airflow_glue.dag_defaults import default_args

settings = config.load_for_parsing()

with DAG(
    dag_id="clean_zone_file_burst",
    description="Process files that landed together, in a few chunk tasks, with one digest alert",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # As many runs at once as chunks one run may work on: a burst cut into several small runs (events
    # come in batches of ten) gets the parallelism of one big run. With 2 runs, a measured burst of
    # 1,000 files processed about 2 files at a time (docs/throughput.md).
    max_active_runs=settings.burst_max_parallel_chunks,
    default_args=default_args(settings, object_task_id=None),
    params={
        "bucket": Param(None, type=["null", "string"], description="Bucket (default: clean_zone_bucket)"),
        "files": Param([], type="array", description='The files: [{"key": "landing/...", "etag": "..."}]'),
    },
    tags=["clean-zone", "s3", "burst"],
):
    chunks = task(steps.plan_chunks, task_id=steps.PLAN_TASK)()
    outcomes = task(
        steps.process_chunk,
        task_id=steps.CHUNK_TASK,
        max_active_tis_per_dagrun=settings.burst_max_parallel_chunks,
    ).expand(chunk=chunks)
    # The digest is this run's one alert (sent by the report, or by its failure callback if files wait).
    task(steps.report_burst, task_id=steps.REPORT_TASK, trigger_rule="all_done")(outcomes)
