"""The preflight checks on whole projects: the DAG integrity gate's rules with real Airflow,
pip's real dry-run resolver, the plugins.zip build, the startup script and the secrets scan."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import make_project, write

from clean_zone_tools.mwaa_deploy import preflight
from clean_zone_tools.mwaa_deploy.project import ProjectLayout

pytestmark = pytest.mark.e2e


def run(layout: ProjectLayout, **options: object) -> preflight.PreflightReport:
    printed: list[str] = []
    report = preflight.run(layout, preflight.PreflightOptions(**options), progress=printed.append)  # type: ignore[arg-type]
    assert len(printed) == len(report.results)
    return report


def test_a_good_project_passes_every_check_including_pips_resolve(project: ProjectLayout) -> None:
    report = run(project, resolve="installed")

    assert report.ok, report.problems
    assert report.plugins is not None and report.plugins.entries == ("deploy_test_plugin/__init__.py",)
    skipped = [result.name for result in report.results if result.skipped]
    assert skipped == []


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    layout = make_project(tmp_path / "project")
    # DAG checks (clean_zone_tools.checks.dag_integrity): an import error and a module .airflowignore misses.
    write(layout.dags_dir / "broken.py", "from airflow.sdk import DAG\nraise RuntimeError('boom')\n")
    write(layout.dags_dir / "shared_utils.py", "# used by airflow DAGs\nVALUE = 1\n")
    # requirements.txt: constraints for another Airflow, and a package MWAA pins.
    layout.requirements.write_text(
        '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-3.2.1/constraints-3.12.txt"\n'
        "flask==3.1.0\n"
    )
    # plugins: a syntax error; startup.sh: Windows line endings; a private key in a plugin file.
    write(layout.plugins_dir / "deploy_test_plugin" / "broken.py", "def oops(:\n")
    layout.startup_script.write_bytes(b"#!/usr/bin/env bash\r\necho hi\r\n")
    pem_header = "-----BEGIN " + "RSA PRIVATE KEY-----"
    write(layout.plugins_dir / "deploy_test_plugin" / "key.pem", f"{pem_header}\nMIIB\n")

    report = run(layout, resolve="skip", parse_budget_seconds=1e-9)

    problems = "\n".join(report.problems)
    assert not report.ok
    assert "broken.py: import error" in problems
    assert "shared_utils.py: defines no DAG and is not matched by .airflowignore" in problems
    assert "over the 0.00 s budget" in problems
    assert (
        "constraints are for Airflow 3.2.1 / Python 3.12, but the environment runs Airflow 3.3.1" in problems
    )
    assert "flask==3.1.0 pins flask, which MWAA fixes at 3.1.3" in problems
    assert "deploy_test_plugin/broken.py line 1" in problems
    assert "startup.sh has Windows (CRLF) line endings" in problems
    assert "plugins/deploy_test_plugin/key.pem:1: private key (PEM)" in problems


def test_an_unresolvable_requirement_is_reported_with_pips_reason(project: ProjectLayout) -> None:
    project.requirements.write_text(
        project.requirements.read_text() + "apache-airflow-providers-common-messaging==1.0.0\n"
    )

    report = run(project, resolve="installed")

    problems = "\n".join(report.problems)
    assert "pip cannot resolve requirements.txt under airflow-3.3.1-python-3.12.txt" in problems
    assert "The user requested (constraint) apache-airflow-providers-common-messaging==2.0.4" in problems


def test_skip_resolve_still_runs_the_static_requirement_checks(project: ProjectLayout) -> None:
    project.requirements.write_text("apache-airflow-providers-common-messaging==2.0.4\n")

    report = run(project, resolve="skip")

    problems = "\n".join(report.problems)
    assert "requirements.txt has no --constraint line" in problems
