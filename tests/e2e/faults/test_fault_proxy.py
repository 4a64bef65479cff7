"""The fault proxy forwards AWS traffic to the moto server unchanged, and fails it on demand."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from clean_zone_tools import local_aws
from clean_zone_tools.faults.proxy import FaultSwitch, ProxyServer


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[ProxyServer]:
    server = ProxyServer(("127.0.0.1", 0), moto_endpoint)
    server.start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


def _client(service: str, url: str) -> Any:
    return local_aws.client(service, url, attempts=1)


@pytest.fixture
def bucket(proxy: ProxyServer) -> str:
    s3 = _client("s3", proxy.url)
    name = f"fault-proxy-{proxy.server_address[1]}"
    s3.create_bucket(Bucket=name)
    return name


def test_forwards_requests_unchanged(proxy: ProxyServer, bucket: str) -> None:
    s3 = _client("s3", proxy.url)
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value
    key = "landing/ünï cödé + %41 space.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    sns = _client("sns", proxy.url)
    assert sns.create_topic(Name="through-the-proxy")["TopicArn"].endswith(":through-the-proxy")


def test_an_error_for_one_service_leaves_the_others_alone(proxy: ProxyServer, bucket: str) -> None:
    switch = FaultSwitch(proxy.url)
    switch.set("error", ["sns"])
    with pytest.raises(ClientError) as raised:
        _client("sns", proxy.url).create_topic(Name="down")
    assert raised.value.response["Error"]["Code"] == "InternalError"
    _client("s3", proxy.url).put_object(Bucket=bucket, Key="still-works.csv", Body=b"a")
    injected = switch.status()["injected"]
    assert set(injected) == {"error:sns"}, "only SNS requests were failed"
    switch.off()
    assert _client("sns", proxy.url).create_topic(Name="up")["TopicArn"]


def test_throttling_looks_like_aws_throttling(proxy: ProxyServer, bucket: str) -> None:
    FaultSwitch(proxy.url).set("throttle")
    with pytest.raises(ClientError) as s3_raised:
        _client("s3", proxy.url).get_object(Bucket=bucket, Key="x")
    assert s3_raised.value.response["Error"]["Code"] == "SlowDown"
    with pytest.raises(ClientError) as sqs_raised:
        _client("sqs", proxy.url).list_queues()
    assert sqs_raised.value.response["Error"]["Code"] == "ThrottlingException"


def test_refuse_resets_the_connection(proxy: ProxyServer, bucket: str) -> None:
    FaultSwitch(proxy.url).set("refuse", ["s3"])
    with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
        _client("s3", proxy.url).put_object(Bucket=bucket, Key="refused.csv", Body=b"a")
    FaultSwitch(proxy.url).off()
    assert "Contents" not in _client("s3", proxy.url).list_objects_v2(Bucket=bucket)


def test_a_stalled_request_completes_once_the_fault_ends(proxy: ProxyServer, bucket: str) -> None:
    switch = FaultSwitch(proxy.url)
    switch.set("stall", ["s3"])
    outcome: dict[str, Any] = {}

    def put() -> None:
        outcome["response"] = _client("s3", proxy.url).put_object(Bucket=bucket, Key="stalled.csv", Body=b"a")

    worker = threading.Thread(target=put)
    worker.start()
    worker.join(timeout=1.5)
    assert worker.is_alive(), "the request must be held while the fault is on"
    switch.off()
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert outcome["response"]["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_fault_with_seconds_switches_itself_off(proxy: ProxyServer, bucket: str) -> None:
    switch = FaultSwitch(proxy.url)
    state = switch.set("stall", ["s3"], seconds=1)
    assert state["mode"] == "stall"
    assert 0 < state["remaining_seconds"] <= 1
    # Held for about a second, then forwarded without anybody switching it off.
    _client("s3", proxy.url).put_object(Bucket=bucket, Key="waited.csv", Body=b"a")
    assert switch.status()["remaining_seconds"] == 0


def test_a_bad_switch_is_refused_with_a_reason(proxy: ProxyServer) -> None:
    with pytest.raises(Exception, match="400"):
        FaultSwitch(proxy.url).set("explode")
    assert FaultSwitch(proxy.url).status()["mode"] == "off"
