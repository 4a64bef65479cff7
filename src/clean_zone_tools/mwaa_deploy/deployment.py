"""Plan, apply and roll back a deployment: the pieces of this package put together.

Order of a deployment, and why:

1. safety checks (bucket, environment) and a plan that only reads;
2. upload plugins.zip / requirements.txt / startup.sh if their content changed;
3. update the environment to exactly those new versions and wait for it. New DAG
   files may import what the new requirements or plugins bring, so they go after
   the update, and not at all when the update fails (MWAA rolls the environment
   back; the bucket's DAGs stay as they were);
4. sync dags/: upload changed files, delete files gone locally;
5. write the deployment record.

A rollback restores the DAG files first (a bad DAG is the usual reason to roll
back, and should not wait 20+ minutes for an environment update), then points the
environment back at the previous deployment's object versions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import bucket, environment, plugins_zip, project, record, sync
from .record import DeploymentRecord, ObjectEntry, RecordStore

DEFAULT_ARTIFACT_KEYS = {
    "plugins": "plugins.zip",
    "requirements": "requirements.txt",
    "startup": "startup.sh",
}
_CONTENT_TYPES = {"plugins": "application/zip", "requirements": "text/plain", "startup": "text/x-shellscript"}


class DeployRefusedError(RuntimeError):
    """The deployment would be unsafe or cannot be done; nothing was changed."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class DeployFailedError(RuntimeError):
    """Something went wrong after changes began; the message says what state things are in."""


@dataclass(frozen=True)
class Target:
    bucket: str
    dags_prefix: str = "dags/"
    record_prefix: str = record.DEFAULT_PREFIX
    environment: str | None = None


@dataclass
class DeployPlan:
    previous: DeploymentRecord | None
    dags: sync.DagPlan
    artifacts: dict[str, sync.ArtifactAction]
    env_changes: dict[str, str]  # role -> why the environment needs updating
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return bool(
            self.dags.uploads
            or self.dags.deletions
            or self.env_changes
            or any(a.upload for a in self.artifacts.values())
        )


@dataclass
class RollbackPlan:
    current: DeploymentRecord | None
    target: DeploymentRecord | None
    restores: list[ObjectEntry] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    unchanged: dict[str, ObjectEntry] = field(default_factory=dict)
    env_changes: dict[str, str] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    record: DeploymentRecord | None
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    environment_update: dict[str, Any] = field(default_factory=dict)


def _short(version: str | None) -> str:
    if not version:
        return "none"
    return version if len(version) <= 12 else version[:12] + "…"


class Deployer:
    """One deployment target: a bucket, a DAG prefix, optionally an MWAA environment."""

    def __init__(
        self,
        s3: Any,
        target: Target,
        layout: project.ProjectLayout,
        *,
        mwaa: Any = None,
        known_environment: environment.EnvironmentInfo | None = None,
        out: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_seconds: float = 30.0,
        wait_timeout_seconds: float = 90 * 60.0,
        workers: int = 8,
    ) -> None:
        if target.environment and mwaa is None:
            raise ValueError("an MWAA client is needed when an environment is named")
        self.s3 = s3
        self.mwaa = mwaa
        self.target = Target(
            bucket=target.bucket,
            dags_prefix=sync.normalise_prefix(target.dags_prefix),
            record_prefix=sync.normalise_prefix(target.record_prefix),
            environment=target.environment,
        )
        if self.target.record_prefix.startswith(
            self.target.dags_prefix
        ) or self.target.dags_prefix.startswith(self.target.record_prefix):
            raise ValueError("the record prefix and the DAG prefix must not contain each other")
        self.layout = layout
        self.out = out
        self.sleep = sleep
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.wait_timeout_seconds = wait_timeout_seconds
        self.workers = workers
        self.records = RecordStore(s3, self.target.bucket, self.target.record_prefix)
        # The CLI has usually described the environment already; saves a request.
        self._environment: environment.EnvironmentInfo | None = known_environment

    # --- reading -----------------------------------------------------------

    def environment(self, *, refresh: bool = False) -> environment.EnvironmentInfo | None:
        if self.target.environment is None:
            return None
        if self._environment is None or refresh:
            self._environment = environment.describe(self.mwaa, self.target.environment)
        return self._environment

    def artifact_keys(self) -> dict[str, str]:
        """Where the three objects go: the environment's configured paths, else MWAA's usual ones."""
        keys = dict(DEFAULT_ARTIFACT_KEYS)
        env = self.environment()
        if env is not None:
            keys.update({role: path for role, path in env.paths.items() if path})
        return keys

    def safety(self) -> tuple[list[str], list[str]]:
        """(refusals, warnings) about the bucket and the environment's wiring to it."""
        checked = bucket.check(self.s3, self.target.bucket)
        refusals, warnings = list(checked.problems), list(checked.warnings)
        env = self.environment()
        if env is not None:
            if env.source_bucket != self.target.bucket:
                refusals.append(
                    f"environment {env.name} reads from s3://{env.source_bucket}, not s3://{self.target.bucket}"
                )
            if env.dag_s3_path is not None and env.dag_s3_path.strip("/") + "/" != self.target.dags_prefix:
                refusals.append(
                    f"environment {env.name} reads DAGs from {env.dag_s3_path!r}, "
                    f"not {self.target.dags_prefix!r} (--dags-prefix)"
                )
            overlapping = [
                key for key in self.artifact_keys().values() if key.startswith(self.target.dags_prefix)
            ]
            if overlapping:
                refusals.append(f"{', '.join(overlapping)} must not live under the DAG prefix")
        return refusals, warnings

    def local_artifacts(self, plugins: plugins_zip.PluginsArchive | None) -> dict[str, sync.Artifact]:
        keys = self.artifact_keys()
        artifacts: dict[str, sync.Artifact] = {}
        if plugins is not None:
            artifacts["plugins"] = sync.Artifact(
                "plugins", keys["plugins"], plugins.data, plugins.digest, _CONTENT_TYPES["plugins"]
            )
        for role, path in (
            ("requirements", self.layout.requirements),
            ("startup", self.layout.startup_script),
        ):
            if path.is_file():
                data = path.read_bytes()
                digest = project.sha256_file(path)
                artifacts[role] = sync.Artifact(role, keys[role], data, digest, _CONTENT_TYPES[role])
        return artifacts

    def _env_changes(self, versions: dict[str, tuple[str, str | None]]) -> dict[str, str]:
        """Roles whose ``(key, version)`` differ from what the environment runs (None: a new upload)."""
        env = self.environment()
        if env is None:
            return {}
        changes: dict[str, str] = {}
        for role, (key, version) in versions.items():
            if version is None:
                changes[role] = "new version"
            elif env.versions.get(role) != version or env.paths.get(role) != key:
                changes[role] = (
                    f"environment runs {_short(env.versions.get(role))}, bucket has {_short(version)}"
                )
        return changes

    def _updatable(self, changes: dict[str, str], refusals: list[str]) -> None:
        env = self.environment()
        if env is not None and changes and env.status not in environment.UPDATABLE_STATUSES:
            refusals.append(
                f"environment {env.name} is {env.status}; an update cannot start now. "
                "Wait until it is AVAILABLE"
            )

    # --- deploy --------------------------------------------------------------

    def plan(self, plugins: plugins_zip.PluginsArchive | None) -> DeployPlan:
        """What a deployment would do. Reads only."""
        refusals, warnings = self.safety()
        previous = self.records.latest()
        recorded_dags: dict[str, ObjectEntry] = {}
        if previous is not None and previous.dags_prefix == self.target.dags_prefix:
            recorded_dags = previous.dags
        local = project.collect(self.layout.dags_dir)
        if not any(relpath.endswith(".py") for relpath in local):
            refusals.append(f"{self.layout.dags_dir} has no Python files; refusing to empty the DAG prefix")
        dags = sync.plan_dags(
            self.s3, self.target.bucket, self.target.dags_prefix, local, recorded_dags, workers=self.workers
        )
        artifacts = {
            role: sync.plan_artifact(
                self.s3, self.target.bucket, artifact, previous.artifacts.get(role) if previous else None
            )
            for role, artifact in self.local_artifacts(plugins).items()
        }
        env_changes = self._env_changes(
            {
                role: (action.key, None if action.upload or action.entry is None else action.entry.version_id)
                for role, action in artifacts.items()
            }
        )
        self._updatable(env_changes, refusals)
        env = self.environment()
        if env is not None:
            for role, key in env.paths.items():
                if key and role not in artifacts:
                    warnings.append(
                        f"environment {env.name} still uses {key} "
                        f"(version {_short(env.versions.get(role))}); the project has none, "
                        "and deploy does not remove it"
                    )
        return DeployPlan(previous, dags, artifacts, env_changes, refusals, warnings)

    def print_plan(self, plan: DeployPlan) -> None:
        target = self.target
        env_text = (
            f", environment {target.environment}"
            if target.environment
            else ", no environment (--environment)"
        )
        self.out(f"Plan for s3://{target.bucket} (DAG prefix {target.dags_prefix}{env_text}):")
        dags = plan.dags
        self.out(
            f"  {target.dags_prefix}: {len(dags.uploads)} to upload, {len(dags.deletions)} to delete, "
            f"{len(dags.unchanged)} unchanged"
        )
        for action in dags.uploads:
            mark = "+" if action.reason == "new" else "~"
            self.out(f"    {mark} {action.key}  ({action.reason})")
        for action in dags.deletions:
            self.out(f"    - {action.key}  ({action.reason})")
        self._print_artifacts(plan)
        self._print_env_changes(plan.env_changes, "; MWAA takes 20-40 minutes")
        if plan.previous is not None:
            commit = (plan.previous.git.get("commit") or "no commit")[:12]
            self.out(f"  last deployment: {plan.previous.id} ({plan.previous.kind}, git {commit})")
        else:
            self.out("  last deployment: none recorded (this will be the first)")
        for warning in plan.warnings:
            self.out(f"  warning: {warning}")
        for refusal in plan.refusals:
            self.out(f"  REFUSED: {refusal}")

    def _print_artifacts(self, plan: DeployPlan) -> None:
        for role, default_key in DEFAULT_ARTIFACT_KEYS.items():
            action = plan.artifacts.get(role)
            if action is None:
                self.out(f"  {default_key}: nothing to ship")
            elif action.upload:
                self.out(f"  {action.key}: upload ({action.reason})")
            else:
                version = action.entry.version_id if action.entry else None
                self.out(f"  {action.key}: {action.reason}, version {_short(version)}")

    def _print_env_changes(self, changes: dict[str, str], suffix: str = "") -> None:
        name = self.target.environment
        if not name:
            return
        if changes:
            listing = ", ".join(f"{role} ({why})" for role, why in sorted(changes.items()))
            self.out(f"  environment {name}: update {listing}{suffix}")
        else:
            self.out(f"  environment {name}: no update needed")

    def _update_environment(self, changes: dict[str, tuple[str, str]]) -> dict[str, Any]:
        name = self.target.environment
        assert name is not None
        requested_at = datetime.now(UTC)
        parameters = environment.request_update(self.mwaa, name, changes)
        listing = ", ".join(f"{role} -> {_short(version)}" for role, (_, version) in sorted(changes.items()))
        self.out(f"Updating environment {name}: {listing}")
        environment.wait_until_available(
            self.mwaa,
            name,
            requested_at=requested_at,
            progress=lambda message: self.out(f"  {message}"),
            sleep=self.sleep,
            clock=self.clock,
            poll_seconds=self.poll_seconds,
            timeout_seconds=self.wait_timeout_seconds,
        )
        self._environment = None
        return {"status": "SUCCESS", "parameters": {k: v for k, v in parameters.items() if k != "Name"}}

    def apply(self, plan: DeployPlan, *, update: bool = True) -> Outcome:
        if plan.refusals:
            raise DeployRefusedError(plan.refusals)
        if not plan.changes_anything and plan.previous is not None:
            self.out(
                f"Nothing to deploy: s3://{self.target.bucket} already matches deployment {plan.previous.id}."
            )
            return Outcome(record=None, environment_update={"status": "not needed"})

        artifacts = self._upload_artifacts(plan)
        uploaded = [action.key for action in plan.artifacts.values() if action.upload]
        changes = {role: (artifacts[role].key, str(artifacts[role].version_id)) for role in plan.env_changes}
        env_update = self._apply_env_changes(changes, update=update)
        if self.target.environment is None and uploaded:
            self.out(
                "note: no --environment: new object versions take effect only after an environment update"
            )

        dag_entries = dict(plan.dags.unchanged)
        if plan.dags.uploads:
            self.out(f"uploading {len(plan.dags.uploads)} DAG file(s)")
            dag_entries.update(
                sync.upload_files(
                    self.s3,
                    self.target.bucket,
                    plan.dags.uploads,
                    progress=self._progress,
                    workers=self.workers,
                )
            )
        deleted: list[str] = []
        if plan.dags.deletions:
            deleted = sync.delete_keys(
                self.s3, self.target.bucket, self.target.dags_prefix, [a.key for a in plan.dags.deletions]
            )
            for key in deleted:
                self.out(f"deleted {key}")

        uploaded.extend(action.key for action in plan.dags.uploads)
        deployed = DeploymentRecord(
            id=record.new_id(),
            created_at=record.now_iso(),
            kind="deploy",
            bucket=self.target.bucket,
            dags_prefix=self.target.dags_prefix,
            environment=self.target.environment,
            git=project.git_info(self.layout.root).as_dict(),
            dags=dag_entries,
            artifacts=artifacts,
            previous=plan.previous.id if plan.previous else None,
            environment_update=env_update,
            changes={"uploaded": sorted(uploaded), "deleted": deleted},
        )
        self.records.save(deployed)
        self.out(
            f"Deployed {deployed.id}: {len(uploaded)} uploaded, {len(deleted)} deleted, "
            f"{len(plan.dags.unchanged)} DAG file(s) unchanged; environment update: {env_update['status']}."
        )
        return Outcome(
            record=deployed, uploaded=sorted(uploaded), deleted=deleted, environment_update=env_update
        )

    def _upload_artifacts(self, plan: DeployPlan) -> dict[str, ObjectEntry]:
        artifacts: dict[str, ObjectEntry] = {}
        for role, action in sorted(plan.artifacts.items()):
            if action.upload:
                entry = sync.put(
                    self.s3,
                    self.target.bucket,
                    action.key,
                    data=action.artifact.data,
                    digest=action.artifact.digest,
                    content_type=action.artifact.content_type,
                )
                self.out(f"uploaded {action.key} (version {entry.version_id})")
                artifacts[role] = entry
            else:
                assert action.entry is not None
                artifacts[role] = action.entry
        return artifacts

    def _apply_env_changes(self, changes: dict[str, tuple[str, str]], *, update: bool) -> dict[str, Any]:
        if not changes:
            return {"status": "not needed"}
        if not update:
            self.out(
                f"warning: --no-update: {', '.join(sorted(changes))} not applied; environment "
                f"{self.target.environment} keeps its current versions until a deploy without --no-update"
            )
            return {"status": "skipped", "pending": sorted(changes)}
        try:
            return self._update_environment(changes)
        except environment.UpdateFailedError as error:
            raise DeployFailedError(
                f"environment update failed: {error}. MWAA keeps (or rolls back to) its previous "
                f"versions; DAG files in s3://{self.target.bucket}/{self.target.dags_prefix} were not changed"
            ) from error
        except environment.UpdateTimeoutError as error:
            raise DeployFailedError(f"{error}; DAG files were not changed") from error

    def _progress(self, done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done % step == 0:
            self.out(f"  {done}/{total}")

    # --- rollback ------------------------------------------------------------

    def plan_rollback(self, to: str | None = None) -> RollbackPlan:
        refusals, warnings = self.safety()
        current = self.records.latest()
        plan = RollbackPlan(current=current, target=None, refusals=refusals, warnings=warnings)
        if current is None:
            plan.refusals.append(
                f"no deployment recorded under s3://{self.target.bucket}/{self.target.record_prefix}"
            )
            return plan
        target_id = to or current.previous
        if target_id is None:
            plan.refusals.append(
                f"deployment {current.id} is the first one recorded; there is nothing before it"
            )
            return plan
        if target_id == current.id:
            plan.refusals.append(f"deployment {current.id} is the current one")
            return plan
        target = self.records.get(target_id)
        if target is None:
            plan.refusals.append(f"no deployment record {target_id!r} (see `scripts/deploy status`)")
            return plan
        plan.target = target
        if target.dags_prefix != self.target.dags_prefix:
            plan.refusals.append(f"deployment {target.id} used DAG prefix {target.dags_prefix!r}")
            return plan

        remote = sync.list_prefix(self.s3, self.target.bucket, self.target.dags_prefix)
        for key, entry in sorted(target.dags.items()):
            current_object = remote.get(key)
            if current_object is not None and current_object.etag == entry.etag:
                plan.unchanged[key] = entry
            else:
                plan.restores.append(entry)
        plan.deletions = sorted(key for key in remote if key not in target.dags)

        # Every version we will copy from or point MWAA at must still exist (a
        # lifecycle rule may have expired it): find out before changing anything.
        needed = plan.restores + list(target.artifacts.values())

        def exists(entry: ObjectEntry) -> tuple[ObjectEntry, bool]:
            return entry, sync.head(self.s3, self.target.bucket, entry.key, entry.version_id) is not None

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            missing = [entry for entry, ok in pool.map(exists, needed) if not ok]
        for entry in missing:
            plan.refusals.append(f"{entry.key} version {entry.version_id} no longer exists in the bucket")

        plan.env_changes = self._env_changes(
            {role: (entry.key, entry.version_id) for role, entry in target.artifacts.items()}
        )
        self._updatable(plan.env_changes, plan.refusals)
        env = self.environment()
        if env is not None:
            for role, key in env.paths.items():
                if key and role not in target.artifacts:
                    plan.warnings.append(
                        f"deployment {target.id} shipped no {key}; the environment keeps its current one"
                    )
        return plan

    def print_rollback_plan(self, plan: RollbackPlan) -> None:
        if plan.current is not None and plan.target is not None:
            self.out(
                f"Rollback plan: from {plan.current.id} back to {plan.target.id} ({plan.target.created_at})"
            )
            self.out(
                f"  {self.target.dags_prefix}: {len(plan.restores)} to restore, "
                f"{len(plan.deletions)} to delete, {len(plan.unchanged)} unchanged"
            )
            for entry in plan.restores:
                self.out(f"    < {entry.key}  (version {_short(entry.version_id)})")
            for key in plan.deletions:
                self.out(f"    - {key}  (not in {plan.target.id})")
            for role, entry in sorted(plan.target.artifacts.items()):
                self.out(f"  {entry.key}: version {_short(entry.version_id)} ({role})")
            self._print_env_changes(plan.env_changes)
        for warning in plan.warnings:
            self.out(f"  warning: {warning}")
        for refusal in plan.refusals:
            self.out(f"  REFUSED: {refusal}")

    def apply_rollback(self, plan: RollbackPlan, *, update: bool = True) -> Outcome:
        if plan.refusals or plan.target is None or plan.current is None:
            raise DeployRefusedError(plan.refusals or ["nothing to roll back to"])
        target = plan.target

        def restore(entry: ObjectEntry) -> ObjectEntry:
            return sync.copy_version(self.s3, self.target.bucket, entry)

        dag_entries = dict(plan.unchanged)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for entry in pool.map(restore, plan.restores):
                dag_entries[entry.key] = entry
                self.out(f"restored {entry.key}")
        deleted = sync.delete_keys(self.s3, self.target.bucket, self.target.dags_prefix, plan.deletions)
        for key in deleted:
            self.out(f"deleted {key}")

        env_update: dict[str, Any] = {"status": "not needed"}
        failure: str | None = None
        changes = {
            role: (target.artifacts[role].key, str(target.artifacts[role].version_id))
            for role in plan.env_changes
        }
        if changes and not update:
            env_update = {"status": "skipped", "pending": sorted(changes)}
            self.out(f"warning: --no-update: the environment keeps its current {', '.join(sorted(changes))}")
        elif changes:
            try:
                env_update = self._update_environment(changes)
            except (environment.UpdateFailedError, environment.UpdateTimeoutError) as error:
                env_update = {"status": "FAILED", "error": str(error)}
                failure = str(error)

        # The DAG files did change, so the record is written even when the update failed.
        rolled_back = DeploymentRecord(
            id=record.new_id(),
            created_at=record.now_iso(),
            kind="rollback",
            bucket=self.target.bucket,
            dags_prefix=self.target.dags_prefix,
            environment=self.target.environment,
            git=target.git,
            dags=dag_entries,
            artifacts=dict(target.artifacts),
            previous=target.previous,
            restored=target.id,
            environment_update=env_update,
            changes={"restored": sorted(e.key for e in plan.restores), "deleted": deleted},
        )
        self.records.save(rolled_back)
        if failure is not None:
            raise DeployFailedError(
                f"DAG files are back at {target.id} (record {rolled_back.id}), "
                f"but the environment update failed: {failure}"
            )
        self.out(
            f"Rolled back to {target.id} (record {rolled_back.id}): {len(plan.restores)} restored, "
            f"{len(deleted)} deleted; environment update: {env_update['status']}."
        )
        return Outcome(
            record=rolled_back,
            uploaded=sorted(e.key for e in plan.restores),
            deleted=deleted,
            environment_update=env_update,
        )

    # --- status --------------------------------------------------------------

    def status(self, history_limit: int = 10) -> None:
        latest = self.records.latest()
        self.out(f"s3://{self.target.bucket} (DAG prefix {self.target.dags_prefix})")
        if latest is None:
            self.out("  no deployment recorded yet")
        else:
            commit = latest.git.get("commit") or "no commit"
            dirty = " (uncommitted changes)" if latest.git.get("dirty") else ""
            self.out(
                f"  current deployment: {latest.id} ({latest.kind}, {latest.created_at}, "
                f"git {commit[:12]}{dirty})"
            )
            if latest.restored:
                self.out(f"    restored deployment {latest.restored}")
            self.out(f"    {len(latest.dags)} DAG file(s)")
            for role, entry in sorted(latest.artifacts.items()):
                self.out(f"    {entry.key}: version {entry.version_id} ({role})")
            self.out(f"    environment update: {latest.environment_update.get('status', 'unknown')}")
        env = self.environment()
        if env is not None:
            self.out(f"environment {env.name}: {env.status}, Airflow {env.airflow_version}")
            if env.webserver_url:
                self.out(f"  UI: https://{env.webserver_url}")
            for role in environment.ROLE_PARAMETERS:
                running = env.versions.get(role)
                shipped = latest.artifacts.get(role) if latest else None
                if shipped is None and running is None:
                    continue
                state = (
                    "in sync"
                    if shipped and shipped.version_id == running
                    else "differs from the last deployment"
                )
                self.out(f"  {role}: runs {_short(running)}, {state}")
            last = env.last_update
            if last:
                line = f"  last update: {last.get('Status', '?')} at {last.get('CreatedAt', '?')}"
                if last.get("Status") == "FAILED":
                    line += f": {environment.failure_reason(last)}"
                self.out(line)
        ids = self.records.history_ids()
        if ids:
            self.out(f"history (newest last, {len(ids)} in all):")
            for record_id in ids[-history_limit:]:
                marker = "  <- current" if latest and record_id == latest.id else ""
                self.out(f"  {record_id}{marker}")
