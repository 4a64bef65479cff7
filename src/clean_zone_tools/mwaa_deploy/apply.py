"""The half of a deployment that changes things: carrying out a plan from :mod:`.plan`.

Order of a deployment, and why:

1. safety checks (bucket, environment) and a plan that only reads (:mod:`.plan`);
2. take the deploy lock (:mod:`.record`): one deployment at a time per bucket;
3. upload plugins.zip / requirements.txt / startup.sh if their content changed;
4. update the environment to exactly those new versions and wait for it. New DAG
   files may import what the new requirements or plugins bring, so they go after
   the update, and not at all when the update fails (MWAA rolls the environment
   back, and the versions it still runs are made the bucket's current objects
   again, so the bucket never shows a file the environment refused);
5. sync dags/: upload changed files, delete files gone locally;
6. ask the environment what it parsed (:mod:`.verify`), when one is named;
7. write the deployment record, and release the lock.

A rollback restores the DAG files first (a bad DAG is the usual reason to roll
back, and should not wait 20+ minutes for an environment update), makes the previous
deployment's plugins.zip / requirements.txt / startup.sh the current objects again,
then points the environment back at those versions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from . import environment, project, record, report, sync, verify
from .plan import DeployPlan, DeployRefusedError, DeployTarget, Planner, RollbackPlan, short_version
from .record import DeploymentRecord, ObjectEntry


class DeployFailedError(RuntimeError):
    """Something went wrong after changes began; the message says what state things are in."""


@dataclass
class Outcome:
    record: DeploymentRecord | None
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    environment_update: dict[str, Any] = field(default_factory=dict)


class Deployer(Planner):
    """Plans (see :class:`~.plan.Planner`), prints and applies deployments and rollbacks for one target."""

    def __init__(
        self,
        s3: Any,
        target: DeployTarget,
        layout: project.ProjectLayout,
        *,
        mwaa: Any = None,
        known_environment: environment.EnvironmentInfo | None = None,
        out: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_seconds: float = 30.0,
        wait_timeout_seconds: float = 90 * 60.0,
        worker_replacement: str | None = None,
        verify_timeout_seconds: float | None = None,
        workers: int = 8,
    ) -> None:
        super().__init__(s3, target, layout, mwaa=mwaa, known_environment=known_environment, workers=workers)
        self.out = out
        self.sleep = sleep
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.wait_timeout_seconds = wait_timeout_seconds
        self.worker_replacement = worker_replacement
        # None: do not ask the environment what it parsed (--no-verify).
        self.verify_timeout_seconds = verify_timeout_seconds

    def _new_record(self, kind: str, run_id: str, **fields: Any) -> DeploymentRecord:
        """A record of this target, with this run's id and the time now."""
        return DeploymentRecord(
            id=run_id,
            created_at=record.now_iso(),
            kind=kind,
            bucket=self.target.bucket,
            dags_prefix=self.target.dags_prefix,
            environment=self.target.environment,
            **fields,
        )

    def print_plan(self, plan: DeployPlan) -> None:
        report.print_plan(plan, self.target, self.out)

    def print_rollback_plan(self, plan: RollbackPlan) -> None:
        report.print_rollback_plan(plan, self.target, self.out)

    def status(self, history_limit: int = 10) -> None:
        report.print_status(self, self.out, history_limit)

    def _update_environment(self, changes: dict[str, tuple[str, str]]) -> dict[str, Any]:
        name = self.target.environment
        assert name is not None
        requested_at = datetime.now(UTC)
        parameters = environment.request_update(self.mwaa, name, changes, self.worker_replacement)
        listing = ", ".join(
            f"{role} -> {short_version(version)}" for role, (_, version) in sorted(changes.items())
        )
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

    def _locked(self, run_id: str) -> record.Lock:
        """Take the deploy lock for as long as this run may take (the update wait and the verification)."""
        hold = self.wait_timeout_seconds + (self.verify_timeout_seconds or 0.0) + 30 * 60.0
        return self.records.acquire_lock(
            run_id, hold_seconds=hold, git_commit=project.git_info(self.layout.root).commit
        )

    def apply(self, plan: DeployPlan, *, update: bool = True, dag_ids: list[str] | None = None) -> Outcome:
        """Carry out ``plan``. ``dag_ids`` (from the preflight) are what the environment must list."""
        if plan.refusals:
            raise DeployRefusedError(plan.refusals)
        if not plan.changes_anything and plan.previous is not None:
            self.out(
                f"Nothing to deploy: s3://{self.target.bucket} already matches deployment {plan.previous.id}."
            )
            return Outcome(record=None, environment_update={"status": "not needed"})
        run_id = record.new_id()
        lock = self._locked(run_id)
        try:
            return self._apply_locked(plan, run_id, update=update, dag_ids=dag_ids or [])
        finally:
            self.records.release_lock(lock)

    def _apply_locked(self, plan: DeployPlan, run_id: str, *, update: bool, dag_ids: list[str]) -> Outcome:
        artifacts = self._upload_artifacts(plan)
        uploaded = [action.key for action in plan.artifacts.values() if action.upload]
        changes = {role: (artifacts[role].key, str(artifacts[role].version_id)) for role in plan.env_changes}
        env_update = self._apply_env_changes(plan, changes, update=update)
        if self.target.environment is None and uploaded:
            self.out(
                "note: no --environment: new object versions take effect only after an environment update"
            )

        dag_entries = dict(plan.dags.unchanged)
        synced_at = datetime.now(UTC)
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
        verification, failure = self._verify(dag_ids, dag_entries, synced_at)
        deployed = self._new_record(
            "deploy",
            run_id,
            git=project.git_info(self.layout.root).as_dict(),
            dags=dag_entries,
            artifacts=artifacts,
            previous=plan.previous.id if plan.previous else None,
            environment_update=env_update,
            changes={"uploaded": sorted(uploaded), "deleted": deleted},
            dag_ids=sorted(dag_ids),
            verification=verification,
        )
        self.records.save(deployed)
        if failure is not None:
            raise DeployFailedError(
                f"deployment {deployed.id} is in the bucket, but {failure}\n"
                "Fix and deploy again, or go back: `scripts/deploy rollback`"
            )
        self.out(
            f"Deployed {deployed.id}: {len(uploaded)} uploaded, {len(deleted)} deleted, "
            f"{len(plan.dags.unchanged)} DAG file(s) unchanged; environment update: {env_update['status']}."
        )
        return Outcome(
            record=deployed, uploaded=sorted(uploaded), deleted=deleted, environment_update=env_update
        )

    def _verify(
        self, dag_ids: list[str], dag_entries: dict[str, ObjectEntry], synced_at: datetime
    ) -> tuple[dict[str, Any], str | None]:
        """Ask the environment what it parsed: ``(what to record, failure message or None)``."""
        name = self.target.environment
        if name is None or self.verify_timeout_seconds is None:
            return {"status": "skipped"}, None
        self.out(
            f"Asking environment {name} what it parsed (up to {self.verify_timeout_seconds / 60:.0f} min)"
        )
        shipped = {key.removeprefix(self.target.dags_prefix) for key in dag_entries if key.endswith(".py")}
        try:
            state = verify.wait_until_parsed(
                self.mwaa,
                name,
                expected_dag_ids=set(dag_ids),
                shipped_files=shipped,
                synced_at=synced_at,
                progress=lambda message: self.out(f"  {message}"),
                sleep=self.sleep,
                clock=self.clock,
                poll_seconds=self.poll_seconds,
                timeout_seconds=self.verify_timeout_seconds,
            )
        except verify.VerifyFailedError as error:
            return {"status": "FAILED", "error": str(error)}, str(error)
        return {"status": "SUCCESS", "dag_ids": sorted(state.dag_ids & set(dag_ids))}, None

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
                if action.restore:
                    sync.copy_version(self.s3, self.target.bucket, action.entry)
                    self.out(
                        f"made {action.key} version {short_version(action.entry.version_id)} current again"
                    )
                artifacts[role] = action.entry
        return artifacts

    def _restore_running_versions(self, plan: DeployPlan) -> list[str]:
        """After a failed update: make the versions the environment still runs current again.

        Without this the bucket's current requirements.txt (say) is the one MWAA refused, while the
        environment runs the old one: the next deploy, the console and `aws s3 cp` would all see the
        wrong file. Returns what was put back.
        """
        env = self.environment(refresh=True)
        restored: list[str] = []
        for role, action in sorted(plan.artifacts.items()):
            running = env.versions.get(role) if env is not None else None
            if not action.upload or running is None or (env and env.paths.get(role) != action.key):
                continue
            entry = record.ObjectEntry(key=action.key, version_id=running, etag="", digest="", size=0)
            try:
                sync.copy_version(self.s3, self.target.bucket, entry)
            except ClientError as error:  # the update's failure is the news; this is a footnote to it
                self.out(f"warning: could not make {action.key} version {running} current again: {error}")
                continue
            restored.append(f"{action.key} (version {short_version(running)})")
        return restored

    def _apply_env_changes(
        self, plan: DeployPlan, changes: dict[str, tuple[str, str]], *, update: bool
    ) -> dict[str, Any]:
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
            restored = self._restore_running_versions(plan)
            current = (
                f"; the versions it runs are the bucket's current objects again: {', '.join(restored)}"
                if restored
                else ""
            )
            raise DeployFailedError(
                f"environment update failed: {error}. MWAA keeps (or rolls back to) its previous "
                f"versions{current}; DAG files in s3://{self.target.bucket}/{self.target.dags_prefix} "
                "were not changed"
            ) from error
        except environment.UpdateTimeoutError as error:
            raise DeployFailedError(f"{error}; DAG files were not changed") from error

    def _progress(self, done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done % step == 0:
            self.out(f"  {done}/{total}")

    def apply_rollback(self, plan: RollbackPlan, *, update: bool = True) -> Outcome:
        if plan.refusals or plan.target is None or plan.current is None:
            raise DeployRefusedError(plan.refusals or ["nothing to roll back to"])
        run_id = record.new_id()
        lock = self._locked(run_id)
        try:
            return self._rollback_locked(plan, run_id, update=update)
        finally:
            self.records.release_lock(lock)

    def _rollback_locked(self, plan: RollbackPlan, run_id: str, *, update: bool) -> Outcome:
        assert plan.target is not None
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
        for entry in plan.artifact_restores:
            sync.copy_version(self.s3, self.target.bucket, entry)
            self.out(f"made {entry.key} version {short_version(entry.version_id)} current again")

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
        rolled_back = self._new_record(
            "rollback",
            run_id,
            git=target.git,
            dags=dag_entries,
            artifacts=dict(target.artifacts),
            previous=target.previous,
            restored=target.id,
            environment_update=env_update,
            changes={"restored": sorted(e.key for e in plan.restores), "deleted": deleted},
            dag_ids=list(target.dag_ids),
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
