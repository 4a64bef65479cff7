"""The one requirements.txt parser, shared by the deploy tool and the compose checks; and the
requirement lists read through it: what MWAA preinstalls, and the local stack's copy of that."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from clean_zone_tools.requirements_file import parse, pins, strip_comment

REPO = Path(__file__).resolve().parents[3]

TEXT = """\
# a comment line, even with -c https://example.invalid/in-a-comment.txt
--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-3.3.1/constraints-3.12.txt"
-c ./local.txt
--constraint=https://example.invalid/other.txt
--index-url https://example.invalid/simple
Apache_Airflow.Providers-Amazon==9.18.0  # a trailing comment
celery[redis]==5.6.3 ; python_version >= "3.9"
requests>=2.32
pkg @ https://example.invalid/pkg-1.0.tar.gz#sha256=abc
this is not a requirement
"""


def test_constraint_lines_in_every_spelling_with_their_line_numbers() -> None:
    assert parse(TEXT).constraint_urls == [
        (2, "https://raw.githubusercontent.com/apache/airflow/constraints-3.3.1/constraints-3.12.txt"),
        (3, "./local.txt"),
        (4, "https://example.invalid/other.txt"),
    ]


def test_requirements_and_unparsable_lines() -> None:
    parsed = parse(TEXT)

    assert [(number, requirement.name) for number, requirement in parsed.requirements] == [
        (6, "Apache_Airflow.Providers-Amazon"),
        (7, "celery"),
        (8, "requests"),
        (9, "pkg"),
    ]
    assert parsed.unparsable == [(10, "this is not a requirement")]
    assert len(parsed.lines) == 10


def test_pins_are_exact_versions_under_canonical_names() -> None:
    # A range and a URL pin nothing; extras and markers do not change the pin.
    assert pins(TEXT) == {"apache-airflow-providers-amazon": "9.18.0", "celery": "5.6.3"}


def test_a_hash_inside_a_url_is_not_a_comment() -> None:
    assert strip_comment("pkg @ https://x.invalid/p.tar.gz#sha256=abc  # note") == (
        "pkg @ https://x.invalid/p.tar.gz#sha256=abc"
    )
    assert strip_comment("   # only a comment") == ""


# --- what MWAA preinstalls: the copy of its list, and the local stack's base requirements ----------------

PREINSTALLED = REPO / "constraints" / "mwaa-3.3.1-preinstalled.txt"
SHARED_PREINSTALLED = REPO.parent / "shared" / "constraints" / "mwaa-3.3.1-preinstalled.txt"


@pytest.mark.skipif(not SHARED_PREINSTALLED.is_file(), reason="no ../shared next to this checkout")
def test_the_preinstalled_list_is_an_exact_copy_of_the_shared_one() -> None:
    assert PREINSTALLED.read_bytes() == SHARED_PREINSTALLED.read_bytes()


def test_the_preinstalled_list_is_the_images_whole_closure() -> None:
    listed = pins(PREINSTALLED.read_text())

    assert len(listed) == 215  # the bill of materials' count, in the file's own header
    assert listed["apache-airflow"] == "3.3.1" and listed["apache-airflow-providers-amazon"] == "9.34.0"
    assert "moto" not in listed and "pytest" not in listed and "pyarrow" not in listed


def test_the_base_requirements_are_airflow_and_every_preinstalled_provider() -> None:
    # Defect 4: requirements-mwaa-base.txt named only Airflow and the Amazon provider.
    base = pins((REPO / "requirements-mwaa-base.txt").read_text())
    preinstalled = pins(PREINSTALLED.read_text())
    providers = {
        name: version
        for name, version in preinstalled.items()
        if name.startswith("apache-airflow-providers-")
    }

    assert len(providers) == 10
    assert base == {"apache-airflow": "3.3.1", **providers}


def test_the_local_venv_has_exactly_those_versions() -> None:
    base = pins((REPO / "requirements-mwaa-base.txt").read_text())
    installed = {name: importlib.metadata.version(name) for name in base}

    assert installed == base
