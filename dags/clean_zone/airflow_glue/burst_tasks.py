"""Task callables of ``clean_zone_file_burst``: one run, many files, a few chunk tasks.

The run's conf lists its files (``{"bucket", "files": [{"key", "etag"}, ...]}``,
set by the trigger DAGs). :func:`plan_chunks` cuts them into chunks of
``clean_zone_burst_chunk_files``; :func:`process_chunk` (mapped, bounded) takes
the files of its chunk through :func:`clean_zone.burst.process_files`, which
interleaves them: a file waiting out its retry's backoff never holds the others;
:func:`report_burst` sends the one digest alert and fails the run if a file
still waits in ``processing/``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from clean_zone import burst, config, failure_generator
from clean_zone.airflow_glue.aws import object_store
from clean_zone.airflow_glue.notifier import send
from clean_zone.airflow_glue.retry_policy import standard_retriers
from clean_zone.alerts import task_log_url
from clean_zone.lifecycle import Lifecycle

PLAN_TASK = "plan_chunks"
CHUNK_TASK = "process_chunk"
REPORT_TASK = "report_burst"


def plan_chunks(**context: Any) -> list[dict[str, Any]]:
    """The run's files in chunks, one mapped ``process_chunk`` each."""
    settings = config.load()
    conf = context["params"]
    files = [{"key": f["key"], "etag": f.get("etag")} for f in conf.get("files") or []]
    bucket = conf.get("bucket") or settings.bucket
    return [{"bucket": bucket, "files": part} for part in burst.chunked(files, settings.burst_chunk_files)]


def process_chunk(chunk: dict[str, Any], **context: Any) -> list[dict[str, Any]]:
    """Every file of the chunk to its place; one file's trouble never fails or repeats the others."""
    settings = config.load()
    lifecycle = Lifecycle(object_store(settings, chunk["bucket"]), settings)
    try_number = context["ti"].try_number

    def generate(label: str, attempt: int) -> float:
        # The try number keeps a cleared chunk's draws apart from its first try's.
        tag = f"{label}|{try_number}.{attempt}"
        return failure_generator.run_once(settings.failure_rate, settings.failure_seed, tag)

    arrivals = [burst.Arrival(chunk["bucket"], f["key"], f.get("etag"), None) for f in chunk["files"]]
    outcomes = burst.process_files(
        lifecycle, arrivals, context["run_id"], generate, standard_retriers(settings)
    )
    return [outcome.to_dict() for outcome in outcomes]


class FilesStillWaiting(AirflowFailException):
    """Fails the report at once (no retries); the failure callback sends the digest it carries."""

    def __init__(self, message: str, alert: burst.Digest) -> None:
        super().__init__(message)
        self.alert = alert


def report_burst(outcomes: list[list[dict[str, Any]]], **context: Any) -> dict[str, Any]:
    """One digest alert for the run's bad files; the run fails if any file still waits.

    When files wait, the digest goes out through this task's failure callback (so the failure
    pages once, with the digest); otherwise the task sends it and succeeds.
    """
    settings = config.load()
    results = [burst.Outcome.from_dict(o) for chunk in outcomes or [] for o in chunk or []]
    bad = tuple(o for o in results if o.bad)
    ti = context["ti"]
    places: dict[str, int] = {}
    for outcome in results:
        places[outcome.place] = places.get(outcome.place, 0) + 1
    if not bad:
        return {"files": len(results), "places": places}
    digest = burst.Digest(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        files=len(results),
        bad=bad,
        log_url=task_log_url(settings.ui_base_url, ti.dag_id, ti.run_id, CHUNK_TASK, 1),
    )
    waiting = [o.key for o in bad if o.waiting]
    if waiting:
        raise FilesStillWaiting(
            f"{len(waiting)} file(s) still wait after every retry ({', '.join(waiting[:10])}); the digest "
            f"alert lists them. Clear {CHUNK_TASK} to resume them.",
            digest,
        )
    send(digest, settings)
    return {"files": len(results), "places": places}
