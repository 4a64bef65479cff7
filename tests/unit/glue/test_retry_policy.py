"""The Airflow 3.3 retry_policy adapter: decisions Airflow acts on, for the exception that happened."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import timedelta

from airflow.sdk import RetryDecision, RetryPolicy
from airflow.sdk.definitions.retry_policy import RetryAction
from botocore.exceptions import ClientError, EndpointConnectionError

from clean_zone.airflow_glue.retry_policy import (
    StepFunctionsRetryPolicy,
    reference_state_machine_retriers,
    standard_policy,
)
from clean_zone.config import Settings
from clean_zone.failure_generator import SimulatedOutage
from clean_zone.failures import DataQualityError, DependencyError, EndpointError, InvalidFileError

DEFAULTS = Settings()


def evaluate(policy: RetryPolicy, error: BaseException, try_number: int, max_tries: int = 5) -> RetryDecision:
    # Keyword arguments, as Airflow's task runner calls it.
    return policy.evaluate(exception=error, try_number=try_number, max_tries=max_tries, context=None)


def test_is_an_airflow_retry_policy() -> None:
    assert isinstance(standard_policy(DEFAULTS), RetryPolicy)


def test_data_quality_fails_at_once() -> None:
    decision = evaluate(standard_policy(DEFAULTS), DataQualityError("ragged rows", reason="ragged_rows"), 1)
    assert decision.action is RetryAction.FAIL
    assert decision.retry_delay is None
    assert "data_quality" in (decision.reason or "")


def test_invalid_input_and_bugs_fail_at_once() -> None:
    policy = standard_policy(DEFAULTS)
    for error in (InvalidFileError("not csv"), KeyError("bug"), ZeroDivisionError()):
        assert evaluate(policy, error, 1).action is RetryAction.FAIL


def test_endpoint_errors_retry_with_the_exact_default_delays() -> None:
    policy = standard_policy(DEFAULTS)
    delays = [evaluate(policy, EndpointError("S3 timed out"), n).retry_delay for n in (1, 2, 3, 4)]
    assert delays == [
        timedelta(seconds=10),
        timedelta(seconds=15),
        timedelta(seconds=22.5),
        timedelta(seconds=33.75),
    ]
    assert evaluate(policy, EndpointError("x"), 1).action is RetryAction.RETRY


def test_the_failure_generator_and_botocore_errors_are_retried() -> None:
    policy = standard_policy(DEFAULTS)
    throttled = ClientError(
        {"Error": {"Code": "Throttling"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "Publish"
    )
    for error in (SimulatedOutage("10 / 0"), EndpointConnectionError(endpoint_url="http://x"), throttled):
        decision = evaluate(policy, error, 2)
        assert decision.action is RetryAction.RETRY
        assert decision.retry_delay == timedelta(seconds=15)


def test_fails_after_max_attempts() -> None:
    policy = standard_policy(DEFAULTS)
    assert DEFAULTS.retry_max_attempts == 4
    decision = evaluate(policy, EndpointError("still down"), 5)
    assert decision.action is RetryAction.FAIL
    assert "exhausted after 4 retries" in (decision.reason or "")


def test_dependency_errors_retry_a_bounded_number_of_times() -> None:
    policy = standard_policy(DEFAULTS)
    late = DependencyError("s3://clean-zone/landing/x.csv does not exist (yet)")
    decisions = [evaluate(policy, late, n) for n in (1, 2, 3)]
    assert [d.action for d in decisions] == [RetryAction.RETRY, RetryAction.RETRY, RetryAction.FAIL]
    assert [d.retry_delay for d in decisions[:2]] == [timedelta(seconds=10), timedelta(seconds=20)]


def test_max_retries_covers_the_longest_retrier() -> None:
    assert standard_policy(DEFAULTS).max_retries == 4
    assert standard_policy(replace(DEFAULTS, retry_max_attempts=1)).max_retries == 2  # the dependency retrier


def test_settings_drive_the_policy() -> None:
    fast = replace(
        DEFAULTS,
        retry_interval_seconds=0.2,
        retry_backoff_rate=2.0,
        retry_max_attempts=3,
        retry_max_delay_seconds=0.5,
    )
    policy = standard_policy(fast)
    delays = [evaluate(policy, EndpointError("x"), n).retry_delay for n in (1, 2, 3)]
    assert delays == [timedelta(seconds=0.2), timedelta(seconds=0.4), timedelta(seconds=0.5)]
    assert evaluate(policy, EndpointError("x"), 4).action is RetryAction.FAIL


def test_full_jitter_from_settings_with_a_seeded_rng() -> None:
    jittered = replace(DEFAULTS, retry_jitter="full")
    retriers = standard_policy(jittered).retriers
    first = StepFunctionsRetryPolicy(retriers, rng=random.Random(3))
    again = StepFunctionsRetryPolicy(retriers, rng=random.Random(3))
    delays = [evaluate(first, EndpointError("x"), n).retry_delay for n in (1, 2, 3, 4)]
    assert delays == [evaluate(again, EndpointError("x"), n).retry_delay for n in (1, 2, 3, 4)]
    for delay, ceiling in zip(delays, (10, 15, 22.5, 33.75), strict=True):
        assert delay is not None
        assert timedelta(0) <= delay <= timedelta(seconds=ceiling)
    assert delays != [timedelta(seconds=s) for s in (10, 15, 22.5, 33.75)]


def test_reference_state_machine_preset() -> None:
    policy = StepFunctionsRetryPolicy(reference_state_machine_retriers())
    delays = [evaluate(policy, EndpointError("Lambda.ServiceException"), n).retry_delay for n in range(1, 7)]
    assert delays == [timedelta(seconds=s) for s in (2, 4, 8, 16, 32, 64)]
    assert evaluate(policy, EndpointError("x"), 7).action is RetryAction.FAIL
    # As in the reference, the generator's own error class decides: data problems are not retried.
    assert evaluate(policy, DataQualityError("x"), 1).action is RetryAction.FAIL


def test_serializes_to_json_for_the_dag_serializer() -> None:
    serialized = json.loads(json.dumps(standard_policy(DEFAULTS).serialize()))
    assert serialized["__type"] == "StepFunctionsRetryPolicy"
    assert serialized["retriers"][0] == {
        "ErrorEquals": ["endpoint"],
        "IntervalSeconds": 10.0,
        "MaxAttempts": 4,
        "BackoffRate": 1.5,
        "MaxDelaySeconds": 300.0,
        "JitterStrategy": "NONE",
    }
    assert serialized["retriers"][1]["ErrorEquals"] == ["dependency"]
