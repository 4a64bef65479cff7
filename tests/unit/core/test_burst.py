"""Cutting waiting files into bursts, and the digest's wording.

A chunk's in-process retries run against S3: tests/e2e/test_burst_interleaving.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clean_zone.burst import Arrival, Digest, Outcome, burst_run_id, chunked, group


def arrivals(*seconds: float) -> list[Arrival]:
    start = datetime(2026, 10, 1, 6, tzinfo=UTC)
    return [
        Arrival("b", f"landing/{n:03}.csv", "e", (start + timedelta(seconds=s)).isoformat())
        for n, s in enumerate(seconds)
    ]


def test_a_burst_takes_at_most_n_files_and_the_rest_go_to_following_runs() -> None:
    groups = group(arrivals(*[0.0] * 250), max_files=100, window_seconds=30)
    assert [len(g) for g in groups] == [100, 100, 50]
    assert [a.key for g in groups for a in g] == [f"landing/{n:03}.csv" for n in range(250)]


def test_a_burst_takes_only_what_landed_within_t_of_its_first_file() -> None:
    groups = group(arrivals(0, 10, 29.5, 31, 45, 62), max_files=100, window_seconds=30)
    assert [[a.key[-7:-4] for a in g] for g in groups] == [["000", "001", "002"], ["003", "004"], ["005"]]


def test_the_oldest_file_starts_the_first_burst_whatever_the_listing_order() -> None:
    shuffled = list(reversed(arrivals(0, 1, 2)))
    assert [a.key for a in group(shuffled, 100, 30)[0]] == [a.key for a in arrivals(0, 1, 2)]


def test_the_same_burst_seen_twice_gets_the_same_run_id_and_another_burst_another() -> None:
    first, second = arrivals(0, 1), arrivals(0, 1)
    assert burst_run_id(first) == burst_run_id(second)
    assert burst_run_id(first) != burst_run_id(arrivals(0, 1, 2))


def test_chunks_keep_order_and_bound_their_size() -> None:
    assert chunked(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_the_digest_takes_the_severity_of_the_worst_file() -> None:
    rejected = Outcome(
        "landing/a.pdf", "rejected", "invalid_extension", "invalid_input", "s3://b/rejected/a.pdf"
    )
    waiting = Outcome(
        "landing/b.csv", "processing", "simulated_outage", "endpoint", "s3://b/processing/b.csv"
    )
    partner_only = Digest("d", "r", 10, (rejected,), "http://ui")
    assert partner_only.severity == "warning"
    assert partner_only.subject() == "[WARNING] 1 of 10 files need attention: d"
    both = Digest("d", "r", 10, (rejected, waiting), "http://ui")
    assert both.severity == "critical"
    assert both.subject().endswith("(1 waiting)")
    assert "landing/b.csv | endpoint | simulated_outage | s3://b/processing/b.csv" in both.message()
    assert both.attributes()["failure_class"]["StringValue"] == "endpoint,invalid_input"
