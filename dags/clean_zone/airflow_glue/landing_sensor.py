"""The landing watcher's S3KeySensor, woken only by files no watcher run has handed over yet.

A claimed file stays where it landed until its terminal place (one copy, not two), so a plain
S3KeySensor on landing/ would fire at every poke while any file is being processed or waits to be
resumed. This one looks for files the hand-over's record does not name
(:mod:`clean_zone_landing_trigger`, in plugins/), first in the worker (a file already waiting is
handed over at once), then in the triggerer (holding no worker slot).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import Context
from clean_zone_landing_trigger import HandedOver, LandingFilesTrigger  # plugins/: the triggerer's path

from clean_zone import config
from clean_zone.airflow_glue.aws import object_store
from clean_zone.airflow_glue.notifier import FailureAlertNotifier, send
from clean_zone.airflow_glue.retry_policy import endpoint_patience_seconds
from clean_zone.failures import EndpointError
from clean_zone.keys import watcher_handed_over_key
from clean_zone.storage import ObjectMissing, ObjectStore


def handed_over(store: ObjectStore, settings: config.Settings) -> HandedOver:
    """The watcher's record of the files it handed over (empty before its first hand-over)."""
    try:
        return HandedOver.from_json(store.get_json(watcher_handed_over_key(settings)))
    except ObjectMissing:
        return HandedOver()


class LandingFileSensor(S3KeySensor):
    """Deferrable S3KeySensor on the landing prefix: done when a file there was not handed over yet.

    Also done once every ``clean_zone_landing_sweep_minutes`` while files handed over that long ago
    still wait (the hand-over looks at them again). ``bucket_key`` keeps the provider's meaning for
    the UI (the files' pattern); what is looked for is decided by the hand-over's record.

    Through an S3 outage it waits on rather than failing run after run: once S3 has not answered for
    as long as a task retries an endpoint error, it sends one alert and keeps watching; the files that
    landed meanwhile are handed over when S3 answers again.
    """

    _loaded_settings: config.Settings | None = None

    def execute(self, context: Context) -> None:
        self._loaded_settings = None  # read afresh by each try (dag.test runs one instance many times)
        super().execute(context)

    def _settings(self) -> config.Settings:
        """The settings, read once per try: its first look and its deferral both need them."""
        if self._loaded_settings is None:
            self._loaded_settings = config.load()
        return self._loaded_settings

    def poke(self, context: Context) -> bool:
        settings = self._settings()
        store = object_store(settings, str(self.bucket_name))
        try:
            listed = list(store.list_keys(settings.landing_prefix))
            record = handed_over(store, settings)
        except EndpointError as error:
            self.log.warning("%s; the trigger keeps looking", error)
            return False
        new, stale = record.waiting(listed, time.time(), recheck_seconds(settings))
        self.log.info("to hand over: %d new file(s), %d waiting long", len(new), len(stale))
        return bool(new or stale)

    def _defer(self, *, report_unreachable: bool = True) -> None:
        settings = self._settings()
        self.defer(
            timeout=timedelta(seconds=self.timeout),
            trigger=LandingFilesTrigger(
                bucket_name=str(self.bucket_name),
                bucket_key=settings.landing_prefix,
                handed_over_key=watcher_handed_over_key(settings),
                recheck_seconds=recheck_seconds(settings),
                unreachable_after_seconds=max(endpoint_patience_seconds(settings), self.poke_interval),
                report_unreachable=report_unreachable,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
                poke_interval=self.poke_interval,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        self._loaded_settings = None
        if event.get("status") != "unreachable":
            super().execute_complete(context, event)
            return
        error = EndpointError(f"the landing watcher cannot list {self.bucket_name}: {event.get('message')}")
        self.log.error("%s; alerting once and watching on", error)
        try:
            settings = self._settings()
            send(FailureAlertNotifier().build_alert({**context, "exception": error}, settings), settings)
        except Exception:  # the alert is kept or logged by send(); the watch goes on regardless
            self.log.exception("the outage alert could not be sent")
        self._defer(report_unreachable=False)


def recheck_seconds(settings: config.Settings) -> float:
    """How long a handed-over file waits before the hand-over looks at it again (0: never)."""
    return settings.landing_sweep_minutes * 60
