"""Shared fixtures: a moto server per test worker, provisioned AWS resources, the alerts inbox,
and an Airflow home with a migrated SQLite database for ``dag.test()``.

Airflow reads AIRFLOW_HOME and its settings when first imported, so this file
sets the environment before anything imports Airflow. Each pytest-xdist worker
gets its own Airflow home and its own moto server on a free port, so tests
never depend on a running local stack and may run in parallel.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_HOME = Path(tempfile.mkdtemp(prefix=f"clean-zone-airflow-{WORKER}-"))

# Short retry delays so end-to-end runs take seconds; the backoff *shape* is the product's.
TEST_ENV = {
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_INTERVAL_SECONDS": "0.2",
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_BACKOFF_RATE": "1.5",
    "AIRFLOW_VAR_CLEAN_ZONE_RETRY_MAX_ATTEMPTS": "3",
    "AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS": "0.5",
    "AIRFLOW_VAR_CLEAN_ZONE_FAILURE_RATE": "0",
}
os.environ.update(TEST_ENV)
for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(name, None)



def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server of our own, on a free loopback port, for this worker's whole session."""
    port = _free_port()
    # moto_server, its puts applied one at a time: a conditional put is atomic, as on S3.
    moto = [sys.executable, "-m", "clean_zone_tools.devstack.plain_moto"]
    log = open(_HOME / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen([*moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{endpoint}/moto-api/")
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3, the scripts and the Airflow AWS connection at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    connection = {"conn_type": "aws", "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    return moto_endpoint


@dataclass
class AlertsInbox:
    """The SQS queue subscribed to the failure topic: alerts as a person's inbox receives them."""

    sqs: Any
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)

    def receive(self, wait_seconds: float = 2.0, expect: int | None = None) -> list[dict[str, Any]]:
        """Every alert delivered so far (waits up to ``wait_seconds`` for ``expect`` of them)."""
        from clean_zone.alerts import parse_sns_envelope

        deadline = time.monotonic() + wait_seconds
        while True:
            response = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            for message in response.get("Messages", []):
                self.seen.append(parse_sns_envelope(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            if (expect is not None and len(self.seen) >= expect) or time.monotonic() > deadline:
                return list(self.seen)
            time.sleep(0.2)


@pytest.fixture
def provisioned(aws_env: str) -> Any:
    """A fresh moto (reset) with every resource the DAGs need; returns the Settings used."""
    import boto3

    from clean_zone import config
    from clean_zone_tools.devstack.provision import provision

    urllib.request.urlopen(urllib.request.Request(f"{aws_env}/moto-api/reset", method="POST"), timeout=10)
    settings = config.load_for_parsing()
    provision(settings, session=boto3.Session(region_name=settings.region), quiet=True)
    return settings


@pytest.fixture
def s3(provisioned: Any) -> Any:
    import boto3

    return boto3.client("s3", region_name=provisioned.region)


@pytest.fixture
def alerts_inbox(provisioned: Any) -> AlertsInbox:
    import boto3

    sqs = boto3.client("sqs", region_name=provisioned.region)
    url = sqs.get_queue_url(QueueName=provisioned.alerts_queue_name)["QueueUrl"]
    return AlertsInbox(sqs, url)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata database in this worker's Airflow home (about 6 s, once)."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
