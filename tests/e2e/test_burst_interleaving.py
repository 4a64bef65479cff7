"""A chunk interleaves its files: one file's retry backoff never holds the others.

``burst.process_files`` against moto's S3 over HTTP, with an injected clock and sleep (no real
waiting) and a scripted failure generator; outcomes read back from S3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from clean_zone import burst
from clean_zone.backoff import Retrier
from clean_zone.failure_generator import SimulatedOutage
from clean_zone.failures import FailureClass
from clean_zone.lifecycle import Lifecycle
from clean_zone.storage import ObjectStore
from tests.e2e.test_file_pipeline import GOOD_CSV, drop, keys, read_json, where_is

pytestmark = pytest.mark.e2e

RUN = "manual__2026-10-05T00:00:00+00:00"
# The product's shape (10 s, rate 1.5): delays 10, 15, 22.5 s before retries 1, 2, 3.
RETRIER = Retrier((FailureClass.ENDPOINT,), interval_seconds=10, max_attempts=3, backoff_rate=1.5)


@dataclass
class FakeTime:
    """``clock`` and ``sleep`` for process_files: sleeping only moves the clock, and is recorded."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Generator:
    """The failure generator, scripted per file: ``fails[rel]`` attempts fail (with ``error``)."""

    time: FakeTime
    fails: dict[str, int]
    work_seconds: float = 0.0  # how long one attempt takes on the fake clock
    error: type[Exception] = SimulatedOutage
    calls: list[tuple[str, int, float]] = field(default_factory=list)  # (rel, attempt, started at)
    on_call: Any = None  # called with (rel, attempt) before the attempt's result

    def __call__(self, label: str, attempt: int) -> float:
        key = label.rsplit("|", 1)[1]
        assert label == f"{burst.claimant(RUN, key)}|{key}"  # the draw's label is today's
        rel = key.removeprefix("landing/")
        self.calls.append((rel, attempt, self.time.now))
        self.time.now += self.work_seconds
        if self.on_call is not None:
            self.on_call(rel, attempt)
        if attempt <= self.fails.get(rel, 0):
            raise self.error(f"{rel} down on attempt {attempt}")
        return 10.0


def run_chunk(s3: Any, settings: Any, names: list[str], generate: Generator) -> list[burst.Outcome]:
    arrivals = [
        burst.Arrival(settings.bucket, drop(s3, settings, name, GOOD_CSV), None, None) for name in names
    ]
    lifecycle = Lifecycle(ObjectStore(s3, settings.bucket), settings)
    clock = generate.time
    return burst.process_files(lifecycle, arrivals, RUN, generate, [RETRIER], clock.sleep, clock.clock)


def claimed_by(s3: Any, settings: Any, key: str) -> str | None:
    """The run the ledger says claimed the upload now at ``key`` (None: not claimed)."""
    from clean_zone.keys import ledger_key

    etag = s3.head_object(Bucket=settings.bucket, Key=key)["ETag"].strip('"')
    record = ledger_key(settings, key, etag)
    if record not in keys(s3, settings.bucket, settings.state_prefix):
        return None
    return read_json(s3, settings.bucket, record).get("run_id")


def outputs_of(s3: Any, settings: Any, rel: str) -> set[str]:
    return keys(s3, settings.bucket, f"{settings.processed_prefix}{rel}")


def test_a_backing_off_file_lets_the_others_of_its_chunk_finish_first(s3, provisioned):
    time = FakeTime()
    seen: dict[int, dict[str, list[str]]] = {}

    def look(rel: str, attempt: int) -> None:
        if rel == "a.csv":  # what S3 holds when each of A's attempts starts
            seen[attempt] = {name: where_is(s3, provisioned, name) for name in ("b.csv", "c.csv")}
            assert outputs_of(s3, provisioned, "a.csv") == set()  # nothing written before success

    # Each attempt takes 4 s: A fails at 4 s (due 14), B and C run 4-12, then the chunk sleeps to 14.
    generate = Generator(time, {"a.csv": 2}, work_seconds=4, on_call=look)

    outcomes = run_chunk(s3, provisioned, ["a.csv", "b.csv", "c.csv"], generate)

    assert generate.calls == [
        ("a.csv", 1, 0),
        ("b.csv", 1, 4),
        ("c.csv", 1, 8),
        ("a.csv", 2, 14),  # failed at 4 + the policy's first delay, 10 s
        ("a.csv", 3, 33),  # failed at 18 + its second delay, 15 s
    ]
    assert [RETRIER.delay(1), RETRIER.delay(2)] == [10, 15]
    assert time.slept == [2, 15]  # only the part of each delay that nothing else could use
    assert seen[1] == {"b.csv": ["landing/"], "c.csv": ["landing/"]}
    assert seen[2] == {"b.csv": ["processed/"], "c.csv": ["processed/"]}  # done before A's retry
    assert [(o.key, o.place) for o in outcomes] == [
        ("landing/a.csv", "processed"),
        ("landing/b.csv", "processed"),
        ("landing/c.csv", "processed"),
    ]
    for name in ("a.csv", "b.csv", "c.csv"):
        assert where_is(s3, provisioned, name) == ["processed/"]
    summary = read_json(s3, provisioned.bucket, "processed/a.csv.summary.json")
    assert summary["failure_generator_result"] == 10.0
    assert summary["run_id"] == burst.claimant(RUN, "landing/a.csv")


@pytest.mark.parametrize(
    ("error", "attempts", "slept", "failure_class"),
    [
        (SimulatedOutage, 4, [10, 15, 22.5], "endpoint"),  # the policy's 3 retries, then it gives up
        (KeyError, 1, [], "code"),  # a bug is not retried at all
    ],
)
def test_a_file_out_of_retries_waits_claimed_where_it_landed_while_the_others_are_processed(
    s3, provisioned, error, attempts, slept, failure_class
):
    time = FakeTime()
    generate = Generator(time, {"a.csv": 99}, error=error)

    outcomes = run_chunk(s3, provisioned, ["a.csv", "b.csv", "c.csv"], generate)

    assert generate.calls == [
        ("a.csv", 1, 0),
        ("b.csv", 1, 0),
        ("c.csv", 1, 0),
        *[("a.csv", n, sum(slept[: n - 1])) for n in range(2, attempts + 1)],
    ]
    assert time.slept == slept
    waiting, *others = outcomes
    assert (waiting.key, waiting.place, waiting.failure_class) == (
        "landing/a.csv",
        "landing",
        failure_class,
    )
    assert waiting.waiting
    # Claimed in place (the events route): it waits where it landed, its claim in the ledger.
    assert waiting.location == f"s3://{provisioned.bucket}/landing/a.csv"
    assert where_is(s3, provisioned, "a.csv") == ["landing/"]
    assert claimed_by(s3, provisioned, "landing/a.csv") == burst.claimant(RUN, "landing/a.csv")
    assert outputs_of(s3, provisioned, "a.csv") == set()
    assert [(o.key, o.place) for o in others] == [
        ("landing/b.csv", "processed"),
        ("landing/c.csv", "processed"),
    ]
    for name in ("b.csv", "c.csv"):
        assert where_is(s3, provisioned, name) == ["processed/"]


def test_outcomes_come_back_in_the_chunks_order_whatever_order_the_files_finish_in(s3, provisioned):
    time = FakeTime()
    generate = Generator(time, {"a.csv": 1, "c.csv": 2})

    outcomes = run_chunk(s3, provisioned, ["a.csv", "b.pdf", "c.csv", "d.csv"], generate)

    # Finished in the order b (no generator), d, a, c; A and C fell due together: chunk order.
    assert [(rel, n) for rel, n, _ in generate.calls] == [
        ("a.csv", 1),
        ("c.csv", 1),
        ("d.csv", 1),
        ("a.csv", 2),
        ("c.csv", 2),
        ("c.csv", 3),
    ]
    assert time.slept == [10, 15]
    assert [(o.key, o.place, o.reason) for o in outcomes] == [
        ("landing/a.csv", "processed", "processed"),
        ("landing/b.pdf", "rejected", "invalid_extension"),
        ("landing/c.csv", "processed", "processed"),
        ("landing/d.csv", "processed", "processed"),
    ]


def test_an_outage_meeting_one_file_is_retried_like_the_generator_and_holds_no_other(
    s3, provisioned, monkeypatch
):
    # S3 refuses file a's claim once (an outage shorter than the retry budget): a is set aside for
    # the policy's delay and claimed again; b and c go on meanwhile. Nothing waits, nothing alerts.
    from clean_zone.failures import EndpointError

    real_claim = Lifecycle.claim
    refused: list[str] = []

    def claim_refused_once_for_a(self: Lifecycle, key: str, *args: Any, **kwargs: Any) -> Any:
        if key.endswith("/a.csv") and not refused:
            refused.append(key)
            raise EndpointError("connection refused (the endpoint is down)")
        return real_claim(self, key, *args, **kwargs)

    monkeypatch.setattr(Lifecycle, "claim", claim_refused_once_for_a)
    clock = FakeTime()
    generate = Generator(clock, fails={})

    outcomes = run_chunk(s3, provisioned, ["outage/a.csv", "outage/b.csv", "outage/c.csv"], generate)

    assert [o.place for o in outcomes] == ["processed"] * 3
    assert refused == ["landing/outage/a.csv"]
    assert [call[0] for call in generate.calls] == ["outage/b.csv", "outage/c.csv", "outage/a.csv"]
    assert clock.slept == [10]  # the policy's first delay, slept only once b and c were done
    assert generate.calls[-1][1] == 2  # a's second attempt
    for rel in ("outage/a.csv", "outage/b.csv", "outage/c.csv"):
        assert where_is(s3, provisioned, rel) == [provisioned.processed_prefix]


def test_an_outage_after_the_outputs_were_written_finishes_the_file_without_writing_them_again(
    s3, provisioned, monkeypatch
):
    # S3 refuses the move to processed/ once, after the outputs and summary were written: the retry
    # only moves the file. Written again, the output would have a second version (the fault suite
    # counts that as a file handled twice).
    from clean_zone.failures import EndpointError

    real_finish = Lifecycle.finish
    refused: list[str] = []

    def finish_refused_once(self: Lifecycle, claim: Any, place: Any, *args: Any, **kwargs: Any) -> Any:
        if not refused:
            refused.append(claim.key)
            raise EndpointError("connection refused (the endpoint is down)")
        return real_finish(self, claim, place, *args, **kwargs)

    monkeypatch.setattr(Lifecycle, "finish", finish_refused_once)
    clock = FakeTime()
    generate = Generator(clock, fails={})

    outcomes = run_chunk(s3, provisioned, ["moved-late/a.csv"], generate)

    assert [o.place for o in outcomes] == ["processed"]
    assert refused == ["landing/moved-late/a.csv"]
    assert len(generate.calls) == 1  # the retry did not go through the generator again
    output = f"{provisioned.processed_prefix}moved-late/a.csv.normalized.csv"
    versions = s3.list_object_versions(Bucket=provisioned.bucket, Prefix=output).get("Versions", [])
    assert len(versions) == 1
    assert where_is(s3, provisioned, "moved-late/a.csv") == [provisioned.processed_prefix]


def _claims_refused_while(predicate: Any, monkeypatch: Any) -> list[str]:
    """Lifecycle.claim raises the endpoint's error while ``predicate(calls so far)``; returns the calls."""
    from clean_zone.failures import EndpointError

    real_claim = Lifecycle.claim
    calls: list[str] = []

    def claim(self: Lifecycle, key: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(key.removeprefix("landing/"))
        if predicate(len(calls)):
            raise EndpointError("HTTP 500 from S3 (the endpoint is failing)")
        return real_claim(self, key, *args, **kwargs)

    monkeypatch.setattr(Lifecycle, "claim", claim)
    return calls


def test_a_long_outage_holds_the_chunk_behind_its_retries_and_gives_up_once_the_budget_is_spent(
    s3, provisioned, monkeypatch
):
    # S3 fails every request: two files in a row meet it, and the chunk takes it for an outage. It
    # starts no other file and retries only those two; when one runs out of retries, every file
    # waits (never claimed: still in landing/), and the digest can page after one retry budget.
    calls = _claims_refused_while(lambda _n: True, monkeypatch)
    clock = FakeTime()
    names = [f"long-outage/{name}.csv" for name in "abcde"]

    outcomes = run_chunk(s3, provisioned, names, Generator(clock, fails={}))

    assert [o.place for o in outcomes] == ["landing"] * 5
    assert {o.failure_class for o in outcomes} == {"endpoint"}
    # a and b, each tried at 0, 10, 25 and 47.5 s (the policy's delays) until a's retries ran out.
    assert calls == ["long-outage/a.csv", "long-outage/b.csv"] * 3 + ["long-outage/a.csv"]
    assert clock.now == 47.5
    assert "HTTP 500" in outcomes[0].detail
    for outcome in outcomes[1:]:
        assert outcome.detail.startswith(
            "not tried again: S3 was still failing when landing/long-outage/a.csv"
        )
    for name in names:
        assert where_is(s3, provisioned, name) == [provisioned.landing_prefix]


def test_an_outage_that_ends_within_the_retry_budget_lets_the_held_files_go_on(s3, provisioned, monkeypatch):
    # The first three claims fail: a and b meet the outage, the chunk holds c, d and e; b's retry
    # gets through, the chunk goes on with the new files, and a follows when due. Nothing waits.
    calls = _claims_refused_while(lambda n: n <= 3, monkeypatch)
    clock = FakeTime()
    generate = Generator(clock, fails={})
    names = [f"short-outage/{name}.csv" for name in "abcde"]

    outcomes = run_chunk(s3, provisioned, names, generate)

    assert [o.place for o in outcomes] == ["processed"] * 5
    assert calls[:4] == [
        "short-outage/a.csv",
        "short-outage/b.csv",
        "short-outage/a.csv",
        "short-outage/b.csv",
    ]
    assert [call[0] for call in generate.calls] == [
        f"short-outage/{name}.csv" for name in ("b", "c", "d", "e", "a")
    ]
    assert clock.slept == [10, 15]  # the outage's first delay, then a's second once the others were done
