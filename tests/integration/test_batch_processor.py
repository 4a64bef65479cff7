"""BatchProcessor against the moto server: taking a manifest, the late-file window (with a clock
under the test's control), verification by S3 checksum or by streaming, quarantine, processing,
the summary, and re-runs that must change nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from clean_zone import manifest
from clean_zone.batch import BatchProcessor, _stored_digest, _unversioned_token
from clean_zone.batch_records import FileStatus, Outcome
from clean_zone.config import Settings
from clean_zone.failures import EndpointError
from clean_zone.keys import BatchLayout, run_slug
from clean_zone.manifest import FileEntry, Manifest, ManifestError
from clean_zone.storage import ObjectInfo, ObjectStore
from tests.support.clock import FakeClock

CSV = b"id,name\n1,alpha\n2,beta\n"
RUN = "manual__2026-09-14T06:00:00+00:00"


@pytest.fixture
def s3(aws_env: str) -> Any:
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def store(s3: Any) -> ObjectStore:
    bucket = f"batch-unit-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return ObjectStore(s3, bucket)


@pytest.fixture
def settings(store: ObjectStore) -> Settings:
    return Settings(bucket=store.bucket, failure_rate=0.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def batches(store: ObjectStore, settings: Settings, clock: FakeClock) -> BatchProcessor:
    return BatchProcessor(store, settings, clock=clock)


def entry(key: str, body: bytes, *, algorithm: str = "SHA256", rows: int | None = None) -> FileEntry:
    hasher = hashlib.sha256() if algorithm == "SHA256" else hashlib.md5(usedforsecurity=False)
    hasher.update(body)
    return FileEntry(key, len(body), algorithm, hasher.hexdigest(), rows)


def deliver(store: ObjectStore, batch_id: str, files: dict[str, bytes], **put: Any) -> Manifest:
    for key, body in files.items():
        store.client.put_object(Bucket=store.bucket, Key=f"batches/{batch_id}/{key}", Body=body, **put)
    return Manifest(batch_id=batch_id, files=tuple(entry(k, v) for k, v in files.items()))


def put_manifest(store: ObjectStore, name: str, batch: Manifest | bytes) -> str:
    if isinstance(batch, Manifest):
        data = manifest.dumps(manifest.build(batch.batch_id, batch.files))
    else:
        data = batch
    store.put_bytes(f"manifests/{name}", data)
    return f"manifests/{name}"


def keys(store: ObjectStore, prefix: str = "") -> set[str]:
    return {info.key for info in store.list_keys(prefix)}


# --- small pure pieces ------------------------------------------------------------------------------


def test_only_a_full_object_checksum_is_conclusive_about_a_difference():
    sha = hashlib.sha256(CSV)
    b64 = __import__("base64").b64encode(sha.digest()).decode()
    full = ObjectInfo("k", len(CSV), "etag", checksum_sha256=b64, checksum_type="FULL_OBJECT")
    unknown = ObjectInfo("k", len(CSV), "etag", checksum_sha256=b64)
    composite = ObjectInfo("k", len(CSV), "etag", checksum_sha256=b64 + "-3", checksum_type="COMPOSITE")
    assert _stored_digest(full, "SHA256") == (sha.hexdigest(), True, "s3_checksum")
    assert _stored_digest(unknown, "SHA256") == (sha.hexdigest(), False, "s3_checksum")
    assert _stored_digest(composite, "SHA256") == (None, False, "")
    md5 = hashlib.md5(CSV, usedforsecurity=False).hexdigest()
    assert _stored_digest(ObjectInfo("k", 1, md5), "MD5") == (md5, False, "etag_md5")
    assert _stored_digest(ObjectInfo("k", 1, md5 + "-2"), "MD5") == (None, False, "")


# --- taking a manifest ------------------------------------------------------------------------------


def test_a_run_takes_the_oldest_manifest_and_keeps_it_on_a_rerun(batches, store):
    store.put_bytes("manifests/", b"")  # a folder marker is never taken
    put_manifest(store, "a.json", b"{}")
    put_manifest(store, "b.json", b"{}")

    taken = batches.take_manifest(RUN)
    assert taken is not None
    assert taken.key == "manifests/a.json"
    assert taken.held_key == f"processing/manifests/{run_slug(RUN)}/a.json"
    assert keys(store, "manifests/") == {"manifests/", "manifests/b.json"}
    # The same run again (a retry, a cleared run): the same manifest, nothing more taken.
    assert batches.take_manifest(RUN) == taken
    assert keys(store, "manifests/") == {"manifests/", "manifests/b.json"}
    other = batches.take_manifest("another-run")
    assert other is not None and other.key == "manifests/b.json"
    assert batches.take_manifest("a-third-run") is None
    assert batches.run_record("a-third-run") is None


def test_a_take_interrupted_between_record_and_move_is_finished_by_the_retry(batches, store):
    put_manifest(store, "a.json", b"{}")
    taken = batches.take_manifest(RUN)
    assert taken is not None
    store.move(taken.held_key, taken.key)  # as if the first try died before its move

    again = batches.take_manifest(RUN)
    assert again == taken
    assert store.head(taken.held_key) is not None
    assert store.head(taken.key) is None


def versioned(store: ObjectStore) -> None:
    store.client.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"})


@pytest.mark.parametrize("with_versions", [True, False], ids=["versioned", "unversioned"])
def test_runs_racing_for_the_same_manifests_take_each_exactly_once(batches, store, with_versions):
    if with_versions:
        versioned(store)
    names = [f"manifests/m{i}.json" for i in range(3)]
    for name in names:
        store.put_bytes(name, b"{}")
    runs = [f"run-{i}" for i in range(8)]
    start = threading.Barrier(len(runs))

    def take(run_id: str) -> Any:
        start.wait()  # every run looks at once, as sensors woken by the same manifests do
        return batches.take_manifest(run_id)

    with ThreadPoolExecutor(len(runs)) as pool:
        results = list(pool.map(take, runs))

    taken = [t for t in results if t is not None]
    assert sorted(t.key for t in taken) == names  # each one taken, none twice
    assert len({t.run_id for t in taken}) == len(names)
    assert len(keys(store, "processing/manifests/")) == len(names)
    assert keys(store, "manifests/") == set()
    losers = {r for r, t in zip(runs, results, strict=True) if t is None}
    assert all(batches.run_record(r) is None for r in losers)


def test_a_manifest_another_run_is_taking_is_left_to_it(batches, store):
    versioned(store)
    put_manifest(store, "a.json", b"{}")
    put_manifest(store, "b.json", b"{}")
    upload = store.head("manifests/a.json")
    assert upload is not None and upload.version_id
    # Another run won a.json's take a moment ago and has not moved it yet.
    take = BatchLayout(batches.settings).manifest_take(upload.key, upload.version_id)
    store.put_json(take, {"run_id": "other"})

    taken = batches.take_manifest(RUN)

    assert taken is not None and taken.key == "manifests/b.json"
    assert taken.version_id is not None
    assert keys(store, "manifests/") == {"manifests/a.json"}


def test_a_take_released_between_our_put_and_our_read_is_left_to_its_winner(store, settings, clock):
    # Unversioned: the winner deletes its take once the manifest is moved on. Found by CI: a run whose
    # conditional put lost read the take after the winner had released it, and failed.
    layout = BatchLayout(settings)
    put_manifest(store, "a.json", b"{}")
    put_manifest(store, "b.json", b"{}")
    upload = store.head("manifests/a.json")
    assert upload is not None
    take = layout.manifest_take(upload.key, _unversioned_token(upload))
    store.put_json(take, {"run_id": "other"})

    class WinnerFinishesMeanwhile(ObjectStore):
        def put_json(self, key: str, document: Any, *, if_absent: bool = False) -> bool:
            won = super().put_json(key, document, if_absent=if_absent)
            if key == take and not won:  # the other run moves a.json on and releases its take now
                self.move(upload.key, layout.held_manifest("other", upload.key))
                self.delete(take)
            return won

    racing = BatchProcessor(WinnerFinishesMeanwhile(store.client, store.bucket), settings, clock=clock)

    taken = racing.take_manifest(RUN)

    assert taken is not None and taken.key == "manifests/b.json"
    assert keys(store, "manifests/") == set()
    assert layout.held_manifest("other", "manifests/a.json") in keys(store, "processing/")


def test_a_manifest_uploaded_again_under_the_same_name_is_a_new_take(batches, store):
    versioned(store)
    put_manifest(store, "a.json", b"{}")
    first = batches.take_manifest(RUN)
    put_manifest(store, "a.json", b"{}")  # the same bytes, a new upload

    second = batches.take_manifest("another-run")

    assert first is not None and second is not None
    assert second.key == first.key
    assert second.version_id != first.version_id
    assert keys(store, "manifests/") == set()


def test_a_take_keeps_a_newer_upload_of_the_same_name_in_place(batches, store):
    versioned(store)
    put_manifest(store, "a.json", b'{"first": 1}')
    upload = store.head("manifests/a.json")
    assert upload is not None
    put_manifest(store, "a.json", b'{"second": 2}')  # the partner replaced it before the move
    held = BatchLayout(batches.settings).held_manifest(RUN, "manifests/a.json")

    store.move("manifests/a.json", held, version_id=upload.version_id)

    assert store.read_bytes(held, 100) == b'{"first": 1}'
    assert store.read_bytes("manifests/a.json", 100) == b'{"second": 2}'  # not hidden by a delete


def test_a_bad_manifest_is_quarantined_with_a_report_and_the_outcome_recorded(batches, store):
    put_manifest(store, "bad.json", b"not json at all")
    taken = batches.take_manifest(RUN)
    assert taken is not None

    with pytest.raises(ManifestError) as caught:
        batches.read_manifest(taken)

    folder = f"quarantine/manifests/{run_slug(RUN)}/"
    assert caught.value.location == store.url(folder)
    assert keys(store, folder) == {folder + "bad.json", folder + "report.json"}
    report = store.get_json(folder + "report.json")
    assert report["reason"] == "not_json"
    assert report["manifest_key"] == "manifests/bad.json"
    assert store.read_bytes(folder + "bad.json", 100) == b"not json at all"
    record = batches.run_record(RUN)
    assert record is not None and record.outcome == Outcome.REFUSED
    assert record.reason == "not_json"


def test_a_manifest_over_the_size_limit_is_refused_without_reading_it(batches, store, monkeypatch):
    monkeypatch.setattr(manifest, "MAX_MANIFEST_BYTES", 64)
    put_manifest(store, "big.json", b"{" + b" " * 100 + b"}")
    taken = batches.take_manifest(RUN)
    with pytest.raises(ManifestError) as caught:
        batches.read_manifest(taken)
    assert caught.value.reason == "manifest_too_large"


# --- the late-file window ---------------------------------------------------------------------------


def test_a_late_file_inside_the_window_is_waited_for(batches, store, clock):
    batch = deliver(store, "b1", {"a.csv": CSV})
    batch = Manifest("b1", (*batch.files, entry("late.csv", CSV)))
    since, deadline = clock.now, clock.now + 30

    assert batches.look_for_files(batch, deadline, since) is None  # still waiting: the sensor reschedules
    clock.advance(7)
    store.put_bytes("batches/b1/late.csv", CSV)
    arrival = batches.look_for_files(batch, deadline, since)

    assert arrival is not None
    assert arrival.missing == []
    assert arrival.waited_seconds == 7


def test_files_still_missing_when_the_window_closes_are_reported(batches, store, clock):
    batch = Manifest("b1", (entry("a.csv", CSV), entry("never.csv", CSV), entry("sub/gone.csv", CSV)))
    deliver(store, "b1", {"a.csv": CSV})
    since, deadline = clock.now, clock.now + 12

    clock.advance(11.9)
    assert batches.look_for_files(batch, deadline, since) is None
    clock.advance(0.1)
    arrival = batches.look_for_files(batch, deadline, since)

    assert arrival is not None
    assert arrival.missing == ["never.csv", "sub/gone.csv"]
    assert arrival.expected == 3
    assert arrival.waited_seconds == 12


def test_a_window_already_closed_ends_the_wait_at_the_first_look(batches, store, clock):
    batch = Manifest("b1", (entry("never.csv", CSV),))
    arrival = batches.look_for_files(batch, deadline=clock.now - 1, since=clock.now)
    assert arrival is not None and arrival.missing == ["never.csv"]


# --- verification -----------------------------------------------------------------------------------


def test_a_file_with_s3s_stored_sha256_is_verified_without_reading_it(batches, store):
    batch = deliver(store, "b1", {"a.csv": CSV}, ChecksumAlgorithm="SHA256")
    check = batches.verify_file("b1", batch.files[0])
    assert check.status is FileStatus.OK
    assert check.method == "s3_checksum"


def test_without_a_stored_checksum_the_file_is_streamed_and_hashed(batches, store):
    batch = deliver(store, "b1", {"a.csv": CSV})
    check = batches.verify_file("b1", batch.files[0])
    assert check.status is FileStatus.OK
    assert check.method == "streamed"
    assert check.actual_checksum == hashlib.sha256(CSV).hexdigest()


def test_md5_entries_are_verified_by_the_etag_when_it_is_the_md5(batches, store):
    deliver(store, "b1", {"a.csv": CSV})
    check = batches.verify_file("b1", entry("a.csv", CSV, algorithm="MD5"))
    assert check.status is FileStatus.OK
    assert check.method == "etag_md5"


def test_a_multipart_upload_with_a_composite_checksum_is_verified_by_streaming(batches, store):
    body = bytes(range(256)) * (24 * 1024)  # 6 MiB: two parts
    store.client.upload_fileobj(
        io.BytesIO(body),
        store.bucket,
        "batches/b1/big.csv",
        ExtraArgs={"ChecksumAlgorithm": "SHA256"},
        Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024),
    )
    check = batches.verify_file("b1", entry("big.csv", body))
    assert check.status is FileStatus.OK
    assert check.method == "streamed"


@pytest.mark.parametrize(
    ("delivered", "status"),
    [
        (None, FileStatus.MISSING),
        (CSV + b"3,gamma\n", FileStatus.SIZE_MISMATCH),
        (CSV.replace(b"alpha", b"ALPHA"), FileStatus.CHECKSUM_MISMATCH),
    ],
)
def test_missing_resized_and_altered_files_fail_verification(batches, store, delivered, status):
    if delivered is not None:
        deliver(store, "b1", {"a.csv": delivered}, ChecksumAlgorithm="SHA256")
    check = batches.verify_file("b1", entry("a.csv", CSV))
    assert check.status is status
    assert not check.ok
    assert check.describe().startswith(f"{status.value}: a.csv")


# --- quarantine, claim, processing, finishing -------------------------------------------------------


def _taken(batches: BatchProcessor, store: ObjectStore, batch: Manifest, run_id: str = RUN) -> Any:
    put_manifest(store, f"{batch.batch_id}.json", batch)
    taken = batches.take_manifest(run_id)
    assert taken is not None
    return taken


def test_quarantine_moves_the_whole_batch_with_a_report_and_releases_the_claim(batches, store):
    batch = deliver(store, "b1", {"a.csv": CSV, "sub/b.csv": CSV})
    batch = Manifest("b1", (*batch.files, entry("missing.csv", CSV)))
    taken = _taken(batches, store, batch)
    assert batches.claim_batch(taken, batch)

    problems = [{"problem": "missing: missing.csv", "key": "missing.csv"}]
    error = batches.quarantine_batch(taken, batch, problems, stage="verification")

    folder = f"quarantine/batches/b1/{run_slug(RUN)}/"
    assert error.location == store.url(folder)
    assert error.reason == "verification_failed"
    assert "missing: missing.csv" in str(error)
    moved = {"files/a.csv", "files/sub/b.csv", "manifest.json", "report.json"}
    assert keys(store, folder) == {folder + name for name in moved}
    assert store.get_json(folder + "report.json")["files_with_problems"] == 1
    assert keys(store, "batches/") == set()
    assert batches.batch_claim("b1") is None
    record = batches.run_record(RUN)
    assert record is not None and record.outcome == Outcome.QUARANTINED


def test_a_batch_is_claimed_once(batches, store):
    batch = deliver(store, "b1", {"a.csv": CSV})
    taken = _taken(batches, store, batch)
    assert batches.claim_batch(taken, batch) is True
    assert batches.claim_batch(taken, batch) is True  # the same run again
    other = taken.__class__(**{**taken.to_dict(), "run_id": "another-run"})
    assert batches.claim_batch(other, batch) is False


def test_processing_a_csv_writes_its_output_and_summary(batches, store):
    batch = deliver(store, "b1", {"a.csv": CSV, "b.csv.gz": gzip.compress(CSV)})
    taken = _taken(batches, store, batch)
    results = [batches.process_file(taken, "b1", e, f"label-{e.key}") for e in batch.files]
    assert [(r.ok, r.rows) for r in results] == [(True, 2), (True, 2)]
    assert store.read_bytes("processed/batches/b1/files/a.csv.normalized.csv", 1000) == CSV
    assert store.read_bytes("processed/batches/b1/files/b.csv.gz.normalized.csv", 1000) == CSV
    assert store.get_json("processed/batches/b1/files/a.csv.summary.json")["rows"] == 2


@pytest.mark.parametrize(
    ("key", "body", "rows", "reason"),
    [
        ("report.pdf", b"%PDF-1.7", None, "invalid_extension"),
        ("ragged.csv", b"a,b\n1,2,3\n", None, "ragged_rows"),
        ("binary.csv", b"a,b\n\x00\x01\n", None, "binary"),
        ("short.csv", CSV, 3, "row_count_mismatch"),
    ],
)
def test_a_file_the_single_file_pipeline_would_refuse_comes_back_failed(
    batches, store, key, body, rows, reason
):
    deliver(store, "b1", {key: body})
    listed = entry(key, body, rows=rows)
    taken = _taken(batches, store, Manifest("b1", (listed,)))
    result = batches.process_file(taken, "b1", listed, "label")
    assert not result.ok
    assert result.reason == reason
    assert keys(store, "processed/") == set()


def test_a_file_replaced_after_verification_is_not_processed(batches, store):
    batch = deliver(store, "b1", {"a.csv": CSV})
    taken = _taken(batches, store, batch)
    store.put_bytes("batches/b1/a.csv", CSV.replace(b"alpha", b"omega"))  # same size, other bytes
    result = batches.process_file(taken, "b1", batch.files[0], "label")
    assert result.reason == "changed_since_verification"


def test_the_failure_generators_outage_is_an_endpoint_error_to_retry(store, clock):
    flaky = BatchProcessor(store, Settings(bucket=store.bucket, failure_rate=1.0), clock=clock)
    batch = deliver(store, "b1", {"a.csv": CSV})
    taken = _taken(flaky, store, batch)
    with pytest.raises(EndpointError):
        flaky.process_file(taken, "b1", batch.files[0], "label")
    assert keys(store, "processed/") == set()


def test_finishing_moves_everything_writes_the_summary_and_is_safe_to_repeat(batches, store, clock):
    batch = deliver(store, "b1", {"a.csv": CSV, "sub/b.csv": CSV + b"3,gamma\n"})
    taken = _taken(batches, store, batch)
    assert batches.claim_batch(taken, batch)
    results = [batches.process_file(taken, "b1", e, "label") for e in batch.files]
    clock.now += 12.5

    summary = batches.finish_batch(taken, batch, results)

    assert summary["files"] == 2
    assert summary["rows"] == 5
    assert summary["bytes"] == 2 * len(CSV) + len(b"3,gamma\n")
    assert summary["duration_seconds"] == 12.5
    stored = store.get_json("processed/batches/b1/summary.json")
    assert stored == json.loads(json.dumps(summary))
    assert keys(store, "batches/") == set()
    assert keys(store, "processing/") == set()
    assert batches.batch_claim("b1")["state"] == "processed"
    # A re-run: processing finds the files where finishing put them; finishing again moves nothing.
    before = keys(store)
    again = [batches.process_file(taken, "b1", e, "label") for e in batch.files]
    assert [r.ok for r in again] == [True, True]
    assert batches.finish_batch(taken, batch, again)["files"] == 2
    assert keys(store) == before


def test_finishing_resumes_after_a_partial_move(batches, store):
    batch = deliver(store, "b1", {"a.csv": CSV, "b.csv": CSV})
    taken = _taken(batches, store, batch)
    results = [batches.process_file(taken, "b1", e, "label") for e in batch.files]
    layout = BatchLayout(batches.settings)
    # The first try got this far.
    store.move("batches/b1/a.csv", layout.processed_file("b1", batch.files[0].key))

    batches.finish_batch(taken, batch, results)

    assert keys(store, "processed/batches/b1/files/") >= {
        "processed/batches/b1/files/a.csv",
        "processed/batches/b1/files/b.csv",
    }
    assert keys(store, "batches/") == set()


def test_a_reuploaded_manifest_of_a_claimed_batch_is_set_aside(batches, store):
    batch = deliver(store, "b1", {"a.csv": CSV})
    first = _taken(batches, store, batch)
    assert batches.claim_batch(first, batch)
    second = _taken(batches, store, batch, run_id="second-run")
    claim = batches.batch_claim("b1")

    done = batches.set_aside_duplicate(second, batch, claim)

    folder = f"duplicates/manifests/b1/{run_slug('second-run')}/"
    assert done.outcome == Outcome.DUPLICATE
    assert keys(store, folder) == {folder + "b1.json", folder + "note.json"}
    assert store.get_json(folder + "note.json")["first_run_id"] == RUN
    assert keys(store, "batches/") == {"batches/b1/a.csv"}  # the first run's batch is untouched
