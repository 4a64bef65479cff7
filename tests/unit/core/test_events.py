"""S3 event notifications (through SQS, maybe inside SNS, or from EventBridge) turned into created objects."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from clean_zone import events
from clean_zone.events import ObjectCreated


def s3_record(
    key: str, bucket: str = "clean-zone", etag: str = "e1", name: str = "ObjectCreated:Put"
) -> dict:
    return {
        "eventName": name,
        "eventTime": "2026-09-14T06:00:00.000Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": "e1"}},
    }


def message(*records: dict[str, Any]) -> dict[str, str]:
    return {"Body": json.dumps({"Records": list(records)})}


def test_an_s3_notification_with_an_url_encoded_key() -> None:
    [created] = events.parse_message_body(json.dumps({"Records": [s3_record("landing/a+b%C3%A4.csv")]}))
    assert created == ObjectCreated("clean-zone", "landing/a bä.csv", "e1", "2026-09-14T06:00:00.000Z")


def test_the_test_event_other_event_names_and_junk_give_nothing() -> None:
    assert events.parse_message_body(json.dumps({"Event": "s3:TestEvent", "Service": "Amazon S3"})) == []
    removed = s3_record("landing/a.csv", name="ObjectRemoved:Delete")
    assert events.parse_message_body(json.dumps({"Records": [removed]})) == []
    assert events.parse_message_body("not json") == []
    assert events.parse_message_body("[1, 2]") == []


def test_an_sns_envelope_is_unwrapped() -> None:
    inner = json.dumps({"Records": [s3_record("landing/a.csv")]})
    body = json.dumps({"Type": "Notification", "Message": inner})
    assert [c.key for c in events.parse_message_body(body)] == ["landing/a.csv"]


def test_an_eventbridge_object_created_event_is_not_decoded() -> None:
    document = {
        "detail-type": "Object Created",
        "time": "2026-09-14T06:00:00Z",
        "detail": {"bucket": {"name": "clean-zone"}, "object": {"key": "landing/a+b.csv", "etag": "e2"}},
    }
    [created] = events.parse_message_body(json.dumps(document))
    assert (created.key, created.etag, created.event_time) == (
        "landing/a+b.csv",
        "e2",
        "2026-09-14T06:00:00Z",
    )


def test_objects_created_keeps_the_landing_prefix_of_the_bucket_once_in_order() -> None:
    messages = [
        message(s3_record("landing/b.csv"), s3_record("landing/a.csv")),
        message(s3_record("landing/b.csv")),  # delivered twice
        message(s3_record("landing/new folder/")),  # a folder marker
        message(s3_record("processed/x.csv")),  # outside the prefix
        message(s3_record("landing/c.csv", bucket="other-bucket")),
    ]
    found = events.objects_created(messages, "clean-zone", "landing/")
    assert [c.key for c in found] == ["landing/b.csv", "landing/a.csv"]


def test_messages_come_from_the_asset_events_trigger_payload() -> None:
    batch = [{"Body": "{}"}, "not a message"]
    asset_events = [
        SimpleNamespace(extra={"payload": {"message_batch": batch}}),
        SimpleNamespace(extra={"message_batch": [{"Body": "x"}]}),
        SimpleNamespace(extra=None),
    ]
    assert events.messages_from_asset_events(asset_events) == [{"Body": "{}"}, {"Body": "x"}]


def test_one_run_id_per_upload() -> None:
    first = events.pipeline_run_id("clean-zone", "landing/a.csv", "2026-09-14T06:00:00+00:00")
    assert first.startswith("s3__20260914T060000__")
    assert first == events.pipeline_run_id("clean-zone", "landing/a.csv", "2026-09-14T06:00:00+00:00")
    assert first != events.pipeline_run_id("clean-zone", "landing/a.csv", "2026-09-14T06:00:01+00:00")
    assert events.pipeline_run_id("clean-zone", "landing/a.csv", None).startswith("s3____")
