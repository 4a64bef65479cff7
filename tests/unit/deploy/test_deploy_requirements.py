"""Static checks on requirements.txt: the constraints line and MWAA's pinned packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from clean_zone_tools.mwaa_deploy import requirements

REPO = Path(__file__).resolve().parents[3]
CONSTRAINTS = REPO / "constraints"
TARGET = requirements.AirflowRuntime("3.3.1", "3.12")
URL = "https://raw.githubusercontent.com/apache/airflow/constraints-{airflow}/constraints-{python}.txt"


def check(
    tmp_path: Path, text: str, target: requirements.AirflowRuntime = TARGET
) -> requirements.StaticResult:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return requirements.check_static(path, target, CONSTRAINTS)


def test_the_projects_requirements_pass(tmp_path: Path) -> None:
    result = requirements.check_static(REPO / "requirements.txt", TARGET, CONSTRAINTS)

    assert result.problems == []
    assert result.constraints_file == CONSTRAINTS / "airflow-3.3.1-python-3.12.txt"


def test_a_missing_constraint_line_is_a_problem_that_says_what_to_add(tmp_path: Path) -> None:
    result = check(tmp_path, "apache-airflow-providers-common-messaging==2.0.4\n")

    assert len(result.problems) == 1
    assert "no --constraint line" in result.problems[0]
    assert URL.format(airflow="3.3.1", python="3.12") in result.problems[0]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f"--constraint {URL.format(airflow='3.2.1', python='3.12')}",
            "constraints are for Airflow 3.2.1 / Python 3.12",
        ),
        (
            f"-c {URL.format(airflow='3.3.1', python='3.11')}",
            "constraints are for Airflow 3.3.1 / Python 3.11",
        ),
        (
            "--constraint=https://example.com/my-constraints.txt",
            "is not the official Airflow constraints URL",
        ),
        (
            f'--constraint "{URL.format(airflow="9.9.9", python="3.12")}"',
            "no local copy of these constraints",
        ),
    ],
)
def test_a_constraint_line_that_does_not_fit_the_environment(
    tmp_path: Path, line: str, expected: str
) -> None:
    result = check(tmp_path, f"{line}\nboto3\n")

    assert any(expected in problem for problem in result.problems), result.problems


def test_two_constraint_lines_are_a_problem(tmp_path: Path) -> None:
    url = URL.format(airflow="3.3.1", python="3.12")
    result = check(tmp_path, f"-c {url}\n--constraint {url}\n")

    assert any("2 --constraint lines (lines 1, 2)" in problem for problem in result.problems)


def test_pinning_a_package_mwaa_fixes_is_a_problem(tmp_path: Path) -> None:
    url = URL.format(airflow="3.3.1", python="3.12")
    result = check(
        tmp_path, f"-c {url}\n# web\nFlask-Login>=0.6\ncelery[sqs]==5.5.0 ; python_version >= '3.9'\n"
    )

    assert len(result.problems) == 2
    assert "line 3: Flask-Login>=0.6 pins Flask-Login, which MWAA fixes at 0.6.3" in result.problems[0]
    assert "line 4" in result.problems[1] and "MWAA fixes at 5.6.3" in result.problems[1]


def test_naming_a_preinstalled_package_without_a_version_is_only_a_warning(tmp_path: Path) -> None:
    url = URL.format(airflow="3.3.1", python="3.12")
    result = check(tmp_path, f"-c {url}\napache-airflow\n")

    assert result.problems == []
    assert result.warnings == [
        "requirements.txt line 2: apache-airflow is preinstalled on MWAA (3.3.1); the line is not needed"
    ]


def test_a_line_pip_cannot_read_is_a_problem(tmp_path: Path) -> None:
    url = URL.format(airflow="3.3.1", python="3.12")
    result = check(tmp_path, f"-c {url}\nnot a requirement!!\n")

    assert result.problems == [
        "requirements.txt line 2: not a requirement pip understands: 'not a requirement!!'"
    ]


def test_python_version_is_known_for_mwaa_3_3_1_and_can_be_given_for_others() -> None:
    assert requirements.python_for("3.3.1") == "3.12"
    assert requirements.python_for("2.10.3") is None
    assert requirements.python_for("2.10.3", "3.11") == "3.11"
