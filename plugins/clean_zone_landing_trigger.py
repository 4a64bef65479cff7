"""The landing watcher's trigger: fires when landing/ holds a file no watcher run has handed over.

The provider's ``S3KeyTrigger`` fires while any key matches. A claim leaves its file where it landed
(so it is copied once, from landing/ to its terminal place), and the file stays there while its run
works on it, or for days after a failure, waiting to be resumed: with that trigger the watcher would
run back to back for nothing. So the watcher's hand-over keeps a record of what it handed over
(:class:`HandedOver`, at ``_state/watcher/handed-over.json``: each file still in landing/, with the
upload it was, told by its ETag and LastModified), and this trigger fires only for a file not in it:
a new file, or a new upload to a key handed over before. An idle watcher asks S3 for one listing
per poke; a listing with files in it costs one GET of the record more.

Once every ``recheck_seconds`` (``clean_zone_landing_sweep_minutes``) it also fires while files handed
over that long ago still wait, and the hand-over hands over again those no run has claimed (a run
deleted before it claimed its file, say), as the events route's sweep does.

It lives in ``plugins/`` because the triggerer imports a trigger by its class path, and of this
project's folders only the plugins folder is on the triggerer's path (locally and on MWAA). So the
record's form is defined here, once; the hand-over (``clean_zone.airflow_glue.trigger_tasks``) and
the sensor's first look in the worker use it from here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger
from airflow.triggers.base import TriggerEvent


class Listed(Protocol):
    """An object as a listing shows it (``clean_zone.storage.ObjectInfo`` is one)."""

    @property
    def key(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def etag(self) -> str: ...
    @property
    def last_modified(self) -> str | None: ...


class ListedObject(NamedTuple):
    key: str
    size: int
    etag: str
    last_modified: str | None


def upload_of(item: Listed) -> str:
    """What tells this upload from another of the same key in a listing: its ETag and LastModified."""
    return f"{item.etag.strip(chr(34))} {item.last_modified or ''}"


def is_file(item: Listed) -> bool:
    """Not a folder marker (a key ending in '/' with no content, as the S3 console makes)."""
    return not (item.key.endswith("/") and item.size == 0)


@dataclass
class HandedOver:
    """The watcher's record: files still in landing/ that it handed over, and when."""

    files: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (upload, at epoch s)
    checked_at: float = 0.0  # the last re-check of files that waited long (epoch s)

    @classmethod
    def from_json(cls, document: Any) -> HandedOver:
        if not isinstance(document, dict):
            return cls()
        files = {
            str(key): (str(entry[0]), float(entry[1]))
            for key, entry in dict(document.get("files") or {}).items()
            if isinstance(entry, list) and len(entry) == 2
        }
        return cls(files, float(document.get("checked_at") or 0.0))

    def to_json(self) -> dict[str, Any]:
        files = {key: list(entry) for key, entry in self.files.items()}
        return {"files": files, "checked_at": self.checked_at}

    def recheck_due(self, now: float, recheck_seconds: float) -> bool:
        return recheck_seconds > 0 and now - self.checked_at >= recheck_seconds

    def waiting(
        self, listed: Iterable[Listed], now: float, recheck_seconds: float
    ) -> tuple[list[Listed], list[Listed]]:
        """``(new, stale)``: files not handed over as this upload; and, when a re-check is due, the
        files handed over at least ``recheck_seconds`` ago that still wait."""
        new: list[Listed] = []
        stale: list[Listed] = []
        recheck = self.recheck_due(now, recheck_seconds)
        for item in listed:
            if not is_file(item):
                continue
            entry = self.files.get(item.key)
            if entry is None or entry[0] != upload_of(item):
                new.append(item)
            elif recheck and now - entry[1] >= recheck_seconds:
                stale.append(item)
        return new, stale

    def after(
        self, listed: Iterable[Listed], handed: Iterable[Listed], now: float, *, rechecked: bool
    ) -> HandedOver:
        """The record once ``handed`` were handed over at ``now``: files no longer listed leave it."""
        handed_now = {item.key: upload_of(item) for item in handed}
        files: dict[str, tuple[str, float]] = {}
        for item in listed:
            upload = upload_of(item)
            if handed_now.get(item.key) == upload:
                files[item.key] = (upload, now)
            elif item.key in self.files and self.files[item.key][0] == upload:
                files[item.key] = self.files[item.key]
        return HandedOver(files, now if rechecked else self.checked_at)


def passing(error: BaseException) -> bool:
    """Trouble that waiting can fix: no answer at all, a 429 or 5xx (``clean_zone.failures.classify``
    says the same of a task's errors; that module is not on the triggerer's path). An error S3 did
    answer otherwise (``NoSuchBucket``, ``AccessDenied``) is a setting to fix, not an outage."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return True
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(response.get("Error", {}).get("Code", ""))
    transient = isinstance(status, int) and (status == 429 or (500 <= status < 600 and status != 501))
    return transient or "Throttl" in code or code in {"SlowDown", "RequestTimeout"}


class LandingFilesTrigger(S3KeyTrigger):
    """Fires when the prefix holds a file the record at ``handed_over_key`` does not name (see the module).

    ``bucket_key`` is the prefix watched. Fires ``{"status": "success", "new": n, "stale": n}``.

    Through an S3 outage it keeps looking, every poke interval; once S3 has not answered for
    ``unreachable_after_seconds`` it fires ``{"status": "unreachable", "message": ...}`` (once: the
    sensor alerts and waits on with ``report_unreachable`` off), and when S3 answers again it goes on
    as before. Any other failure fires ``{"status": "error", "message": ...}``, as the provider's
    trigger does (the sensor then fails).
    """

    def __init__(
        self,
        *,
        handed_over_key: str,
        recheck_seconds: float = 0.0,
        unreachable_after_seconds: float = 0.0,
        report_unreachable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.handed_over_key = handed_over_key
        self.recheck_seconds = recheck_seconds
        self.unreachable_after_seconds = unreachable_after_seconds
        self.report_unreachable = report_unreachable

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        hook_params = kwargs.pop("hook_params", {}) or {}
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **kwargs,
            **hook_params,
            "handed_over_key": self.handed_over_key,
            "recheck_seconds": self.recheck_seconds,
            "unreachable_after_seconds": self.unreachable_after_seconds,
            "report_unreachable": self.report_unreachable,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        failing_since: float | None = None
        while True:
            try:
                async with await self.hook.get_async_conn() as client:
                    while True:
                        found = await self._look(client)
                        failing_since = None
                        if found is not None:
                            self.log.info("to hand over: %(new)d new file(s), %(stale)d waiting long", found)
                            yield TriggerEvent({"status": "success", **found})
                            return
                        await asyncio.sleep(self.poke_interval)
            except Exception as error:  # the provider's S3KeyTrigger reports every failure as an event
                if not passing(error) or self.unreachable_after_seconds <= 0:
                    yield TriggerEvent({"status": "error", "message": str(error)})
                    return
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if self.report_unreachable and now - failing_since >= self.unreachable_after_seconds:
                    message = f"S3 has not answered for {now - failing_since:.0f} s: {error}"
                    yield TriggerEvent({"status": "unreachable", "message": message})
                    return
                self.log.warning("S3 did not answer (%s); looking again in %s s", error, self.poke_interval)
                await asyncio.sleep(self.poke_interval)

    async def _look(self, client: Any) -> dict[str, int] | None:
        """``{"new": n, "stale": n}`` when there are files to hand over, else None."""
        listed = [item async for item in self._listing(client)]
        if not any(is_file(item) for item in listed):
            return None
        record = await self._record(client)
        new, stale = record.waiting(listed, time.time(), self.recheck_seconds)
        return {"new": len(new), "stale": len(stale)} if new or stale else None

    async def _listing(self, client: Any) -> AsyncIterator[ListedObject]:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket_name, Prefix=self.bucket_key):
            for item in page.get("Contents", []):
                modified = item.get("LastModified")
                yield ListedObject(
                    item["Key"],
                    int(item.get("Size", 0)),
                    str(item.get("ETag", "")),
                    modified.isoformat() if hasattr(modified, "isoformat") else modified,
                )

    async def _record(self, client: Any) -> HandedOver:
        try:
            response = await client.get_object(Bucket=self.bucket_name, Key=self.handed_over_key)
        except client.exceptions.NoSuchKey:
            return HandedOver()
        return HandedOver.from_json(json.loads(await response["Body"].read()))
