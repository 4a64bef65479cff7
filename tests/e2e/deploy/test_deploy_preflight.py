"""The preflight checks on whole projects: the DAG integrity gate's rules with real Airflow,
pip's real dry-run resolver, the plugins.zip build, the startup script and the secrets scan."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from deploy_helpers import HELLO_DAG, make_project, write

from clean_zone_tools.mwaa_deploy import preflight
from clean_zone_tools.mwaa_deploy.project import ProjectLayout

pytestmark = pytest.mark.e2e


def run(layout: ProjectLayout, **options: object) -> preflight.PreflightReport:
    printed: list[str] = []
    report = preflight.run(layout, preflight.PreflightOptions(**options), progress=printed.append)  # type: ignore[arg-type]
    assert len(printed) == len(report.results)
    return report


def test_a_good_project_passes_every_check_including_pips_resolve(
    project: ProjectLayout, mwaa_like_env: None
) -> None:
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

    report = run(layout, resolve="skip", imports="dev", parse_budget_seconds=1e-9)

    problems = "\n".join(report.problems)
    assert not report.ok
    assert "broken.py: import error" in problems
    assert "shared_utils.py: defines no DAG and is not matched by .airflowignore" in problems
    assert "over the 0.00 s budget (--parse-budget)" in problems
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

    report = run(project, resolve="installed", imports="dev")

    problems = "\n".join(report.problems)
    assert "pip cannot resolve requirements.txt under airflow-3.3.1-python-3.12.txt" in problems
    assert "The user requested (constraint) apache-airflow-providers-common-messaging==2.0.4" in problems


def test_skip_resolve_still_runs_the_static_requirement_checks(project: ProjectLayout) -> None:
    project.requirements.write_text("flask==3.1.0\n")

    report = run(project, resolve="skip", imports="dev")

    problems = "\n".join(report.problems)
    assert "flask==3.1.0 pins flask, which MWAA fixes at 3.1.3" in problems


def test_parse_time_is_measured_in_a_fresh_process_as_mwaas_dag_processor_does(
    project: ProjectLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defect 3: a helper that sleeps at import passed with "parse time 0.01 s" once it was imported.
    write(project.dags_dir / "helpers" / "slow.py", "import time\ntime.sleep(1.5)\nSLOW = True\n")
    hello = project.dags_dir / "hello.py"
    hello.write_text(
        hello.read_text().replace("from helpers.greetings", "import helpers.slow\nfrom helpers.greetings")
    )
    # Already imported in this process (as a test run or an earlier check would have done).
    monkeypatch.syspath_prepend(str(project.dags_dir))
    monkeypatch.delitem(sys.modules, "helpers", raising=False)
    import helpers.slow  # noqa: F401

    report = run(project, resolve="skip", imports="dev", parse_budget_seconds=1.0)

    assert report.parse_seconds["hello.py"] >= 1.5
    problems = "\n".join(report.problems)
    assert "DAG parse time (each file in a fresh process): hello.py took " in problems
    assert "over the 1.00 s budget" in problems
    for name in [name for name in sys.modules if name == "helpers" or name.startswith("helpers.")]:
        monkeypatch.delitem(sys.modules, name)


# --- defect 4: the DAGs are imported in an MWAA-like environment, not the development venv ---------------


def test_a_dag_importing_a_package_mwaa_lacks_fails(project: ProjectLayout, mwaa_like_env: None) -> None:
    write(
        project.dags_dir / "uses_moto.py",
        HELLO_DAG.replace("deploy_test_hello", "deploy_test_moto").replace(
            "from helpers.greetings import greeting", "from helpers.greetings import greeting\nimport moto"
        ),
    )

    report = run(project, resolve="skip", imports="mwaa")

    problems = "\n".join(report.problems)
    assert "uses_moto.py: import error: ModuleNotFoundError: No module named 'moto'" in problems
    assert "in the MWAA-like environment" in report.results[1].name
    # The development venv has moto: the same DAG passes there, which is the defect. (A wide parse
    # budget: importing moto takes seconds on a busy machine, and the budget is not what is tested.)
    in_dev = run(project, resolve="skip", imports="dev", parse_budget_seconds=60.0)
    assert in_dev.ok, in_dev.problems


def test_a_dag_using_a_provider_mwaa_preinstalls_passes(project: ProjectLayout, mwaa_like_env: None) -> None:
    write(
        project.dags_dir / "uses_http.py",
        HELLO_DAG.replace("deploy_test_hello", "deploy_test_http").replace(
            "from helpers.greetings import greeting",
            "from helpers.greetings import greeting\n"
            "from airflow.providers.http.operators.http import HttpOperator  # noqa: F401",
        ),
    )

    report = run(project, resolve="skip", imports="mwaa")

    assert report.ok, report.problems
    assert "deploy_test_http" in report.dag_ids
