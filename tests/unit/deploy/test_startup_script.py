"""startup.sh run the way MWAA runs it: *sourced* by a bash wrapper (which then exports what the
script set to Airflow), once per container, with MWAA_AIRFLOW_COMPONENT naming the container.

On Airflow 3 MWAA names the containers scheduler (which also runs the dag-processor and the
triggerer), worker, webserver (which runs the api-server) and hybrid (scheduler and worker in one;
aws/amazon-mwaa-docker-images, images/airflow/3.x, mwaa/entrypoint.py and execute_command.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

STARTUP = Path(__file__).resolve().parents[3] / "startup.sh"
BASH = shutil.which("bash")

# The wrapper: the shell options before, source the script, a command after it (which a leaked
# `set -e`/`exit` would stop), then the options and the environment the script leaves behind.
WRAPPER = """
before="$(set +o)"
source "$1"
status=$?
after="$(set +o)"
python3 -c '
import json, os, sys
status, before, after = sys.argv[1:]
print(json.dumps({"status": int(status), "same_options": before == after, "env": dict(os.environ)}))
' "$status" "$before" "$after"
"""

pytestmark = pytest.mark.skipif(BASH is None, reason="bash is needed to run startup.sh")


def source_startup(component: str | None, tmp_path: Path) -> tuple[dict, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if component is not None:
        env["MWAA_AIRFLOW_COMPONENT"] = component
    completed = subprocess.run(
        [str(BASH), "-c", WRAPPER, "mwaa-wrapper", str(STARTUP)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    *printed, report = completed.stdout.strip().splitlines()
    return json.loads(report), "\n".join(printed)


@pytest.mark.parametrize("component", ["scheduler", "worker", "webserver", "hybrid"])
def test_sourced_for_each_mwaa_component_it_returns_and_leaves_the_shell_alone(
    component: str, tmp_path: Path
) -> None:
    report, printed = source_startup(component, tmp_path)

    assert report["status"] == 0
    # A `set -euo pipefail` in a sourced script changes MWAA's own wrapper shell.
    assert report["same_options"], "startup.sh changed the sourcing shell's options"
    assert printed.startswith(f"clean-zone startup: {component} on Python 3.")
    assert report["env"]["MWAA_AIRFLOW_COMPONENT"] == component


def test_outside_mwaa_it_names_itself_local(tmp_path: Path) -> None:
    report, printed = source_startup(None, tmp_path)

    assert report["status"] == 0 and report["same_options"]
    assert printed.startswith("clean-zone startup: local on Python 3.")


def test_what_it_exports_reaches_the_wrapper(tmp_path: Path) -> None:
    # The documented way to set parse-time settings: an uncommented export line.
    script = tmp_path / "startup.sh"
    script.write_text(
        STARTUP.read_text().replace(
            "# export AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS=30",
            "export AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS=45",
        )
    )
    completed = subprocess.run(
        [str(BASH), "-c", WRAPPER, "mwaa-wrapper", str(script)],
        env={"PATH": "/usr/bin:/bin", "MWAA_AIRFLOW_COMPONENT": "worker"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert report["env"]["AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS"] == "45"
