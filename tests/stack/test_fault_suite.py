"""The fault suite's fast subset, in CI: a short endpoint outage and a killed endpoint on a stack of
the suite's own. The whole suite (every scenario, bigger bursts) is
``python -m clean_zone_tools.faults.suite`` (docs/reliability.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clean_zone_tools.faults.scenarios import SCENARIOS
from clean_zone_tools.faults.stack import SuiteStack, suite_stack
from clean_zone_tools.faults.suite import run_scenario, table

pytestmark = pytest.mark.stack
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


@pytest.fixture(scope="module")
def faulty_stack() -> Iterator[SuiteStack]:
    with suite_stack() as stack:
        yield stack


@pytest.mark.parametrize(("name", "files"), [("short-outage", 6), ("endpoint-killed", 6)])
def test_scenario_holds(faulty_stack: SuiteStack, name: str, files: int) -> None:
    result = run_scenario(faulty_stack, BY_NAME[name], files, timeout=600)
    print(table([result]))
    row = result.census.row()
    assert row["files in"] == files
    problems = (row["lost"], row["misplaced"], row["duplicated outputs"], row["still waiting"])
    assert problems == (0, 0, 0, 0), row
    assert result.census.wrong_place == []
    assert result.census.files_alerted == result.census.alerts_expected, row
    assert result.held
