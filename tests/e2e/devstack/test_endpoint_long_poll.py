"""SQS long polling on the endpoint endpoint: a waiting ReceiveMessage neither blocks other
writes nor misses the message that should end it.

moto long-polls inside the receive, which under the endpoint's write lock would hold every
write back for the whole wait; the endpoint polls instead (see ``DurableEndpoint._long_poll``).
Each test starts the endpoint on its own port and talks to it over HTTP with boto3.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tests.e2e.devstack.test_endpoint_durability import Endpoint


def _in_thread(call: Callable[[], Any]) -> tuple[Future[tuple[Any, float]], ThreadPoolExecutor]:
    """Runs ``call`` in a thread; the future gives its result and the monotonic time it ended."""
    pool = ThreadPoolExecutor(max_workers=1)
    return pool.submit(lambda: (call(), time.monotonic())), pool


def _timed(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_a_long_poll_gets_a_message_sent_while_it_waits_and_blocks_no_other_write(
    endpoint: Endpoint,
) -> None:
    sqs, s3 = endpoint.client("sqs"), endpoint.client("s3")
    waited = sqs.create_queue(QueueName="waited")["QueueUrl"]
    other = sqs.create_queue(QueueName="other")["QueueUrl"]
    s3.create_bucket(Bucket="busy-zone")
    poller = endpoint.client("sqs")  # its own client: botocore clients are not shared across threads
    future, pool = _in_thread(lambda: poller.receive_message(QueueUrl=waited, WaitTimeSeconds=10))
    try:
        time.sleep(0.5)
        assert not future.done(), "an empty queue's long poll returned at once"
        # Writes go through while the poll waits, not after it.
        assert _timed(lambda: s3.put_object(Bucket="busy-zone", Key="k.csv", Body=b"x")) < 2
        assert _timed(lambda: sqs.send_message(QueueUrl=other, MessageBody="elsewhere")) < 2
        assert not future.done(), "a message to another queue ended the poll"
        time.sleep(0.5)
        sent = time.monotonic()
        sqs.send_message(QueueUrl=waited, MessageBody="hello")
        response, ended = future.result(timeout=15)
    finally:
        pool.shutdown(wait=False)
    assert [message["Body"] for message in response["Messages"]] == ["hello"]
    assert ended - sent < 3, f"the poll returned {ended - sent:.1f} s after the send"


def test_an_s3_notification_wakes_a_waiting_long_poll(endpoint: Endpoint) -> None:
    sqs, s3 = endpoint.client("sqs"), endpoint.client("s3")
    queue = sqs.create_queue(QueueName="events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.create_bucket(Bucket="landing-zone")
    s3.put_bucket_notification_configuration(
        Bucket="landing-zone",
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "clean-zone-landing",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "landing/"}]}},
                }
            ]
        },
    )
    # Configuring the notification sends S3's TestEvent: drain it, so the poll starts empty.
    while sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages"):
        pass
    poller = endpoint.client("sqs")
    future, pool = _in_thread(
        lambda: poller.receive_message(QueueUrl=queue, WaitTimeSeconds=10, MaxNumberOfMessages=10)
    )
    try:
        time.sleep(1)
        assert not future.done()
        put = time.monotonic()
        s3.put_object(Bucket="landing-zone", Key="landing/a.csv", Body=b"a,b\n")
        response, ended = future.result(timeout=15)
    finally:
        pool.shutdown(wait=False)
    records = [
        record for message in response["Messages"] for record in json.loads(message["Body"])["Records"]
    ]
    # S3 events carry the key URL-encoded.
    assert [urllib.parse.unquote_plus(record["s3"]["object"]["key"]) for record in records] == [
        "landing/a.csv"
    ]
    assert records[0]["eventName"].startswith("ObjectCreated:")
    assert ended - put < 3, f"the poll returned {ended - put:.1f} s after the put"


def test_a_long_poll_on_an_empty_queue_returns_empty_after_its_wait_time(endpoint: Endpoint) -> None:
    sqs = endpoint.client("sqs")
    queue = sqs.create_queue(QueueName="quiet")["QueueUrl"]
    started = time.monotonic()
    response = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)
    took = time.monotonic() - started
    assert not response.get("Messages")
    assert 1.9 <= took < 4, f"a 2 s long poll took {took:.2f} s"


def test_a_query_protocol_long_poll_is_woken_by_a_send(endpoint: Endpoint) -> None:
    # Older SDKs speak the query protocol: form body in, XML out.
    sqs = endpoint.client("sqs")
    queue = sqs.create_queue(QueueName="legacy")["QueueUrl"]
    form = urllib.parse.urlencode(
        {"Action": "ReceiveMessage", "QueueUrl": queue, "WaitTimeSeconds": "10", "Version": "2012-11-05"}
    ).encode()
    request = urllib.request.Request(
        endpoint.url,
        data=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            # moto routes by the signing scope's service name; the signature is not checked.
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/sqs/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
        method="POST",
    )
    future, pool = _in_thread(lambda: urllib.request.urlopen(request, timeout=30).read())
    try:
        time.sleep(1)
        assert not future.done()
        sent = time.monotonic()
        sqs.send_message(QueueUrl=queue, MessageBody="from-the-past")
        xml, ended = future.result(timeout=15)
    finally:
        pool.shutdown(wait=False)
    assert b"<Message>" in xml and b"from-the-past" in xml
    assert ended - sent < 3, f"the poll returned {ended - sent:.1f} s after the send"
