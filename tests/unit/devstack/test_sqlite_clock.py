"""The local stack's SQLite now() to the millisecond: a run due earlier in this second is due now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clean_zone_tools.devstack import sqlite_clock

# Airflow's own query shape (DagRun.get_queued_dag_runs_to_set_running): run_after <= now(), with
# run_after stored as SQLAlchemy stores a datetime on SQLite ('YYYY-MM-DD HH:MM:SS.ffffff').
_PROBE = """
import sys
from datetime import UTC, datetime
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, func, select
if sys.argv[1] == "installed":
    from clean_zone_tools.devstack.sqlite_clock import install
    install()
engine = create_engine("sqlite://")
runs = Table("dag_run", MetaData(), Column("id", Integer, primary_key=True), Column("run_after", DateTime))
runs.create(engine)
with engine.begin() as db:
    now = datetime.now(UTC).replace(tzinfo=None)
    # Due a moment ago, in this very second (waits for a second that is already whole).
    due = now.replace(microsecond=max(0, now.microsecond - 1000)) if now.microsecond >= 1000 else now
    db.execute(runs.insert().values(id=1, run_after=due))
    found = len(db.execute(select(runs.c.id).where(runs.c.run_after <= func.now())).all())
    # A second that turned between the insert and the query would make any run due: look again then.
    same_second = datetime.now(UTC).replace(tzinfo=None, microsecond=0) == due.replace(microsecond=0)
    print(found, int(due.microsecond > 0 and same_second))
"""


def _probe(mode: str) -> int:
    for _ in range(20):  # a run due at .000 of its second, or a second that turned: look again
        run = [sys.executable, "-c", _PROBE, mode]
        found, usable = (
            int(v) for v in subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
        )
        if usable:
            return found
    raise AssertionError("no probe fell inside one second")


def test_a_run_due_earlier_in_this_second_is_due_with_the_clock_installed() -> None:
    assert _probe("installed") == 1


def test_without_it_sqlite_holds_that_run_to_the_next_whole_second() -> None:
    # What the module is for: Airflow on SQLite as it comes.
    assert _probe("plain") == 0


def test_the_local_settings_written_install_the_clock_and_never_replace_a_persons_file(
    tmp_path: Path,
) -> None:
    path = sqlite_clock.write_local_settings(tmp_path)
    assert path == tmp_path / "config" / "airflow_local_settings.py"
    compiled = subprocess.run(
        [
            sys.executable,
            "-c",
            "import airflow_local_settings\n"
            "from sqlalchemy import func, select\nfrom sqlalchemy.dialects import sqlite\n"
            "print(select(func.now()).compile(dialect=sqlite.dialect()))",
        ],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "strftime('%Y-%m-%d %H:%M:%f', 'now')" in compiled
    path.write_text("# a person's own settings\n")
    assert sqlite_clock.write_local_settings(tmp_path) == path
    assert path.read_text() == "# a person's own settings\n"
