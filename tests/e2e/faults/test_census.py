"""The suite's census finds every file where it is, and says when one is lost, doubled or waiting."""

from __future__ import annotations

from typing import Any

from clean_zone.keys import OUTPUT_SUFFIX, Place, place_key
from clean_zone_tools.faults import census
from clean_zone_tools.faults.workload import KINDS, Outcome, mixed_files


def test_mixed_files_cover_every_kind_with_unique_keys() -> None:
    files = mixed_files(70, "t")
    assert {item.kind for item in files} == set(KINDS)
    assert len({item.rel for item in files}) == 70
    # A trailing space makes "x.csv " not a CSV: that hostile key is expected in rejected/.
    trailing = [item for item in files if item.rel.endswith(" ")]
    assert trailing
    assert all(item.expected is Outcome.REJECTED for item in trailing)


def test_census_places_each_file(provisioned: Any, s3: Any) -> None:
    settings = provisioned
    files = mixed_files(7, "census", ("good",))
    put = lambda key, body=b"x": s3.put_object(Bucket=settings.bucket, Key=key, Body=body)  # noqa: E731
    processed = place_key(settings, Place.PROCESSED, files[0].rel)
    put(processed)
    put(processed + OUTPUT_SUFFIX)
    put(settings.landing_prefix + files[1].rel)  # not picked up yet
    put(place_key(settings, Place.PROCESSING, files[2].rel))  # waiting to be resumed
    put(place_key(settings, Place.PROCESSED, files[2].rel))  # ... or half-way through its last move
    # files[3]: nowhere -> lost
    put(place_key(settings, Place.PROCESSED, files[4].rel))  # in two terminal places at once
    put(place_key(settings, Place.REJECTED, files[4].rel))
    doubled = place_key(settings, Place.PROCESSED, files[5].rel)
    put(doubled)
    put(doubled + OUTPUT_SUFFIX, b"first")
    put(doubled + OUTPUT_SUFFIX, b"second")  # processed twice
    files[6] = files[6].__class__(**{**files[6].__dict__, "withdrawn": True})
    alerts = [{"subject": "x", "message": f"file {files[3].rel} failed"}]

    result = census.take(s3, settings, files, alerts, alerts_expected=0)

    assert result.where == {
        files[0].rel: "processed",
        files[1].rel: census.WAITING,
        files[2].rel: census.WAITING,
        files[3].rel: census.LOST,
        files[4].rel: census.MISPLACED,
        files[5].rel: "processed",
        files[6].rel: census.WITHDRAWN,
    }
    row = result.row()
    assert (row["processed"], row["still waiting"], row["lost"], row["misplaced"]) == (2, 2, 1, 1)
    assert row["duplicated outputs"] == 1
    assert row["alerts expected / sent"] == "0 / 1"
    assert not result.settled


def test_every_scenario_is_runnable_as_listed() -> None:
    import inspect

    from clean_zone_tools.faults.scenarios import SCENARIOS

    assert len({scenario.name for scenario in SCENARIOS}) == len(SCENARIOS)
    for scenario in SCENARIOS:
        if scenario.fault is not None:
            assert len(inspect.signature(scenario.fault).parameters) == 2, scenario.name
        if scenario.recover is not None:
            assert len(inspect.signature(scenario.recover).parameters) == 1, scenario.name
        assert set(scenario.kinds) <= set(KINDS), scenario.name
