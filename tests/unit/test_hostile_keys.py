"""Hostile keys, generated: every awkward character class, up to S3's 1,024-byte limit, through the
lifecycle's key mapping (each place keeps the key below its prefix and gives it back), the S3 event
decoding (URL-encoded keys come back whole) and what a person is shown (invisible ends quoted)."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from clean_zone import events, keys
from clean_zone.config import Settings
from clean_zone.keys import MAX_KEY_BYTES, Place

SETTINGS = Settings()

# Every Unicode category S3 can store (UTF-8: no lone surrogates), weighted towards the troublemakers:
# spaces at the ends, '+', '%', '/', '\\', quotes, control characters, NUL, combining marks, emoji.
_AWKWARD = st.sampled_from(
    [
        " ",
        "  ",
        "+",
        "%",
        "%20",
        "%2B",
        "/",
        "//",
        "\\",
        '"',
        "'",
        "\t",
        "\n",
        "\r",
        "\x00",
        "\x7f",
        "#",
        "?",
        "&",
        "=",
        "*",
        "[",
        "]",
        "~",
        ".",
        "..",
        "\u0301",
        "\u200b",
        "\u202e",
        "\ufeff",
        "日本",
        "é",
        "😀",
        "\U0010fffd",
    ]
)
_ANY = st.characters(blacklist_categories=("Cs",))
_PIECE = st.one_of(_AWKWARD, st.text(_ANY, min_size=1, max_size=8))


@st.composite
def landing_keys(draw: st.DrawFn, max_bytes: int = MAX_KEY_BYTES) -> str:
    """A key under the landing prefix, at most ``max_bytes`` of UTF-8 (S3's limit by default)."""
    name = "".join(draw(st.lists(_PIECE, min_size=1, max_size=40)))
    if draw(st.booleans()):  # sometimes right at the limit
        name += "x" * draw(st.integers(0, max_bytes))
    key = SETTINGS.landing_prefix + name
    while len(key.encode()) > max_bytes:
        key = key[:-1]
    return key if len(key) > len(SETTINGS.landing_prefix) else key + "a"


@settings(max_examples=300, deadline=None)
@given(landing_keys())
def test_every_place_keeps_the_key_below_its_prefix_and_gives_it_back(key: str) -> None:
    rel = keys.relative_key(key, SETTINGS.landing_prefix)
    assert SETTINGS.landing_prefix + rel == key
    for place in Place:
        placed = keys.place_key(SETTINGS, place, rel)
        assert placed.startswith(keys.place_prefix(SETTINGS, place))
        assert keys.relative_key(placed, keys.place_prefix(SETTINGS, place)) == rel  # round-trips
        assert keys.reason_key(SETTINGS, place, rel) == placed + keys.REASON_SUFFIX
    # Its documented place: kept under its own name while every derived key fits S3's limit, else
    # rejected under a short hash name (the real key then lives in the reason file).
    if keys.longest_derived_key(SETTINGS, rel) <= MAX_KEY_BYTES:
        for place in Place:
            for derived in (*keys.output_keys(keys.place_key(SETTINGS, place, rel)),):
                assert len(derived.encode()) <= MAX_KEY_BYTES
    else:
        short = keys.place_key(SETTINGS, Place.REJECTED, keys.too_long_key(key))
        assert len(keys.reason_key(SETTINGS, Place.REJECTED, keys.too_long_key(key)).encode()) < 200
        assert short.startswith(SETTINGS.rejected_prefix + keys.TOO_LONG_FOLDER)


@settings(max_examples=300, deadline=None)
@given(landing_keys())
def test_an_s3_event_for_any_key_gives_the_key_back(key: str) -> None:
    # S3 URL-encodes the key in its notification as quote_plus does (a space as '+').
    body = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2026-12-01T04:21:02.000Z",
                    "s3": {
                        "bucket": {"name": SETTINGS.bucket},
                        "object": {"key": quote_plus(key, safe="/"), "eTag": "abc", "versionId": "v1"},
                    },
                }
            ]
        }
    )
    [created] = events.objects_created([{"Body": body}], SETTINGS.bucket, SETTINGS.landing_prefix) or [None]
    if keys.is_folder_marker(key):
        assert created is None
        return
    assert created is not None
    assert (created.key, created.version_id) == (key, "v1")
    run_id = events.pipeline_run_id(SETTINGS.bucket, key, "2026-12-01T04:21:02.000Z/abc")
    assert len(run_id) <= 250 and run_id.isascii()  # Airflow's run id column


@settings(max_examples=300, deadline=None)
@given(landing_keys())
def test_a_key_shown_to_a_person_has_no_invisible_ends(key: str) -> None:
    shown = keys.display_key(key)
    if shown != key:
        assert json.loads(shown) == key  # quoted, and nothing lost
    assert shown == shown.strip()
    assert not any(ord(ch) < 32 for ch in shown)
    assert events.pipeline_note(key) == f"file: {shown}"
