"""The events route's SQS watcher trigger against the moto server: a lone message fires at once,
a burst already queued fires as one event, and every message it fired with is gone from the queue."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import boto3
from clean_zone_sqs_trigger import SqsDrainTrigger


def _trigger(provisioned: Any, **overrides: Any) -> SqsDrainTrigger:
    settings = {
        "sqs_queue": provisioned.events_queue_url,
        "aws_conn_id": "aws_default",
        "region_name": provisioned.region,
        "max_messages": 10,
        "wait_time_seconds": 5,
        "waiter_delay": 1,
        "max_drain_messages": 100,
        **overrides,
    }
    return SqsDrainTrigger(**settings)


def _first_event(trigger: SqsDrainTrigger) -> list[dict[str, Any]]:
    async def first() -> list[dict[str, Any]]:
        async for event in trigger.run():
            return event.payload["message_batch"]
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout=30))


def _empty(sqs: Any, url: str) -> None:
    while sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        pass  # S3's own test event and anything an earlier test left


def _queue_with(provisioned: Any, count: int) -> tuple[Any, str]:
    """The events queue, emptied, then holding ``count`` messages ``{"n": 0}`` ... (a burst)."""
    sqs = boto3.client("sqs", region_name=provisioned.region)
    url = provisioned.events_queue_url
    _empty(sqs, url)
    for n in range(count):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}))
    return sqs, url


def test_a_burst_already_queued_fires_as_one_event_and_leaves_the_queue_empty(provisioned):
    sqs, url = _queue_with(provisioned, 35)

    batch = _first_event(_trigger(provisioned))

    assert sorted(json.loads(m["Body"])["n"] for m in batch) == list(range(35))
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None  # deleted


def test_draining_stops_at_its_limit_and_the_rest_waits_for_the_next_event(provisioned):
    _queue_with(provisioned, 25)

    first = _first_event(_trigger(provisioned, max_drain_messages=20))
    second = _first_event(_trigger(provisioned, max_drain_messages=20))

    assert len(first) == 20
    assert len(second) == 5
    assert sorted(json.loads(m["Body"])["n"] for m in first + second) == list(range(25))


def test_a_lone_message_fires_as_soon_as_it_arrives(provisioned):
    sqs = boto3.client("sqs", region_name=provisioned.region)
    url = provisioned.events_queue_url
    _empty(sqs, url)
    trigger = _trigger(provisioned, wait_time_seconds=20)
    sent_at: list[float] = []

    async def send_later() -> None:
        await asyncio.sleep(1.5)
        await asyncio.to_thread(sqs.send_message, QueueUrl=url, MessageBody="alone")
        sent_at.append(time.monotonic())

    async def watch() -> list[dict[str, Any]]:
        sender = asyncio.create_task(send_later())
        async for event in trigger.run():
            await sender
            return event.payload["message_batch"]
        raise AssertionError("no event")

    batch = asyncio.run(asyncio.wait_for(watch(), timeout=30))

    assert [m["Body"] for m in batch] == ["alone"]
    assert time.monotonic() - sent_at[0] < 2.0  # the long poll answered, not the 20 s wait


def test_it_serializes_to_its_own_class_path(provisioned):
    path, kwargs = _trigger(provisioned, max_drain_messages=7).serialize()
    assert path == "clean_zone_sqs_trigger.SqsDrainTrigger"
    again = SqsDrainTrigger(**kwargs)
    assert (again.max_drain_messages, again.wait_time_seconds) == (7, 5)
