"""The project's tooling: the local stack, the checks, the MWAA deploy tool, the partner's
manifest builder and the benchmarks.

Installed in editable mode from the checkout (``scripts/bootstrap.sh``), so :data:`REPO_ROOT`
is the checkout these tools work on. None of this is deployed to MWAA: ``dags/`` (with the
``clean_zone`` package) and ``plugins/`` are, and they never import from here.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout: ``src/clean_zone_tools/__init__.py`` is two folders below it."""
