"""The reference's flaky step: 10 / randint(0, 2), with a configurable rate and a seed."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from clean_zone.failure_generator import SimulatedOutage, draw_divisor, run_once
from clean_zone.failures import EndpointError, FailureClass, classify

LABELS = [f"manual__2026-01-01|landing/file-{n}.csv|1" for n in range(3000)]


def outcome(rate: float, seed: str, label: str) -> float | str:
    try:
        return run_once(rate, seed, label)
    except SimulatedOutage:
        return "failed"


def test_success_is_ten_divided_by_one_or_two() -> None:
    results = {outcome(1 / 3, "seed", label) for label in LABELS[:200]}
    assert results == {10.0, 5.0, "failed"}


def test_seeded_attempts_are_deterministic() -> None:
    first = [outcome(1 / 3, "seed-a", label) for label in LABELS[:300]]
    again = [outcome(1 / 3, "seed-a", label) for label in LABELS[:300]]
    assert first == again


def test_the_seed_changes_the_sequence() -> None:
    a = [outcome(1 / 3, "seed-a", label) for label in LABELS[:300]]
    b = [outcome(1 / 3, "seed-b", label) for label in LABELS[:300]]
    assert a != b


def test_the_try_number_in_the_label_gives_a_retry_a_fresh_draw() -> None:
    # A retry must not be doomed to repeat the first try's failure.
    failing = [label for label in LABELS[:100] if outcome(1 / 3, "seed", label) == "failed"]
    assert failing
    retried = [outcome(1 / 3, "seed", label[:-1] + "2") for label in failing]
    assert any(result != "failed" for result in retried)


def test_rate_zero_never_fails() -> None:
    assert all(outcome(0.0, "seed", label) != "failed" for label in LABELS)
    assert all(outcome(0.0, "", label) != "failed" for label in LABELS[:500])


def test_rate_one_always_fails() -> None:
    assert all(outcome(1.0, "seed", label) == "failed" for label in LABELS)
    assert all(outcome(1.0, "", label) == "failed" for label in LABELS[:500])


def test_default_rate_fails_about_one_attempt_in_three() -> None:
    # Fixed seeds and labels: the count is the same on every run; the bound is loose (about 4 sigma).
    for seed in ("alpha", "beta", "gamma"):
        failures = sum(outcome(1 / 3, seed, label) == "failed" for label in LABELS)
        assert 0.30 < failures / len(LABELS) < 0.37, (seed, failures)


def test_draw_divisor_matches_randint_0_2_at_the_default_rate() -> None:
    rng = random.Random(20260101)
    counts = Counter(draw_divisor(rng, 1 / 3) for _ in range(30_000))
    assert set(counts) == {0, 1, 2}
    for divisor in (0, 1, 2):
        assert 0.31 < counts[divisor] / 30_000 < 0.36, counts


def test_without_a_seed_attempts_are_random() -> None:
    # 300 identical outcomes in a row at rate 1/3 has probability below 1e-50.
    results = {outcome(1 / 3, "", "same-label") for _ in range(300)}
    assert len(results) > 1


def test_the_failure_is_a_retryable_endpoint_error_caused_by_zero_division() -> None:
    with pytest.raises(SimulatedOutage) as caught:
        run_once(1.0, "seed", "label")
    error = caught.value
    assert isinstance(error, EndpointError)
    assert classify(error) is FailureClass.ENDPOINT
    assert FailureClass.ENDPOINT.retryable
    assert isinstance(error.__cause__, ZeroDivisionError)
    assert "10 / 0" in str(error)
    assert "ZeroDivisionError" in str(error)
    assert error.reason == "simulated_outage"
