"""``scripts/deploy``: the command line.

Exit codes: 0 done (or the plan is clean), 1 refused or failed, 2 usage error.
AWS credentials come only from boto3's standard chain (--profile / AWS_PROFILE,
environment variables, SSO, instance or web-identity role); nothing here reads,
takes or prints a secret. AWS_ENDPOINT_URL (for a local moto server) is honoured
by boto3 itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from . import environment, preflight, project, requirements
from .apply import Deployer, DeployFailedError
from .plan import DeployRefusedError, DeployTarget

COMMANDS = {
    "apply": "run the preflight checks, sync to the bucket, update the environment (the default)",
    "plan": "the same as --plan: show what apply would upload, delete and update; change nothing",
    "preflight": "run the local checks only (no AWS calls unless --environment is given)",
    "rollback": "restore the previous deployment's DAG files and object versions (or --to ID)",
    "status": "show the current deployment, the environment's state and the deployment history",
}

EPILOG = """\
typical loop:
  scripts/deploy --plan --environment my-env     # what would change (changes nothing)
  scripts/deploy --environment my-env            # deploy: checks, sync, environment update, record
  scripts/deploy rollback --environment my-env   # back to the previous deployment

Without --environment, give --bucket: files are synced, but MWAA only picks up a
new plugins.zip / requirements.txt / startup.sh after an environment update.
Defaults may come from MWAA_ENVIRONMENT, MWAA_BUCKET. Docs: docs/deploy.md
exit codes: 0 ok, 1 refused or failed, 2 usage
"""


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="scripts/deploy",
        description="Deploy this project to an Amazon MWAA environment through its S3 bucket: preflight\n"
        "checks, incremental sync, environment update, deployment record and rollback.\n\n"
        f"commands:\n{commands}",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="apply",
        choices=list(COMMANDS),
        metavar="COMMAND",
        help="what to do (default: apply); see the list above",
    )
    target = parser.add_argument_group("target")
    target.add_argument(
        "--environment",
        default=os.environ.get("MWAA_ENVIRONMENT"),
        help="MWAA environment name (env MWAA_ENVIRONMENT); its bucket is used when --bucket is not given",
    )
    target.add_argument(
        "--bucket",
        default=os.environ.get("MWAA_BUCKET"),
        help="the environment's S3 bucket (env MWAA_BUCKET)",
    )
    target.add_argument("--dags-prefix", default="dags/", help="DAG folder in the bucket (default: dags/)")
    target.add_argument(
        "--record-prefix",
        default="deployments/",
        help="where deployment records are kept in the bucket (default: deployments/)",
    )
    target.add_argument("--profile", help="AWS profile (default: the standard chain: AWS_PROFILE, env, role)")
    target.add_argument("--region", help="AWS Region (default: from the profile or AWS_DEFAULT_REGION)")
    target.add_argument(
        "--project-root",
        type=Path,
        default=project.default_project_root(),
        help="the project checkout to deploy (default: this repository)",
    )

    run = parser.add_argument_group("apply and rollback")
    run.add_argument(
        "--plan",
        action="store_true",
        help="print what would be uploaded, deleted and updated; change nothing",
    )
    run.add_argument(
        "--no-update",
        action="store_true",
        help="upload, but do not call UpdateEnvironment (new object versions stay pending)",
    )
    run.add_argument(
        "--to", metavar="ID", help="rollback: the deployment to restore (default: the one before the current)"
    )
    run.add_argument(
        "--poll-interval", type=float, default=30.0, help="seconds between environment status polls"
    )
    run.add_argument(
        "--wait-timeout", type=float, default=90.0, help="minutes to wait for an environment update"
    )

    checks = parser.add_argument_group("preflight checks")
    checks.add_argument(
        "--parse-budget",
        type=float,
        default=1.0,
        help="maximum seconds to parse all DAG files (default: 1.0; MWAA's own limit is 30 s per file)",
    )
    resolve = checks.add_mutually_exclusive_group()
    resolve.add_argument(
        "--skip-resolve",
        action="store_true",
        help="offline: skip pip's dry-run resolve of requirements.txt (the static checks still run)",
    )
    resolve.add_argument(
        "--full-resolve",
        action="store_true",
        help="resolve requirements.txt from scratch (--ignore-installed; about 30 s, needs PyPI)",
    )
    checks.add_argument(
        "--airflow-version",
        default="3.3.1",
        help="Airflow version to check against when no --environment is given (default: 3.3.1)",
    )
    checks.add_argument(
        "--python-version", help="Python version of the environment (default: known from the Airflow version)"
    )
    return parser


def _validate(args: argparse.Namespace) -> None:
    if args.command == "plan":
        args.command, args.plan = "apply", True
    if args.to and args.command != "rollback":
        raise UsageError("--to only applies to rollback")
    if args.plan and args.command not in {"apply", "rollback"}:
        raise UsageError(f"--plan does not apply to {args.command}")
    if args.parse_budget <= 0 or args.poll_interval <= 0 or args.wait_timeout <= 0:
        raise UsageError("--parse-budget, --poll-interval and --wait-timeout must be positive")
    if args.command != "preflight" and not (args.bucket or args.environment):
        raise UsageError("no target: give --environment (its bucket is then used) or --bucket")
    if not (args.project_root / "dags").is_dir():
        raise UsageError(f"{args.project_root} has no dags/ folder (--project-root)")


def _clients(args: argparse.Namespace) -> tuple[Any, Any]:
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    s3 = session.client("s3")
    mwaa = session.client("mwaa") if args.environment else None
    return s3, mwaa


def _preflight_options(args: argparse.Namespace, airflow_version: str) -> preflight.PreflightOptions:
    python_version = requirements.python_for(airflow_version, args.python_version)
    if python_version is None:
        raise UsageError(
            f"which Python MWAA runs for Airflow {airflow_version} is not known here; give --python-version"
        )
    return preflight.PreflightOptions(
        airflow_version=airflow_version,
        python_version=python_version,
        parse_budget_seconds=args.parse_budget,
        resolve="skip" if args.skip_resolve else "full" if args.full_resolve else "installed",
    )


def _run(args: argparse.Namespace, out: Callable[[str], None], clients: tuple[Any, Any] | None) -> int:
    layout = project.ProjectLayout.at(args.project_root)
    needs_aws = args.command != "preflight" or args.environment
    s3, mwaa = (clients or _clients(args)) if needs_aws else (None, None)

    env_info = None
    if args.environment:
        env_info = environment.describe(mwaa, args.environment)
        out(
            f"environment {env_info.name}: {env_info.status}, Airflow {env_info.airflow_version}, "
            f"bucket {env_info.source_bucket}"
        )
    report = None
    if args.command in {"apply", "preflight"}:
        options = _preflight_options(args, env_info.airflow_version if env_info else args.airflow_version)
        out(f"Preflight checks (Airflow {options.airflow_version}, Python {options.python_version}):")
        report = preflight.run(layout, options, progress=out)
        if args.command == "preflight":
            out("Preflight passed." if report.ok else f"Preflight failed: {len(report.problems)} problem(s).")
            return 0 if report.ok else 1

    bucket = args.bucket or (env_info.source_bucket if env_info else None)
    if not bucket:
        raise UsageError("no bucket: give --bucket (or --environment, whose bucket is then used)")
    deployer = Deployer(
        s3,
        DeployTarget(
            bucket=bucket,
            dags_prefix=args.dags_prefix,
            record_prefix=args.record_prefix,
            environment=args.environment,
        ),
        layout,
        mwaa=mwaa,
        known_environment=env_info,
        out=out,
        poll_seconds=args.poll_interval,
        wait_timeout_seconds=args.wait_timeout * 60.0,
    )
    if args.command == "status":
        deployer.status()
        return 0
    if args.command == "rollback":
        return _rollback(args, deployer)
    assert report is not None
    return _apply(args, deployer, report, out)


def _rollback(args: argparse.Namespace, deployer: Deployer) -> int:
    plan = deployer.plan_rollback(args.to)
    deployer.print_rollback_plan(plan)
    if args.plan:
        return 1 if plan.refusals else 0
    deployer.apply_rollback(plan, update=not args.no_update)
    return 0


def _apply(
    args: argparse.Namespace,
    deployer: Deployer,
    report: preflight.PreflightReport,
    out: Callable[[str], None],
) -> int:
    plan = deployer.plan(report.plugins)
    deployer.print_plan(plan)
    if not report.ok:
        out(f"Refusing to deploy: preflight found {len(report.problems)} problem(s):")
        for problem in report.problems:
            out(f"  - {problem}")
        return 1
    if args.plan:
        if plan.refusals:
            out("A deployment would be refused (see above).")
            return 1
        out("Plan only: nothing was changed.")
        return 0
    deployer.apply(plan, update=not args.no_update)
    return 0


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _explain(problem: Exception) -> int:
    """Print what went wrong in a user's terms; return the exit code."""
    if isinstance(problem, DeployRefusedError):
        _error("refusing to deploy:\n" + "\n".join(f"  - {reason}" for reason in problem.reasons))
    elif isinstance(problem, DeployFailedError):
        _error(str(problem))
    elif isinstance(problem, NoCredentialsError):
        _error(
            "no AWS credentials found. They come from the standard chain only: --profile or AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, SSO, or an instance / OIDC role"
        )
    elif isinstance(problem, NoRegionError):
        _error("no AWS Region: give --region, or set AWS_DEFAULT_REGION or the profile's region")
    elif isinstance(problem, ClientError):
        details = problem.response.get("Error", {})
        operation = getattr(problem, "operation_name", "a request")
        _error(f"AWS refused {operation}: {details.get('Code', '?')}: {details.get('Message', '')}")
    else:
        _error(f"AWS request failed: {problem}")
    return 1


def main(
    argv: Sequence[str] | None = None,
    *,
    clients: tuple[Any, Any] | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    """Entry point. ``clients`` (s3, mwaa) replaces the boto3 session for tests."""
    parser = build_parser()
    args = parser.parse_args(argv)
    write = out or (lambda line: print(line, flush=True))
    try:
        _validate(args)
        return _run(args, write, clients)
    except (UsageError, ProfileNotFound, ValueError) as problem:
        parser.print_usage(sys.stderr)
        _error(str(problem))
        return 2
    except (DeployRefusedError, DeployFailedError, BotoCoreError, ClientError) as problem:
        return _explain(problem)
    except KeyboardInterrupt:
        _error("interrupted; `scripts/deploy status` shows what state the bucket and environment are in")
        return 1
