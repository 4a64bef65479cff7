"""The local endpoint keeps its state across a clean restart and across SIGKILL.

Each test starts ``python -m clean_zone_tools.devstack.endpoint`` on its own port and state
folder, writes through boto3 over HTTP, stops it (politely or not), starts it again on the same
folder and reads back what a user would look for.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clean_zone_tools import local_aws

AWKWARD_KEYS = [
    "landing/plain.csv",
    "landing/with space.csv",
    "landing/plus+sign.csv",
    "landing/ünï cödé %41.csv",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Endpoint:
    state_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.state_dir.parent / "endpoint.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clean_zone_tools.devstack.endpoint",
                "--port",
                str(self.port),
                "--state-dir",
                str(self.state_dir),
                "--checkpoint-seconds",
                "30",  # long, so a kill lands between checkpoints and the journal must carry it
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"endpoint did not start; see {log.name}") from None
                time.sleep(0.1)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=30)

    def client(self, service: str) -> Any:
        return local_aws.client(service, self.url, attempts=1)


def _write_world(endpoint: Endpoint) -> dict[str, object]:
    s3, sqs, sns = endpoint.client("s3"), endpoint.client("sqs"), endpoint.client("sns")
    s3.create_bucket(Bucket="durable-zone")
    s3.put_bucket_versioning(Bucket="durable-zone", VersioningConfiguration={"Status": "Enabled"})
    queue = sqs.create_queue(QueueName="events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    inbox = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic = sns.create_topic(Name="failures")["TopicArn"]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"}
    )
    s3.put_bucket_notification_configuration(
        Bucket="durable-zone",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    versions = {
        key: s3.put_object(Bucket="durable-zone", Key=key, Body=key.encode())["VersionId"]
        for key in AWKWARD_KEYS
    }
    # A second version, then a move (copy of a named version + delete of that version), as the
    # pipeline's claim does; and a conditional put, as the ledger does.
    second = s3.put_object(Bucket="durable-zone", Key="landing/plain.csv", Body=b"v2")["VersionId"]
    s3.copy_object(
        Bucket="durable-zone",
        Key="processing/plain.csv",
        CopySource={"Bucket": "durable-zone", "Key": "landing/plain.csv", "VersionId": second},
    )
    s3.delete_object(Bucket="durable-zone", Key="landing/plain.csv", VersionId=second)
    s3.put_object(Bucket="durable-zone", Key="_state/ledger/x.json", Body=b"{}", IfNoneMatch="*")
    sns.publish(TopicArn=topic, Message="an alert nobody has read yet")
    return {"versions": versions, "queue": queue, "inbox": inbox, "topic": topic}


def _assert_world(endpoint: Endpoint, world: dict[str, object], exact_versions: bool) -> None:
    s3, sqs = endpoint.client("s3"), endpoint.client("sqs")
    versions = world["versions"]
    assert isinstance(versions, dict)
    for key in AWKWARD_KEYS:
        listed = s3.list_object_versions(Bucket="durable-zone", Prefix=key)["Versions"]
        mine = [item for item in listed if item["Key"] == key]
        assert mine, f"{key!r} lost"
        if exact_versions:
            assert versions[key] in {item["VersionId"] for item in mine}
            assert (
                s3.get_object(Bucket="durable-zone", Key=key, VersionId=versions[key])["Body"].read()
                == key.encode()
            )
    # The move happened once: the copy exists, the moved version is gone.
    assert s3.get_object(Bucket="durable-zone", Key="processing/plain.csv")["Body"].read() == b"v2"
    plain = s3.list_object_versions(Bucket="durable-zone", Prefix="landing/plain.csv")["Versions"]
    assert [item["Size"] for item in plain] == [len(b"landing/plain.csv")]
    assert s3.get_object(Bucket="durable-zone", Key="_state/ledger/x.json")["Body"].read() == b"{}"
    with pytest.raises(s3.exceptions.ClientError):  # the ledger's exactly-once rule still holds
        s3.put_object(Bucket="durable-zone", Key="_state/ledger/x.json", Body=b"{}", IfNoneMatch="*")
    # Unconsumed events and alerts are still waiting.
    attributes = sqs.get_queue_attributes(
        QueueUrl=world["queue"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert int(attributes["Attributes"]["ApproximateNumberOfMessages"]) >= len(AWKWARD_KEYS) + 2
    alerts = sqs.receive_message(QueueUrl=world["inbox"], MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in alerts] == ["an alert nobody has read yet"]
    # Notifications and subscriptions still deliver.
    s3.put_object(Bucket="durable-zone", Key="landing/after-restart.csv", Body=b"x")
    after = sqs.get_queue_attributes(QueueUrl=world["queue"], AttributeNames=["ApproximateNumberOfMessages"])
    assert int(after["Attributes"]["ApproximateNumberOfMessages"]) > int(
        attributes["Attributes"]["ApproximateNumberOfMessages"]
    )


def test_a_clean_restart_keeps_every_version_queue_message_and_subscription(endpoint: Endpoint) -> None:
    world = _write_world(endpoint)
    endpoint.stop(signal.SIGTERM)
    assert not (endpoint.state_dir / "journal.bin").stat().st_size, "a clean stop checkpoints"
    endpoint.start()
    _assert_world(endpoint, world, exact_versions=True)


def test_a_killed_endpoint_replays_its_journal_and_loses_nothing(endpoint: Endpoint) -> None:
    world = _write_world(endpoint)
    assert (endpoint.state_dir / "journal.bin").stat().st_size > 0
    endpoint.stop(signal.SIGKILL)
    endpoint.start()
    # Replayed writes make the very ids they first made: a worker that was told a version id
    # before the crash still finds that version after it.
    _assert_world(endpoint, world, exact_versions=True)
    journal = endpoint.state_dir.parent / "endpoint.log"
    assert "made other ids" not in journal.read_text()


def test_a_multipart_upload_begun_before_a_kill_completes_after_it(endpoint: Endpoint) -> None:
    s3 = endpoint.client("s3")
    s3.create_bucket(Bucket="durable-zone")
    s3.put_bucket_versioning(Bucket="durable-zone", VersioningConfiguration={"Status": "Enabled"})
    upload = s3.create_multipart_upload(Bucket="durable-zone", Key="processed/big.csv")["UploadId"]
    first = b"a" * (5 << 20)
    etag = s3.upload_part(
        Bucket="durable-zone", Key="processed/big.csv", UploadId=upload, PartNumber=1, Body=first
    )["ETag"]
    endpoint.stop(signal.SIGKILL)
    endpoint.start()
    # The upload id the client holds is still the upload's id after the replay.
    second = s3.upload_part(
        Bucket="durable-zone", Key="processed/big.csv", UploadId=upload, PartNumber=2, Body=b"tail"
    )["ETag"]
    s3.complete_multipart_upload(
        Bucket="durable-zone",
        Key="processed/big.csv",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}, {"PartNumber": 2, "ETag": second}]},
    )
    body = s3.get_object(Bucket="durable-zone", Key="processed/big.csv")["Body"].read()
    assert body == first + b"tail"


def test_a_kill_after_a_checkpoint_keeps_the_exact_version_ids(endpoint: Endpoint) -> None:
    world = _write_world(endpoint)
    endpoint.stop(signal.SIGTERM)
    endpoint.start()
    endpoint.client("s3").put_object(Bucket="durable-zone", Key="landing/late.csv", Body=b"late")
    endpoint.stop(signal.SIGKILL)
    endpoint.start()
    _assert_world(endpoint, world, exact_versions=True)
    assert (
        endpoint.client("s3").get_object(Bucket="durable-zone", Key="landing/late.csv")["Body"].read()
        == b"late"
    )


def test_reset_empties_the_state_for_good(endpoint: Endpoint) -> None:
    _write_world(endpoint)
    urllib.request.urlopen(
        urllib.request.Request(f"{endpoint.url}/moto-api/reset", method="POST"), timeout=10
    )
    endpoint.stop(signal.SIGKILL)
    endpoint.start()
    assert endpoint.client("s3").list_buckets()["Buckets"] == []
