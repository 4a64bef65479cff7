"""The one requirements.txt parser, shared by the deploy tool and the compose checks."""

from __future__ import annotations

from clean_zone_tools.requirements_file import parse, pins, strip_comment

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
