"""DAG integrity checks: one implementation for the tests, the parse benchmark and the deploy preflight.

(Just over 500 lines: the MWAA-path child interpreter and the checks it runs are one protocol, kept
together so the parent and the child cannot drift apart.)

The DAG folder is loaded the way Airflow 3.3's DAG processor loads a bundle (``BundleDagBag``: the folder
is put on ``sys.path``, ``.airflowignore`` is honoured, each file is imported under the configured
``dagbag_import_timeout``), then every DAG is serialised as the processor does before it stores it.

Rules (:func:`integrity_problems`; an empty list means the folder may ship):

* every DAG file imports: no import errors, no timeouts, no cycles (``DagBag`` reports a cycle as an
  import error of its file), and every DAG serialises;
* DAG ids are unique, across files (Airflow keeps the first and reports the second) and within a file
  (Airflow silently keeps one, so this module reports it; two definitions Airflow deems equal, same
  tasks, schedule and dates, count as one);
* no runtime-varying values in DAG/task constructors (Airflow's own "Dag version inflation" check);
* every DAG has an owner other than Airflow's default (``[operators] default_owner``, "airflow") on
  every task, at least one tag, a ``description`` or ``doc_md``;
* failure callback: a DAG-level ``on_failure_callback``, or one on every task that runs code.
  EmptyOperator tasks are exempt (the scheduler completes them without running anything);
* retries: ``retries > 0`` on every task, usually through ``default_args``. Exempt: EmptyOperator tasks,
  and sensors, whose waiting is governed by ``timeout``/``poke_interval`` (a sensor timeout never
  retries, and a retried sensor would restart its whole wait). A task that must fail at once on bad
  data still gets retries and raises ``AirflowFailException``, which skips them: the intent is then in
  the code, not in a missing setting;
* every ``.py`` file under the folder that defines no DAG is matched by ``.airflowignore`` (MWAA's
  guidance: the DAG processor parses every file that mentions airflow), see :func:`uncovered_modules`.

MWAA's import path: on MWAA only the DAGs folder, the plugins folder and the installed requirements
are importable; this project's editable install (``clean_zone_tools``, and ``clean_zone`` through the
install rather than through ``dags/``) is not. So :func:`integrity_problems` and the CLI run the checks
in a child interpreter started with ``-S -P`` (no ``site`` processing, so the editable install's
``__editable__*.pth`` finder never runs; no script folder on the path) and
``PYTHONPATH=<dags>:<plugins>:<site-packages>`` (PYTHONPATH entries run no ``.pth`` files). A DAG
that only imports because of the local install then fails the gate, as it would on MWAA. This is the
project's one simulation of MWAA's path; :func:`load_folder` itself loads in the calling interpreter
(the per-DAG tests and the parse benchmark use it directly).

The child can run on another interpreter and site-packages (:func:`check`'s ``python`` and
``site_packages``): the deploy preflight gives it the MWAA-like environment
(``clean_zone_tools.mwaa_deploy.mwaa_env``: exactly what MWAA preinstalls plus requirements.txt), so a
DAG that imports a package MWAA lacks fails there even though the development venv has it.

Parse time (:func:`fresh_parse_times`): measured in the child before it imports any DAG file, each
file in a process forked for it after the ``airflow.*`` modules are imported, as MWAA's DAG
processor parses files. Timing files in a process that already imported their helpers (a test run,
a second pass) would report 0.01 s for a file that takes seconds on MWAA.

Environment: Airflow reads its configuration when first imported, so every public function first sets
safe defaults, never overriding what the caller set: ``AIRFLOW_HOME`` to a private temporary directory
(the checks never touch a developer's ``~/airflow``) and ``AIRFLOW__CORE__LOAD_EXAMPLES=False``.
``AIRFLOW__CORE__UNIT_TEST_MODE`` is deliberately not set: it loads Airflow's ``unit_tests.cfg``
(example DAGs on, LocalExecutor, test folders), a configuration unlike MWAA's. Parsing needs no
metadata database and no network; ``tests/integrity/test_dags.py`` proves both.

Run ``python -m clean_zone_tools.checks.dag_integrity --help``. Exit codes: 0 ok, 1 problems found,
2 usage error.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import re
import site
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from clean_zone_tools import REPO_ROOT
except ImportError:  # in the MWAA-path child, where (by design) the tools are not importable
    REPO_ROOT = None

DEFAULT_DAGS_FOLDER = REPO_ROOT / "dags" if REPO_ROOT else None
DEFAULT_PLUGINS_FOLDER = REPO_ROOT / "plugins" if REPO_ROOT else None
IGNORE_FILE_NAME = ".airflowignore"
BUNDLE_NAME = "dags-folder"  # the name Airflow gives the default local bundle

# Set before Airflow is first imported; setdefault keeps anything the caller chose.
SAFE_ENVIRONMENT = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
}

_TRACEBACK_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')


def prepare_environment() -> None:
    """Give Airflow a private home and no example DAGs, unless the caller already configured them."""
    if "AIRFLOW_HOME" not in os.environ:
        # One fixed directory per user, so repeated runs do not litter the temp folder.
        home = Path(tempfile.gettempdir()) / f"clean-zone-dag-checks-{os.getuid()}"
        home.mkdir(mode=0o700, exist_ok=True)
        os.environ["AIRFLOW_HOME"] = str(home)
    for name, value in SAFE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


@dataclass
class FileParse:
    """One DAG file as the DAG processor saw it."""

    path: str  # relative to the DAG folder, POSIX separators
    seconds: float
    dag_ids: list[str]


@dataclass
class LoadedFolder:
    """The result of loading a DAG folder once; every check reads from it."""

    folder: Path
    dags: dict[str, Any] = field(default_factory=dict)  # dag_id -> airflow.sdk.DAG
    import_errors: dict[str, str] = field(default_factory=dict)  # relative path -> error text
    files: list[FileParse] = field(default_factory=list)  # slowest first, as DagBag sorts them
    serialization_errors: dict[str, str] = field(default_factory=dict)  # dag_id -> error text
    version_inflation: dict[str, str] = field(default_factory=dict)  # relative path -> first issue

    def import_error_summaries(self) -> dict[str, str]:
        """Each import error as one line: the exception and the place in the DAG folder it points at."""
        return {path: _error_summary(text, self.folder) for path, text in sorted(self.import_errors.items())}

    def relative(self, path: str | os.PathLike[str]) -> str:
        try:
            return Path(path).resolve().relative_to(self.folder).as_posix()
        except ValueError:
            return str(path)


@contextmanager
def _without_pathspec_warning() -> Iterator[None]:
    """pathspec deprecates the pattern class Airflow 3.3's .airflowignore walker uses; not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GitWildMatchPattern", category=DeprecationWarning)
        yield


@contextmanager
def _quiet_airflow_logs(enabled: bool) -> Iterator[None]:
    """DagBag logs every import error with its traceback; the checks report each in one line instead."""
    if not enabled:
        yield
        return
    silent = logging.CRITICAL  # the highest level both logging systems know
    # The importer logs through stdlib logging, DagBag through Airflow's structlog setup, whose
    # per-logger levels live in a trie ([logging] namespace_levels). If that internal moves in a
    # later Airflow, the only effect is a noisier output.
    try:
        from airflow._shared.logging.structlog import PER_LOGGER_LEVELS
    except ImportError:
        PER_LOGGER_LEVELS = {}  # noqa: N806
    namespace = "airflow.dag_processing"
    had_level = namespace in PER_LOGGER_LEVELS
    previous_level = PER_LOGGER_LEVELS.get(namespace)
    stdlib_logger = logging.getLogger(namespace)
    previous_stdlib_level = stdlib_logger.level
    PER_LOGGER_LEVELS[namespace] = silent
    stdlib_logger.setLevel(silent)
    try:
        with _without_pathspec_warning():
            yield
    finally:
        stdlib_logger.setLevel(previous_stdlib_level)
        if had_level:
            PER_LOGGER_LEVELS[namespace] = previous_level
        else:
            del PER_LOGGER_LEVELS[namespace]


def _pre_import_airflow_modules(folder: Path) -> None:
    """What the DAG processor does before it forks a file's parser (``parsing_pre_import_modules``)."""
    import importlib

    # Airflow after prepare_environment(): it reads its configuration on import.
    from airflow.dag_processing.importers import get_importer_registry
    from airflow.utils.file import iter_airflow_imports

    with _without_pathspec_warning():
        dag_files = list(get_importer_registry().list_dag_files(str(folder), safe_mode=True))
    for path in dag_files:
        for module in iter_airflow_imports(path):
            try:
                importlib.import_module(module)
            except Exception:  # noqa: S112  the import is retried, and reported, when the file is parsed
                continue


def load_folder(dags_folder: Path, *, quiet: bool = True, pre_import: bool = False) -> LoadedFolder:
    """Load ``dags_folder`` as the DAG processor does and collect everything the checks need.

    ``pre_import`` first imports the ``airflow.*`` modules the files import, as the DAG processor does
    in its long-lived parent process, so the per-file times then cover the project's own code only.
    """
    prepare_environment()
    # Airflow is imported only now, after prepare_environment(): it reads its configuration on import.
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.dag_version_inflation_checker import check_dag_file_stability

    folder = Path(dags_folder).resolve()
    loaded = LoadedFolder(folder=folder)
    if pre_import:
        _pre_import_airflow_modules(folder)
    with _quiet_airflow_logs(quiet):
        bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name=BUNDLE_NAME)
    loaded.dags = dict(bag.dags)
    loaded.import_errors = {loaded.relative(folder / path): text for path, text in bag.import_errors.items()}
    loaded.files = [
        FileParse(
            path=stat.file,
            seconds=stat.duration.total_seconds(),
            dag_ids=list(ast.literal_eval(stat.dags)),
        )
        for stat in bag.dagbag_stats
    ]
    for dag_id, dag in loaded.dags.items():
        try:
            DagSerialization.to_dict(dag)
        except Exception as error:  # the DAG processor turns this into an import error of the file
            loaded.serialization_errors[dag_id] = f"{type(error).__name__}: {error}"
    for parsed in loaded.files:
        stability = check_dag_file_stability(str(folder / parsed.path))
        if stability.warnings:
            first = next(iter(stability.warnings.values()))
            code = first.code if len(first.code) <= 80 else first.code[:77] + "..."
            loaded.version_inflation[parsed.path] = f"line {first.line}: {first.message}: {code}"
    return loaded


def _error_summary(text: str, folder: Path) -> str:
    """The exception line of a DagBag error, with the place in the DAG folder it points at."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    if not lines[0].startswith("Traceback"):
        return lines[0].strip()
    frames = [(index, match) for index, line in enumerate(lines) if (match := _TRACEBACK_FRAME.match(line))]
    if not frames:
        return lines[-1].strip()
    last_index = frames[-1][0]
    exception_line = next(
        (line for line in lines[last_index + 1 :] if not line.startswith((" ", "\t"))), lines[-1]
    )
    # Point at the user's code when the failing frame is in a library the DAG called.
    in_folder = [m for _, m in frames if Path(m["path"]).resolve().is_relative_to(folder)]
    frame = in_folder[-1] if in_folder else frames[-1][1]
    path = Path(frame["path"])
    where = path.resolve().relative_to(folder).as_posix() if path.resolve().is_relative_to(folder) else path
    return f"{exception_line.strip()} (at {where}:{frame['line']})"


def _task_runs_code(task: Any) -> bool:
    # EmptyOperator tasks are completed by the scheduler without running on a worker.
    return not task.inherits_from_empty_operator


def _names(tasks: list[Any]) -> str:
    return ", ".join(sorted(task.task_id for task in tasks))


def dag_property_problems(dag: Any, *, default_owner: str = "airflow") -> list[str]:
    """The property rules for one loaded DAG (see the module docstring); empty means it passes."""
    problems: list[str] = []
    tasks = list(dag.tasks)
    if not tasks:
        problems.append("has no tasks, so it has no owner, callback or retry setting")
    default_owned = [t for t in tasks if not t.owner or t.owner == default_owner]
    if default_owned:
        problems.append(
            f"owner is Airflow's default {default_owner!r} on tasks {_names(default_owned)} "
            "(set default_args={'owner': ...})"
        )
    if not dag.tags:
        problems.append("has no tags")
    if not (dag.description or "").strip() and not (dag.doc_md or "").strip():
        problems.append("has neither a description nor doc_md")
    if not dag.on_failure_callback:
        without_callback = [t for t in tasks if _task_runs_code(t) and not t.on_failure_callback]
        if without_callback:
            problems.append(
                "has no failure callback: no DAG-level on_failure_callback, and tasks "
                f"{_names(without_callback)} have no on_failure_callback"
            )
    without_retries = [
        t
        for t in tasks
        if _task_runs_code(t) and not getattr(t, "_is_sensor", False) and not (t.retries or 0) > 0
    ]
    if without_retries:
        problems.append(
            f"tasks {_names(without_retries)} have no retries (set default_args={{'retries': ...}}; "
            "raise AirflowFailException where a failure must not retry)"
        )
    return problems


def _default_owner() -> str:
    from airflow.configuration import conf

    return conf.get("operators", "default_owner", fallback="airflow")


def _ignore_file_syntax() -> str:
    from airflow.configuration import conf

    return conf.get_mandatory_value("core", "DAG_IGNORE_FILE_SYNTAX", fallback="glob")


def _uncovered(loaded: LoadedFolder) -> list[str]:
    from airflow._shared.module_loading import find_path_from_directory

    folder = loaded.folder
    # Exactly the walk the DAG processor does: what it would still look at after .airflowignore.
    with _without_pathspec_warning():
        not_ignored = {
            Path(path).resolve()
            for path in find_path_from_directory(folder, IGNORE_FILE_NAME, _ignore_file_syntax())
        }
    defines_dags = {parsed.path for parsed in loaded.files if parsed.dag_ids}
    broken = set(loaded.import_errors)  # reported as import errors; whether they define DAGs is unknown
    uncovered = []
    for path in sorted(not_ignored):
        if path.suffix != ".py" or not path.is_file():
            continue
        relative = loaded.relative(path)
        if relative not in defines_dags and relative not in broken and not declares_dag(path):
            uncovered.append(relative)
    return uncovered


def declares_dag(path: Path) -> bool:
    """Whether the file builds a DAG somewhere (``DAG(...)`` or ``@dag``), even under a condition.

    A DAG file whose DAG a setting turns off (a trigger route not chosen) defines no DAG in this
    parse, yet it is a DAG file, not a helper that belongs in ``.airflowignore``.
    """
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("DAG", "dag"):
                return True
    return False


def uncovered_modules(dags_folder: Path) -> list[str]:
    """``.py`` files under ``dags_folder`` (relative paths) that define no DAG and ``.airflowignore`` misses.

    Matching uses Airflow's own walker with the configured ``[core] dag_ignore_file_syntax`` (``glob``
    by default in Airflow 3.3: gitignore-style patterns; ``regexp`` matches each pattern anywhere in
    the path relative to the folder).
    """
    return _uncovered(load_folder(dags_folder))


def _problems(loaded: LoadedFolder) -> list[str]:
    problems: list[str] = []
    folder = loaded.folder
    for path, summary in loaded.import_error_summaries().items():
        if "AirflowDagCycleException" in summary:
            problems.append(f"{path}: cycle: {summary}")
        elif "AirflowDagDuplicatedIdException" in summary:
            problems.append(f"{path}: duplicate DAG id: {summary}")
        else:
            problems.append(f"{path}: import error: {summary}")
    for parsed in loaded.files:
        repeated = sorted(dag_id for dag_id, count in Counter(parsed.dag_ids).items() if count > 1)
        if repeated:
            problems.append(
                f"{parsed.path}: duplicate DAG id: {', '.join(repeated)} defined more than once in the "
                "file (Airflow keeps only one)"
            )
    for path, issue in sorted(loaded.version_inflation.items()):
        problems.append(
            f"{path}: runtime-varying value in a DAG/task argument (a new DAG version each parse): {issue}"
        )
    default_owner = _default_owner()
    for dag_id in sorted(loaded.dags):
        dag = loaded.dags[dag_id]
        where = f"DAG {dag_id} ({loaded.relative(dag.fileloc)})"
        if dag_id in loaded.serialization_errors:
            problems.append(f"{where}: does not serialize: {loaded.serialization_errors[dag_id]}")
        found = dag_property_problems(dag, default_owner=default_owner)
        problems.extend(f"{where}: {problem}" for problem in found)
    for path in _uncovered(loaded):
        problems.append(
            f"{path}: defines no DAG and is not matched by {IGNORE_FILE_NAME} "
            f"(the DAG processor parses it; add a pattern for it or its folder)"
        )
    if not loaded.dags and not loaded.import_errors:
        problems.append(f"{folder}: no DAGs found")
    return problems


def on_mwaa_path() -> bool:
    """True inside the MWAA-path child: no ``site`` processing, so no editable install on the path."""
    return bool(sys.flags.no_site)


def mwaa_path_command(
    args: list[str],
    *,
    dags_folder: Path,
    plugins_folder: Path | None,
    python: Path | None = None,
    site_packages: list[Path] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run this module's CLI with ``args`` on MWAA's import path.

    ``python`` and ``site_packages`` default to this interpreter and its site-packages.
    """
    # This file by its path: under -S the package it belongs to is not importable, by design.
    command = [str(python or sys.executable), "-S", "-P", str(Path(__file__).resolve()), *args]
    # What MWAA imports from: the DAGs folder, the plugins folder, the installed requirements. The
    # site-packages folders go in as plain entries, so their .pth files (the editable finder) never run.
    entries = [Path(dags_folder).resolve()]
    if plugins_folder is not None and Path(plugins_folder).is_dir():
        entries.append(Path(plugins_folder).resolve())
    if site_packages is None:
        site_packages = [Path(folder) for folder in site.getsitepackages()]
    entries.extend(site_packages)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(str(entry) for entry in entries)}
    return command, environment


@dataclass
class IntegrityReport:
    """What the gate found in a DAG folder, from the child on MWAA's import path."""

    problems: list[str]
    dag_ids: list[str] = field(default_factory=list)
    parse_seconds: dict[str, float] = field(default_factory=dict)  # file -> seconds, fresh process each


def check(
    dags_folder: Path,
    *,
    plugins_folder: Path | None = None,
    python: Path | None = None,
    site_packages: list[Path] | None = None,
) -> IntegrityReport:
    """Every integrity problem in ``dags_folder``, its DAG ids and each file's parse time.

    The folder is loaded in a child interpreter on MWAA's import path (see the module docstring), with
    ``plugins_folder`` on it too when given; ``python`` and ``site_packages`` choose the interpreter
    and the installed packages (default: this interpreter's).
    """
    folder = Path(dags_folder)
    if not folder.is_dir():
        return IntegrityReport([f"{folder}: not a directory"])
    args = _child_args(folder, plugins_folder, json_output=True)
    command, environment = mwaa_path_command(
        args, dags_folder=folder, plugins_folder=plugins_folder, python=python, site_packages=site_packages
    )
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    try:
        reported = json.loads(completed.stdout)
        return IntegrityReport(
            list(reported["problems"]), list(reported["dag_ids"]), dict(reported["parse_seconds"])
        )
    except (ValueError, KeyError):  # the child crashed before it could report
        detail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return IntegrityReport(
            [f"{folder}: the check on MWAA's import path failed (exit {completed.returncode}): {detail}"]
        )


def integrity_problems(dags_folder: Path, *, plugins_folder: Path | None = None) -> list[str]:
    """Every integrity problem in ``dags_folder``, one line each; an empty list means it passes."""
    if on_mwaa_path():
        return _problems(load_folder(Path(dags_folder)))
    return check(dags_folder, plugins_folder=plugins_folder).problems


def fresh_parse_times(dags_folder: Path) -> dict[str, float]:
    """Each DAG file's parse seconds, each in a fresh process forked after Airflow's own imports.

    Call it before anything imports the folder's files: a forked child inherits its parent's modules.
    """
    prepare_environment()
    folder = Path(dags_folder).resolve()
    _pre_import_airflow_modules(folder)
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.dag_processing.importers import get_importer_registry

    with _without_pathspec_warning():
        dag_files = sorted(get_importer_registry().list_dag_files(str(folder), safe_mode=True))
    times: dict[str, float] = {}
    for path in dag_files:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: parse one file, report the seconds, never return into the caller
            os.close(read_end)
            started = time.perf_counter()
            try:
                with _quiet_airflow_logs(True), redirect_stdout(sys.stderr):
                    BundleDagBag(dag_folder=path, bundle_path=folder, bundle_name=BUNDLE_NAME)
            finally:
                os.write(write_end, repr(time.perf_counter() - started).encode())
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            answer = pipe.read()
        os.waitpid(pid, 0)
        times[Path(path).resolve().relative_to(folder).as_posix()] = float(answer or "nan")
    return times


def _child_args(
    dags_folder: Path, plugins_folder: Path | None, *, json_output: bool, verbose: bool = False
) -> list[str]:
    # Every folder spelled out: the child cannot know this checkout's defaults (no clean_zone_tools).
    args = ["--dags-folder", str(Path(dags_folder).resolve())]
    if plugins_folder is not None:
        args += ["--plugins-folder", str(Path(plugins_folder).resolve())]
    return args + ["--json"] * json_output + ["--verbose"] * verbose


def parse_report(dags_folder: Path, *, pre_import: bool = False) -> tuple[list[tuple[str, float]], float]:
    """Per-file parse seconds (slowest first, DagBag's own timings) and their total.

    These are the durations ``airflow dags report`` prints: each file's import and DAG bagging, in
    one process. ``pre_import`` imports the files' ``airflow.*`` modules first, as the DAG processor
    does (``[dag_processor] parsing_pre_import_modules``).
    """
    loaded = load_folder(Path(dags_folder), pre_import=pre_import)
    per_file = [(parsed.path, parsed.seconds) for parsed in loaded.files]
    return per_file, sum(seconds for _, seconds in per_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.checks.dag_integrity",
        description="Check a DAG folder the way the CI gate and the MWAA deploy preflight do: import "
        "errors, cycles, duplicate ids, DAG properties (owner, tags, docs, failure callback, retries) "
        "and .airflowignore coverage. The folder is imported with only the DAGs folder, the plugins "
        "folder and the installed packages on the path, as on MWAA (never through this project's "
        "editable install). Exit 0 when clean, 1 when problems are found, 2 on usage errors.",
    )
    parser.add_argument(
        "--dags-folder",
        type=Path,
        default=DEFAULT_DAGS_FOLDER,
        help="the DAG folder to check (default: dags/ of this repository)",
    )
    parser.add_argument(
        "--plugins-folder",
        type=Path,
        default=DEFAULT_PLUGINS_FOLDER,
        help="put on the import path as MWAA does (default: plugins/ of this repository)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--verbose", action="store_true", help="also show Airflow's own parsing log")
    args = parser.parse_args(argv)
    if args.dags_folder is None or not args.dags_folder.is_dir():
        parser.error(f"--dags-folder {args.dags_folder} is not a directory")

    if not on_mwaa_path():
        # The same command line again, in a child on MWAA's import path; its output is the report.
        command, environment = mwaa_path_command(
            _child_args(args.dags_folder, args.plugins_folder, json_output=args.json, verbose=args.verbose),
            dags_folder=args.dags_folder,
            plugins_folder=args.plugins_folder,
        )
        return subprocess.run(command, env=environment, check=False).returncode

    # Airflow logs (and re-emits DAG files' warnings) on stdout; keep stdout for the report alone.
    # Airflow is first imported inside this block, so its log handlers bind to stderr for good.
    with redirect_stdout(sys.stderr):
        # Timed first, while no DAG file or helper has been imported here (see fresh_parse_times).
        parse_seconds = fresh_parse_times(args.dags_folder) if args.json else {}
        loaded = load_folder(args.dags_folder, quiet=not args.verbose)
        problems = _problems(loaded)
    if args.json:
        print(
            json.dumps(
                {
                    "dags_folder": str(loaded.folder),
                    "dag_ids": sorted(loaded.dags),
                    "files": [parsed.path for parsed in loaded.files],
                    "parse_seconds": parse_seconds,
                    "problems": problems,
                    "ok": not problems,
                },
                indent=2,
            )
        )
    else:
        for problem in problems:
            print(problem)
        verdict = f"{len(problems)} problem(s)" if problems else "ok"
        print(f"{len(loaded.dags)} DAG(s) in {len(loaded.files)} file(s) under {loaded.folder}: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
