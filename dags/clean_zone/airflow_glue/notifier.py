"""The project's one notifier: failure alerts to SNS, as an ``on_failure_callback``.

Airflow calls a task's ``on_failure_callback`` only on its final failure
(retries call ``on_retry_callback``), so a person gets exactly one alert per
failed task, after the last try. The alert names the S3 object the run was
working on, read from the XCom the claiming task pushed. An alert SNS refuses
is kept in the bucket and sent again later (``clean_zone.undelivered_alerts``).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseNotifier

from clean_zone import config, undelivered_alerts
from clean_zone.airflow_glue.aws import client, object_store
from clean_zone.alerts import Alert, publish, task_log_url
from clean_zone.burst import Digest
from clean_zone.failures import FailureClass, classify

log = logging.getLogger(__name__)


class FailureAlertNotifier(BaseNotifier):
    """Publish an :class:`~clean_zone.alerts.Alert` for the failed task instance.

    :param object_task_id: the task whose XCom (a dict with ``bucket`` and
        ``key``, and optionally ``location``) names the S3 object of the run.
    """

    def __init__(self, object_task_id: str | None = None) -> None:
        super().__init__()
        self.object_task_id = object_task_id

    def _object(self, context: Any, error: BaseException | None) -> tuple[str | None, str | None]:
        found: dict[str, Any] = {}
        if self.object_task_id:
            try:
                pulled = context["ti"].xcom_pull(task_ids=self.object_task_id)
            except Exception:  # the run may have failed before anything was claimed
                self.log.warning("could not read the claimed object from XCom", exc_info=True)
                pulled = None
            if isinstance(pulled, dict):
                found = pulled
        if not found:
            conf = getattr(context.get("dag_run"), "conf", None) or {}
            found = {k: conf[k] for k in ("bucket", "key") if k in conf}
        origin = (
            f"s3://{found['bucket']}/{found['key']}" if found.get("bucket") and found.get("key") else None
        )
        location = getattr(error, "location", None) or found.get("location")
        return origin, location

    def build_alert(self, context: Any, settings: config.Settings) -> Alert:
        ti = context["ti"]
        error = context.get("exception")
        origin, location = self._object(context, error)
        failure_class = classify(error) if isinstance(error, BaseException) else FailureClass.CODE
        return Alert(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            try_number=int(ti.try_number or 1),
            max_tries=int(getattr(ti, "max_tries", 0) or 0) + 1,
            failure_class=failure_class,
            error_type=type(error).__name__ if error is not None else "unknown",
            error=str(error) if error is not None else "no exception was recorded",
            log_url=task_log_url(
                settings.ui_base_url,
                ti.dag_id,
                ti.run_id,
                ti.task_id,
                int(ti.try_number or 1),
                _map_index(ti),
            ),
            s3_object=origin,
            s3_location=location,
            reason=getattr(error, "reason", None),
        )

    def notify(self, context: Any) -> None:
        try:
            settings = config.load()
            # A task that failed with its own alert ready (a burst run's digest) sends that one instead.
            ready = getattr(context.get("exception"), "alert", None)
            send(ready if isinstance(ready, Digest) else self.build_alert(context, settings), settings)
        except Exception:
            # Never let alerting hide the real failure; Airflow logs the task's own error.
            self.log.exception("failure alert could not be built or sent")


def send(alert: Alert | Digest, settings: config.Settings) -> str | None:
    """The one way an alert reaches SNS: a task's failure, or a burst run's digest.

    An alert SNS refuses is kept in the bucket, to be sent again (never only logged).
    """
    message_id = publish(client("sns", settings), settings.failure_topic_arn, alert)
    if message_id is None:
        undelivered_alerts.keep(object_store(settings), settings, alert)
    return message_id


def redeliver_alerts() -> str:
    """Send again the alerts SNS refused when they were due (the redelivery DAG's task)."""
    settings = config.load()
    store = object_store(settings)
    result = undelivered_alerts.redeliver(store, settings, client("sns", settings))
    if result.waiting:
        # Not a failure of this task: failing would only page through the SNS that is down.
        # The waiting alerts stay visible in the bucket, `scripts/dev status` and the plugin page.
        log.warning(
            "%s: SNS still refuses them; the next run tries again (%s)",
            result,
            store.url(undelivered_alerts.folder(settings)),
        )
    return str(result)


def _map_index(ti: Any) -> int:
    value = getattr(ti, "map_index", None)
    return -1 if value is None else int(value)
