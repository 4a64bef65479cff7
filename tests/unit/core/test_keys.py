"""Where things go: places, output suffixes, the key limit, folder markers and the batch layout."""

from __future__ import annotations

from fnmatch import fnmatch

import pytest

from clean_zone import keys
from clean_zone.config import Settings
from clean_zone.keys import BatchLayout, Place

RUN = "manual__2026-09-14T06:00:00+00:00"
SETTINGS = Settings()


def test_a_file_keeps_its_key_below_every_prefix() -> None:
    rel = keys.relative_key("landing/a/b.csv", SETTINGS.landing_prefix)
    assert rel == "a/b.csv"
    assert {place: keys.place_key(SETTINGS, place, rel) for place in Place} == {
        Place.PROCESSING: "processing/a/b.csv",
        Place.PROCESSED: "processed/a/b.csv",
        Place.REJECTED: "rejected/a/b.csv",
        Place.QUARANTINE: "quarantine/a/b.csv",
        Place.DUPLICATES: "duplicates/a/b.csv",
    }
    assert keys.relative_key("elsewhere/x.csv", SETTINGS.landing_prefix) == "elsewhere/x.csv"
    assert keys.reason_key(SETTINGS, Place.REJECTED, rel) == "rejected/a/b.csv.reason.json"
    assert keys.output_keys("processed/a/b.csv") == (
        "processed/a/b.csv.normalized.csv",
        "processed/a/b.csv.summary.json",
    )


def test_the_longest_derived_key_counts_the_longest_prefix_and_suffix_in_utf8_bytes() -> None:
    settings = Settings(quarantine_prefix="quarantine-for-a-long-while/")
    rel = "ä.csv"  # 6 bytes, 5 characters
    expected = len("quarantine-for-a-long-while/") + 6 + len(".normalized.csv")
    assert keys.longest_derived_key(settings, rel) == expected


def test_a_too_long_key_gets_a_short_stable_name() -> None:
    short = keys.too_long_key("landing/" + "x" * 2000)
    assert short.startswith(keys.TOO_LONG_FOLDER)
    assert len(short.encode()) < 100
    assert short == keys.too_long_key("landing/" + "x" * 2000)


@pytest.mark.parametrize(
    ("key", "size", "marker"),
    [
        ("landing/dir/", 0, True),
        ("landing/dir/", 1, False),  # has content: a real object
        ("landing/dir", 0, False),
        ("manifests/acme/", 0, True),
    ],
)
def test_folder_markers(key: str, size: int, marker: bool) -> None:
    assert keys.is_folder_marker(key, size) is marker


def test_the_sensor_pattern_skips_folder_markers() -> None:
    pattern = keys.files_pattern("manifests/")
    assert fnmatch("manifests/acme.json", pattern)
    assert fnmatch("manifests/acme/2026-09-14.json", pattern)
    assert not fnmatch("manifests/", pattern)
    assert not fnmatch("manifests/acme/", pattern)


def test_run_slugs_are_key_safe_readable_and_distinct() -> None:
    slug = keys.run_slug(RUN)
    assert slug.startswith("manual__2026-09-14T06-00-00-00-00-")
    assert "/" not in slug and ":" not in slug and "+" not in slug
    assert keys.run_slug(RUN) == slug
    assert keys.run_slug("a/b") != keys.run_slug("a:b")  # same readable part, different runs


def test_the_batch_layout() -> None:
    layout = BatchLayout(SETTINGS)
    slug = keys.run_slug(RUN)
    assert layout.object_key("b1", "orders/1.csv") == "batches/b1/orders/1.csv"
    assert layout.held_manifest(RUN, "manifests/acme/b1.json") == f"processing/manifests/{slug}/b1.json"
    assert layout.run_record(RUN) == f"_state/batch-runs/{slug}.json"
    assert layout.batch_claim("b1") == "_state/batches/b1.json"
    assert layout.processed_file("b1", "orders/1.csv") == "processed/batches/b1/files/orders/1.csv"
    assert layout.quarantined_batch("b1", RUN) == f"quarantine/batches/b1/{slug}/"
    assert layout.refused_manifest(RUN) == f"quarantine/manifests/{slug}/"
    assert layout.duplicate_manifest("b1", RUN) == f"duplicates/manifests/b1/{slug}/"
