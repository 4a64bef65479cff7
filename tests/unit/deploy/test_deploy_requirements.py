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


def test_a_missing_constraint_line_is_a_warning_because_mwaa_adds_one(tmp_path: Path) -> None:
    # Defect 5: this was fatal, while MWAA adds the official constraints itself.
    result = check(tmp_path, "apache-airflow-providers-common-messaging==2.0.4\n")

    assert result.problems == []
    assert len(result.warnings) == 1
    assert "no --constraint line; MWAA adds the official one" in result.warnings[0]
    assert URL.format(airflow="3.3.1", python="3.12") in result.warnings[0]
    # ... and the resolve uses the official constraints, as MWAA would.
    assert result.constraints_file == CONSTRAINTS / "airflow-3.3.1-python-3.12.txt"


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("--constraint /usr/local/airflow/dags/constraints.txt", "dags/constraints.txt"),
        ("-c /usr/local/airflow/plugins/pins/constraints.txt", "plugins/pins/constraints.txt"),
    ],
)
def test_mwaas_documented_shipped_constraints_files_are_accepted(
    tmp_path: Path, line: str, where: str
) -> None:
    # Defect 5: MWAA's form for private networks and newer providers was refused.
    shipped = requirements.ShippedFolders(dags=tmp_path / "dags", plugins=tmp_path / "plugins")
    path = tmp_path / "requirements.txt"
    path.write_text(f"{line}\nboto3\n")

    missing = requirements.check_static(path, TARGET, CONSTRAINTS, shipped)
    (tmp_path / where).parent.mkdir(parents=True)
    (tmp_path / where).write_text("boto3==1.40.0\n")
    present = requirements.check_static(path, TARGET, CONSTRAINTS, shipped)

    constraint = line.split()[1]
    assert missing.problems == [
        f"requirements.txt line 1: the constraints file {constraint} is not shipped: no {tmp_path / where}"
    ]
    assert present.problems == [] and present.constraints_file == tmp_path / where


def test_the_localised_file_names_the_local_constraints_and_adds_the_line_mwaa_would(tmp_path: Path) -> None:
    constraints = tmp_path / "c.txt"
    url = URL.format(airflow="3.3.1", python="3.12")

    with_line = requirements.localised(f"-c {url}\nboto3\n", constraints, tmp_path)
    without = requirements.localised("boto3\n", constraints, tmp_path)

    assert with_line == f"--constraint {constraints}\nboto3\n"
    assert without == f"--constraint {constraints}\nboto3\n"


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
            "is neither the official Airflow constraints URL",
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
