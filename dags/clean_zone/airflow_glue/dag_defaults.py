"""What every DAG in this project shares: owner, retries, retry policy and the failure alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from clean_zone.airflow_glue.notifier import FailureAlertNotifier
from clean_zone.airflow_glue.retry_policy import standard_policy
from clean_zone.config import Settings

OWNER = "data-platform"


def default_args(settings: Settings, *, object_task_id: str | None) -> dict[str, Any]:
    """Task defaults: Step Functions-style retries and one SNS alert after the last try."""
    policy = standard_policy(settings)
    return {
        "owner": OWNER,
        "retries": policy.max_retries,
        "retry_delay": timedelta(seconds=settings.retry_interval_seconds),
        "retry_policy": policy,
        "on_failure_callback": FailureAlertNotifier(object_task_id=object_task_id),
    }
