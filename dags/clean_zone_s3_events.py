"""
### Clean-zone S3 events

The event-driven trigger (the reference's EventBridge rule, without polling):
the bucket sends S3 event notifications for objects created under the landing
prefix to an SQS queue; an Asset watcher reads the queue in the triggerer
(`SqsDrainTrigger` in `plugins/`, the provider's SQS trigger made to drain the
queue once a message came) and the messages start this DAG (one run
at a time: events arriving meanwhile gather into the next run), whose one task
`start_file_runs` hands the created objects over: a file alone to
`clean_zone_file_pipeline`, files that landed together to
`clean_zone_file_burst`. The watcher long-polls SQS (20 s per request), so an
upload is noticed the moment its event arrives. Generated when
`clean_zone_trigger_route` is `events` (the default) or `both`.

**How it is triggered:** by the `clean_zone_s3_events` asset, updated by its
watcher whenever messages arrive, and every `clean_zone_landing_sweep_minutes`.
For a replay by hand, trigger it with conf
`{"messages": [<SQS message with a "Body">, ...]}`. S3's `s3:TestEvent`,
folder markers and keys outside the landing prefix are ignored; URL-encoded
keys (`a+b.csv` for `a b.csv`) are decoded.

Every `clean_zone_landing_sweep_minutes` (5 by default; 0 turns it off) a timed
run with no events sweeps `landing/` instead: files that have waited there
longer than that without a run are handed over the same way. It is the safety
net for an event lost on its way, or one Airflow left out of every run (an
asset event that arrives after a run was queued and before it was created is
consumed by the next run only, and there may be no next one). Triggered by hand
with no conf, the DAG sweeps too.

With `both` routes on, the pipeline's claim makes sure a file is processed
once whichever route starts it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, AssetWatcher, DeltaTriggerTimetable, task
from clean_zone_sqs_trigger import SqsDrainTrigger  # plugins/: the triggerer imports it from there

from clean_zone import config
from clean_zone.airflow_glue import trigger_tasks as steps
from clean_zone.airflow_glue.dag_defaults import default_args

settings = config.load_for_parsing()
# SQS's longest wait for a receive; the watcher's request returns as soon as a message is there.
EVENTS_LONG_POLL_SECONDS = 20

# The route not chosen (clean_zone_trigger_route) costs nothing: its DAG is not generated.
if settings.trigger_route in ("events", "both"):
    landing_events = Asset(
        name="clean_zone_s3_events",
        watchers=[
            AssetWatcher(
                name="clean_zone_s3_events_queue",
                trigger=SqsDrainTrigger(
                    sqs_queue=settings.events_queue_url,
                    aws_conn_id=settings.aws_conn_id,
                    region_name=settings.region,
                    max_messages=10,
                    # Long polling: SQS answers the moment a message arrives (up to 20 s per request),
                    # so the watcher notices an upload at once and asks 3 times a minute when idle;
                    # then it drains what is queued, so a burst arrives as a few large events.
                    wait_time_seconds=EVENTS_LONG_POLL_SECONDS,
                    waiter_delay=1,
                    max_drain_messages=settings.burst_max_files,
                ),
            )
        ],
    )
    with DAG(
        dag_id="clean_zone_s3_events",
        description="Start file runs for the objects created, from S3 event notifications via SQS",
        doc_md=__doc__,
        # Also on a timer: a run with no events sweeps landing/ for files an event never handed over.
        schedule=AssetOrTimeSchedule(
            timetable=DeltaTriggerTimetable(timedelta(minutes=settings.landing_sweep_minutes)),
            assets=landing_events,
        )
        if settings.landing_sweep_minutes > 0
        else [landing_events],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        # One run at a time: asset events that arrive meanwhile queue up and the next run takes them
        # all, so a burst becomes a few burst runs rather than one run per message batch.
        max_active_runs=1,
        default_args=default_args(settings, object_task_id=None),
        tags=["clean-zone", "s3", "sqs", "event-driven"],
    ):
        # The asset as an inlet too: the task reads the events that arrive after its run was queued.
        task(steps.s3_event_runs, task_id="start_file_runs", inlets=[landing_events])()
