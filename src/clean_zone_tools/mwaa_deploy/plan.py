"""The read-only half of a deployment: where it goes, and what a deploy or a rollback would change.

:class:`Planner` asks the bucket, the deployment records and (when one is named) the MWAA environment,
and returns a :class:`DeployPlan` or :class:`RollbackPlan` without changing anything; refusals in a plan
say why it must not be applied. :mod:`.apply` carries a plan out, :mod:`.report` prints it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class DeployTarget:
    """Where a deployment goes: a bucket, its DAG and record prefixes, optionally an MWAA environment."""

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
            or any(a.upload or a.restore for a in self.artifacts.values())
        )


@dataclass
class RollbackPlan:
    current: DeploymentRecord | None
    target: DeploymentRecord | None
    restores: list[ObjectEntry] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    unchanged: dict[str, ObjectEntry] = field(default_factory=dict)
    # The target's plugins.zip / requirements.txt / startup.sh versions that are not the bucket's
    # current objects: copied back on top, so the bucket shows what the environment will run.
    artifact_restores: list[ObjectEntry] = field(default_factory=list)
    env_changes: dict[str, str] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def short_version(version: str | None) -> str:
    if not version:
        return "none"
    return version if len(version) <= 12 else version[:12] + "…"


class Planner:
    """Reads a deployment target (bucket, records, environment) and plans deployments and rollbacks."""

    def __init__(
        self,
        s3: Any,
        target: DeployTarget,
        layout: project.ProjectLayout,
        *,
        mwaa: Any = None,
        known_environment: environment.EnvironmentInfo | None = None,
        workers: int = 8,
    ) -> None:
        if target.environment and mwaa is None:
            raise ValueError("an MWAA client is needed when an environment is named")
        self.s3 = s3
        self.mwaa = mwaa
        self.target = DeployTarget(
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
        self.workers = workers
        self.records = RecordStore(s3, self.target.bucket, self.target.record_prefix)
        # The CLI has usually described the environment already; saves a request.
        self._environment: environment.EnvironmentInfo | None = known_environment

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

    def env_changes(self, versions: dict[str, tuple[str, str | None]]) -> dict[str, str]:
        """Roles whose ``(key, version)`` differ from what the environment runs (None: a new upload)."""
        env = self.environment()
        if env is None:
            return {}
        changes: dict[str, str] = {}
        for role, (key, version) in versions.items():
            if version is None:
                changes[role] = "new version"
            elif env.versions.get(role) != version or env.paths.get(role) != key:
                running = short_version(env.versions.get(role))
                changes[role] = f"environment runs {running}, bucket has {short_version(version)}"
        return changes

    def check_updatable(self, changes: dict[str, str], refusals: list[str]) -> None:
        env = self.environment()
        if env is not None and changes and env.status not in environment.UPDATABLE_STATUSES:
            refusals.append(
                f"environment {env.name} is {env.status}; an update cannot start now. "
                "Wait until it is AVAILABLE"
            )

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
        local_artifacts = self.local_artifacts(plugins)
        current = sync.current_objects(self.s3, self.target.bucket, [a.key for a in local_artifacts.values()])
        artifacts = {
            role: sync.plan_artifact(
                self.s3,
                self.target.bucket,
                artifact,
                previous.artifacts.get(role) if previous else None,
                current.get(artifact.key),
            )
            for role, artifact in local_artifacts.items()
        }
        env_changes = self.env_changes(
            {
                role: (action.key, None if action.upload or action.entry is None else action.entry.version_id)
                for role, action in artifacts.items()
            }
        )
        self.check_updatable(env_changes, refusals)
        env = self.environment()
        if env is not None:
            for role, key in env.paths.items():
                if key and role not in artifacts:
                    warnings.append(
                        f"environment {env.name} still uses {key} "
                        f"(version {short_version(env.versions.get(role))}); the project has none, "
                        "and deploy does not remove it"
                    )
        return DeployPlan(previous, dags, artifacts, env_changes, refusals, warnings)

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
        current = sync.current_objects(
            self.s3, self.target.bucket, [e.key for e in target.artifacts.values()]
        )
        plan.artifact_restores = [
            entry
            for _, entry in sorted(target.artifacts.items())
            if (found := current.get(entry.key)) is None or found.etag != entry.etag
        ]

        # Every version we will copy from or point MWAA at must still exist (a
        # lifecycle rule may have expired it): find out before changing anything.
        needed = plan.restores + list(target.artifacts.values())

        def exists(entry: ObjectEntry) -> tuple[ObjectEntry, bool]:
            return entry, sync.head(self.s3, self.target.bucket, entry.key, entry.version_id) is not None

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            missing = [entry for entry, ok in pool.map(exists, needed) if not ok]
        for entry in missing:
            plan.refusals.append(f"{entry.key} version {entry.version_id} no longer exists in the bucket")

        plan.env_changes = self.env_changes(
            {role: (entry.key, entry.version_id) for role, entry in target.artifacts.items()}
        )
        self.check_updatable(plan.env_changes, plan.refusals)
        env = self.environment()
        if env is not None:
            for role, key in env.paths.items():
                if key and role not in target.artifacts:
                    plan.warnings.append(
                        f"deployment {target.id} shipped no {key}; the environment keeps its current one"
                    )
        return plan
