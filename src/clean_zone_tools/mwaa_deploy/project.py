"""Where the deployable parts of the project live, and which local files count.

A deployment ships four things: the ``dags/`` folder (synced file by file), and
``plugins.zip`` (built from ``plugins/``), ``requirements.txt`` and ``startup.sh``
(each one S3 object that MWAA references by version).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from clean_zone_tools import REPO_ROOT

# Never uploaded: interpreter and tool caches, editor and OS droppings. Hidden
# directories are skipped whole; hidden files too, except the ones MWAA reads.
SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules"})
SKIPPED_FILE_PATTERNS = ("*.pyc", "*.pyo", "*~", "*.swp", "*.swo", "Thumbs.db")
KEPT_HIDDEN_FILES = frozenset({".airflowignore"})


def default_project_root() -> Path:
    """The checkout this package is installed from (editable install)."""
    return REPO_ROOT


@dataclass(frozen=True)
class ProjectLayout:
    """Paths of the deployable parts of one project checkout."""

    root: Path
    dags_dir: Path
    plugins_dir: Path
    requirements: Path
    startup_script: Path
    constraints_dir: Path

    @classmethod
    def at(cls, root: Path) -> ProjectLayout:
        root = root.resolve()
        return cls(
            root=root,
            dags_dir=root / "dags",
            plugins_dir=root / "plugins",
            requirements=root / "requirements.txt",
            startup_script=root / "startup.sh",
            constraints_dir=root / "constraints",
        )


@dataclass(frozen=True)
class LocalFile:
    """A file to ship, with its path relative to the folder it is synced from."""

    relpath: str  # POSIX form, relative to the synced folder
    path: Path
    sha256: str  # hex digest of the content
    size: int

    def read(self) -> bytes:
        return self.path.read_bytes()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _skipped_file(name: str) -> bool:
    if name.startswith(".") and name not in KEPT_HIDDEN_FILES:
        return True
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIPPED_FILE_PATTERNS)


def _skipped_directory(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_DIRECTORIES


def walk_files(folder: Path) -> list[Path]:
    """Files under ``folder`` minus caches and hidden files, in a stable order."""
    found: list[Path] = []
    for current, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _skipped_directory(d))
        found.extend(Path(current) / name for name in sorted(filenames) if not _skipped_file(name))
    return found


def git_ignored(folder: Path, relpaths: list[str]) -> set[str]:
    """The subset of ``relpaths`` (relative to ``folder``) that git ignores.

    Outside a git work tree (or without git) nothing counts as ignored: the
    fixed skip list above still applies.
    """
    if not relpaths:
        return set()
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "check-ignore", "--stdin", "-z"],
            input="\0".join(relpaths).encode() + b"\0",
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    # 0: some ignored, 1: none ignored, 128: not a git work tree.
    if result.returncode != 0:
        return set()
    return {item.decode() for item in result.stdout.split(b"\0") if item}


def collect(folder: Path) -> dict[str, LocalFile]:
    """Every file to ship from ``folder``, keyed by relative POSIX path."""
    if not folder.is_dir():
        return {}
    paths = walk_files(folder)
    relpaths = [PurePosixPath(p.relative_to(folder).as_posix()).as_posix() for p in paths]
    ignored = git_ignored(folder, relpaths)
    files: dict[str, LocalFile] = {}
    for path, relpath in zip(paths, relpaths, strict=True):
        if relpath in ignored:
            continue
        files[relpath] = LocalFile(
            relpath=relpath, path=path, sha256=sha256_file(path), size=path.stat().st_size
        )
    return files


@dataclass(frozen=True)
class GitInfo:
    commit: str | None
    dirty: bool | None

    def as_dict(self) -> dict[str, object]:
        return {"commit": self.commit, "dirty": self.dirty}


def git_info(root: Path) -> GitInfo:
    """The checked-out commit and whether the work tree has changes (None: unknown)."""

    def run(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None

    head = run("rev-parse", "--verify", "--quiet", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=normal")
    commit = (
        head.stdout.strip() if head is not None and head.returncode == 0 and head.stdout.strip() else None
    )
    dirty = bool(status.stdout.strip()) if status is not None and status.returncode == 0 else None
    return GitInfo(commit=commit, dirty=dirty)
