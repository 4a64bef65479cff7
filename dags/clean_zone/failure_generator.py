"""The reference pipeline's deliberately flaky step, made controllable.

The reference Lambda "random-failure-generator" divides 10 by a random
integer in {0, 1, 2}, so about one call in three raises ZeroDivisionError.
Here the chance of failing is a setting (default 1/3, the reference's) and
the random source can be seeded, so tests are deterministic: with a seed, the
n-th attempt of a given run and key always draws the same number.
"""

from __future__ import annotations

import random

from clean_zone.failures import EndpointError


class SimulatedOutage(EndpointError):
    """The generator's failure: it stands for a flaky downstream service, so it is retried."""

    REASON = "simulated_outage"

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=self.REASON)


def draw_divisor(rng: random.Random, failure_rate: float) -> int:
    """0 with probability ``failure_rate``, else 1 or 2 (the reference's {0, 1, 2} at rate 1/3)."""
    if rng.random() < failure_rate:
        return 0
    return rng.choice((1, 2))


def run_once(failure_rate: float, seed: str, attempt_label: str) -> float:
    """One attempt: 10 / divisor, raising :class:`SimulatedOutage` where the divisor is 0.

    ``seed`` empty means a fresh random source; otherwise the draw depends on
    ``seed`` and ``attempt_label`` (e.g. run id, key and try number) only.
    """
    rng = random.Random(f"{seed}|{attempt_label}") if seed else random.Random()
    divisor = draw_divisor(rng, failure_rate)
    try:
        return 10 / divisor
    except ZeroDivisionError as error:
        raise SimulatedOutage(
            f"failure generator: 10 / {divisor} raised ZeroDivisionError ({error})"
        ) from error
