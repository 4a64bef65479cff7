"""Step Functions-grade retriers, as plain Python.

A :class:`Retrier` is ASL's ``Retry`` entry: the errors it matches
(``ErrorEquals``), ``IntervalSeconds``, ``MaxAttempts``, ``BackoffRate``,
``MaxDelaySeconds`` and ``JitterStrategy``. A list of retriers is evaluated in
order on the actual exception; the first match decides, and an error no
retrier matches is not retried (in ASL it goes to ``Catch``; here it fails the
task and the failure callback alerts).

Delay before retry *n* (n = 1 after the first failure):
``min(IntervalSeconds * BackoffRate ** (n - 1), MaxDelaySeconds)``; with FULL
jitter, a uniform draw between 0 and that. Defaults 10 s and 1.5 give
10, 15, 22.5, 33.75 s.

One difference from ASL, documented: Airflow counts tries per task, so a
retrier's ``MaxAttempts`` is compared with the task's try number rather than
with a count kept per retrier.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from clean_zone.failures import FailureClass, classify

ALL_ERRORS = "States.ALL"


class Jitter(StrEnum):
    NONE = "NONE"
    FULL = "FULL"


ErrorMatcher = type[BaseException] | FailureClass | str


@dataclass(frozen=True)
class Retrier:
    error_equals: tuple[ErrorMatcher, ...]
    interval_seconds: float = 1.0
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter: Jitter = Jitter.NONE

    def __post_init__(self) -> None:
        # Accept the spellings ASL uses ("FULL", a lone "States.ALL") without silently
        # matching nothing or ignoring the jitter; Jitter() also rejects unknown strategies.
        if isinstance(self.error_equals, str | type | FailureClass):
            object.__setattr__(self, "error_equals", (self.error_equals,))
        else:
            object.__setattr__(self, "error_equals", tuple(self.error_equals))
        object.__setattr__(self, "jitter", Jitter(self.jitter))
        if not self.error_equals:
            raise ValueError("a retrier needs at least one error to match (ErrorEquals)")
        if self.interval_seconds <= 0:
            raise ValueError("IntervalSeconds must be positive")
        if self.max_attempts < 0:
            raise ValueError("MaxAttempts must not be negative")
        if self.backoff_rate < 1.0:
            raise ValueError("BackoffRate must be at least 1.0")
        if self.max_delay_seconds is not None and self.max_delay_seconds <= 0:
            raise ValueError("MaxDelaySeconds must be positive")

    def matches(self, error: BaseException) -> bool:
        for matcher in self.error_equals:
            if matcher == ALL_ERRORS:
                return True
            if isinstance(matcher, FailureClass):
                if classify(error) is matcher:
                    return True
            elif isinstance(matcher, str):
                if (
                    type(error).__name__ == matcher
                    or f"{type(error).__module__}.{type(error).__qualname__}" == matcher
                ):
                    return True
            elif isinstance(error, matcher):
                return True
        return False

    def base_delay(self, retry_number: int) -> float:
        """The delay before retry ``retry_number`` (1-based), before jitter."""
        delay = self.interval_seconds * self.backoff_rate ** (retry_number - 1)
        if self.max_delay_seconds is not None:
            delay = min(delay, self.max_delay_seconds)
        return delay

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        base = self.base_delay(retry_number)
        if self.jitter is Jitter.FULL:
            return (rng or random.Random()).uniform(0.0, base)
        return base

    def describe(self) -> dict[str, object]:
        return {
            "ErrorEquals": [
                m if isinstance(m, str) else getattr(m, "__name__", str(m)) for m in self.error_equals
            ],
            "IntervalSeconds": self.interval_seconds,
            "MaxAttempts": self.max_attempts,
            "BackoffRate": self.backoff_rate,
            "MaxDelaySeconds": self.max_delay_seconds,
            "JitterStrategy": self.jitter.value,
        }


@dataclass(frozen=True)
class Decision:
    retry: bool
    delay_seconds: float | None
    reason: str


def decide(
    retriers: Sequence[Retrier], error: BaseException, try_number: int, rng: random.Random | None = None
) -> Decision:
    """What to do after try ``try_number`` (1-based) failed with ``error``."""
    failure_class = classify(error)
    for index, retrier in enumerate(retriers):
        if not retrier.matches(error):
            continue
        if try_number > retrier.max_attempts:
            return Decision(
                False,
                None,
                f"{failure_class} error: retrier {index} exhausted after {retrier.max_attempts} retries",
            )
        delay = retrier.delay(try_number, rng)
        return Decision(
            True,
            delay,
            f"{failure_class} error: retry {try_number} of {retrier.max_attempts} "
            f"in {delay:g} s (retrier {index})",
        )
    return Decision(False, None, f"{failure_class} error: not retried")


def max_retries(retriers: Sequence[Retrier]) -> int:
    """The task's ``retries`` must allow the most generous retrier."""
    return max((r.max_attempts for r in retriers), default=0)
