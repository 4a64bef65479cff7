"""ObjectStore against the moto server: reads stream, writes can be conditional, moves never lose a file,
and S3 trouble becomes the project's failure classes."""

from __future__ import annotations

import io
import socket
from typing import Any

import boto3
import pytest
from botocore.config import Config

from clean_zone.failures import EndpointError
from clean_zone.storage import ObjectMissing, ObjectStore


@pytest.fixture
def store(s3: Any, provisioned: Any) -> ObjectStore:
    return ObjectStore(s3, provisioned.bucket)


def test_head_of_a_missing_key_is_none_and_of_a_present_one_describes_it(store: ObjectStore) -> None:
    assert store.head("landing/none.csv") is None
    store.put_bytes("landing/a.csv", b"id\n1\n")
    info = store.head("landing/a.csv")
    assert info is not None
    assert (info.key, info.size) == ("landing/a.csv", 5)
    assert info.etag and not info.etag.startswith('"')
    assert info.last_modified


def test_reads_stream_in_chunks_and_small_reads_are_bounded(store: ObjectStore) -> None:
    store.put_bytes("k", b"abcdefghij")
    assert list(store.iter_chunks("k", chunk_size=4)) == [b"abcd", b"efgh", b"ij"]
    assert store.read_bytes("k", limit=10) == b"abcdefghij"
    with pytest.raises(ValueError, match="larger than 9 bytes"):
        store.read_bytes("k", limit=9)
    with pytest.raises(ObjectMissing):
        list(store.iter_chunks("missing"))


def test_a_conditional_put_writes_only_the_first_time(store: ObjectStore) -> None:
    assert store.put_json("_state/x.json", {"run": 1}, if_absent=True)
    assert not store.put_json("_state/x.json", {"run": 2}, if_absent=True)
    assert store.get_json("_state/x.json") == {"run": 1}
    assert store.put_json("_state/x.json", {"run": 3})  # unconditional: overwrites
    assert store.get_json("_state/x.json") == {"run": 3}


def test_list_keys_lists_under_the_prefix_in_key_order(store: ObjectStore) -> None:
    for key in ("in/b.csv", "in/a/c.csv", "in/", "out/d.csv"):
        store.put_bytes(key, b"x" if key.endswith(".csv") else b"")
    assert [(i.key, i.size) for i in store.list_keys("in/")] == [
        ("in/", 0),
        ("in/a/c.csv", 1),
        ("in/b.csv", 1),
    ]


def test_move_copies_confirms_then_deletes(store: ObjectStore) -> None:
    store.upload_stream("landing/a.csv", io.BytesIO(b"id\n1\n"))
    moved = store.move("landing/a.csv", "processed/a.csv")
    assert moved.size == 5
    assert store.head("landing/a.csv") is None
    assert store.read_bytes("processed/a.csv", 100) == b"id\n1\n"
    with pytest.raises(ObjectMissing):
        store.move("landing/a.csv", "processed/again.csv")


def test_a_copy_describes_the_object_it_made_as_a_head_would(store: ObjectStore) -> None:
    # The copy is described from CopyObject's answer (no HEAD): it must say what a HEAD says.
    store.put_bytes("landing/v.csv", b"id\n1\n")
    source = store.head("landing/v.csv")
    assert source is not None
    for known in (None, source):  # looked up by the copy, or handed over by the caller
        copied = store.copy("landing/v.csv", "processed/v.csv", version_id=source.version_id, source=known)
        head = store.head("processed/v.csv")
        assert head is not None
        assert (copied.key, copied.size, copied.etag, copied.version_id) == (
            head.key,
            head.size,
            head.etag,
            head.version_id,
        )
        assert copied.etag == source.etag  # the same bytes


def test_s3_unreachable_is_an_endpoint_error(aws_env: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket closes
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"max_attempts": 0}, connect_timeout=1),
    )
    with pytest.raises(EndpointError, match=r"S3 head s3://clean-zone/landing/a\.csv failed"):
        ObjectStore(client, "clean-zone").head("landing/a.csv")
