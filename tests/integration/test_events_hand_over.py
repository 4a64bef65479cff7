"""The events route's hand-over against the moto server: every event since the last hand-over,
once, and a burst gathered into runs of up to N files while it still arrives.

Airflow's side (the run's triggering events and the asset's inlet events) is a small stand-in with
the same interface; S3 is the real endpoint, and the runs the hand-over would start are recorded.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from clean_zone.airflow_glue import trigger_tasks

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class AssetEvents:
    """The asset's events as the task SDK's inlet accessor gives them (``after``, ``limit``, iterate)."""

    def __init__(self) -> None:
        self.events: list[SimpleNamespace] = []
        self._lock = threading.Lock()

    def add(self, keys: list[str], at: datetime) -> SimpleNamespace:
        records = [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": at.isoformat().replace("+00:00", "Z"),
                "s3": {"bucket": {"name": "clean-zone"}, "object": {"key": key, "eTag": f"e-{key}"}},
            }
            for key in keys
        ]
        batch = [
            {"MessageId": f"m-{key}", "Body": json.dumps({"Records": [r]})}
            for key, r in zip(keys, records, strict=True)
        ]
        event = SimpleNamespace(timestamp=at, extra={"payload": {"message_batch": batch}})
        with self._lock:
            self.events.append(event)
        return event

    def after(self, since: str) -> _Query:
        return _Query(self, datetime.fromisoformat(since))


class _Query:
    def __init__(self, source: AssetEvents, since: datetime) -> None:
        self.source, self.since, self.count = source, since, None

    def limit(self, count: int) -> _Query:
        self.count = count
        return self

    def __iter__(self) -> Any:
        with self.source._lock:
            found = sorted(
                (e for e in self.source.events if e.timestamp >= self.since), key=lambda e: e.timestamp
            )
        return iter(found[: self.count])


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The runs the hand-over starts (Airflow's TriggerDagRun request needs a task process)."""
    runs: list[dict[str, Any]] = []

    def record(triggers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        runs.extend(triggers)
        return [{**t, "started": True} for t in triggers]

    monkeypatch.setattr(trigger_tasks, "start_runs", record)
    return runs


def hand_over(asset: AssetEvents, triggering: list[SimpleNamespace], run_id: str) -> list[dict[str, Any]]:
    context = {
        "triggering_asset_events": {"clean_zone_s3_events": triggering},
        "inlet_events": [asset],
        "run_id": run_id,
    }
    return trigger_tasks.s3_event_runs(**context)


def files(triggers: list[dict[str, Any]]) -> list[str]:
    keys = []
    for trigger in triggers:
        conf = trigger["conf"]
        keys += [f["key"] for f in conf["files"]] if "files" in conf else [conf["key"]]
    return sorted(keys)


def test_a_run_takes_events_airflow_left_out_and_the_next_run_skips_them(s3, provisioned, started):
    asset = AssetEvents()
    first = asset.add(["landing/a.csv"], T0)
    asset.add(["landing/b.csv"], T0 + timedelta(seconds=1))  # arrived after the run was queued

    hand_over(asset, [first], "run-1")

    assert files(started) == ["landing/a.csv", "landing/b.csv"]
    # Airflow gives the next run the event it queued on (b): already handed over, nothing starts.
    started.clear()
    second = asset.add(["landing/c.csv"], T0 + timedelta(seconds=5))
    hand_over(asset, [asset.events[1], second], "run-2")
    assert files(started) == ["landing/c.csv"]
    record = json.loads(
        s3.get_object(Bucket=provisioned.bucket, Key="_state/events/handed-over.json")["Body"].read()
    )
    assert record["run_id"] == "run-2"
    assert datetime.fromisoformat(record["timestamp"]) == second.timestamp


def test_a_file_alone_is_handed_over_at_once(s3, provisioned, started):
    asset = AssetEvents()
    event = asset.add(["landing/alone.csv"], T0)
    begun = time.monotonic()
    hand_over(asset, [event], "run-1")
    assert time.monotonic() - begun < 1.0  # no gathering for a lone file
    assert [t["trigger_dag_id"] for t in started] == ["clean_zone_file_pipeline"]


def test_a_burst_still_arriving_is_gathered_into_runs_of_up_to_n_files(s3, provisioned, started, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BURST_MAX_FILES", "40")
    asset = AssetEvents()
    first = asset.add([f"landing/wave/{n:02}.csv" for n in range(10)], T0)
    batches = iter(range(1, 10))
    pauses: list[float] = []

    def partner_uploads_while_the_hand_over_waits(seconds: float) -> None:
        pauses.append(seconds)
        batch = next(batches)  # one more SQS batch of ten during each pause
        keys = [f"landing/wave/{n:02}.csv" for n in range(batch * 10, batch * 10 + 10)]
        asset.add(keys, T0 + timedelta(seconds=batch))

    monkeypatch.setattr(trigger_tasks, "_pause", partner_uploads_while_the_hand_over_waits)
    hand_over(asset, [first], "run-1")

    # It waited for more while they came, a second at a time, up to N = 40: one run, not four.
    assert pauses == [trigger_tasks.GATHER_POLL_SECONDS] * 3
    assert [len(t["conf"]["files"]) for t in started] == [40]
    taken = files(started)
    # The rest of the burst arrives; the next run hands it over, none of the first forty again.
    started.clear()
    for _ in range(6):
        partner_uploads_while_the_hand_over_waits(0)
    monkeypatch.setattr(trigger_tasks, "_pause", lambda seconds: None)
    hand_over(asset, [asset.events[3]], "run-2")
    rest = files(started)
    assert not set(taken) & set(rest)
    assert sorted(taken + rest) == [f"landing/wave/{n:02}.csv" for n in range(100)]
    assert [len(t["conf"]["files"]) for t in started] == [40, 20]


def test_a_burst_that_stops_is_handed_over_after_one_quiet_look(s3, provisioned, started, monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(trigger_tasks, "_pause", pauses.append)  # counted, not slept
    asset = AssetEvents()
    event = asset.add([f"landing/few/{n}.csv" for n in range(3)], T0)
    hand_over(asset, [event], "run-1")
    assert pauses == [trigger_tasks.GATHER_POLL_SECONDS]  # one quiet look, not the 30 s window
    assert [len(t["conf"]["files"]) for t in started] == [3]
