"""SQLite's ``now()`` with milliseconds for the local stack's Airflow, as Postgres has on MWAA.

Airflow's scheduler starts, and then examines, only the runs whose ``run_after <= now()``
(``DagRun.get_queued_dag_runs_to_set_running``, ``get_running_dag_runs_to_examine``). On SQLite,
SQLAlchemy writes ``now()`` as ``CURRENT_TIMESTAMP``, which has whole seconds, while Airflow stores
``run_after`` with microseconds: a run due at 12:00:01.4 compares as later than ``12:00:01`` and
waits for the next second. Every asset-triggered run (an S3 event's hand-over) lost half a second on
average to that, and the trigger-latency benchmark showed it (the events run queued at once, then
started a second later in half the files). Postgres (MWAA, docker-compose) has no such step.

The local stack writes ``AIRFLOW_HOME/config/airflow_local_settings.py`` (:func:`write_local_settings`),
which Airflow imports in every component at start; that file calls :func:`install`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOCAL_SETTINGS = "airflow_local_settings.py"
_MARKER = "# Written by scripts/dev (clean_zone_tools.devstack.sqlite_clock)"


def install() -> None:
    """Make ``func.now()`` on SQLite read the clock to the millisecond (a second call changes nothing)."""
    from sqlalchemy.ext.compiler import compiles
    from sqlalchemy.sql import functions

    @compiles(functions.now, "sqlite")
    def _now_in_milliseconds(element: Any, compiler: Any, **kw: Any) -> str:
        # Airflow stores 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC): the same text, to the millisecond.
        return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def write_local_settings(airflow_home: Path) -> Path:
    """Write the local stack's ``airflow_local_settings.py`` (never over a file a person wrote)."""
    path = airflow_home / "config" / LOCAL_SETTINGS
    if path.exists() and _MARKER not in path.read_text():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"{_MARKER}; rewritten at every start.\n"
        '"""Airflow imports this file at start: SQLite\'s now() with milliseconds (see the module)."""\n\n'
        "__all__: list[str] = []\n\n"
        "try:\n"
        "    from clean_zone_tools.devstack.sqlite_clock import install\n"
        "except ImportError:  # the project's tools are not in this interpreter: Airflow runs as it is\n"
        "    pass\n"
        "else:\n"
        "    install()\n"
    )
    return path
