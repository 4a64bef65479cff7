"""Local checks that must all pass before a deployment uploads anything.

Every check runs (one failure does not hide the next), and the report lists each
problem. The DAG checks come from :mod:`clean_zone_tools.checks.dag_integrity`, the
same code the test suite runs (on MWAA's import path), so deploy and CI cannot
disagree about what a broken DAG is. Here they run in the MWAA-like environment
(:mod:`.mwaa_env`: what MWAA preinstalls plus requirements.txt), so a DAG that needs a
package MWAA will not have fails here; ``imports="dev"`` uses the development venv instead.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from clean_zone_tools.checks import dag_integrity

from . import mwaa_env, plugins_zip, project, requirements, secrets_scan

ResolveMode = Literal["installed", "full", "skip"]
ImportsMode = Literal["mwaa", "dev"]
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
    dag_ids: list[str] = field(default_factory=list)
    parse_seconds: dict[str, float] = field(default_factory=dict)  # file -> seconds, fresh process each

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
    parse_budget_seconds: float = 5.0  # per file
    resolve: ResolveMode = "installed"
    imports: ImportsMode = "mwaa"


def _timed(name: str, body: Callable[[CheckResult], None]) -> CheckResult:
    result = CheckResult(name)
    started = time.perf_counter()
    try:
        body(result)
    except Exception as error:  # a crashing check is a failed check, reported like one
        result.problems.append(f"the check itself failed: {type(error).__name__}: {error}")
    result.seconds = time.perf_counter() - started
    return result


def _mwaa_like(
    layout: project.ProjectLayout,
    options: PreflightOptions,
    progress: Callable[[str], None],
    result: CheckResult,
) -> mwaa_env.MwaaEnv:
    target = requirements.AirflowRuntime(options.airflow_version, options.python_version)
    constraints = None
    if layout.requirements.is_file():
        static = requirements.check_static(
            layout.requirements, target, layout.constraints_dir, _shipped(layout)
        )
        if static.problems:  # reported by the requirements check; installing it would only fail
            result.warnings.append("requirements.txt not installed for this check (see its own check)")
        else:
            constraints = static.constraints_file
    return mwaa_env.ensure(
        mwaa_env.preinstalled_file(layout.constraints_dir, options.airflow_version),
        layout.requirements if constraints is not None else None,
        constraints,
        layout.plugins_dir,
        progress=progress,
    )


def check_dag_integrity(
    layout: project.ProjectLayout,
    options: PreflightOptions,
    report: PreflightReport,
    progress: Callable[[str], None],
) -> CheckResult:
    where = "the MWAA-like environment" if options.imports == "mwaa" else "the development venv"

    def body(result: CheckResult) -> None:
        python, site_packages = None, None
        if options.imports == "mwaa":
            try:
                env = _mwaa_like(layout, options, progress, result)
            except mwaa_env.MwaaEnvError as error:
                result.problems.append(f"cannot import the DAGs as MWAA would: {error}")
                return
            python, site_packages = env.python, env.site_packages
            if env.built:
                result.warnings.append(
                    f"built the MWAA-like environment ({', '.join(env.built)}) in {env.seconds:.0f} s"
                )
        found = dag_integrity.check(
            layout.dags_dir, plugins_folder=layout.plugins_dir, python=python, site_packages=site_packages
        )
        result.problems.extend(found.problems)
        report.dag_ids, report.parse_seconds = found.dag_ids, found.parse_seconds

    return _timed(f"DAG integrity in {where} (imports, DAG rules, .airflowignore coverage)", body)


def check_parse_time(report: PreflightReport, budget: float) -> CheckResult:
    def body(result: CheckResult) -> None:
        if not report.parse_seconds:
            result.skipped = "no DAG file was timed (see the integrity check)"
            return
        per_file = sorted(report.parse_seconds.items(), key=lambda item: item[1], reverse=True)
        total = sum(seconds for _, seconds in per_file)
        for name, seconds in per_file:
            if seconds > MWAA_IMPORT_TIMEOUT_SECONDS:
                result.problems.append(
                    f"{name} took {seconds:.1f} s to parse; MWAA gives up after "
                    f"{MWAA_IMPORT_TIMEOUT_SECONDS:.0f} s"
                )
            elif seconds > budget:
                result.problems.append(
                    f"{name} took {seconds:.2f} s to parse in a fresh process, over the {budget:.2f} s "
                    "budget (--parse-budget); look for slow imports or work at module level"
                )
        if not result.problems:
            slowest, seconds = per_file[0]
            result.warnings.append(
                f"slowest file {slowest} {seconds:.2f} s of {budget:.2f} s budget; all files {total:.2f} s"
            )

    return _timed("DAG parse time (each file in a fresh process)", body)


def _shipped(layout: project.ProjectLayout) -> requirements.ShippedFolders:
    return requirements.ShippedFolders(dags=layout.dags_dir, plugins=layout.plugins_dir)


def check_requirements(layout: project.ProjectLayout, options: PreflightOptions) -> CheckResult:
    def body(result: CheckResult) -> None:
        if not layout.requirements.is_file():
            result.skipped = "no requirements.txt"
            return
        target = requirements.AirflowRuntime(options.airflow_version, options.python_version)
        static = requirements.check_static(
            layout.requirements, target, layout.constraints_dir, _shipped(layout)
        )
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
        lambda: check_dag_integrity(layout, options, report, progress),
        lambda: check_parse_time(report, options.parse_budget_seconds),
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
