"""``python -m clean_zone_tools.checks.compose [--root DIR]``: every compose check; exit 1 on any problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clean_zone_tools import REPO_ROOT

from .checks import run_checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.checks.compose",
        description="Check docker-compose.yaml and docker/Dockerfile against MWAA and the no-Docker path "
        "(versions, requirements, constraints, provisioning, Variables, connection, ports). No Docker needed."
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="checkout to check")
    args = parser.parse_args(argv)
    results = run_checks(args.root)
    for name, problems in results.items():
        print(f"{'FAIL' if problems else 'ok  '} {name}")
        for problem in problems:
            print(f"     - {problem}")
    failed = sum(1 for problems in results.values() if problems)
    print(f"{failed} check(s) failed" if failed else f"all {len(results)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
