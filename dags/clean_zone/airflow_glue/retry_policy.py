"""Airflow's ``retry_policy`` (new in 3.3) speaking Step Functions' Retry.

:class:`StepFunctionsRetryPolicy` evaluates a list of
:class:`~clean_zone.backoff.Retrier` on the actual exception in the worker,
so data-quality and code errors fail at once (no wasted retries) while
endpoint and dependency errors back off exponentially. The presets below read
their numbers from the settings (``clean_zone_retry_*``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import RetryDecision, RetryPolicy

from clean_zone.backoff import Jitter, Retrier, decide, max_retries
from clean_zone.config import Settings
from clean_zone.failures import FailureClass


class StepFunctionsRetryPolicy(RetryPolicy):
    """Evaluate ASL-style retriers in order; no matching retrier means fail now."""

    def __init__(self, retriers: Sequence[Retrier], rng: random.Random | None = None) -> None:
        self.retriers = tuple(retriers)
        self._rng = rng

    @property
    def max_retries(self) -> int:
        """Give the task at least this many ``retries``; Airflow caps a policy's retries there."""
        return max_retries(self.retriers)

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision:
        decision = decide(self.retriers, exception, try_number, self._rng)
        if not decision.retry:
            return RetryDecision.fail(decision.reason)
        return RetryDecision.retry(timedelta(seconds=decision.delay_seconds or 0.0), decision.reason)

    def serialize(self) -> dict[str, Any]:
        return {"__type": type(self).__name__, "retriers": [r.describe() for r in self.retriers]}


def standard_retriers(settings: Settings) -> list[Retrier]:
    """Every task's retriers: exponential backoff (10 s, rate 1.5 by default) on endpoint errors
    (the failure generator's outage among them), bounded patience on dependency errors."""
    transient = Retrier(
        error_equals=(FailureClass.ENDPOINT,),
        interval_seconds=settings.retry_interval_seconds,
        max_attempts=settings.retry_max_attempts,
        backoff_rate=settings.retry_backoff_rate,
        max_delay_seconds=settings.retry_max_delay_seconds,
        jitter=Jitter(settings.retry_jitter.upper()),
    )
    return [transient, dependency_retrier(settings)]


def endpoint_patience_seconds(settings: Settings) -> float:
    """How long a task keeps retrying an endpoint error before it fails: its retry delays together."""
    transient = standard_retriers(settings)[0]
    return sum(transient.base_delay(n) for n in range(1, transient.max_attempts + 1))


def dependency_retrier(settings: Settings) -> Retrier:
    """Upstream not ready: a bounded number of patient retries."""
    return Retrier(
        error_equals=(FailureClass.DEPENDENCY,),
        interval_seconds=settings.retry_interval_seconds,
        max_attempts=2,
        backoff_rate=2.0,
        max_delay_seconds=settings.retry_max_delay_seconds,
    )


def reference_state_machine_retriers() -> list[Retrier]:
    """The reference state machine's own Retry block: 2 s, 6 attempts, rate 2, service errors only."""
    return [
        Retrier(error_equals=(FailureClass.ENDPOINT,), interval_seconds=2, max_attempts=6, backoff_rate=2.0)
    ]


def standard_policy(settings: Settings) -> StepFunctionsRetryPolicy:
    """Every task's policy: back off on endpoint and dependency trouble; fail at once on the rest."""
    return StepFunctionsRetryPolicy(standard_retriers(settings))
