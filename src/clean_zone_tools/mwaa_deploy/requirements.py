"""Checks on the requirements.txt that MWAA installs on every worker.

A broken requirements.txt shows up on MWAA only after a 20+ minute environment
update, as a failed update or as import errors in CloudWatch. These checks run
locally, before anything is uploaded:

1. at most one ``--constraint`` line: the official constraints for the environment's
   Airflow version and Python, or a file shipped under ``dags/`` or ``plugins.zip``
   (MWAA's documented form for private networks and newer providers). Without one,
   MWAA adds the official line itself: a warning, checked as if it were there;
2. no line pins a package MWAA will not let a requirements file override
   (``constraints/mwaa-<version>-essential.txt``);
3. pip resolves the file against a local copy of those constraints (a dry run:
   nothing is installed). The constraints URL itself is not fetched: it is mapped
   to ``constraints/airflow-<version>-python-<python>.txt``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from clean_zone_tools import requirements_file
from clean_zone_tools.requirements_file import RequirementsFile

CONSTRAINTS_URL = re.compile(
    r"^https://raw\.githubusercontent\.com/apache/airflow/constraints-(?P<airflow>[0-9][0-9a-z.]*)/"
    r"constraints-(?P<python>3\.[0-9]+)\.txt$"
)
# Python version of each MWAA Airflow version, where checked (docs/deploy.md lists
# the source). Others need --python-version.
MWAA_PYTHON_BY_AIRFLOW = {"3.3.1": "3.12"}
# Where MWAA keeps plugins.zip's content on its hosts; requirements files point
# --find-links there for wheels shipped in plugins.zip.
MWAA_PLUGINS_PATH = "/usr/local/airflow/plugins"
MWAA_DAGS_PATH = "/usr/local/airflow/dags"

_PIP_TIMEOUT_SECONDS = 600


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` from a constraints-style file (``name==version`` lines)."""
    return requirements_file.pins(path.read_text())


@dataclass(frozen=True)
class AirflowRuntime:
    """What the requirements must fit: the environment's Airflow and Python versions."""

    airflow_version: str
    python_version: str


def python_for(airflow_version: str, override: str | None = None) -> str | None:
    return override or MWAA_PYTHON_BY_AIRFLOW.get(airflow_version)


def local_constraints(constraints_dir: Path, airflow_version: str, python_version: str) -> Path:
    return constraints_dir / f"airflow-{airflow_version}-python-{python_version}.txt"


def essential_pins_file(constraints_dir: Path, airflow_version: str) -> Path:
    return constraints_dir / f"mwaa-{airflow_version}-essential.txt"


@dataclass
class StaticResult:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    constraints_file: Path | None = None


@dataclass(frozen=True)
class ShippedFolders:
    """Where the files MWAA sees under /usr/local/airflow/{dags,plugins} are in the project."""

    dags: Path
    plugins: Path

    def local(self, mwaa_path: str) -> Path | None:
        """The project file behind an MWAA path (``/usr/local/airflow/dags/x`` -> ``dags/x``), else None."""
        for prefix, folder in ((MWAA_DAGS_PATH, self.dags), (MWAA_PLUGINS_PATH, self.plugins)):
            if mwaa_path.startswith(prefix + "/"):
                return folder / mwaa_path.removeprefix(prefix + "/")
        return None


def check_static(
    path: Path, target: AirflowRuntime, constraints_dir: Path, shipped: ShippedFolders | None = None
) -> StaticResult:
    """Checks 1 and 2 (no network, no pip)."""
    result = StaticResult()
    parsed = requirements_file.parse(path.read_text())
    for number, line in parsed.unparsable:
        result.problems.append(f"{path.name} line {number}: not a requirement pip understands: {line!r}")
    _check_constraint_line(path.name, parsed, target, constraints_dir, shipped, result)
    _check_mwaa_pins(path.name, parsed, essential_pins_file(constraints_dir, target.airflow_version), result)
    return result


def _check_constraint_line(
    name: str,
    parsed: RequirementsFile,
    target: AirflowRuntime,
    constraints_dir: Path,
    shipped: ShippedFolders | None,
    result: StaticResult,
) -> None:
    official = local_constraints(constraints_dir, target.airflow_version, target.python_version)
    if not parsed.constraint_urls:
        result.warnings.append(
            f"{name} has no --constraint line; MWAA adds the official one for Airflow "
            f"{target.airflow_version} / Python {target.python_version} itself (checked as if it were "
            "there). "
            f'To be explicit, add: --constraint "https://raw.githubusercontent.com/apache/airflow/'
            f'constraints-{target.airflow_version}/constraints-{target.python_version}.txt"'
        )
        if official.is_file():
            result.constraints_file = official
        else:
            result.problems.append(f"no local copy of the official constraints at {official}")
        return
    if len(parsed.constraint_urls) > 1:
        numbers = ", ".join(str(n) for n, _ in parsed.constraint_urls)
        result.problems.append(
            f"{name} has {len(parsed.constraint_urls)} --constraint lines (lines {numbers}); keep one"
        )
        return
    number, url = parsed.constraint_urls[0]
    shipped_file = shipped.local(url) if shipped is not None else None
    if shipped_file is not None:
        # MWAA's form for private networks and newer providers: a constraints file shipped with the DAGs
        # or in plugins.zip, read there by MWAA's pip.
        if shipped_file.is_file():
            result.constraints_file = shipped_file
        else:
            result.problems.append(
                f"{name} line {number}: the constraints file {url} is not shipped: no {shipped_file}"
            )
        return
    match = CONSTRAINTS_URL.match(url)
    if match is None:
        result.problems.append(
            f"{name} line {number}: the constraint {url!r} is neither the official Airflow constraints URL "
            "(https://raw.githubusercontent.com/apache/airflow/constraints-<airflow>/"
            "constraints-<python>.txt) "
            f"nor a file shipped under {MWAA_DAGS_PATH}/ or {MWAA_PLUGINS_PATH}/"
        )
        return
    found = AirflowRuntime(match["airflow"], match["python"])
    if found != target:
        result.problems.append(
            f"{name} line {number}: constraints are for Airflow {found.airflow_version} / Python "
            f"{found.python_version}, but the environment runs Airflow {target.airflow_version} / "
            f"Python {target.python_version}"
        )
    local = local_constraints(constraints_dir, found.airflow_version, found.python_version)
    if local.is_file():
        result.constraints_file = local
    else:
        result.problems.append(
            f"{name} line {number}: no local copy of these constraints at {local} "
            "(the URL is not fetched; add the file to constraints/)"
        )


def _check_mwaa_pins(name: str, parsed: RequirementsFile, pins_path: Path, result: StaticResult) -> None:
    if not pins_path.is_file():
        result.problems.append(
            f"no list of MWAA-pinned packages at {pins_path}: cannot check {name} against it"
        )
        return
    pinned = read_pins(pins_path)
    for number, requirement in parsed.requirements:
        key = canonicalize_name(requirement.name)
        if key not in pinned:
            continue
        if requirement.specifier or requirement.url:
            result.problems.append(
                f"{name} line {number}: {requirement} pins {requirement.name}, which MWAA fixes at "
                f"{pinned[key]} and will not let requirements.txt override; remove the line"
            )
        else:
            result.warnings.append(
                f"{name} line {number}: {requirement.name} is preinstalled on MWAA ({pinned[key]}); "
                "the line is not needed"
            )


def localised(text: str, constraints_file: Path, plugins_dir: Path) -> str:
    """The requirements text with MWAA's paths swapped for local ones, for pip to resolve here.

    Its constraint line names ``constraints_file`` (added when the text has none, as MWAA adds one).
    """
    parsed = requirements_file.parse(text)
    constraint_numbers = {number for number, _ in parsed.constraint_urls}
    constraint = f"--constraint {shlex.quote(str(constraints_file))}"
    lines = [
        constraint if number in constraint_numbers else raw.replace(MWAA_PLUGINS_PATH, str(plugins_dir))
        for number, raw in enumerate(parsed.lines, start=1)
    ]
    if not constraint_numbers:
        lines.insert(0, constraint)
    return "\n".join(lines) + "\n"


@dataclass
class ResolveResult:
    problems: list[str] = field(default_factory=list)
    would_install: list[tuple[str, str]] = field(default_factory=list)  # (name, version)


def _pip_error_summary(stdout: str, stderr: str, limit: int = 12) -> str:
    """pip's ERROR lines and its "conflict is caused by" explanation, without the noise around them."""
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
    cause: list[str] = []
    lines = stdout.splitlines()
    if "The conflict is caused by:" in lines:
        for line in lines[lines.index("The conflict is caused by:") :]:
            if not line.strip():
                break
            cause.append(line)
    kept = (errors or [line for line in stderr.splitlines() if line.strip()][-limit:]) + cause
    return "\n".join(f"    {line.strip()}" for line in kept[: limit * 2])


def resolve(
    path: Path,
    constraints_file: Path,
    essential_pins: dict[str, str],
    plugins_dir: Path,
    *,
    ignore_installed: bool = False,
    python: str = sys.executable,
) -> ResolveResult:
    """Check 3: ``pip install --dry-run`` of the file under the local constraints.

    By default pip resolves on top of what this interpreter has installed, which is
    how MWAA installs requirements.txt: on top of its image (Airflow and the
    preinstalled providers, mirrored in the project's .venv). ``ignore_installed``
    resolves everything from scratch instead (slower: about half a minute).
    """
    result = ResolveResult()
    with tempfile.TemporaryDirectory(prefix="mwaa-deploy-pip-") as tmp:
        localised_file = Path(tmp) / "requirements.txt"
        localised_file.write_text(localised(path.read_text(), constraints_file, plugins_dir))
        report = Path(tmp) / "report.json"
        command = [
            python,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-input",
            "--disable-pip-version-check",
            "--report",
            str(report),
            "-r",
            str(localised_file),
        ]
        if ignore_installed:
            command.insert(5, "--ignore-installed")
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            result.problems.append(
                f"pip's dry run of {path.name} took over {_PIP_TIMEOUT_SECONDS} s; gave up"
            )
            return result
        if completed.returncode != 0:
            result.problems.append(
                f"pip cannot resolve {path.name} under {constraints_file.name}:\n"
                f"{_pip_error_summary(completed.stdout, completed.stderr)}"
            )
            return result
        installs = json.loads(report.read_text()).get("install", [])
    for item in installs:
        metadata = item.get("metadata", {})
        name, version = metadata.get("name", "?"), metadata.get("version", "?")
        result.would_install.append((name, version))
        pinned = essential_pins.get(canonicalize_name(name))
        if pinned is not None and pinned != version:
            result.problems.append(
                f"{path.name} would change {name} from MWAA's fixed {pinned} to {version} "
                "(through a dependency); MWAA will not allow it"
            )
    return result
