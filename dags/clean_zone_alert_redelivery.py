"""
### Clean-zone alert redelivery

Sends again the failure alerts SNS refused when they were due (an outage,
throttling, a topic policy gone wrong). The notifier keeps each refused alert
as a JSON document under `_state/alerts/undelivered/` in the clean-zone bucket;
**redeliver_alerts** publishes them, oldest first, each with a first line saying
when it was due, and deletes a document only once SNS took its alert.

While SNS still refuses, the task logs how many wait and the next run tries
again; it does not fail, since failing would only page through the SNS that is
down. Waiting alerts show in `scripts/dev status` and on the plugin's alerts page.

**How it is triggered:** on a schedule, every `clean_zone_alert_redelivery_minutes`
minutes (5 by default). A run with nothing to send takes one S3 listing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from clean_zone import config
from clean_zone.airflow_glue import notifier as steps
from clean_zone.airflow_glue.dag_defaults import default_args

settings = config.load_for_parsing()

with DAG(
    dag_id="clean_zone_alert_redelivery",
    description="Send again the failure alerts SNS refused when they were due",
    doc_md=__doc__,
    schedule=timedelta(minutes=settings.alert_redelivery_minutes),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings, object_task_id=None),
    tags=["clean-zone", "sns", "alerts"],
):
    task(steps.redeliver_alerts, task_id="redeliver_alerts")()
