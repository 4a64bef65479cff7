"""An MWAA-like Python environment for the preflight's DAG import check, built once and cached.

The development ``.venv`` has far more than MWAA: moto, pytest, cfn-lint... A DAG that imports one of
them passes there and fails on MWAA. So the preflight imports the DAGs with an interpreter that has
exactly what MWAA 3.3.1's image preinstalls (``constraints/mwaa-<version>-preinstalled.txt``, from the
image's bill of materials) plus what ``requirements.txt`` adds, like the MWAA local runner's
``test-requirements``, but without Docker.

Two layers, each cached under ``.state/mwaa-env/`` by a hash of its inputs:

* the **base**: a venv of exactly the preinstalled list (``pip install --no-deps``: the list is the
  image's whole closure); minutes the first time, then reused until the list or the Python changes;
* the **requirements layer**: a small venv that sees the base (a ``.pth`` file naming the base's
  site-packages), into which pip installs ``requirements.txt`` under the local copy of its constraints:
  pip resolves on top of the base and installs only what the base lacks, as MWAA's install on top of
  its image does. Seconds to a minute, rebuilt when requirements.txt changes. It goes first on the
  path, so what it installs wins, as on MWAA.

Concurrent builders (pytest-xdist workers, two terminals) wait for each other on a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clean_zone_tools import REPO_ROOT

from . import requirements

STATE_DIR = REPO_ROOT / ".state" / "mwaa-env"
_COMPLETE = ".complete"  # written last: a folder without it is a build that did not finish
_PIP_TIMEOUT_SECONDS = 1800


class MwaaEnvError(RuntimeError):
    """The MWAA-like environment could not be built; the message ends with pip's last lines."""


@dataclass(frozen=True)
class MwaaEnv:
    python: Path  # the base venv's interpreter
    site_packages: list[Path]  # requirements layer first, then the base's site-packages
    built: list[str]  # the layers built by this call (empty: both came from the cache)
    seconds: float


def preinstalled_file(constraints_dir: Path, airflow_version: str) -> Path:
    return constraints_dir / f"mwaa-{airflow_version}-preinstalled.txt"


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(python: Path, args: list[str], log: Path) -> None:
    command = [str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check", *args]
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        completed = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, timeout=_PIP_TIMEOUT_SECONDS, check=False
        )
    if completed.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise MwaaEnvError(f"pip failed building the MWAA-like environment (log: {log}):\n{tail}")


def _build(folder: Path, body: Callable[[Path], None]) -> bool:
    """Run ``body(folder)`` unless a finished build is there; True when it built."""
    with _locked(folder.with_name(folder.name + ".lock")):
        if (folder / _COMPLETE).exists():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        body(folder)
        (folder / _COMPLETE).write_text("")
        return True


def _base_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def _site_packages(python: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return python.parent.parent / "lib" / version / "site-packages"


def ensure(
    listing: Path,
    requirements_path: Path | None,
    constraints_file: Path | None,
    plugins_dir: Path,
    *,
    progress: Callable[[str], None],
    state_dir: Path = STATE_DIR,
) -> MwaaEnv:
    """The MWAA-like environment for these inputs, from the cache or built now (and cached).

    ``listing`` is what the image preinstalls; ``requirements_path`` (None: none) is installed on
    top under ``constraints_file``, the local copy of the constraints it names.
    """
    started = time.perf_counter()
    if not listing.is_file():
        raise MwaaEnvError(f"no list of what MWAA preinstalls at {listing}")
    # The interpreter is this one's base Python: MWAA 3.3.1 runs 3.12, and so does the project.
    interpreter = Path(getattr(sys, "_base_executable", sys.executable))
    base = state_dir / f"base-{_digest(sys.version.encode(), listing.read_bytes())}"
    built: list[str] = []

    def build_base(folder: Path) -> None:
        progress(f"        building the MWAA-like base environment in {folder} (once; minutes)")
        subprocess.run([str(interpreter), "-m", "venv", str(folder)], check=True, capture_output=True)
        _pip(_base_python(folder), ["--no-deps", "-r", str(listing)], folder.with_suffix(".log"))

    if _build(base, build_base):
        built.append("base")

    layers = [_site_packages(_base_python(base))]
    if requirements_path is not None and constraints_file is not None:
        text = requirements_path.read_text()
        localised = requirements.localised(text, constraints_file, plugins_dir)
        # Keyed by content, not paths: every checkout (and every test project) with the same files
        # shares one layer. Wheels shipped in plugins.zip make the plugins folder part of the input.
        shipped_wheels = str(plugins_dir).encode() if requirements.MWAA_PLUGINS_PATH in text else b""
        key = _digest(base.name.encode(), text.encode(), constraints_file.read_bytes(), shipped_wheels)
        layer = state_dir / f"requirements-{key}"

        def build_layer(folder: Path) -> None:
            progress("        installing requirements.txt into the MWAA-like environment")
            subprocess.run([str(interpreter), "-m", "venv", str(folder)], check=True, capture_output=True)
            # pip run in the layer then sees the base's packages as installed.
            (_site_packages(_base_python(folder)) / "mwaa_base.pth").write_text(f"{layers[0]}\n")
            with tempfile.TemporaryDirectory(prefix="mwaa-env-") as tmp:
                file = Path(tmp) / "requirements.txt"
                file.write_text(localised)
                _pip(_base_python(folder), ["-r", str(file)], folder.with_suffix(".log"))

        if _build(layer, build_layer):
            built.append("requirements")
        layers.insert(0, _site_packages(_base_python(layer)))
    return MwaaEnv(_base_python(base), layers, built, time.perf_counter() - started)
