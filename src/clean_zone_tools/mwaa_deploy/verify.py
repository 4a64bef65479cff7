"""Ask the environment what it parsed: the last step of a deploy, after the DAG files are in the bucket.

An environment that is AVAILABLE again can still fail to load a DAG: a package the workers lack, a
plugin that does not import there, a Variable read at parse time. Only the environment itself knows,
so the deploy asks it through MWAA's ``InvokeRestApi`` (the Airflow REST API through the AWS API,
signed with the caller's AWS credentials; 10 s per call) for its import errors and the DAGs it knows,
and fails with the errors printed when a shipped DAG did not load or is missing.

MWAA picks DAG files up from the bucket by itself (a changed file in about 30 s, a new one in about
5 minutes), so :func:`wait_until_parsed` polls until every expected DAG is there and no import error
newer than the upload names a shipped file, or until its timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

_PAGE = 100


class VerifyFailedError(RuntimeError):
    """The environment did not load what was shipped; the message lists what it reported."""


@dataclass
class ParsedState:
    """What the environment's DAG processor has loaded, as its REST API reports it."""

    dag_ids: set[str] = field(default_factory=set)
    import_errors: dict[str, tuple[datetime | None, str]] = field(
        default_factory=dict
    )  # file -> (when, text)


def _call(mwaa: Any, name: str, path: str, query: dict[str, Any]) -> dict[str, Any]:
    try:
        response = mwaa.invoke_rest_api(Name=name, Path=path, Method="GET", QueryParameters=query)
    except ClientError as error:
        details = error.response.get("Error", {})
        raise VerifyFailedError(
            f"cannot ask environment {name} what it parsed (GET {path}): {details.get('Code', '?')}: "
            f"{details.get('Message', '')}. The caller needs airflow:InvokeRestApi (docs/deploy.md); "
            "--no-verify skips this step"
        ) from error
    status = int(response.get("RestApiStatusCode", 0))
    if status != 200:
        raise VerifyFailedError(f"environment {name} answered GET {path} with HTTP {status}")
    return dict(response.get("RestApiResponse") or {})


def _paged(mwaa: Any, name: str, path: str, items_key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = _call(mwaa, name, path, {"limit": _PAGE, "offset": len(items)})
        batch = list(page.get(items_key) or [])
        items.extend(batch)
        if not batch or len(items) >= int(page.get("total_entries", len(items))):
            return items


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parsed_state(mwaa: Any, name: str) -> ParsedState:
    """The environment's DAG ids and import errors (``GET /dags``, ``GET /importErrors``)."""
    state = ParsedState()
    state.dag_ids = {str(dag["dag_id"]) for dag in _paged(mwaa, name, "/dags", "dags")}
    for error in _paged(mwaa, name, "/importErrors", "import_errors"):
        filename = str(error.get("filename", "?"))
        state.import_errors[filename] = (
            _timestamp(error.get("timestamp")),
            str(error.get("stack_trace", "")),
        )
    return state


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def _ours(filename: str, shipped_files: set[str]) -> bool:
    """Whether an import error's file is one we shipped (MWAA reports paths relative to the DAGs
    folder, or absolute under /usr/local/airflow/dags)."""
    return any(filename == relpath or filename.endswith("/" + relpath) for relpath in shipped_files)


def wait_until_parsed(
    mwaa: Any,
    name: str,
    *,
    expected_dag_ids: set[str],
    shipped_files: set[str],
    synced_at: datetime,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_seconds: float = 30.0,
    timeout_seconds: float = 10 * 60.0,
) -> ParsedState:
    """Poll until the environment has every expected DAG and no fresh import error in a shipped file.

    ``shipped_files`` are paths relative to the DAG folder. An import error newer than ``synced_at``
    in one of them fails at once; an older one may be cleared by the next parse, so it only fails
    at the timeout, as do missing DAGs.
    """
    start = clock()
    while True:
        state = parsed_state(mwaa, name)
        ours = {f: e for f, e in state.import_errors.items() if _ours(f, shipped_files)}
        fresh = {f: e for f, e in ours.items() if e[0] is not None and e[0] >= synced_at}
        missing = sorted(expected_dag_ids - state.dag_ids)
        elapsed = clock() - start
        if fresh or (elapsed >= timeout_seconds and (ours or missing)):
            lines = [f"{f}: {_first_line(text)}" for f, (_, text) in sorted((fresh or ours).items())]
            if missing:
                lines.append(f"not loaded after {int(elapsed)} s: {', '.join(missing)}")
            raise VerifyFailedError(
                f"environment {name} did not load what was deployed:\n" + "\n".join(f"  {x}" for x in lines)
            )
        if not ours and not missing:
            progress(f"environment {name} parsed all {len(expected_dag_ids)} DAG(s), no import errors")
            return state
        progress(
            f"environment {name}: waiting for {len(missing)} DAG(s) to load"
            + (f", {len(ours)} older import error(s) to clear" if ours else "")
        )
        sleep(poll_seconds)
