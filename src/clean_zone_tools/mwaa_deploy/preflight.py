"""Local checks that must all pass before a deployment uploads anything.

Every check runs (one failure does not hide the next), and the report lists each
problem. The DAG checks come from :mod:`clean_zone_tools.checks.dag_integrity`, the
same code the test suite runs (on MWAA's import path), so deploy and CI cannot
disagree about what a broken DAG is.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from clean_zone_tools.checks import dag_integrity

from . import plugins_zip, project, requirements, secrets_scan

ResolveMode = Literal["installed", "full", "skip"]
# MWAA's dagbag_import_timeout: one file slower than this never loads there.
MWAA_IMPORT_TIMEOUT_SECONDS = 30.0


@dataclass
class CheckResult:
    name: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class PreflightReport:
    results: list[CheckResult]
    plugins: plugins_zip.PluginsArchive | None = None

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def problems(self) -> list[str]:
        return [f"{r.name}: {p}" for r in self.results for p in r.problems]


@dataclass(frozen=True)
class PreflightOptions:
    airflow_version: str = "3.3.1"
    python_version: str = "3.12"
    parse_budget_seconds: float = 1.0
    resolve: ResolveMode = "installed"


def _timed(name: str, body: Callable[[CheckResult], None]) -> CheckResult:
    result = CheckResult(name)
    started = time.perf_counter()
    try:
        body(result)
    except Exception as error:  # a crashing check is a failed check, reported like one
        result.problems.append(f"the check itself failed: {type(error).__name__}: {error}")
    result.seconds = time.perf_counter() - started
    return result


def check_dag_integrity(layout: project.ProjectLayout) -> CheckResult:
    def body(result: CheckResult) -> None:
        result.problems.extend(
            dag_integrity.integrity_problems(layout.dags_dir, plugins_folder=layout.plugins_dir)
        )

    return _timed("DAG integrity (imports, DAG rules, .airflowignore coverage)", body)


def check_parse_time(layout: project.ProjectLayout, budget: float) -> CheckResult:
    def body(result: CheckResult) -> None:
        per_file, total = dag_integrity.parse_report(layout.dags_dir)
        slowest = sorted(per_file, key=lambda item: item[1], reverse=True)[:5]
        listing = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in slowest)
        if total > budget:
            result.problems.append(
                f"parsing dags/ took {total:.2f} s, over the {budget:.2f} s budget (--parse-budget); "
                f"slowest: {listing}"
            )
        for name, seconds in per_file:
            if seconds > MWAA_IMPORT_TIMEOUT_SECONDS:
                result.problems.append(
                    f"{name} took {seconds:.1f} s to parse; "
                    f"MWAA gives up after {MWAA_IMPORT_TIMEOUT_SECONDS:.0f} s"
                )
        if not result.problems:
            result.warnings.append(f"parse time {total:.2f} s of {budget:.2f} s budget")

    return _timed("DAG parse time", body)


def check_requirements(layout: project.ProjectLayout, options: PreflightOptions) -> CheckResult:
    def body(result: CheckResult) -> None:
        if not layout.requirements.is_file():
            result.skipped = "no requirements.txt"
            return
        target = requirements.AirflowRuntime(options.airflow_version, options.python_version)
        static = requirements.check_static(layout.requirements, target, layout.constraints_dir)
        result.problems.extend(static.problems)
        result.warnings.extend(static.warnings)
        if options.resolve == "skip":
            result.warnings.append("pip dry-run resolve skipped (--skip-resolve)")
            return
        if static.constraints_file is None or static.problems:
            return  # resolving an already-wrong file would only repeat the problem
        pins = requirements.read_pins(
            requirements.essential_pins_file(layout.constraints_dir, target.airflow_version)
        )
        resolved = requirements.resolve(
            layout.requirements,
            static.constraints_file,
            pins,
            layout.plugins_dir,
            ignore_installed=options.resolve == "full",
        )
        result.problems.extend(resolved.problems)

    return _timed("requirements.txt (constraints, MWAA pins, pip resolve)", body)


def check_plugins(layout: project.ProjectLayout, report: PreflightReport) -> CheckResult:
    def body(result: CheckResult) -> None:
        archive = plugins_zip.build(layout.plugins_dir)
        if archive is None:
            result.skipped = "plugins/ is empty: no plugins.zip"
            return
        result.problems.extend(plugins_zip.validate(archive.data, layout.plugins_dir))
        report.plugins = archive

    return _timed("plugins.zip", body)


def check_startup_script(layout: project.ProjectLayout) -> CheckResult:
    def body(result: CheckResult) -> None:
        script = layout.startup_script
        if not script.is_file():
            result.skipped = "no startup.sh"
            return
        if b"\r\n" in script.read_bytes():
            result.problems.append("startup.sh has Windows (CRLF) line endings; MWAA's shell cannot run it")
        bash = shutil.which("bash")
        if bash is None:
            result.warnings.append("bash not found: syntax not checked")
            return
        completed = subprocess.run(
            [bash, "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
        )
        if completed.returncode != 0:
            result.problems.append(f"startup.sh has a syntax error: {completed.stderr.strip()}")

    return _timed("startup.sh", body)


def check_secrets(layout: project.ProjectLayout) -> CheckResult:
    def body(result: CheckResult) -> None:
        shipped: list[tuple[str, bytes]] = []
        for folder in (layout.dags_dir, layout.plugins_dir):
            for relpath, local in project.collect(folder).items():
                shipped.append((f"{folder.name}/{relpath}", local.read()))
        for single in (layout.requirements, layout.startup_script):
            if single.is_file():
                shipped.append((single.name, single.read_bytes()))
        findings = secrets_scan.scan(shipped)
        result.problems.extend(
            f"{finding} (use an Airflow connection or Secrets Manager instead)" for finding in findings
        )

    return _timed("no secrets in uploaded files", body)


def check_dags_folder(layout: project.ProjectLayout) -> CheckResult:
    def body(result: CheckResult) -> None:
        files = project.collect(layout.dags_dir)
        if not any(relpath.endswith(".py") for relpath in files):
            result.problems.append(
                f"{layout.dags_dir} has no Python files; deploying it would delete every DAG in the bucket"
            )

    return _timed("dags/ folder", body)


def run(
    layout: project.ProjectLayout,
    options: PreflightOptions,
    *,
    progress: Callable[[str], None],
) -> PreflightReport:
    """Every check, in order, each reported through ``progress`` as it finishes."""
    report = PreflightReport(results=[])
    steps: list[Callable[[], CheckResult]] = [
        lambda: check_dags_folder(layout),
        lambda: check_dag_integrity(layout),
        lambda: check_parse_time(layout, options.parse_budget_seconds),
        lambda: check_requirements(layout, options),
        lambda: check_plugins(layout, report),
        lambda: check_startup_script(layout),
        lambda: check_secrets(layout),
    ]
    for step in steps:
        result = step()
        report.results.append(result)
        progress(format_result(result))
    return report


def format_result(result: CheckResult) -> str:
    if result.skipped:
        return f"  skip  {result.name}: {result.skipped}"
    mark = "ok  " if result.ok else "FAIL"
    lines = [f"  {mark}  {result.name} ({result.seconds:.1f} s)"]
    lines.extend(f"        - {problem}" for problem in result.problems)
    lines.extend(f"        note: {warning}" for warning in result.warnings)
    return "\n".join(lines)
