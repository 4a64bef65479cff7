"""Task callables of the two DAGs that start file runs: the landing watcher and S3 events.

Each DAG hands its files over in ONE task, ``start_file_runs``: files that
landed together are cut into bursts (:func:`clean_zone.burst.group`: up to
``clean_zone_burst_max_files`` within ``clean_zone_burst_window_seconds`` of the
first); a burst of several files starts one ``clean_zone_file_burst`` run, a
file alone starts ``clean_zone_file_pipeline`` (the reference's shape). Run ids
are derived from the uploads, so a file is handed over once however often it is
seen: a run that already exists is left alone (``started: false``).

The runs are started from the task itself (:func:`start_runs`), with the very
request ``TriggerDagRunOperator`` makes, rather than by a mapped
``TriggerDagRunOperator`` after it: one task process instead of two on the way
from an upload to its run (measured in docs/throughput.md), and one task
instance per hand-over rather than one per run started.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from clean_zone import burst, config, events
from clean_zone.airflow_glue.aws import object_store
from clean_zone.burst import Arrival
from clean_zone.events import pipeline_note, pipeline_run_id
from clean_zone.failures import EndpointError
from clean_zone.keys import display_key, is_folder_marker
from clean_zone.lifecycle import Lifecycle
from clean_zone.storage import ObjectStore

log = logging.getLogger(__name__)

PIPELINE_DAG = "clean_zone_file_pipeline"
BURST_DAG = "clean_zone_file_burst"
# One watcher cycle hands over at most this many files; the next cycle picks up the rest.
MAX_FILES_PER_CYCLE = 2000
# Asset events (10 messages each at most) one events run takes beyond its own; the rest wait.
MAX_LATER_EVENTS = MAX_FILES_PER_CYCLE // 10


def dispatch(arrivals: list[Arrival], settings: config.Settings) -> list[dict[str, Any]]:
    """Triggers for the arrivals: one burst run per group of several files, a single run per lone file."""
    triggers = []
    for files in burst.group(arrivals, settings.burst_max_files, settings.burst_window_seconds):
        if len(files) == 1:
            one = files[0]
            triggers.append(
                {
                    "trigger_dag_id": PIPELINE_DAG,
                    "trigger_run_id": pipeline_run_id(one.bucket, one.key, one.upload_marker),
                    "conf": {"bucket": one.bucket, **one.to_conf()},
                    "note": pipeline_note(one.key),
                }
            )
        else:
            triggers.append(
                {
                    "trigger_dag_id": BURST_DAG,
                    "trigger_run_id": burst.burst_run_id(files),
                    "conf": {"bucket": files[0].bucket, "files": [a.to_conf() for a in files]},
                    "note": f"burst of {len(files)} files from {display_key(files[0].key)}",
                }
            )
    return triggers


def start_runs(triggers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start each run; return the triggers, each with ``started`` (False: that run existed already).

    Sends the task SDK's ``TriggerDagRun`` request, as the task runner does for a
    ``TriggerDagRunOperator`` (Airflow 3.3.1), once per run, from this one task. A failure
    other than "already exists" fails the task; its retry starts the rest, and the runs
    started before are found existing.
    """
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse, TriggerDagRun
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    started = []
    for trigger in triggers:
        dag_id, run_id = trigger["trigger_dag_id"], trigger["trigger_run_id"]
        reply = SUPERVISOR_COMMS.send(
            TriggerDagRun(
                dag_id=dag_id,
                run_id=run_id,
                conf=trigger["conf"],
                # No logical date: many runs start in the same instant, and none reads one.
                run_after=datetime.now(UTC),
                note=trigger.get("note"),
            )
        )
        if isinstance(reply, ErrorResponse):
            if reply.error != ErrorType.DAGRUN_ALREADY_EXISTS:
                raise RuntimeError(f"could not start {dag_id} run {run_id}: {reply.detail}")
            log.info("%s run %s exists already", dag_id, run_id)
        else:
            log.info("started %s run %s (%s)", dag_id, run_id, trigger.get("note"))
        started.append({**trigger, "started": not isinstance(reply, ErrorResponse)})
    return started


def landing_file_runs() -> list[dict[str, Any]]:
    """Start runs for the landing prefix's files (oldest first, folder markers left out)."""
    settings = config.load()
    return start_runs(dispatch(_landing_arrivals(object_store(settings), settings), settings))


def _landing_arrivals(
    store: ObjectStore, settings: config.Settings, landed_before: datetime | None = None
) -> list[Arrival]:
    """Files in landing/ (oldest first, folder markers left out; only those landed before a time)."""
    found = [
        info
        for info in store.list_keys(settings.landing_prefix)
        if not is_folder_marker(info.key, info.size)
        and (
            landed_before is None
            or (info.last_modified is not None and datetime.fromisoformat(info.last_modified) < landed_before)
        )
    ]
    found.sort(key=lambda info: (info.last_modified or "", info.key))
    return [Arrival(settings.bucket, i.key, i.etag, i.last_modified) for i in found[:MAX_FILES_PER_CYCLE]]


def s3_event_runs(**context: Any) -> list[dict[str, Any]]:
    """Start runs for the objects created in the delivered S3 event notifications.

    Messages come from the Asset watcher's events or, for a replay by hand,
    from the run's conf ``{"messages": [<SQS message>, ...]}``. A run with no
    messages (the timed run, every ``clean_zone_landing_sweep_minutes``) sweeps
    instead: files that waited in landing/ longer than that get their runs.
    """
    settings = config.load()
    delivered = [event for batch in context["triggering_asset_events"].values() for event in batch]
    if delivered:
        delivered += _events_left_for_the_next_run(context)
    messages = events.messages_from_asset_events(delivered) or list(
        (context["dag_run"].conf or {}).get("messages", [])
    )
    if not messages:
        return start_runs(sweep_landing(settings))
    created = events.objects_created(messages, settings.bucket, settings.landing_prefix)
    # An upload the watcher's run already claimed gets no second run (one that would only skip, green).
    lifecycle = Lifecycle(object_store(settings), settings)
    arrivals = []
    for item in created:
        if _already_claimed(lifecycle, item.key, item.etag, item.version_id):
            continue
        etag = (item.etag or "").strip('"') or None
        # The event time and the ETag make the upload marker: a re-delivered event maps to the same run.
        marker = f"{item.event_time}/{item.etag}"
        arrivals.append(Arrival(item.bucket, item.key, etag, item.event_time, marker, item.version_id))
    return start_runs(dispatch(arrivals, settings))


def _already_claimed(lifecycle: Lifecycle, key: str, etag: str | None, version_id: str | None) -> bool:
    """Whether a run already claimed this upload; when S3 cannot say, hand it over anyway.

    The check only spares a run that would skip; the claim is what keeps a file exactly once. So an
    S3 outage does not stop the hand-over: each file's own run meets the outage, retries, and waits
    in its place with its own alert, to be resumed like any other.
    """
    try:
        return lifecycle.already_claimed(key, etag, version_id)
    except EndpointError as error:
        log.warning("could not tell whether %s was claimed (%s); handing it over", display_key(key), error)
        return False


def _events_left_for_the_next_run(context: dict[str, Any]) -> list[Any]:
    """Asset events that arrived after this run was queued, which Airflow leaves to the next run.

    The scheduler gives a run the events up to the moment its first event queued it
    (``AssetEvent.timestamp <= triggered_date``); those that arrive while it waits to be created
    belong to no run until another event queues the next one, and at the end of a burst none
    does. This run takes them too. If a next run comes, it hands the same files over again under
    the same run ids, so nothing starts twice.
    """
    later = context["inlet_events"][0].after(context["dag_run"].run_after).limit(MAX_LATER_EVENTS)
    return list(later)


def sweep_landing(settings: config.Settings) -> list[dict[str, Any]]:
    """Triggers for files that waited in landing/ longer than the sweep interval without a run.

    The safety net under the events route: an S3 event lost on its way, or one Airflow left out of
    every run (an asset event that arrives after its run was queued and before it was created is
    consumed only by the next run, and there may be no next one). Claims make a second hand-over
    of a file a no-op, so sweeping a file whose run is merely late costs a skipped run, never a
    second processing.
    """
    if settings.landing_sweep_minutes <= 0:
        return []
    cutoff = datetime.now(UTC) - timedelta(minutes=settings.landing_sweep_minutes)
    store = object_store(settings)
    lifecycle = Lifecycle(store, settings)
    stranded = [
        arrival
        for arrival in _landing_arrivals(store, settings, landed_before=cutoff)
        if not _already_claimed(lifecycle, arrival.key, arrival.etag, None)
    ]
    if stranded:
        log.warning(
            "%d file(s) waited in %s over %s min without a run; handing them over now",
            len(stranded),
            settings.landing_prefix,
            settings.landing_sweep_minutes,
        )
    return dispatch(stranded, settings)
