"""The README's configuration table is the settings' documentation: it must name every setting
with its real default, so the docs cannot drift from dags/clean_zone/config.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clean_zone import config

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
ROWS = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(clean_zone_\w+)` \| ([^|]*) \|", README, re.M)}
MEANINGS = {
    m.group(1): m.group(2).strip()
    for m in re.finditer(r"^\| `(clean_zone_\w+)` \|[^|]*\|[^|]*\|(.*)\|\s*$", README, re.M)
}


@pytest.mark.parametrize("setting", config.describe(), ids=lambda s: s["variable"])
def test_every_setting_is_documented_with_its_default(setting):
    assert setting["variable"] in ROWS, f"{setting['variable']} is missing from the README's table"
    documented = ROWS[setting["variable"]]
    default = setting["default"]
    if default == "":
        assert "empty" in documented
    elif isinstance(default, float) and default == 1 / 3:
        assert "1/3" in documented
    else:
        assert f"`{default}`" in documented


@pytest.mark.parametrize("setting", config.describe(), ids=lambda s: s["variable"])
def test_every_setting_is_described_in_the_words_of_its_definition(setting):
    assert MEANINGS.get(setting["variable"]) == setting["doc"]


def test_the_table_lists_no_setting_that_does_not_exist():
    assert set(ROWS) <= {s["variable"] for s in config.describe()}
