"""Claims, the ledger and terminal places, against the local S3 endpoint (moto over HTTP)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from clean_zone.config import Settings
from clean_zone.failures import DataQualityError, InvalidFileError
from clean_zone.keys import Place, ledger_key, place_key, reason_key
from clean_zone.lifecycle import Claim, ClaimOutcome, Lifecycle
from clean_zone.storage import ObjectInfo, ObjectStore

RUN_A = "manual__2026-01-01T04:12:00+00:00"
RUN_B = "asset_triggered__2026-01-01T04:12:01+00:00"
CONTENT = b"id,name\n1,alpha\n"

ODD_KEYS = [
    "landing/with space/file name.csv",
    "landing/ünïcødé/日本語データ.csv",
    "landing/a+b=c&d.csv",
    "landing/100%/pct%20encoded%2Bplus.csv",
    # 900 bytes of UTF-8 (fewer characters), with everything above in it too.
    "landing/long name + 100% é/" + "é" * 400 + "k" * (900 - 8 - 20 - 800 - 4) + ".csv",
]


def suspend_versioning(store: ObjectStore) -> None:
    """New uploads get no version to pin (version id "null"), as in a bucket never versioned."""
    store.client.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": "Suspended"})


@pytest.fixture(params=["versioned", "unversioned"])
def lifecycle(request: pytest.FixtureRequest, s3: Any, provisioned: Settings) -> Lifecycle:
    """Both claim modes: in place (a versioned bucket, as provisioned) and moved to processing/."""
    store = ObjectStore(s3, provisioned.bucket)
    if request.param == "unversioned":
        suspend_versioning(store)
    return Lifecycle(store, provisioned)


@pytest.fixture
def in_place(s3: Any, provisioned: Settings) -> Lifecycle:
    return Lifecycle(ObjectStore(s3, provisioned.bucket), provisioned)


@pytest.fixture
def moving(s3: Any, provisioned: Settings) -> Lifecycle:
    store = ObjectStore(s3, provisioned.bucket)
    suspend_versioning(store)
    return Lifecycle(store, provisioned)


def put(lifecycle: Lifecycle, key: str, body: bytes = CONTENT) -> None:
    lifecycle.store.client.put_object(Bucket=lifecycle.store.bucket, Key=key, Body=body)


def keys(lifecycle: Lifecycle, prefix: str = "") -> set[str]:
    return {info.key for info in lifecycle.store.list_keys(prefix)}


def body(lifecycle: Lifecycle, key: str) -> bytes:
    return b"".join(lifecycle.store.iter_chunks(key))


def claimed(lifecycle: Lifecycle, key: str, run_id: str = RUN_A) -> Claim:
    outcome, claim = lifecycle.claim(key, run_id)
    assert outcome is ClaimOutcome.CLAIMED
    assert claim is not None
    return claim


def held(lifecycle: Lifecycle, rel: str) -> set[str]:
    """Where a claimed file waits in this claim mode: its landing key, or processing/."""
    versioning = lifecycle.store.client.get_bucket_versioning(Bucket=lifecycle.store.bucket)
    if versioning.get("Status") == "Enabled":
        return {f"landing/{rel}"}
    return {place_key(lifecycle.settings, Place.PROCESSING, rel)}


def test_claim_moves_the_file_to_processing(moving: Lifecycle) -> None:
    lifecycle = moving
    put(lifecycle, "landing/partner/orders.csv")
    claim = claimed(lifecycle, "landing/partner/orders.csv")
    assert not claim.in_place
    assert claim.relative_key == "partner/orders.csv"
    assert claim.key == "landing/partner/orders.csv"
    assert claim.size == len(CONTENT)
    assert claim.run_id == RUN_A
    assert claim.location == "s3://clean-zone/processing/partner/orders.csv"
    assert keys(lifecycle, "landing/") == set()
    assert body(lifecycle, "processing/partner/orders.csv") == CONTENT
    assert lifecycle.store.head(ledger_key(lifecycle.settings, claim.key, claim.etag)) is not None
    assert Claim.from_dict(claim.to_dict()) == claim


def test_claim_in_place_leaves_the_file_where_it_landed_and_pins_its_version(in_place: Lifecycle) -> None:
    lifecycle = in_place
    put(lifecycle, "landing/partner/orders.csv")
    claim = claimed(lifecycle, "landing/partner/orders.csv")
    assert claim.in_place
    assert claim.location == "s3://clean-zone/landing/partner/orders.csv"
    current = lifecycle.store.head("landing/partner/orders.csv")
    assert current is not None and claim.version_id == current.version_id
    assert keys(lifecycle, "processing/") == set()
    assert lifecycle.store.head(ledger_key(lifecycle.settings, claim.key, claim.etag)) is not None
    assert Claim.from_dict(claim.to_dict()) == claim


class _CountingCopies:
    """Counts the CopyObject requests a client sends (a botocore event hook: the requests still go out)."""

    def __init__(self, client: Any) -> None:
        self.copies = 0
        client.meta.events.register("before-call.s3.CopyObject", self._count)

    def _count(self, **_: Any) -> None:
        self.copies += 1


@pytest.mark.parametrize("route", ["events", "sensor", "both"])
@pytest.mark.parametrize(("versioned", "copies"), [(True, 1), (False, 2)], ids=["versioned", "unversioned"])
def test_a_file_is_copied_once_on_its_way_to_its_terminal_place_when_claimed_in_place(
    s3: Any, provisioned: Settings, route: str, versioned: bool, copies: int
) -> None:
    client = ObjectStore(s3, provisioned.bucket).client
    counter = _CountingCopies(client)
    store = ObjectStore(client, provisioned.bucket)
    if not versioned:
        suspend_versioning(store)
    lifecycle = Lifecycle(store, dataclasses.replace(provisioned, trigger_route=route))
    put(lifecycle, "landing/orders.csv")
    claim = claimed(lifecycle, "landing/orders.csv")
    assert claim.in_place is versioned  # whatever the route: the landing watcher is not woken by it
    assert lifecycle.chunks(claim) is not None and body(lifecycle, lifecycle.held_key(claim)) == CONTENT
    assert lifecycle.finish(claim, Place.PROCESSED) == "s3://clean-zone/processed/orders.csv"
    assert counter.copies == copies
    assert keys(lifecycle, "landing/") == set() and keys(lifecycle, "processing/") == set()
    assert body(lifecycle, "processed/orders.csv") == CONTENT


def test_a_newer_upload_to_a_key_claimed_in_place_is_left_to_its_own_run(in_place: Lifecycle) -> None:
    lifecycle = in_place
    put(lifecycle, "landing/orders.csv")
    claim = claimed(lifecycle, "landing/orders.csv")
    newer = CONTENT + b"2,beta\n"
    put(lifecycle, "landing/orders.csv", newer)  # the partner uploads again while the run works
    assert b"".join(lifecycle.chunks(claim)) == CONTENT  # the run reads the upload it claimed
    lifecycle.finish(claim, Place.PROCESSED)
    assert body(lifecycle, "processed/orders.csv") == CONTENT
    assert body(lifecycle, "landing/orders.csv") == newer  # not hidden: its own run takes it
    outcome, second = lifecycle.claim("landing/orders.csv", RUN_B)
    assert outcome is ClaimOutcome.CLAIMED and second is not None and second.size == len(newer)


def test_a_key_deleted_after_its_claim_in_place_is_resumed_from_the_claimed_version(
    in_place: Lifecycle,
) -> None:
    lifecycle = in_place
    put(lifecycle, "landing/orders.csv")
    first = claimed(lifecycle, "landing/orders.csv")
    lifecycle.store.delete("landing/orders.csv")  # a plain delete: the claimed version stays readable
    outcome, again = lifecycle.claim("landing/orders.csv", RUN_A)  # a retry, without the event's version
    assert outcome is ClaimOutcome.RESUMED
    assert again == first
    assert lifecycle.finish(first, Place.PROCESSED) == "s3://clean-zone/processed/orders.csv"
    assert body(lifecycle, "processed/orders.csv") == CONTENT


def test_a_retry_of_the_same_run_resumes(lifecycle: Lifecycle) -> None:
    put(lifecycle, "landing/orders.csv")
    first = claimed(lifecycle, "landing/orders.csv")
    outcome, again = lifecycle.claim("landing/orders.csv", RUN_A)
    assert outcome is ClaimOutcome.RESUMED
    assert again == first
    assert keys(lifecycle, "landing/") | keys(lifecycle, "processing/") == held(lifecycle, "orders.csv")


def test_another_run_finds_the_file_taken(lifecycle: Lifecycle) -> None:
    put(lifecycle, "landing/orders.csv")
    first = claimed(lifecycle, "landing/orders.csv")
    # The second trigger (sensor and event both fired) knows the object's ETag.
    assert lifecycle.claim("landing/orders.csv", RUN_B, etag=first.etag) == (ClaimOutcome.TAKEN, None)
    assert keys(lifecycle, "landing/") | keys(lifecycle, "processing/") == held(lifecycle, "orders.csv")


class _KilledMidMove(ObjectStore):
    """A worker that dies after recording its claim, before moving the file."""

    def copy(self, source_key: str, target_key: str, **_: object) -> ObjectInfo:
        raise SystemExit("worker killed")


def test_a_claim_cut_short_mid_move_is_taken_for_others_and_resumed_by_its_run(moving: Lifecycle) -> None:
    lifecycle = moving
    put(lifecycle, "landing/orders.csv")
    dying = Lifecycle(_KilledMidMove(lifecycle.store.client, lifecycle.store.bucket), lifecycle.settings)
    with pytest.raises(SystemExit):
        dying.claim("landing/orders.csv", RUN_A)
    assert keys(lifecycle, "landing/") == {"landing/orders.csv"}  # nothing lost, nothing moved
    assert lifecycle.claim("landing/orders.csv", RUN_B) == (ClaimOutcome.TAKEN, None)
    outcome, claim = lifecycle.claim("landing/orders.csv", RUN_A)
    assert outcome is ClaimOutcome.RESUMED
    assert claim is not None
    assert claim.location == "s3://clean-zone/processing/orders.csv"
    assert keys(lifecycle, "landing/") == set()


def test_finish_moves_to_the_terminal_place_and_is_idempotent(lifecycle: Lifecycle) -> None:
    put(lifecycle, "landing/orders.csv")
    claim = claimed(lifecycle, "landing/orders.csv")
    url = lifecycle.finish(claim, Place.PROCESSED)
    assert url == "s3://clean-zone/processed/orders.csv"
    assert lifecycle.finish(claim, Place.PROCESSED) == url  # a cleared task runs it again
    assert keys(lifecycle, "processing/") == set()
    assert keys(lifecycle, "processed/") == {"processed/orders.csv"}
    assert body(lifecycle, "processed/orders.csv") == CONTENT
    record = lifecycle.store.get_json(ledger_key(lifecycle.settings, claim.key, claim.etag))
    assert (record["state"], record["run_id"]) == ("processed", RUN_A)
    assert record["location"] == "processed/orders.csv"
    assert lifecycle.locate(claim.relative_key) == (Place.PROCESSED, "processed/orders.csv")


def test_finish_after_a_plain_delete_moves_the_claimed_version(in_place: Lifecycle) -> None:
    lifecycle = in_place
    put(lifecycle, "landing/orders.csv")
    claim = claimed(lifecycle, "landing/orders.csv")
    lifecycle.store.delete(lifecycle.held_key(claim))  # the bucket is versioned: the version stays
    assert lifecycle.finish(claim, Place.PROCESSED) == "s3://clean-zone/processed/orders.csv"
    assert body(lifecycle, "processed/orders.csv") == CONTENT


def test_finish_without_the_file_anywhere_records_it_gone_and_writes_no_reason(lifecycle: Lifecycle) -> None:
    put(lifecycle, "landing/orders.txt")
    claim = claimed(lifecycle, "landing/orders.txt")
    # Gone for good: its version deleted (unversioned, a plain delete removes the one "null" version).
    version = {"VersionId": claim.version_id} if claim.version_id else {}
    lifecycle.store.client.delete_object(
        Bucket=lifecycle.store.bucket, Key=lifecycle.held_key(claim), **version
    )
    with pytest.raises(InvalidFileError) as caught:
        lifecycle.finish(claim, Place.REJECTED, {"reason": "invalid_extension"})
    assert caught.value.reason == "gone"
    assert keys(lifecycle, "rejected/") == set()  # no reason file without its file
    record = lifecycle.store.get_json(ledger_key(lifecycle.settings, claim.key, claim.etag))
    assert (record["state"], record["run_id"]) == ("gone", RUN_A)


def test_fail_into_quarantine_writes_the_reason_beside_the_file(lifecycle: Lifecycle) -> None:
    put(lifecycle, "landing/bad.csv", b"a,b\n1\n")
    claim = claimed(lifecycle, "landing/bad.csv")
    problem = DataQualityError("ragged rows", reason="ragged_rows")
    error = lifecycle.fail_into(claim, Place.QUARANTINE, problem)
    assert error.location == "s3://clean-zone/quarantine/bad.csv"
    assert keys(lifecycle, "quarantine/") == {"quarantine/bad.csv", "quarantine/bad.csv.reason.json"}
    reason = lifecycle.store.get_json("quarantine/bad.csv.reason.json")
    assert reason["reason"] == "ragged_rows"
    assert reason["failure_class"] == "data_quality"
    assert reason["source_key"] == "landing/bad.csv"
    assert reason["run_id"] == RUN_A


def test_redelivery_after_finish_is_a_duplicate_and_new_content_is_a_new_file(lifecycle: Lifecycle) -> None:
    put(lifecycle, "landing/orders.csv")
    lifecycle.finish(claimed(lifecycle, "landing/orders.csv"), Place.PROCESSED)
    put(lifecycle, "landing/orders.csv")  # the partner sends the same file again
    assert lifecycle.claim("landing/orders.csv", RUN_B) == (ClaimOutcome.DUPLICATE, None)
    assert keys(lifecycle, "landing/") == set()
    assert keys(lifecycle, "duplicates/") == {"duplicates/orders.csv", "duplicates/orders.csv.reason.json"}
    assert body(lifecycle, "duplicates/orders.csv") == CONTENT
    reason = lifecycle.store.get_json(reason_key(lifecycle.settings, Place.DUPLICATES, "orders.csv"))
    assert reason["reason"] == "duplicate"
    assert reason["first_outcome"] == "processed"
    assert reason["first_processed_by_run"] == RUN_A
    assert reason["source_key"] == "landing/orders.csv"
    assert keys(lifecycle, "processed/") == {"processed/orders.csv"}  # the first copy is untouched

    put(lifecycle, "landing/orders.csv", CONTENT + b"2,beta\n")  # same name, corrected content
    claim = claimed(lifecycle, "landing/orders.csv", "manual__2026-01-02T00:00:00+00:00")
    assert claim.size == len(CONTENT) + len(b"2,beta\n")


def test_folder_markers_are_ignored_and_missing_keys_are_gone(lifecycle: Lifecycle) -> None:
    put(lifecycle, "landing/new folder/", b"")
    assert lifecycle.claim("landing/new folder/", RUN_A) == (ClaimOutcome.IGNORED, None)
    assert keys(lifecycle, "landing/") == {"landing/new folder/"}  # left alone
    assert keys(lifecycle, "processing/") == set()
    assert keys(lifecycle, lifecycle.settings.state_prefix) == set()  # no claim recorded
    assert lifecycle.claim("landing/never-arrived.csv", RUN_A) == (ClaimOutcome.GONE, None)
    assert lifecycle.claim("landing/never-arrived.csv", RUN_A, etag="0" * 32) == (ClaimOutcome.GONE, None)


def test_odd_keys_end_to_end(lifecycle: Lifecycle) -> None:
    # One test for all of them: each needs a fresh provisioned endpoint otherwise (slow).
    for number, key in enumerate(ODD_KEYS):
        rel = key.removeprefix("landing/")
        run_id = f"{RUN_A}-{number}"
        put(lifecycle, key)
        claim = claimed(lifecycle, key, run_id)
        assert claim.relative_key == rel
        assert keys(lifecycle, "landing/") | keys(lifecycle, "processing/") == held(lifecycle, rel), key
        assert lifecycle.claim(key, run_id)[0] is ClaimOutcome.RESUMED, key
        url = lifecycle.finish(claim, Place.PROCESSED, {"reason": "processed"})
        assert url == f"s3://clean-zone/processed/{rel}"
        assert {f"processed/{rel}", f"processed/{rel}.reason.json"} <= keys(lifecycle, "processed/"), key
        assert body(lifecycle, f"processed/{rel}") == CONTENT, key
        assert lifecycle.store.get_json(f"processed/{rel}.reason.json")["source_key"] == key
        assert keys(lifecycle, "landing/") == set(), key
        assert keys(lifecycle, "processing/") == set(), key
        # A re-delivery of the same content is recognised through the hashed ledger key.
        put(lifecycle, key)
        assert lifecycle.claim(key, RUN_B)[0] is ClaimOutcome.DUPLICATE, key
        assert f"duplicates/{rel}" in keys(lifecycle, "duplicates/"), key
    assert len(keys(lifecycle, "processed/")) == 2 * len(ODD_KEYS)
