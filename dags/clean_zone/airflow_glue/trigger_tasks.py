"""Task callables of the two DAGs that start file-pipeline runs: the landing watcher and S3 events.

Both return a list of ``{"trigger_run_id", "conf"}`` for a mapped
``TriggerDagRunOperator``; the run id is derived from the upload, so a file
is handed over once however often it is seen.
"""

from __future__ import annotations

from typing import Any

from clean_zone import config, events
from clean_zone.airflow_glue.aws import object_store
from clean_zone.events import pipeline_note, pipeline_run_id
from clean_zone.keys import is_folder_marker
from clean_zone.lifecycle import Lifecycle

# One watcher cycle starts at most this many runs; the next cycle picks up the rest.
MAX_FILES_PER_CYCLE = 200


def landing_has_files(files: list[dict[str, Any]], **_context: Any) -> bool:
    """S3KeySensor check: at least one real file (folder markers do not count)."""
    return any(not is_folder_marker(str(f.get("Key", "")), int(f.get("Size") or 0)) for f in files)


def list_landing_files() -> list[dict[str, Any]]:
    """The landing prefix's files (oldest first, folder markers left out), as pipeline triggers."""
    settings = config.load()
    store = object_store(settings)
    found = [
        info for info in store.list_keys(settings.landing_prefix) if not is_folder_marker(info.key, info.size)
    ]
    found.sort(key=lambda info: (info.last_modified or "", info.key))
    return [
        {
            "trigger_run_id": pipeline_run_id(settings.bucket, info.key, info.last_modified),
            "conf": {"bucket": settings.bucket, "key": info.key, "etag": info.etag},
            "note": pipeline_note(info.key),
        }
        for info in found[:MAX_FILES_PER_CYCLE]
    ]


def s3_event_triggers(**context: Any) -> list[dict[str, Any]]:
    """Pipeline triggers for the objects created in the delivered S3 event notifications.

    Messages come from the Asset watcher's events or, for a replay by hand,
    from the run's conf ``{"messages": [<SQS message>, ...]}``.
    """
    settings = config.load()
    messages = events.messages_from_asset_events(
        event for asset_events in context["triggering_asset_events"].values() for event in asset_events
    ) or list((context["dag_run"].conf or {}).get("messages", []))
    created = events.objects_created(messages, settings.bucket, settings.landing_prefix)
    # An upload the watcher's run already claimed gets no second run (one that would only skip, green).
    lifecycle = Lifecycle(object_store(settings), settings)
    created = [i for i in created if not lifecycle.already_claimed(i.key, i.etag, i.version_id)]
    return [
        {
            "trigger_run_id": pipeline_run_id(item.bucket, item.key, f"{item.event_time}/{item.etag}"),
            "conf": {
                "bucket": item.bucket,
                "key": item.key,
                "etag": item.etag,
                "version_id": item.version_id,
            },
            "note": pipeline_note(item.key),
        }
        for item in created
    ]
