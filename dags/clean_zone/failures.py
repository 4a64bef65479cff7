"""Failure classes, as the reference material sorts them, and how each is treated.

* data quality: the input is wrong (expected CSV, got something else). Hard
  failure: no retry, quarantine, alert.
* code: a bug. Hard failure: no retry, alert.
* endpoint: S3/SNS unreachable, timeouts, throttling. Soft failure: retry with
  backoff, alert only after the last try.
* dependency: something upstream is not ready (a late file). Retry a bounded
  number of times, then alert.

Pipeline code raises the specific classes below; :func:`classify` maps any
exception (including botocore's and the failure generator's) to a class.
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    DATA_QUALITY = "data_quality"
    CODE = "code"
    ENDPOINT = "endpoint"
    DEPENDENCY = "dependency"
    INVALID_INPUT = "invalid_input"

    @property
    def retryable(self) -> bool:
        return self in {FailureClass.ENDPOINT, FailureClass.DEPENDENCY}


class PipelineError(Exception):
    """Base of the project's own errors; ``failure_class`` says how to treat it."""

    failure_class: FailureClass = FailureClass.CODE

    def __init__(self, message: str, *, reason: str | None = None, location: str | None = None) -> None:
        super().__init__(message)
        # A short, stable reason code for sidecars and alert attributes.
        self.reason = reason or type(self).__name__
        # Where the file was left (s3:// URL), when the failing step moved it.
        self.location = location


class DataQualityError(PipelineError):
    """The file's content is not what the pipeline accepts."""

    failure_class = FailureClass.DATA_QUALITY


class InvalidFileError(PipelineError):
    """The file is not a kind the pipeline processes (the reference's InvalidFileFormat)."""

    failure_class = FailureClass.INVALID_INPUT


class EndpointError(PipelineError):
    """An AWS endpoint failed or timed out; trying again later may work."""

    failure_class = FailureClass.ENDPOINT


class DependencyError(PipelineError):
    """Something this step needs is not there yet."""

    failure_class = FailureClass.DEPENDENCY


# Botocore error codes that are throttling or transient service trouble.
_TRANSIENT_AWS_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
    "503",
    "500",
}


def _transient_status(status: object) -> bool:
    # 429 and 5xx are the service's trouble, whatever the code (a proxy's 502/504 has no AWS code);
    # 501 NotImplemented is a request the service will never accept.
    return isinstance(status, int) and (status == 429 or (500 <= status < 600 and status != 501))


def classify(error: BaseException) -> FailureClass:
    """The failure class of any exception a task can raise."""
    if isinstance(error, PipelineError):
        return error.failure_class
    try:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoRegionError,
            ParamValidationError,
            ReadTimeoutError,
        )
    except ImportError:  # pragma: no cover - botocore is always there with the amazon provider
        return FailureClass.CODE
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return FailureClass.ENDPOINT
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        transient = code in _TRANSIENT_AWS_CODES or _transient_status(status)
        return FailureClass.ENDPOINT if transient else FailureClass.CODE
    # ParamValidationError and NoRegionError: the request never left this process; a bug or a
    # setting, which waiting cannot fix.
    local = isinstance(error, (ParamValidationError, NoRegionError))
    if not local and isinstance(error, BotoCoreError | ConnectionError | TimeoutError):
        return FailureClass.ENDPOINT
    return FailureClass.CODE
