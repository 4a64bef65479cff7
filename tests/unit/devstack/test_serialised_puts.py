"""Conditional puts are atomic on our moto servers, as on S3 (``endpoint.serialise_puts``).

moto checks ``If-None-Match`` and then writes, in two steps. Here, on a moto server in this
process, each put waits between the two for the other racers, so racing creates of one record
are all told they created it; with the puts serialised, exactly one is. Claims, manifest takes
and the ledger rest on this: a CI run caught two runs taking one manifest on the tests' plain
moto server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer

from clean_zone_tools.devstack.endpoint import serialise_puts

RACERS = 4
# Between moto's If-None-Match check and its write, each put waits here for the other racers (or
# for this long, when they cannot come: a put that holds the serialising lock waits alone).
GATE = {"barrier": threading.Barrier(RACERS)}
GATE_SECONDS = 2.0


@pytest.fixture
def slow_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    lock_details = S3Response._get_lock_details

    def after_the_check(self: S3Response, *args: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            GATE["barrier"].wait(timeout=GATE_SECONDS)
        return lock_details(self, *args)

    monkeypatch.setattr(S3Response, "_get_lock_details", after_the_check)
    monkeypatch.setattr(S3Response, "put_object", S3Response.put_object)  # restored after the test
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    s3.create_bucket(Bucket="ledger")
    try:
        yield s3
    finally:
        server.stop()


def _racing_creates(s3: Any, key: str, racers: int = RACERS) -> int:
    GATE["barrier"] = threading.Barrier(racers)
    barrier = threading.Barrier(racers)
    created: list[bool] = []

    def create() -> None:
        barrier.wait()
        try:
            s3.put_object(Bucket="ledger", Key=key, Body=b"{}", IfNoneMatch="*")
        except ClientError as error:
            assert error.response["Error"]["Code"] == "PreconditionFailed"
            created.append(False)
        else:
            created.append(True)

    threads = [threading.Thread(target=create) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(created)


def test_moto_alone_tells_racing_creates_they_all_won(slow_moto: Any) -> None:
    # The flaw being guarded against, shown: every racer passes the check before any writes.
    assert _racing_creates(slow_moto, "claims/unserialised.json") == RACERS


def test_with_puts_serialised_exactly_one_racing_create_wins(slow_moto: Any) -> None:
    serialise_puts()
    serialise_puts()  # a second call changes nothing (both endpoints call it)

    # (moto's state outlives its server in this process: keys of their own.)
    assert _racing_creates(slow_moto, "claims/serialised-a.json") == 1
    assert _racing_creates(slow_moto, "claims/serialised-b.json") == 1
