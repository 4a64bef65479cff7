"""`scripts/dev status` tells files waiting to be claimed from files claimed in place, against moto."""

from __future__ import annotations

from typing import Any

from clean_zone.config import Settings
from clean_zone.lifecycle import ClaimOutcome, Lifecycle
from clean_zone.storage import ObjectStore
from clean_zone_tools.devstack import commands


def test_status_counts_the_files_in_landing_a_run_claimed_in_place(s3: Any, provisioned: Settings) -> None:
    store = ObjectStore(s3, provisioned.bucket)
    for name in ("a.csv", "b.csv", "c.csv", "folder/"):
        s3.put_object(
            Bucket=provisioned.bucket,
            Key=f"landing/{name}",
            Body=b"" if name.endswith("/") else b"x,y\n1,2\n" + name.encode(),
        )
    outcome, claim = Lifecycle(store, provisioned).claim("landing/b.csv", "manual__status")
    assert outcome is ClaimOutcome.CLAIMED and claim is not None and claim.in_place

    listed = list(store.list_keys(provisioned.landing_prefix))

    assert commands._claimed_note(store, provisioned, listed) == " (1 claimed by a run)"
    assert commands._claimed_note(store, provisioned, []) == ""
