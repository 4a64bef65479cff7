"""One failure alert as tests build it: every field set, any of them overridable."""

from __future__ import annotations

from typing import Any

from clean_zone.alerts import Alert, task_log_url
from clean_zone.failures import FailureClass

RUN_ID = "manual__2026-01-01T04:12:00+00:00"


def make_alert(**overrides: Any) -> Alert:
    values: dict[str, Any] = {
        "dag_id": "clean_zone_file_pipeline",
        "task_id": "run_failure_generator",
        "run_id": RUN_ID,
        "try_number": 5,
        "max_tries": 5,
        "failure_class": FailureClass.ENDPOINT,
        "error_type": "SimulatedOutage",
        "error": "failure generator: 10 / 0 raised ZeroDivisionError (division by zero)",
        "log_url": task_log_url(
            "http://localhost:8080", "clean_zone_file_pipeline", RUN_ID, "run_failure_generator", 5
        ),
        "s3_object": "s3://clean-zone/landing/partner/orders 2026+01.csv",
        "s3_location": "s3://clean-zone/processing/partner/orders 2026+01.csv",
    }
    values.update(overrides)
    return Alert(**values)
