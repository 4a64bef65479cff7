"""The MWAA control plane: read an environment, point it at new object versions, wait.

A new plugins.zip, requirements.txt or startup.sh version has no effect until
``UpdateEnvironment`` names it. MWAA then replaces its components (20 minutes or
more); when the new requirements fail to install it rolls back and reports the
error in ``LastUpdate``. :func:`wait_until_available` polls until the outcome is
known, printing progress, with injectable ``sleep``/``clock`` so tests do not wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Artifact role -> (S3 path parameter, object version parameter) in the MWAA API.
ROLE_PARAMETERS: dict[str, tuple[str, str]] = {
    "plugins": ("PluginsS3Path", "PluginsS3ObjectVersion"),
    "requirements": ("RequirementsS3Path", "RequirementsS3ObjectVersion"),
    "startup": ("StartupScriptS3Path", "StartupScriptS3ObjectVersion"),
}
UPDATABLE_STATUSES = frozenset({"AVAILABLE", "UPDATE_FAILED"})
BUSY_STATUSES = frozenset(
    {"UPDATING", "ROLLING_BACK", "PENDING", "CREATING_SNAPSHOT", "MAINTENANCE", "CREATING"}
)
DEAD_STATUSES = frozenset({"UNAVAILABLE", "CREATE_FAILED", "DELETING", "DELETED"})
# UpdateEnvironment's WorkerReplacementStrategy: FORCED stops running tasks at once, GRACEFUL lets
# workers finish them first (a slower update).
WORKER_REPLACEMENT_STRATEGIES = ("FORCED", "GRACEFUL")
# Our clock and AWS's may differ; a LastUpdate this much older than our request
# still counts as ours.
_CLOCK_SKEW = timedelta(minutes=5)


class UpdateFailedError(RuntimeError):
    """The environment did not take the update; the message carries MWAA's reason."""


class UpdateTimeoutError(RuntimeError):
    pass


@dataclass(frozen=True)
class EnvironmentInfo:
    name: str
    status: str
    airflow_version: str
    source_bucket: str | None
    dag_s3_path: str | None
    paths: dict[str, str | None] = field(default_factory=dict)  # role -> S3 key
    versions: dict[str, str | None] = field(default_factory=dict)  # role -> object version
    last_update: dict[str, Any] = field(default_factory=dict)
    webserver_url: str | None = None

    @classmethod
    def from_api(cls, env: dict[str, Any]) -> EnvironmentInfo:
        arn = env.get("SourceBucketArn") or ""
        return cls(
            name=env["Name"],
            status=env.get("Status", "UNKNOWN"),
            airflow_version=env.get("AirflowVersion", ""),
            source_bucket=arn.rsplit(":", 1)[-1] if arn else None,
            dag_s3_path=env.get("DagS3Path"),
            paths={role: env.get(path) for role, (path, _) in ROLE_PARAMETERS.items()},
            versions={role: env.get(version) for role, (_, version) in ROLE_PARAMETERS.items()},
            last_update=dict(env.get("LastUpdate") or {}),
            webserver_url=env.get("WebserverUrl"),
        )


def describe(mwaa: Any, name: str) -> EnvironmentInfo:
    return EnvironmentInfo.from_api(mwaa.get_environment(Name=name)["Environment"])


def update_parameters(
    name: str, changes: dict[str, tuple[str, str]], worker_replacement: str | None = None
) -> dict[str, str]:
    """UpdateEnvironment arguments for ``{role: (s3 key, object version)}``, and nothing else."""
    parameters = {"Name": name}
    if worker_replacement is not None:
        parameters["WorkerReplacementStrategy"] = worker_replacement
    for role, (key, version) in sorted(changes.items()):
        path_parameter, version_parameter = ROLE_PARAMETERS[role]
        parameters[path_parameter] = key
        parameters[version_parameter] = version
    return parameters


def request_update(
    mwaa: Any, name: str, changes: dict[str, tuple[str, str]], worker_replacement: str | None = None
) -> dict[str, str]:
    parameters = update_parameters(name, changes, worker_replacement)
    mwaa.update_environment(**parameters)
    return parameters


def failure_reason(last_update: dict[str, Any]) -> str:
    error = last_update.get("Error") or {}
    code = error.get("ErrorCode") or "unknown error"
    message = error.get("ErrorMessage") or "MWAA gave no message"
    return f"{code}: {message}"


def _format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _belongs_to_update(info: EnvironmentInfo, seen_busy: bool, threshold: datetime) -> bool:
    """Whether ``info`` shows the update we requested, not an older one.

    Right after UpdateEnvironment, GetEnvironment may still show the previous outcome (yesterday's
    UPDATE_FAILED, or AVAILABLE with an old LastUpdate). Evidence that it is ours: the environment
    went through a busy state since we asked, or its LastUpdate was created after our request.
    """
    created = info.last_update.get("CreatedAt")
    return seen_busy or (isinstance(created, datetime) and created >= threshold)


def wait_until_available(
    mwaa: Any,
    name: str,
    *,
    requested_at: datetime,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    poll_seconds: float = 30.0,
    timeout_seconds: float = 90 * 60.0,
) -> EnvironmentInfo:
    """Poll until the update requested at ``requested_at`` has finished.

    Returns the AVAILABLE environment after a successful update. Raises
    :class:`UpdateFailedError` with MWAA's ``LastUpdate`` error when it failed (MWAA rolls
    back to the previous versions by itself), and :class:`UpdateTimeoutError`, also when the
    environment never shows a sign of the update (no busy state, no newer LastUpdate): success is
    only reported with evidence.
    """
    start = clock()
    seen_busy = False
    last_status = None
    threshold = requested_at.astimezone(UTC) - _CLOCK_SKEW
    while True:
        info = describe(mwaa, name)
        elapsed = clock() - start
        update_status = info.last_update.get("Status")
        if info.status != last_status:
            progress(f"environment {name}: {info.status} after {_format_elapsed(elapsed)}")
            last_status = info.status
        else:
            progress(f"environment {name}: still {info.status} ({_format_elapsed(elapsed)})")

        ours = _belongs_to_update(info, seen_busy, threshold)
        if info.status in BUSY_STATUSES:
            seen_busy = True
        elif info.status in DEAD_STATUSES:
            raise UpdateFailedError(f"environment is {info.status}: {failure_reason(info.last_update)}")
        elif info.status == "UPDATE_FAILED" and ours:
            raise UpdateFailedError(failure_reason(info.last_update))
        elif info.status == "AVAILABLE" and ours:
            if update_status == "FAILED":
                raise UpdateFailedError(failure_reason(info.last_update))
            if update_status != "PENDING":
                return info
        # Anything else is an earlier outcome still showing: keep polling.

        if elapsed >= timeout_seconds:
            evidence = "" if ours else " and showed no sign of the update yet"
            raise UpdateTimeoutError(
                f"environment {name} still {info.status} after {_format_elapsed(elapsed)}{evidence}; "
                "the update may go on in AWS: check `scripts/deploy status` later"
            )
        sleep(poll_seconds)
