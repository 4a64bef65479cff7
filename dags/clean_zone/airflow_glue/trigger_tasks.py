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
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from clean_zone import burst, config, events
from clean_zone.airflow_glue.aws import object_store
from clean_zone.burst import Arrival
from clean_zone.events import pipeline_note, pipeline_run_id
from clean_zone.failures import EndpointError
from clean_zone.keys import display_key, events_handed_over_key, is_folder_marker, watcher_handed_over_key
from clean_zone.lifecycle import Lifecycle
from clean_zone.storage import ObjectMissing, ObjectStore

log = logging.getLogger(__name__)

PIPELINE_DAG = "clean_zone_file_pipeline"
BURST_DAG = "clean_zone_file_burst"
# One watcher cycle hands over at most this many files; the next cycle picks up the rest.
MAX_FILES_PER_CYCLE = 2000
# Asset events (10 messages each at most) one events run takes; the rest go to the next run.
MAX_EVENTS_PER_RUN = MAX_FILES_PER_CYCLE // 10
# While a burst still arrives, the hand-over looks for more events this often (a quiet look ends it).
GATHER_POLL_SECONDS = 1.0
_pause = time.sleep  # a test replaces it to let events arrive between looks


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
                run_after=_this_second(),
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


def _this_second() -> datetime:
    """Now, to the whole second: when a started run may be scheduled.

    The scheduler takes only runs whose ``run_after`` is not after the database's ``now()``, and
    SQLite's has whole seconds: a run due at 12:00:01.9 compares as later than 12:00:01 and is not
    taken before 12:00:02. The local stack gives its SQLite a clock to the millisecond
    (``clean_zone_tools.devstack.sqlite_clock``, which also covers the runs Airflow creates itself);
    this keeps the runs these DAGs start due at once on any SQLite (``airflow standalone`` as it
    comes). On PostgreSQL (MWAA, docker-compose) it changes nothing.
    """
    return datetime.now(UTC).replace(microsecond=0)


def landing_file_runs() -> list[dict[str, Any]]:
    """Start runs for the files in landing/ that no watcher run handed over yet (oldest first).

    When a re-check is due (every ``clean_zone_landing_sweep_minutes``) it also hands over again
    the files handed over that long ago that no run has claimed (their run deleted before its
    claim, say). Where both routes watch, files a run already claimed get no second run. The record
    of what was handed over (:class:`clean_zone_landing_trigger.HandedOver`) is written last: if a
    try fails before it, its retry hands the same files over again, to the same run ids.
    """
    # Imported here: the events route's DAG imports this module too, and the sensor is slow to import.
    from clean_zone.airflow_glue.landing_sensor import handed_over, recheck_seconds

    settings = config.load()
    store = object_store(settings)
    record = handed_over(store, settings)
    listed = list(store.list_keys(settings.landing_prefix))
    now, recheck = time.time(), recheck_seconds(settings)
    new, stale = record.waiting(listed, now, recheck)
    new.sort(key=lambda info: (info.last_modified or "", info.key))
    taken = new[:MAX_FILES_PER_CYCLE] + stale
    # A new upload is claimed before its hand-over only by the events route's run, where it watches too.
    lifecycle = Lifecycle(store, settings)
    check = set(stale) | (set(new) if settings.trigger_route == "both" else set())
    arrivals = [
        Arrival(settings.bucket, info.key, info.etag, info.last_modified)
        for info in taken
        if info not in check or not _already_claimed(lifecycle, info.key, info.etag, None)
    ]
    started = start_runs(dispatch(arrivals, settings))
    after = record.after(listed, taken, now, rechecked=record.recheck_due(now, recheck))
    store.put_json(watcher_handed_over_key(settings), after.to_json())
    return started


def _landing_arrivals(
    store: ObjectStore,
    settings: config.Settings,
    landed_before: datetime | None = None,
    keep: Callable[[Arrival], bool] | None = None,
) -> list[Arrival]:
    """Files in landing/ (oldest first, folder markers left out; only those landed before a time).

    ``keep`` picks among them before the cycle's limit is counted: files claimed in place and
    waiting to be resumed are the oldest, and must not crowd out the ones that still need a run.
    """
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
    arrivals = (Arrival(settings.bucket, i.key, i.etag, i.last_modified) for i in found)
    return list(islice((a for a in arrivals if keep is None or keep(a)), MAX_FILES_PER_CYCLE))


def s3_event_runs(**context: Any) -> list[dict[str, Any]]:
    """Start runs for the objects created in the delivered S3 event notifications.

    Messages come from the Asset watcher's events (see :func:`_hand_over_events`) or, for a replay
    by hand, from the run's conf ``{"messages": [<SQS message>, ...]}``. A run with no messages
    (the timed run, every ``clean_zone_landing_sweep_minutes``) sweeps instead: files that waited
    in landing/ longer than that get their runs.
    """
    settings = config.load()
    triggering = [event for batch in context["triggering_asset_events"].values() for event in batch]
    if triggering:
        return _hand_over_events(context, triggering, settings)
    messages = list((context["dag_run"].conf or {}).get("messages", []))
    if not messages:
        return start_runs(sweep_landing(settings))
    lifecycle = Lifecycle(object_store(settings), settings)
    return start_runs(dispatch(_arrivals(messages, lifecycle, settings), settings))


def _hand_over_events(
    context: dict[str, Any], triggering: list[Any], settings: config.Settings
) -> list[dict[str, Any]]:
    """Hand over every event since the last hand-over, gathering a burst while it still arrives.

    * **Since the last hand-over**: Airflow gives a run the events up to the moment its first
      event queued it; those that arrive while it waits to be created belong to no run until
      another event comes (at the end of a burst, none does). So a run takes every event after
      the last one handed over (``_state/events/handed-over.json``, written once the runs are
      started), whichever run Airflow gave it to; the next run skips what this one took.
    * **Gathering**: when several files came and fewer than ``clean_zone_burst_max_files``, the
      burst is still arriving: the task waits for more, a second at a time, until N files, a
      quiet second, or ``clean_zone_burst_window_seconds`` (T) from the start. So a burst
      becomes runs of up to N files, not one run per SQS batch of ten; a file alone starts at once.
    """
    store = object_store(settings)
    lifecycle = Lifecycle(store, settings)
    handed = _read_handed_over(store, settings)
    since = handed or min(event.timestamp for event in triggering)
    # The triggering events are among those read back (the same rows); read back, later ones come too.
    taken = _events_after(context, since, handed) or [
        e for e in triggering if handed is None or e.timestamp > handed
    ]
    arrivals = _arrivals(events.messages_from_asset_events(taken), lifecycle, settings)
    deadline = time.monotonic() + settings.burst_window_seconds
    while 1 < len(arrivals) < settings.burst_max_files and time.monotonic() < deadline:
        _pause(GATHER_POLL_SECONDS)
        newest = max(event.timestamp for event in taken)
        later = _events_after(context, newest, newest)
        if not later:
            break  # a quiet second: the burst is over
        taken += later
        arrivals += _arrivals(events.messages_from_asset_events(later), lifecycle, settings)
    started = start_runs(dispatch(_unique(arrivals), settings))
    if taken:
        _write_handed_over(store, settings, max(event.timestamp for event in taken), context["run_id"])
    return started


def _events_after(context: dict[str, Any], since: datetime, strictly_after: datetime | None) -> list[Any]:
    """The asset's events from ``since`` on (oldest first, at most MAX_EVENTS_PER_RUN), newer than
    ``strictly_after``."""
    found = context["inlet_events"][0].after(since.isoformat()).limit(MAX_EVENTS_PER_RUN)
    return [event for event in found if strictly_after is None or event.timestamp > strictly_after]


def _arrivals(
    messages: list[dict[str, Any]], lifecycle: Lifecycle, settings: config.Settings
) -> list[Arrival]:
    """The uploads the messages announce, less those a run already claimed."""
    arrivals = []
    for item in events.objects_created(messages, settings.bucket, settings.landing_prefix):
        # An upload the watcher's run already claimed gets no second run (one that would only skip).
        if _already_claimed(lifecycle, item.key, item.etag, item.version_id):
            continue
        etag = (item.etag or "").strip('"') or None
        # The event time and the ETag make the upload marker: a re-delivered event maps to the same run.
        marker = f"{item.event_time}/{item.etag}"
        arrivals.append(Arrival(item.bucket, item.key, etag, item.event_time, marker, item.version_id))
    return arrivals


def _unique(arrivals: list[Arrival]) -> list[Arrival]:
    """One arrival per upload (an event may come twice: SQS delivers at least once)."""
    return list({(a.bucket, a.key, a.upload_marker): a for a in arrivals}.values())


def _read_handed_over(store: ObjectStore, settings: config.Settings) -> datetime | None:
    """When the newest event handed over so far was recorded; None if unknown (then the run takes
    what Airflow gave it: at worst a file is handed over twice, and its claim keeps it once)."""
    try:
        return datetime.fromisoformat(store.get_json(events_handed_over_key(settings))["timestamp"])
    except ObjectMissing:
        return None
    except (EndpointError, KeyError, ValueError) as error:
        log.warning("could not read which events were handed over (%s); taking this run's", error)
        return None


def _write_handed_over(store: ObjectStore, settings: config.Settings, newest: datetime, run_id: str) -> None:
    try:
        store.put_json(events_handed_over_key(settings), {"timestamp": newest.isoformat(), "run_id": run_id})
    except EndpointError as error:
        log.warning(
            "could not record which events were handed over (%s); the next run may repeat some", error
        )


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
    stranded = _landing_arrivals(
        store,
        settings,
        landed_before=cutoff,
        keep=lambda arrival: not _already_claimed(lifecycle, arrival.key, arrival.etag, None),
    )
    if stranded:
        log.warning(
            "%d file(s) waited in %s over %s min without a run; handing them over now",
            len(stranded),
            settings.landing_prefix,
            settings.landing_sweep_minutes,
        )
    return dispatch(stranded, settings)
