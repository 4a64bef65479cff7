"""Step Functions-style retriers: delays, matching, order of evaluation, exhaustion."""

from __future__ import annotations

import json
import random

import pytest
from botocore.exceptions import EndpointConnectionError

from clean_zone.backoff import ALL_ERRORS, Jitter, Retrier, decide, max_retries
from clean_zone.config import Settings
from clean_zone.failure_generator import SimulatedOutage
from clean_zone.failures import DataQualityError, DependencyError, EndpointError, FailureClass


def default_retrier(**overrides: object) -> Retrier:
    """The default backoff (as in the reference book's example): 10 s, rate 1.5, four retries."""
    values: dict[str, object] = {
        "error_equals": (FailureClass.ENDPOINT,),
        "interval_seconds": 10,
        "backoff_rate": 1.5,
        "max_attempts": 4,
    }
    values.update(overrides)
    return Retrier(**values)  # type: ignore[arg-type]


# --- delays ------------------------------------------------------------------


def test_default_delays_exactly() -> None:
    retrier = default_retrier()
    assert [retrier.delay(n) for n in (1, 2, 3, 4)] == [10, 15, 22.5, 33.75]


def test_default_settings_give_the_default_delays() -> None:
    settings = Settings()
    retrier = Retrier(
        error_equals=(FailureClass.ENDPOINT,),
        interval_seconds=settings.retry_interval_seconds,
        backoff_rate=settings.retry_backoff_rate,
        max_attempts=settings.retry_max_attempts,
        max_delay_seconds=settings.retry_max_delay_seconds,
        jitter=Jitter(settings.retry_jitter),
    )
    delays = [decide([retrier], EndpointError("S3 timed out"), n).delay_seconds for n in (1, 2, 3, 4)]
    assert delays == [10, 15, 22.5, 33.75]


def test_max_delay_caps_the_growth() -> None:
    retrier = Retrier(
        error_equals=(ALL_ERRORS,), interval_seconds=10, backoff_rate=2, max_attempts=6, max_delay_seconds=30
    )
    assert [retrier.delay(n) for n in range(1, 7)] == [10, 20, 30, 30, 30, 30]


def test_rate_one_is_a_constant_interval() -> None:
    retrier = Retrier(error_equals=(ALL_ERRORS,), interval_seconds=7, backoff_rate=1.0, max_attempts=3)
    assert [retrier.delay(n) for n in (1, 2, 3)] == [7, 7, 7]


def test_full_jitter_stays_within_zero_and_the_capped_delay() -> None:
    retrier = default_retrier(jitter=Jitter.FULL, max_attempts=8, max_delay_seconds=40)
    rng = random.Random(7)
    for n in range(1, 9):
        ceiling = retrier.base_delay(n)
        draws = [retrier.delay(n, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 150  # really random, not the ceiling every time
        # A uniform draw: the mean sits near the middle (fixed seed, so this never flakes).
        assert 0.4 * ceiling < sum(draws) / len(draws) < 0.6 * ceiling
    assert retrier.base_delay(8) == 40


def test_full_jitter_is_reproducible_with_a_seeded_rng() -> None:
    retrier = default_retrier(jitter=Jitter.FULL)
    first = [retrier.delay(n, random.Random(42)) for n in (1, 2, 3, 4)]
    again = [retrier.delay(n, random.Random(42)) for n in (1, 2, 3, 4)]
    assert first == again
    assert first != [10, 15, 22.5, 33.75]


def test_jitter_given_as_asl_text() -> None:
    retrier = default_retrier(jitter="FULL")
    assert retrier.jitter is Jitter.FULL
    draws = {retrier.delay(1, random.Random(seed)) for seed in range(20)}
    assert len(draws) == 20
    assert all(0 <= d <= 10 for d in draws)


# --- deciding ----------------------------------------------------------------


def test_decide_retries_then_exhausts() -> None:
    retriers = [default_retrier()]
    error = SimulatedOutage("10 / 0")
    decisions = [decide(retriers, error, n) for n in range(1, 6)]
    assert [d.retry for d in decisions] == [True, True, True, True, False]
    assert [d.delay_seconds for d in decisions] == [10, 15, 22.5, 33.75, None]
    assert "retry 1 of 4 in 10 s" in decisions[0].reason
    assert "exhausted after 4 retries" in decisions[4].reason
    assert decisions[4].reason.startswith("endpoint error")


def test_no_matching_retrier_fails_at_once() -> None:
    decision = decide([default_retrier()], DataQualityError("ragged rows"), 1)
    assert not decision.retry
    assert decision.delay_seconds is None
    assert decision.reason == "data_quality error: not retried"


def test_a_bug_is_not_retried() -> None:
    assert not decide([default_retrier()], KeyError("oops"), 1).retry


def test_max_attempts_zero_never_retries() -> None:
    assert not decide([default_retrier(max_attempts=0)], EndpointError("down"), 1).retry


def test_retriers_are_evaluated_in_order_and_the_first_match_decides() -> None:
    retriers = [
        Retrier(error_equals=("ZeroDivisionError",), interval_seconds=1, max_attempts=1),
        Retrier(error_equals=(FailureClass.ENDPOINT,), interval_seconds=2, max_attempts=5),
        Retrier(error_equals=(ALL_ERRORS,), interval_seconds=3, max_attempts=5),
    ]
    assert decide(retriers, ZeroDivisionError(), 1).delay_seconds == 1
    # As in ASL, an exhausted retrier ends the matter: later retriers are not consulted.
    assert not decide(retriers, ZeroDivisionError(), 2).retry
    assert decide(retriers, EndpointError("timeout"), 1).delay_seconds == 2
    assert decide(retriers, KeyError("x"), 1).delay_seconds == 3
    assert "retrier 2" in decide(retriers, KeyError("x"), 1).reason


def test_states_all_matches_everything() -> None:
    retrier = Retrier(error_equals=(ALL_ERRORS,))
    for error in (KeyError("k"), ZeroDivisionError(), DataQualityError("x"), SystemExit(1)):
        assert retrier.matches(error)


def test_a_lone_states_all_string_is_one_matcher() -> None:
    retrier = Retrier(error_equals="States.ALL")  # type: ignore[arg-type]
    assert retrier.error_equals == ("States.ALL",)
    assert retrier.matches(KeyError("k"))


def test_class_name_strings_match_exactly() -> None:
    by_name = Retrier(error_equals=("ZeroDivisionError",))
    assert by_name.matches(ZeroDivisionError())
    assert not by_name.matches(ArithmeticError())
    # Names are exact, as ASL error names are: a parent class's name does not match a child.
    assert not Retrier(error_equals=("ArithmeticError",)).matches(ZeroDivisionError())
    qualified = Retrier(error_equals=("clean_zone.failure_generator.SimulatedOutage",))
    assert qualified.matches(SimulatedOutage("x"))
    assert not qualified.matches(EndpointError("x"))


def test_class_objects_match_subclasses() -> None:
    retrier = Retrier(error_equals=(ArithmeticError, LookupError))
    assert retrier.matches(ZeroDivisionError())
    assert retrier.matches(KeyError("k"))
    assert not retrier.matches(ValueError())


def test_failure_class_matchers_classify_the_real_exception() -> None:
    endpoint = Retrier(error_equals=(FailureClass.ENDPOINT,))
    assert endpoint.matches(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert endpoint.matches(SimulatedOutage("x"))
    assert not endpoint.matches(DataQualityError("x"))
    assert not endpoint.matches(DependencyError("x"))
    assert Retrier(error_equals=(FailureClass.DEPENDENCY,)).matches(DependencyError("late file"))


def test_max_retries_is_the_most_generous_retrier() -> None:
    retriers = [default_retrier(max_attempts=n) for n in (2, 6, 3)]
    assert max_retries(retriers) == 6
    assert max_retries([]) == 0


def test_describe_is_asl_shaped_json() -> None:
    retrier = Retrier(
        error_equals=(FailureClass.ENDPOINT, "States.Timeout", TimeoutError),
        interval_seconds=2,
        max_attempts=6,
        backoff_rate=2.0,
        max_delay_seconds=60,
        jitter=Jitter.FULL,
    )
    described = json.loads(json.dumps(retrier.describe()))
    assert described == {
        "ErrorEquals": ["endpoint", "States.Timeout", "TimeoutError"],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
        "MaxDelaySeconds": 60,
        "JitterStrategy": "FULL",
    }


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"error_equals": ()}, "ErrorEquals"),
        ({"interval_seconds": 0}, "IntervalSeconds"),
        ({"interval_seconds": -1}, "IntervalSeconds"),
        ({"max_attempts": -1}, "MaxAttempts"),
        ({"backoff_rate": 0.5}, "BackoffRate"),
        ({"max_delay_seconds": 0}, "MaxDelaySeconds"),
        ({"jitter": "HALF"}, "HALF"),
    ],
)
def test_invalid_retriers_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        default_retrier(**overrides)
