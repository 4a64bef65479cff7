"""Publishing failure alerts to SNS on the moto server: what the subscriber receives, and that
SNS trouble is logged rather than raised."""

from __future__ import annotations

import logging
import socket
from typing import Any

import boto3
import pytest
from botocore.config import Config

from clean_zone.alerts import publish
from clean_zone.failures import FailureClass
from tests.support.alerts import make_alert


def test_publish_reaches_the_subscriber(provisioned: Any, alerts_inbox: Any) -> None:
    sns = boto3.client("sns", region_name=provisioned.region)
    alert = make_alert(dag_id="pipeline_données_" + "x" * 200, failure_class=FailureClass.DATA_QUALITY)
    message_id = publish(sns, provisioned.failure_topic_arn, alert)
    assert message_id
    received = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert len(received) == 1
    assert received[0]["subject"] == alert.subject()
    assert received[0]["message"] == alert.message()
    assert received[0]["attributes"] == {
        "severity": "warning",
        "failure_class": "data_quality",
        "dag_id": alert.dag_id,
        "task_id": "run_failure_generator",
    }


def test_publish_of_a_huge_error_still_arrives(provisioned: Any, alerts_inbox: Any) -> None:
    sns = boto3.client("sns", region_name=provisioned.region)
    assert publish(sns, provisioned.failure_topic_arn, make_alert(error="y" * 300_000))
    [received] = alerts_inbox.receive(wait_seconds=5, expect=1)
    assert "more characters; see the log" in received["message"]


def test_publish_to_a_missing_topic_logs_and_returns_none(
    provisioned: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sns = boto3.client("sns", region_name=provisioned.region)
    missing = provisioned.failure_topic_arn + "-does-not-exist"
    with caplog.at_level(logging.ERROR, logger="clean_zone.alerts"):
        assert publish(sns, missing, make_alert()) is None
    assert f"could not publish the failure alert to {missing}" in caplog.text
    assert "NotFound" in caplog.text
    assert "Try:           5 of 5" in caplog.text  # the alert itself is kept in the log


def test_publish_to_an_unreachable_endpoint_logs_and_returns_none(
    aws_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sns = boto3.client(
        "sns",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",  # nothing listens there
        config=Config(retries={"max_attempts": 0}, connect_timeout=1),
    )
    with caplog.at_level(logging.ERROR, logger="clean_zone.alerts"):
        assert publish(sns, "arn:aws:sns:us-east-1:123456789012:clean-zone-failures", make_alert()) is None
    assert "could not publish the failure alert" in caplog.text
    assert "EndpointConnectionError" in caplog.text
