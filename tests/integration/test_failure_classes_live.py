"""Failure classes of the errors a real botocore client raises, against the moto server."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError, ParamValidationError

from clean_zone.failures import FailureClass, classify


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket closes


def test_a_real_unreachable_endpoint(aws_env: str) -> None:
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        config=Config(retries={"max_attempts": 0}, connect_timeout=1),
    )
    with pytest.raises(EndpointConnectionError) as caught:
        s3.head_object(Bucket="clean-zone", Key="landing/x.csv")
    assert classify(caught.value) is FailureClass.ENDPOINT


def test_a_real_client_error_from_the_local_endpoint(aws_env: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="no-such-bucket-for-this-test", Key="x.csv")
    assert caught.value.response["Error"]["Code"] == "NoSuchBucket"
    assert classify(caught.value) is FailureClass.CODE


def test_a_request_refused_before_sending_is_a_code_error(aws_env: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ParamValidationError) as caught:
        s3.put_object(Bucket="clean-zone")  # no Key: botocore refuses it without a network call
    assert classify(caught.value) is FailureClass.CODE
    assert classify(NoRegionError()) is FailureClass.CODE
