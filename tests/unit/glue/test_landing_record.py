"""The landing watcher's record of what it handed over (plugins/clean_zone_landing_trigger.py): which
files wake the sensor, and what the record keeps after a hand-over."""

from __future__ import annotations

import json

from clean_zone_landing_trigger import HandedOver, ListedObject, upload_of

T0 = 1_800_000_000.0
RECHECK = 300.0


def listed(
    key: str, etag: str = "e1", modified: str = "2026-12-02T10:00:00+00:00", size: int = 5
) -> ListedObject:
    return ListedObject(key, size, f'"{etag}"', modified)


def record_of(*items: ListedObject, at: float = T0, checked_at: float = T0) -> HandedOver:
    return HandedOver({item.key: (upload_of(item), at) for item in items}, checked_at)


def keys(items: list[ListedObject]) -> list[str]:
    return [item.key for item in items]


def test_an_empty_record_finds_every_file_new_and_no_folder_marker() -> None:
    markers = [listed("landing/b/", size=0), listed("landing/d/", size=0)]
    files = [listed("landing/a.csv"), *markers, listed("landing/b/c.csv")]

    new, stale = HandedOver().waiting(files, T0, RECHECK)

    assert keys(new) == ["landing/a.csv", "landing/b/c.csv"]
    assert stale == []


def test_a_key_ending_in_a_slash_with_content_is_a_file() -> None:
    new, _ = HandedOver().waiting([listed("landing/odd/", size=3)], T0, RECHECK)
    assert keys(new) == ["landing/odd/"]


def test_files_handed_over_do_not_wake_it_until_a_new_upload_replaces_them() -> None:
    a, b = listed("landing/a.csv"), listed("landing/b.csv")
    record = record_of(a, b)

    assert record.waiting([a, b], T0 + 10, RECHECK) == ([], [])
    # Same key, new content (ETag) or same content uploaded again (LastModified): a new upload.
    changed = listed("landing/a.csv", etag="e2")
    again = listed("landing/b.csv", modified="2026-12-02T10:05:00+00:00")
    new, _ = record.waiting([changed, again], T0 + 10, RECHECK)
    assert new == [changed, again]


def test_etag_quotes_do_not_matter() -> None:
    quoted = listed("landing/a.csv")
    bare = ListedObject(quoted.key, quoted.size, "e1", quoted.last_modified)
    assert upload_of(quoted) == upload_of(bare)
    assert record_of(quoted).waiting([bare], T0, RECHECK) == ([], [])


def test_files_waiting_long_are_stale_once_per_recheck_interval() -> None:
    a = listed("landing/a.csv")
    record = record_of(a, at=T0, checked_at=T0)

    assert record.waiting([a], T0 + RECHECK - 1, RECHECK) == ([], [])
    assert record.waiting([a], T0 + RECHECK, RECHECK) == ([], [a])
    # Looked at again: the record's re-check time moves on, and the file is handed over anew.
    after = record.after([a], [a], T0 + RECHECK, rechecked=True)
    assert after.checked_at == T0 + RECHECK
    assert after.waiting([a], T0 + 2 * RECHECK - 1, RECHECK) == ([], [])


def test_a_recheck_interval_of_zero_never_rechecks() -> None:
    a = listed("landing/a.csv")
    assert record_of(a, at=0.0, checked_at=0.0).waiting([a], T0, 0.0) == ([], [])


def test_a_recheck_due_leaves_out_files_handed_over_recently() -> None:
    old, recent = listed("landing/old.csv"), listed("landing/recent.csv")
    record = HandedOver({old.key: (upload_of(old), T0), recent.key: (upload_of(recent), T0 + 250)}, T0)

    assert record.waiting([old, recent], T0 + RECHECK, RECHECK) == ([], [old])


def test_after_keeps_only_files_still_listed_and_stamps_those_handed_over() -> None:
    a, b, c = listed("landing/a.csv"), listed("landing/b.csv"), listed("landing/c.csv")
    record = record_of(a, b, at=T0)
    b2 = listed("landing/b.csv", etag="e9")

    after = record.after([b2, c], [c], T0 + 60, rechecked=False)

    # a left landing/ (its run finished); b was replaced by a new upload not yet handed over; c is new.
    assert after.files == {c.key: (upload_of(c), T0 + 60)}
    assert after.checked_at == T0
    assert keys(after.waiting([b2, c], T0 + 61, RECHECK)[0]) == ["landing/b.csv"]


def test_files_left_over_the_cycle_limit_stay_new() -> None:
    files = [listed(f"landing/{n}.csv") for n in range(5)]
    after = HandedOver().after(files, files[:3], T0, rechecked=False)
    assert keys(after.waiting(files, T0, RECHECK)[0]) == ["landing/3.csv", "landing/4.csv"]


def test_the_record_survives_json_and_a_damaged_one_reads_as_empty() -> None:
    record = record_of(listed("landing/a b.csv"), listed("landing/ü.csv"), at=T0 + 1, checked_at=T0)

    assert HandedOver.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert HandedOver.from_json(None) == HandedOver()
    assert HandedOver.from_json(["not", "a", "record"]) == HandedOver()
    assert HandedOver.from_json({"files": {"landing/x.csv": "bad"}}).files == {}
