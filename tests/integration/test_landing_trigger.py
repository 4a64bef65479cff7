"""The landing watcher's trigger against the moto server: it fires for a file no watcher run handed
over, stays asleep while only handed-over files (claimed in place, being processed or waiting to be
resumed) are in landing/, wakes for a new upload to a handed-over key, and for files waiting long
once per re-check interval. Through the fault proxy: an S3 outage is waited out, and reported once
when it lasts; a setting S3 refuses is an error at once."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clean_zone_landing_trigger import HandedOver, LandingFilesTrigger

from clean_zone.keys import watcher_handed_over_key
from clean_zone.storage import ObjectStore
from clean_zone_tools.faults.proxy import FaultSwitch, ProxyServer

POKE = 0.2
ASLEEP = 2.0  # ten pokes without an event


def _trigger(provisioned: Any, **overrides: Any) -> LandingFilesTrigger:
    settings = {
        "bucket_name": provisioned.bucket,
        "bucket_key": provisioned.landing_prefix,
        "handed_over_key": watcher_handed_over_key(provisioned),
        "recheck_seconds": 0.0,
        "aws_conn_id": "aws_default",
        "region_name": provisioned.region,
        "poke_interval": POKE,
        **overrides,
    }
    return LandingFilesTrigger(**settings)


def _first_event(trigger: LandingFilesTrigger, within: float = 30.0) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout=within))


def _asleep(trigger: LandingFilesTrigger) -> bool:
    try:
        _first_event(trigger, within=ASLEEP)
    except TimeoutError:
        return True
    return False


def _hand_over_everything(store: ObjectStore, provisioned: Any, now: float | None = None) -> None:
    """What the watcher's hand-over writes once it handed over every file in landing/."""
    listed = list(store.list_keys(provisioned.landing_prefix))
    record = HandedOver().after(listed, listed, time.time() if now is None else now, rechecked=True)
    store.put_json(watcher_handed_over_key(provisioned), record.to_json())


@pytest.fixture
def store(s3: Any, provisioned: Any) -> ObjectStore:
    return ObjectStore(s3, provisioned.bucket)


def test_a_file_no_run_handed_over_fires_it(s3: Any, provisioned: Any) -> None:
    s3.put_object(Bucket=provisioned.bucket, Key="landing/p/orders.csv", Body=b"a,b\n1,2\n")

    assert _first_event(_trigger(provisioned)) == {"status": "success", "new": 1, "stale": 0}


def test_only_handed_over_files_and_folder_markers_leave_it_asleep_until_a_new_upload(
    s3: Any, provisioned: Any, store: ObjectStore
) -> None:
    s3.put_object(Bucket=provisioned.bucket, Key="landing/p/", Body=b"")
    s3.put_object(Bucket=provisioned.bucket, Key="landing/p/orders.csv", Body=b"a,b\n1,2\n")
    _hand_over_everything(store, provisioned)
    trigger = _trigger(provisioned)

    assert _asleep(trigger)

    # The partner corrects the file under the same key while the first upload waits, claimed.
    s3.put_object(Bucket=provisioned.bucket, Key="landing/p/orders.csv", Body=b"a,b\n1,3\n")
    assert _first_event(trigger) == {"status": "success", "new": 1, "stale": 0}


def test_an_empty_landing_prefix_with_only_folder_markers_leaves_it_asleep(s3: Any, provisioned: Any) -> None:
    s3.put_object(Bucket=provisioned.bucket, Key="landing/p/", Body=b"")
    assert _asleep(_trigger(provisioned))


def test_files_waiting_long_wake_it_once_per_recheck_interval(
    s3: Any, provisioned: Any, store: ObjectStore
) -> None:
    s3.put_object(Bucket=provisioned.bucket, Key="landing/waits.csv", Body=b"a,b\n1,2\n")
    _hand_over_everything(store, provisioned, now=time.time() - 600)  # handed over (and checked) 10 min ago

    assert _first_event(_trigger(provisioned, recheck_seconds=300.0)) == {
        "status": "success",
        "new": 0,
        "stale": 1,
    }
    _hand_over_everything(store, provisioned)  # the hand-over looked at it again just now
    assert _asleep(_trigger(provisioned, recheck_seconds=300.0))


def test_a_missing_bucket_is_an_error_event_not_a_silent_wait(provisioned: Any) -> None:
    # A setting to fix, not an outage to wait out: reported at once, whatever the patience.
    event = _first_event(
        _trigger(provisioned, bucket_name="no-such-clean-zone", unreachable_after_seconds=60.0)
    )
    assert event["status"] == "error"
    assert "NoSuchBucket" in event["message"]


def test_it_round_trips_through_its_serialised_form(provisioned: Any) -> None:
    trigger = _trigger(provisioned, recheck_seconds=300.0)
    classpath, kwargs = trigger.serialize()

    assert classpath == "clean_zone_landing_trigger.LandingFilesTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # what the triggerer stores
    again = LandingFilesTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert (again.handed_over_key, again.recheck_seconds) == (watcher_handed_over_key(provisioned), 300.0)


@pytest.fixture
def proxied(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultSwitch]:
    """The connection ``aws_proxied``: the moto server through the fault proxy, faults on demand."""
    server = ProxyServer(("127.0.0.1", 0), aws_env)
    server.start_in_thread()
    extra = {
        "endpoint_url": server.url,
        "region_name": "us-east-1",
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_PROXIED", json.dumps({"conn_type": "aws", "extra": extra}))
    yield FaultSwitch(server.url)
    server.shutdown()
    server.server_close()


def test_an_outage_shorter_than_the_patience_is_waited_out(
    s3: Any, provisioned: Any, proxied: FaultSwitch
) -> None:
    proxied.set("error", ["s3"])
    threading.Timer(1.0, proxied.off).start()  # S3 answers 500 for a second, then comes back
    s3.put_object(Bucket=provisioned.bucket, Key="landing/orders.csv", Body=b"a,b\n1,2\n")

    event = _first_event(_trigger(provisioned, aws_conn_id="aws_proxied", unreachable_after_seconds=30.0))

    assert event == {"status": "success", "new": 1, "stale": 0}
    assert proxied.status()["injected"]  # it really met the outage


def test_a_lasting_outage_is_reported_once_then_waited_out(provisioned: Any, proxied: FaultSwitch) -> None:
    proxied.set("error", ["s3"])
    started = time.monotonic()

    event = _first_event(_trigger(provisioned, aws_conn_id="aws_proxied", unreachable_after_seconds=1.0))

    assert event["status"] == "unreachable"
    assert time.monotonic() - started >= 1.0
    assert "S3 has not answered" in event["message"] and "InternalError" in event["message"]
    # Reported: the sensor waits on with reporting off, and no event comes while S3 stays down.
    quiet = _trigger(
        provisioned, aws_conn_id="aws_proxied", unreachable_after_seconds=1.0, report_unreachable=False
    )
    assert _asleep(quiet)


def test_without_patience_an_outage_is_an_error_event_as_the_providers_trigger_gives(
    provisioned: Any, proxied: FaultSwitch
) -> None:
    proxied.set("error", ["s3"])
    event = _first_event(_trigger(provisioned, aws_conn_id="aws_proxied"))
    assert event["status"] == "error"
