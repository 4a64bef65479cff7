"""Failure classes: what each exception a task can raise means for retries and alerts."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ReadTimeoutError,
)

from clean_zone.failure_generator import SimulatedOutage
from clean_zone.failures import (
    DataQualityError,
    DependencyError,
    EndpointError,
    FailureClass,
    InvalidFileError,
    PipelineError,
    classify,
)


def client_error(code: str, status: int, operation: str = "PutObject") -> ClientError:
    """The exception botocore raises for an error response (same constructor botocore uses)."""
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} from the service"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r-1"},
    }
    return ClientError(response, operation)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket closes


def test_the_projects_own_errors() -> None:
    assert classify(DataQualityError("ragged")) is FailureClass.DATA_QUALITY
    assert classify(InvalidFileError("json")) is FailureClass.INVALID_INPUT
    assert classify(EndpointError("timeout")) is FailureClass.ENDPOINT
    assert classify(DependencyError("late")) is FailureClass.DEPENDENCY
    assert classify(PipelineError("generic")) is FailureClass.CODE
    assert classify(SimulatedOutage("10 / 0")) is FailureClass.ENDPOINT


def test_only_endpoint_and_dependency_failures_are_retryable() -> None:
    assert {c for c in FailureClass if c.retryable} == {FailureClass.ENDPOINT, FailureClass.DEPENDENCY}


def test_reason_and_location() -> None:
    error = DataQualityError("the file is empty", reason="empty", location="s3://b/quarantine/x.csv")
    assert (error.reason, error.location) == ("empty", "s3://b/quarantine/x.csv")
    assert str(error) == "the file is empty"
    assert DependencyError("late").reason == "DependencyError"
    assert DependencyError("late").location is None


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("Throttling", 400),  # SNS
        ("ThrottlingException", 400),
        ("TooManyRequestsException", 429),
        ("RequestThrottled", 403),  # SQS
        ("SlowDown", 503),  # S3
        ("ServiceUnavailable", 503),
        ("InternalError", 500),
        ("RequestTimeout", 400),
        ("503", 503),  # a HEAD request's error has no body: the code is the status
        ("502", 502),  # a proxy's Bad Gateway
        ("504", 504),  # a proxy's Gateway Timeout
        ("InternalServerError", 500),
    ],
)
def test_throttling_and_service_trouble_are_endpoint_errors(code: str, status: int) -> None:
    assert classify(client_error(code, status)) is FailureClass.ENDPOINT


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),
        ("NoSuchBucket", 404),
        ("NotFound", 404),
        ("InvalidParameter", 400),
        ("NotImplemented", 501),
    ],
)
def test_request_mistakes_are_code_errors(code: str, status: int) -> None:
    assert classify(client_error(code, status)) is FailureClass.CODE


def test_timeouts_are_endpoint_errors() -> None:
    assert classify(ConnectTimeoutError(endpoint_url="https://sns.amazonaws.com")) is FailureClass.ENDPOINT
    assert classify(ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")) is FailureClass.ENDPOINT
    assert classify(TimeoutError("socket timed out")) is FailureClass.ENDPOINT
    assert classify(ConnectionResetError("reset by peer")) is FailureClass.ENDPOINT


def test_missing_credentials_may_be_transient() -> None:
    # On MWAA the execution role's credentials come from an endpoint that can hiccup.
    assert classify(NoCredentialsError()) is FailureClass.ENDPOINT


@pytest.mark.parametrize("error", [ZeroDivisionError(), KeyError("k"), ValueError("v"), RuntimeError("r")])
def test_anything_else_is_a_code_error(error: BaseException) -> None:
    assert classify(error) is FailureClass.CODE
