"""What a deployment tells its user: the plan before it runs, and the target's status.

Plain functions over a plan (or a :class:`~.plan.Planner` for the status), writing lines through
``out`` so the CLI prints them and tests collect them.
"""

from __future__ import annotations

from collections.abc import Callable

from . import environment, sync
from .plan import DEFAULT_ARTIFACT_KEYS, DeployPlan, DeployTarget, Planner, RollbackPlan, short_version
from .record import DeploymentRecord

Out = Callable[[str], None]


def print_plan(plan: DeployPlan, target: DeployTarget, out: Out) -> None:
    """The plan of a deployment, refusals last."""
    env_text = (
        f", environment {target.environment}" if target.environment else ", no environment (--environment)"
    )
    out(f"Plan for s3://{target.bucket} (DAG prefix {target.dags_prefix}{env_text}):")
    dags = plan.dags
    out(
        f"  {target.dags_prefix}: {len(dags.uploads)} to upload, {len(dags.deletions)} to delete, "
        f"{len(dags.unchanged)} unchanged"
    )
    for action in dags.uploads:
        mark = "+" if action.reason == "new" else "~"
        out(f"    {mark} {action.key}  ({action.reason})")
    for action in dags.deletions:
        out(f"    - {action.key}  ({action.reason})")
    _print_artifacts(plan, out)
    print_env_changes(target, plan.env_changes, out, "; MWAA takes 20-40 minutes")
    if plan.previous is not None:
        commit = (plan.previous.git.get("commit") or "no commit")[:12]
        out(f"  last deployment: {plan.previous.id} ({plan.previous.kind}, git {commit})")
    else:
        out("  last deployment: none recorded (this will be the first)")
    for warning in plan.warnings:
        out(f"  warning: {warning}")
    for refusal in plan.refusals:
        out(f"  REFUSED: {refusal}")


def _print_artifacts(plan: DeployPlan, out: Out) -> None:
    for role, default_key in DEFAULT_ARTIFACT_KEYS.items():
        action = plan.artifacts.get(role)
        if action is None:
            out(f"  {default_key}: nothing to ship")
        elif action.upload:
            out(f"  {action.key}: upload ({action.reason})")
        else:
            version = action.entry.version_id if action.entry else None
            out(f"  {action.key}: {action.reason}, version {short_version(version)}")


def print_env_changes(target: DeployTarget, changes: dict[str, str], out: Out, suffix: str = "") -> None:
    name = target.environment
    if not name:
        return
    if changes:
        listing = ", ".join(f"{role} ({why})" for role, why in sorted(changes.items()))
        out(f"  environment {name}: update {listing}{suffix}")
    else:
        out(f"  environment {name}: no update needed")


def print_rollback_plan(plan: RollbackPlan, target: DeployTarget, out: Out) -> None:
    """The plan of a rollback, refusals last."""
    if plan.current is not None and plan.target is not None:
        out(f"Rollback plan: from {plan.current.id} back to {plan.target.id} ({plan.target.created_at})")
        out(
            f"  {target.dags_prefix}: {len(plan.restores)} to restore, "
            f"{len(plan.deletions)} to delete, {len(plan.unchanged)} unchanged"
        )
        for entry in plan.restores:
            out(f"    < {entry.key}  (version {short_version(entry.version_id)})")
        for key in plan.deletions:
            out(f"    - {key}  (not in {plan.target.id})")
        restoring = {entry.key for entry in plan.artifact_restores}
        for role, entry in sorted(plan.target.artifacts.items()):
            again = "; made the current object again" if entry.key in restoring else ""
            out(f"  {entry.key}: version {short_version(entry.version_id)} ({role}){again}")
        print_env_changes(target, plan.env_changes, out)
    for warning in plan.warnings:
        out(f"  warning: {warning}")
    for refusal in plan.refusals:
        out(f"  REFUSED: {refusal}")


def _print_bucket_state(planner: Planner, latest: DeploymentRecord | None, out: Out) -> None:
    """A deployment in progress (its lock), and current objects that are not the deployed versions."""
    holder = planner.records.lock_holder()
    if holder is not None:
        out(
            f"  a deployment is running (or died): {holder.get('id', '?')} since "
            f"{holder.get('started_at', '?')} on {holder.get('host', '?')}; its lock expires "
            f"{holder.get('expires_at', '?')}"
        )
    if latest is None:
        return
    keys = [entry.key for entry in latest.artifacts.values()]
    current = sync.current_objects(planner.s3, planner.target.bucket, keys)
    for role, entry in sorted(latest.artifacts.items()):
        found = current.get(entry.key)
        if found is None or found.etag != entry.etag:
            out(
                f"  warning: the bucket's current {entry.key} is not the deployed version "
                f"{short_version(entry.version_id)} ({role}); the next `scripts/deploy` makes it "
                "current again"
            )


def print_status(planner: Planner, out: Out, history_limit: int = 10) -> None:
    """The current deployment, the environment's state against it, and the history."""
    target = planner.target
    latest = planner.records.latest()
    out(f"s3://{target.bucket} (DAG prefix {target.dags_prefix})")
    if latest is None:
        out("  no deployment recorded yet")
    else:
        commit = latest.git.get("commit") or "no commit"
        dirty = " (uncommitted changes)" if latest.git.get("dirty") else ""
        out(
            f"  current deployment: {latest.id} ({latest.kind}, {latest.created_at}, "
            f"git {commit[:12]}{dirty})"
        )
        if latest.restored:
            out(f"    restored deployment {latest.restored}")
        out(f"    {len(latest.dags)} DAG file(s)")
        for role, entry in sorted(latest.artifacts.items()):
            out(f"    {entry.key}: version {entry.version_id} ({role})")
        out(f"    environment update: {latest.environment_update.get('status', 'unknown')}")
    _print_bucket_state(planner, latest, out)
    env = planner.environment()
    if env is not None:
        out(f"environment {env.name}: {env.status}, Airflow {env.airflow_version}")
        if env.webserver_url:
            out(f"  UI: https://{env.webserver_url}")
        for role in environment.ROLE_PARAMETERS:
            running = env.versions.get(role)
            shipped = latest.artifacts.get(role) if latest else None
            if shipped is None and running is None:
                continue
            state = (
                "in sync" if shipped and shipped.version_id == running else "differs from the last deployment"
            )
            out(f"  {role}: runs {short_version(running)}, {state}")
        last = env.last_update
        if last:
            line = f"  last update: {last.get('Status', '?')} at {last.get('CreatedAt', '?')}"
            if last.get("Status") == "FAILED":
                line += f": {environment.failure_reason(last)}"
            out(line)
    ids = planner.records.history_ids()
    if ids:
        out(f"history (newest last, {len(ids)} in all):")
        for record_id in ids[-history_limit:]:
            marker = "  <- current" if latest and record_id == latest.id else ""
            out(f"  {record_id}{marker}")
