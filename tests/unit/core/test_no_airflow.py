"""The core never imports Airflow: every plain module imports in a fresh interpreter where Airflow cannot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[3] / "dags" / "clean_zone"
GLUE = "airflow_glue"

# A meta-path finder that refuses "airflow" and its submodules, then imports each core module and
# reports which ones it managed; a module that reaches for Airflow fails with ImportError.
PROBE = """
import importlib, importlib.abc, json, sys

class NoAirflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"airflow is blocked in this test: {name}")
        return None

sys.meta_path.insert(0, NoAirflow())
failed = {}
for module in json.loads(sys.argv[1]):
    try:
        importlib.import_module(module)
    except Exception as error:
        failed[module] = f"{type(error).__name__}: {error}"
loaded = [m for m in sys.modules if m.split(".")[0] == "airflow"]
print(json.dumps({"failed": failed, "airflow_loaded": loaded}))
"""


def core_modules() -> list[str]:
    return sorted(f"clean_zone.{p.stem}" for p in CORE.glob("*.py"))


def probe(modules: list[str]) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_core_module_imports_with_airflow_unimportable() -> None:
    modules = core_modules()
    # The modules the design names as the core are all here (a rename must update this test).
    expected = {
        "config", "keys", "storage", "lifecycle", "extensions", "events", "csv_validation", "hashing",
        "manifest", "batch", "processing", "alerts", "backoff", "failures", "failure_generator",
    }  # fmt: skip
    assert {f"clean_zone.{name}" for name in expected} <= set(modules)
    assert probe(modules) == {"failed": {}, "airflow_loaded": []}


def test_the_blocker_does_stop_an_airflow_import() -> None:
    # Without this, a blocker that blocked nothing would let the test above pass for any code.
    result = probe([f"clean_zone.{GLUE}.retry_policy"])
    assert "airflow is blocked" in result["failed"][f"clean_zone.{GLUE}.retry_policy"]
