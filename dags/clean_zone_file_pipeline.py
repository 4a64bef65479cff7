"""
### Clean-zone file pipeline

Processes one partner file from the clean-zone bucket: the Airflow port of the
reference Step Functions state machine *ProcessFilesStateMachine*.

1. **claim_file** claims the object exactly once (a ledger record). On the events
   route it stays where it landed, so the one copy it makes is to its terminal place;
   where the S3KeySensor watches `landing/`, it is moved to `processing/` first.
2. **check_file_extension** returns bucket, key, size and extension
   (case-insensitive; `.csv.gz` is compressed CSV).
3. **route_by_extension** sends CSV to processing, anything else to **reject_file**,
   which moves it to `rejected/` with a reason and fails the run (one SNS alert).
4. **validate_csv** streams the file once (header, column counts, UTF-8, not
   binary), staging its normalised copy; a bad file goes to `quarantine/` and
   alerts at once, without retries.
5. **run_failure_generator** is the reference's flaky step (10 / randint(0, 2)),
   retried with exponential backoff (10 s, 15 s, 22.5 s, 33.75 s by default).
6. **write_processed_output** copies the staged CSV beside the file (on the
   server: the file is not read again), writes a JSON summary, and moves the
   file to `processed/`.

**How it is triggered:** by the chosen trigger route (`clean_zone_s3_events`,
S3 event notifications through SQS, by default; or `clean_zone_landing_watcher`,
an S3KeySensor) for a file that arrives alone (files that land together go to
`clean_zone_file_burst`), one run per file (each run's note names its file); or by hand
with conf `{"key": "landing/x.csv"}` (and optionally `"bucket"`), as the reference's
Lambda could be invoked with a test event. A run triggered without a key is refused.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, task

from clean_zone import config
from clean_zone.airflow_glue import file_tasks as steps
from clean_zone.airflow_glue.dag_defaults import default_args

settings = config.load_for_parsing()

with DAG(
    dag_id="clean_zone_file_pipeline",
    description="Check, route and process one partner file from the clean-zone bucket",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=16,
    default_args=default_args(settings, object_task_id=steps.CLAIM_TASK),
    # No default key: a run triggered without one is refused at trigger time, and never pages.
    params={
        "key": Param(
            type="string",
            minLength=1,
            description=f"Key of the object to process, e.g. {settings.landing_prefix}orders.csv",
        ),
        "bucket": Param(
            None,
            type=["null", "string"],
            description=f"Bucket the object is in; leave empty for {settings.bucket} "
            "(the clean_zone_bucket setting)",
        ),
        "etag": Param(
            None,
            type=["null", "string"],
            description="Optional. The upload's ETag (the triggers fill it in); it lets a run tell "
            "a file another run already took from one that never arrived",
        ),
        "version_id": Param(
            None,
            type=["null", "string"],
            description="Optional. The upload's version id (S3 events name it); that upload is "
            "processed even if the key was deleted or overwritten since",
        ),
    },
    tags=["clean-zone", "s3", "reference-port"],
):
    claim = task(steps.claim_file, task_id=steps.CLAIM_TASK)()
    checked = task(steps.check_file_extension, task_id=steps.CHECK_TASK)(claim)
    route = task.branch(steps.route_by_extension, task_id=steps.ROUTE_TASK)(checked)
    validated = task(steps.validate_csv, task_id=steps.VALIDATE_TASK)(claim)
    generated = task(steps.run_failure_generator, task_id=steps.GENERATOR_TASK)(claim)
    written = task(steps.write_processed_output, task_id=steps.WRITE_TASK)(claim, generated, validated)
    rejected = task(steps.reject_file, task_id=steps.REJECT_TASK)(claim, checked)
    done = EmptyOperator(task_id="done", trigger_rule="none_failed_min_one_success")

    route >> validated >> generated
    route >> rejected >> done
    written >> done
