"""DAG integrity: the CI gate, run against the real dags/ folder, plus proof that the gate can fail.

Every check comes from ``clean_zone_tools.checks.dag_integrity`` (the same code the deploy preflight
runs). The tests
over ``dags/`` are parametrised by DAG id, discovered from the DagBag, so a failure names the DAG.
The ``tmp_path`` tests write broken DAG folders and assert each breakage is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from clean_zone_tools.checks.dag_integrity import (
    LoadedFolder,
    dag_property_problems,
    integrity_problems,
    load_folder,
    uncovered_modules,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "dags"
PLUGINS_FOLDER = REPO_ROOT / "plugins"


@cache
def _real_dags() -> LoadedFolder:
    return load_folder(DAGS_FOLDER)


# Discovered at collection so each DAG gets its own, named, test.
DAG_IDS = sorted(_real_dags().dags)


@pytest.fixture(scope="module")
def real_dags() -> LoadedFolder:
    return _real_dags()


# --- the gate over dags/ -----------------------------------------------------------------------------


def test_dags_folder_defines_dags(real_dags: LoadedFolder) -> None:
    assert real_dags.dags, f"no DAG was loaded from {DAGS_FOLDER}"


def test_every_dag_file_imports_without_errors(real_dags: LoadedFolder) -> None:
    assert real_dags.import_error_summaries() == {}


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_has_owner_tags_docs_failure_callback_and_retries(real_dags: LoadedFolder, dag_id: str) -> None:
    assert dag_property_problems(real_dags.dags[dag_id]) == []


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_serialises_as_the_dag_processor_stores_it(real_dags: LoadedFolder, dag_id: str) -> None:
    assert real_dags.serialization_errors.get(dag_id) is None


def test_dag_ids_are_unique_across_and_within_files(real_dags: LoadedFolder) -> None:
    counts = Counter(dag_id for parsed in real_dags.files for dag_id in parsed.dag_ids)
    assert [dag_id for dag_id, count in counts.items() if count > 1] == []


def test_no_dag_uses_runtime_varying_arguments(real_dags: LoadedFolder) -> None:
    assert real_dags.version_inflation == {}


def test_every_non_dag_module_is_matched_by_airflowignore() -> None:
    assert uncovered_modules(DAGS_FOLDER) == []


def test_whole_gate_reports_no_problems() -> None:
    # The single call the deploy preflight makes, on MWAA's import path; it also covers anything added
    # to the checks later.
    assert integrity_problems(DAGS_FOLDER, plugins_folder=PLUGINS_FOLDER) == []


# --- parsing needs no AWS endpoint, no credentials, no database and no network -----------------------

# Loaded by the child interpreter through PYTHONPATH. It records every network attempt in a file before
# refusing it, so an attempt that DAG code catches and swallows still fails the test.
NETWORK_GUARD = """
import os
import socket

_LOG = os.environ["NETWORK_GUARD_LOG"]
_INTERNET = (socket.AF_INET, socket.AF_INET6)


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(what + "\\n")
    raise OSError("network access while parsing DAGs: " + what)


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def connect(self, address):
    if self.family in _INTERNET:
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in _INTERNET:
        _refuse(f"connect_ex {address!r}")
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.create_connection = lambda address, *a, **k: _refuse(f"create_connection {address!r}")
socket.getaddrinfo = lambda host, port, *a, **k: _refuse(f"getaddrinfo {host!r}:{port!r}")
socket.gethostbyname = lambda host: _refuse(f"gethostbyname {host!r}")
"""

# Loads each folder named on the command line in turn, and reports the network attempts each one made.
PARSE_IN_CHILD = """
import json, os, sys
from pathlib import Path
from clean_zone_tools.checks import dag_integrity
guard_log = Path(os.environ["NETWORK_GUARD_LOG"])
results = {}
for folder in sys.argv[1:]:
    guard_log.write_text("")
    loaded = dag_integrity.load_folder(Path(folder))
    results[folder] = {
        "dag_ids": sorted(loaded.dags),
        "import_errors": loaded.import_error_summaries(),
        "network_attempts": guard_log.read_text().splitlines(),
    }
print(json.dumps(results))
"""

# A DAG file that lists buckets at import time and swallows the error, as careless DAG code does.
CALLS_AWS_AT_PARSE_TIME = """
import boto3
from botocore.config import Config

try:
    boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y",
        config=Config(retries={"total_max_attempts": 1}),
    ).list_buckets()
except Exception:
    pass
"""


@pytest.fixture(scope="module")
def offline_parse(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """dags/ and a folder with a DAG that calls AWS at import, each loaded in one fresh interpreter with
    no AWS endpoint, no credentials, no ~/.aws, and every network attempt recorded and refused."""
    tmp_path = tmp_path_factory.mktemp("offline-parse")
    calls_aws = tmp_path / "calls-aws-dags"
    calls_aws.mkdir()
    (calls_aws / "calls_aws.py").write_text(_dag_source("calls_aws") + CALLS_AWS_AT_PARSE_TIME)
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD)
    airflow_home = tmp_path / "airflow-home"
    airflow_home.mkdir()
    home = tmp_path / "home"  # no ~/.aws to fall back on
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(guard_dir),
        "NETWORK_GUARD_LOG": str(tmp_path / "network-attempts.log"),
        "AIRFLOW_HOME": str(airflow_home),
        # As every Airflow component has it: the plugins folder is on the path (the events DAG's trigger).
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(DAGS_FOLDER.parent / "plugins"),
        # Unreachable on purpose: the discard port; any use of it at parse time is a bug.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    completed = subprocess.run(
        [sys.executable, "-c", PARSE_IN_CHILD, str(DAGS_FOLDER), str(calls_aws)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    return {
        "dags": results[str(DAGS_FOLDER)],
        "calls_aws": results[str(calls_aws)],
        "databases": sorted(path.name for path in airflow_home.rglob("*.db")),
    }


def test_parsing_needs_no_endpoint_credentials_database_or_network(offline_parse: dict) -> None:
    parsed = offline_parse["dags"]

    assert parsed["network_attempts"] == []
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == DAG_IDS
    assert offline_parse["databases"] == []  # parsing created no metadata database


def test_network_guard_catches_a_dag_that_calls_aws_at_parse_time(offline_parse: dict) -> None:
    # Proves the guard above is live, even when the DAG code swallows the refusal.
    parsed = offline_parse["calls_aws"]

    assert parsed["dag_ids"] == ["calls_aws"]
    assert any("127.0.0.1" in attempt for attempt in parsed["network_attempts"]), parsed


# --- the checks themselves catch problems ------------------------------------------------------------


def _dag_source(
    dag_id: str,
    *,
    owner: str | None = "data-platform",
    tags: str = '["clean-zone"]',
    description: str | None = "A test DAG.",
    dag_callback: bool = False,
    task_callback: bool = True,
    retries: int = 2,
    body: str = 'EmptyOperator(task_id="start") >> PythonOperator(task_id="work", python_callable=print)',
) -> str:
    """A DAG file that passes every check unless an argument says otherwise (print is the callback)."""
    default_args = [f"'retries': {retries}"]
    if owner is not None:
        default_args.append(f"'owner': {owner!r}")
    if task_callback:
        default_args.append("'on_failure_callback': print")
    args = [repr(dag_id), "schedule=None", f"tags={tags}", "default_args={" + ", ".join(default_args) + "}"]
    if description is not None:
        args.append(f"description={description!r}")
    if dag_callback:
        args.append("on_failure_callback=print")
    return (
        "from airflow.providers.standard.operators.empty import EmptyOperator\n"
        "from airflow.providers.standard.operators.python import PythonOperator\n"
        "from airflow.providers.standard.sensors.python import PythonSensor\n"
        "from airflow.sdk import DAG\n"
        "\n"
        f"with DAG({', '.join(args)}):\n"
        f"    {body}\n"
    )


def _folder(tmp_path: Path, files: dict[str, str], airflowignore: str | None = None) -> Path:
    folder = tmp_path / "dags"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if airflowignore is not None:
        (folder / ".airflowignore").write_text(airflowignore)
    return folder


def _problems_about(problems: list[str], needle: str) -> list[str]:
    return [problem for problem in problems if needle in problem]


def test_a_clean_folder_passes(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"good.py": _dag_source("good_gate_dag")})

    assert integrity_problems(folder) == []


def test_reports_missing_owner_tags_and_docs(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path, {"bare.py": _dag_source("bare_gate_dag", owner=None, tags="[]", description=None)}
    )

    problems = integrity_problems(folder)

    assert _problems_about(problems, "DAG bare_gate_dag (bare.py): owner is Airflow's default 'airflow'")
    assert _problems_about(problems, "DAG bare_gate_dag (bare.py): has no tags")
    assert _problems_about(problems, "DAG bare_gate_dag (bare.py): has neither a description nor doc_md")


def test_reports_a_dag_without_failure_callback(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {
            "silent.py": _dag_source("silent_gate_dag", task_callback=False),
            "dag_level.py": _dag_source("dag_level_gate_dag", task_callback=False, dag_callback=True),
        },
    )

    problems = integrity_problems(folder)

    assert _problems_about(problems, "DAG silent_gate_dag (silent.py): has no failure callback")
    # "work" runs code and has no callback; "start" is an EmptyOperator, which never runs on a worker.
    assert _problems_about(problems, "tasks work have no on_failure_callback")
    # A DAG-level on_failure_callback is enough.
    assert _problems_about(problems, "dag_level_gate_dag") == []


def test_reports_tasks_without_retries_but_exempts_sensors(tmp_path: Path) -> None:
    sensor = 'PythonSensor(task_id="wait", python_callable=lambda: True, retries=0) >> '
    folder = _folder(
        tmp_path,
        {
            "no_retries.py": _dag_source(
                "no_retries_gate_dag",
                retries=0,
                body=sensor + 'PythonOperator(task_id="work", python_callable=print)',
            )
        },
    )

    problems = integrity_problems(folder)

    assert _problems_about(problems, "DAG no_retries_gate_dag (no_retries.py): tasks work have no retries")


def test_reports_a_syntax_error_with_its_file_and_line(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {
            "good.py": _dag_source("beside_broken_gate_dag"),
            # The comma after the DAG id is missing.
            "broken.py": "from airflow.sdk import DAG\n\nwith DAG('broken_gate' schedule=None):\n    x = 1\n",
        },
    )

    problems = integrity_problems(folder)

    assert _problems_about(problems, "broken.py: import error: SyntaxError")
    assert _problems_about(problems, "(at broken.py:3)")


def test_reports_an_exception_raised_at_import(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {"raises.py": "from airflow.sdk import DAG\n\nraise RuntimeError('settings missing')\n"},
    )

    assert integrity_problems(folder) == [
        "raises.py: import error: RuntimeError: settings missing (at raises.py:3)"
    ]


def test_reports_a_cycle(tmp_path: Path) -> None:
    body = (
        'a = PythonOperator(task_id="a", python_callable=print)\n'
        '    b = PythonOperator(task_id="b", python_callable=print)\n'
        "    a >> b >> a"
    )
    folder = _folder(tmp_path, {"cyclic.py": _dag_source("cyclic_gate_dag", body=body)})

    problems = integrity_problems(folder)

    assert _problems_about(
        problems, "cyclic.py: cycle: AirflowDagCycleException: Cycle detected in Dag: cyclic_gate_dag"
    )


def test_reports_duplicate_dag_ids_across_and_within_files(tmp_path: Path) -> None:
    # A copied DAG whose id was not changed: Airflow keeps one of the two without a word.
    copied = _dag_source("twice_gate_dag", body='PythonOperator(task_id="other", python_callable=print)')
    second_definition = copied.split("\n\n", 1)[1]
    twice = _dag_source("twice_gate_dag") + "\n" + second_definition
    folder = _folder(
        tmp_path,
        {
            "first.py": _dag_source("shared_gate_dag"),
            "second.py": _dag_source("shared_gate_dag"),
            "twice.py": twice,
        },
    )

    problems = integrity_problems(folder)

    assert _problems_about(
        problems, ": duplicate DAG id: AirflowDagDuplicatedIdException: Ignoring DAG shared_gate_dag"
    )
    assert _problems_about(problems, "twice.py: duplicate DAG id: twice_gate_dag defined more than once")


def test_reports_a_runtime_varying_dag_argument(tmp_path: Path) -> None:
    source = _dag_source("drifting_gate_dag").replace(
        "schedule=None", "schedule=None, start_date=__import__('datetime').datetime.now()"
    )
    source = "from datetime import datetime\n" + source.replace(
        "__import__('datetime').datetime.now()", "datetime.now()"
    )
    folder = _folder(tmp_path, {"drifting.py": source})

    assert _problems_about(integrity_problems(folder), "drifting.py: runtime-varying value")


def test_reports_non_dag_modules_missing_from_airflowignore(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {
            "pipeline.py": _dag_source("helped_gate_dag"),
            # Mentions airflow and dag, so the DAG processor imports it on every parse.
            "helpers_unlisted.py": "# airflow dag helpers\nVALUE = 1\n",
            # Mentions neither: skipped by the processor's heuristic, but MWAA's guidance still applies.
            "plain/util.py": "VALUE = 2\n",
            "listed/helper.py": "# airflow dag helpers, ignored below\nVALUE = 3\n",
            "notes.txt": "not python, never parsed\n",
        },
        airflowignore="listed/\n",
    )

    assert uncovered_modules(folder) == ["helpers_unlisted.py", "plain/util.py"]
    problems = integrity_problems(folder)
    assert _problems_about(problems, "helpers_unlisted.py: defines no DAG and is not matched by .airflowig")
    assert _problems_about(problems, "plain/util.py: defines no DAG")
    assert _problems_about(problems, "listed/") == []


def test_a_dag_that_imports_only_through_the_local_install_fails_the_gate(tmp_path: Path) -> None:
    # MWAA has no clean_zone_tools, and its clean_zone is the one in the DAGs folder; here the folder has
    # no clean_zone package, so both imports work only through this checkout's editable install.
    folder = _folder(
        tmp_path,
        {
            "uses_tools.py": "from clean_zone_tools import REPO_ROOT\n" + _dag_source("uses_tools_gate_dag"),
            "uses_installed_helpers.py": "from clean_zone import config\n" + _dag_source("helpers_gate_dag"),
        },
    )

    problems = integrity_problems(folder)

    assert problems == [
        "uses_installed_helpers.py: import error: ModuleNotFoundError: No module named 'clean_zone' "
        "(at uses_installed_helpers.py:1)",
        "uses_tools.py: import error: ModuleNotFoundError: No module named 'clean_zone_tools' "
        "(at uses_tools.py:1)",
    ]
    # The same folder imports cleanly in this (the test's) interpreter: only the MWAA path catches it.
    assert load_folder(folder).import_errors == {}


def test_reports_a_missing_folder(tmp_path: Path) -> None:
    assert integrity_problems(tmp_path / "absent") == [f"{tmp_path / 'absent'}: not a directory"]


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"bare.py": _dag_source("cli_gate_dag", tags="[]")})
    cli = [sys.executable, "-m", "clean_zone_tools.checks.dag_integrity"]

    failing = subprocess.run(
        [*cli, "--dags-folder", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    usage = subprocess.run(
        [*cli, "--dags-folder", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert failing.returncode == 1, failing.stderr
    report = json.loads(failing.stdout)
    assert report["ok"] is False
    assert report["dag_ids"] == ["cli_gate_dag"]
    assert report["problems"] == ["DAG cli_gate_dag (bare.py): has no tags"]
    assert usage.returncode == 2
    assert "is not a directory" in usage.stderr


# --- style ---------------------------------------------------------------------------------------------


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    completed = subprocess.run(
        [str(ruff), "check", "--no-cache", "."], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-2000:]


def test_a_dag_file_whose_dag_a_setting_turns_off_is_still_a_dag_file(tmp_path: Path) -> None:
    from clean_zone_tools.checks.dag_integrity import declares_dag

    switched_off = tmp_path / "route.py"
    switched_off.write_text(
        'import os\nfrom airflow.sdk import DAG\nif os.environ.get("ON"):\n    DAG("x")\n'
    )
    decorated = tmp_path / "decorated.py"
    decorated.write_text("from airflow.sdk import dag\n@dag(schedule=None)\ndef x():\n    pass\n")
    helper = tmp_path / "helper.py"
    helper.write_text("# mentions airflow but builds no DAG\nVALUE = 1\n")
    assert declares_dag(switched_off)
    assert declares_dag(decorated)
    assert not declares_dag(helper)
