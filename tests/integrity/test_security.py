"""Security in CI: no secrets in the tree, and an execution role with least privilege."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest

from clean_zone_tools import REPO_ROOT
from clean_zone_tools.checks import iam_policy
from clean_zone_tools.mwaa_deploy import secrets_scan


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [name for name in listed.decode().split("\0") if name]


def test_no_secrets_anywhere_in_the_tree() -> None:
    files = _tracked_files()
    assert len(files) > 100, "the scan must see the whole tree"
    contents = ((name, (REPO_ROOT / name).read_bytes()) for name in files if (REPO_ROOT / name).is_file())
    assert [str(finding) for finding in secrets_scan.scan(contents)] == []


def test_the_tree_scan_would_find_a_leaked_key() -> None:
    # Built at run time, so no key-shaped string is committed.
    leaked = "aws_access_key_id = AKIA" + "Q" * 16 + "\naws_secret_access_key = " + "k" * 40 + "\n"
    findings = secrets_scan.scan([("config.ini", leaked.encode())])
    assert [finding.kind for finding in findings] == ["AWS access key id", "AWS secret access key"]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return iam_policy.load_template()


def test_the_execution_role_grants_nothing_beyond_this_project(template: dict[str, Any]) -> None:
    assert iam_policy.problems(template) == []


def _with_statement(template: dict[str, Any], statement: dict[str, Any]) -> dict[str, Any]:
    widened = copy.deepcopy(template)
    widened["Resources"]["ExecutionRole"]["Properties"]["Policies"][-1]["PolicyDocument"]["Statement"].append(
        statement
    )
    return widened


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            {
                "Sid": "All",
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": {"Fn::GetAtt": ["DataBucket", "Arn"]},
            },
            "wildcard action 's3:*'",
        ),
        (
            {"Sid": "Star", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            "Resource '*' for s3:GetObject",
        ),
        (
            {
                "Sid": "Other",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::someone-else/*",
            },
            "is not one of this project's",
        ),
        (
            {"Sid": "Everything", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
            "NotAction allows everything else",
        ),
    ],
)
def test_a_wider_grant_is_reported(
    template: dict[str, Any], statement: dict[str, Any], expected: str
) -> None:
    found = iam_policy.problems(_with_statement(template, statement))
    assert len(found) >= 1
    assert expected in found[0]
    assert found[0].startswith(f"clean-zone-pipeline/{statement['Sid']}")
