"""Hostile keys, generated, against the moto server: each claimed, finished and found in its
documented place under the same key below the place's prefix (or, too long for S3 once prefixed,
rejected under a short hash name with the real key in its reason file)."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings

from clean_zone.config import Settings
from clean_zone.keys import MAX_KEY_BYTES, Place, longest_derived_key, place_key, reason_key, relative_key
from clean_zone.lifecycle import ClaimOutcome, Lifecycle
from clean_zone.storage import ObjectStore
from tests.unit.test_hostile_keys import landing_keys


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one bucket; each example its own upload
)
# Moto's URL routing cannot match a key holding a line feed (AWS stores it): a carriage return, the
# same one byte, stands in for it here. The pure mapping tests keep line feeds.
@given(key=landing_keys().map(lambda key: key.replace("\n", "\r")))
def test_any_key_ends_in_its_documented_place(s3: Any, provisioned: Settings, key: str) -> None:
    lifecycle = Lifecycle(ObjectStore(s3, provisioned.bucket), provisioned)
    body = f"id,name\n1,{uuid.uuid4()}\n".encode()  # a fresh upload each time, never a duplicate
    s3.put_object(Bucket=provisioned.bucket, Key=key, Body=body)
    run_id = f"manual__{uuid.uuid4()}"
    rel = relative_key(key, provisioned.landing_prefix)

    outcome, claim = lifecycle.claim(key, run_id)

    assert claim is not None
    if longest_derived_key(provisioned, rel) > MAX_KEY_BYTES:
        assert outcome is ClaimOutcome.KEY_TOO_LONG
        reason = lifecycle.store.get_json(reason_key(provisioned, Place.REJECTED, claim.relative_key))
        assert reason["source_key"] == key
        where = place_key(provisioned, Place.REJECTED, claim.relative_key)
    else:
        assert outcome is ClaimOutcome.CLAIMED
        # Claimed in place (the default events route, a versioned bucket): it waits where it landed.
        assert claim.in_place
        assert claim.location == lifecycle.store.url(key)
        where = lifecycle.finish(claim, Place.PROCESSED).removeprefix(f"s3://{provisioned.bucket}/")
        assert where == place_key(provisioned, Place.PROCESSED, rel)
        assert lifecycle.store.head(place_key(provisioned, Place.PROCESSING, rel)) is None
    assert b"".join(lifecycle.store.iter_chunks(where)) == body
    assert lifecycle.store.head(key) is None  # left the landing prefix
