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
import urllib.parse
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

from . import environment, preflight, project, record, requirements, sync
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
Defaults may come from MWAA_ENVIRONMENT, MWAA_BUCKET. Each command's options and their
defaults: scripts/deploy COMMAND --help. Docs: docs/deploy.md
exit codes: 0 ok, 1 refused or failed, 2 usage
"""


class UsageError(Exception):
    pass


# Failures reported in a user's terms (exit 1); anything else is a bug and keeps its traceback.
HANDLED_ERRORS = (
    DeployRefusedError,
    DeployFailedError,
    record.RecordError,
    sync.DeleteRefusedError,
    BotoCoreError,
    ClientError,
)


_SHOWN = " (default: %(default)s)"


def _target_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    target = parent.add_argument_group("target")
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
    target.add_argument("--dags-prefix", default="dags/", help="DAG folder in the bucket" + _SHOWN)
    target.add_argument(
        "--record-prefix",
        default="deployments/",
        help="where deployment records are kept in the bucket" + _SHOWN,
    )
    target.add_argument("--profile", help="AWS profile (default: the standard chain: AWS_PROFILE, env, role)")
    target.add_argument("--region", help="AWS Region (default: from the profile or AWS_DEFAULT_REGION)")
    target.add_argument(
        "--project-root",
        type=Path,
        default=project.default_project_root(),
        help="the project checkout to deploy (default: this repository)",
    )
    return parent


def _change_options() -> argparse.ArgumentParser:
    """What apply and rollback share: the environment update, and the check of what MWAA parsed."""
    parent = argparse.ArgumentParser(add_help=False)
    run = parent.add_argument_group("environment update and verification")
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
        "--poll-interval", type=float, default=30.0, help="seconds between environment status polls" + _SHOWN
    )
    run.add_argument(
        "--wait-timeout", type=float, default=90.0, help="minutes to wait for an environment update" + _SHOWN
    )
    run.add_argument(
        "--worker-replacement",
        choices=environment.WORKER_REPLACEMENT_STRATEGIES,
        help="UpdateEnvironment's WorkerReplacementStrategy: FORCED stops running tasks at once, GRACEFUL "
        "lets workers finish them (slower) (default: MWAA's own)",
    )
    run.add_argument(
        "--no-verify",
        action="store_true",
        help="do not ask the environment (InvokeRestApi) whether every DAG loaded after the deploy",
    )
    run.add_argument(
        "--verify-timeout",
        type=float,
        default=10.0,
        help="minutes to wait for the environment to list every deployed DAG" + _SHOWN,
    )
    return parent


def _check_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    checks = parent.add_argument_group("preflight checks")
    checks.add_argument(
        "--parse-budget",
        type=float,
        default=5.0,
        help="maximum seconds to parse any one DAG file, in a fresh process as MWAA's DAG processor does"
        + _SHOWN
        + "; MWAA gives up on a file after 30 s",
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
        "--dev-imports",
        action="store_true",
        help="import the DAGs with the project's .venv instead of the MWAA-like environment (faster, "
        "offline; misses packages MWAA lacks)",
    )
    checks.add_argument(
        "--airflow-version",
        default="3.3.1",
        help="Airflow version to check against when no --environment is given" + _SHOWN,
    )
    checks.add_argument(
        "--python-version", help="Python version of the environment (default: known from the Airflow version)"
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/deploy",
        usage="scripts/deploy [COMMAND] [options]   (COMMAND first; `scripts/deploy COMMAND --help`)",
        description="Deploy this project to an Amazon MWAA environment through its S3 bucket: preflight\n"
        "checks, incremental sync, environment update, deployment record and rollback.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target, change, checks = _target_options(), _change_options(), _check_options()
    parents = {
        "apply": [target, change, checks],
        "plan": [target, change, checks],
        "preflight": [target, checks],
        "rollback": [target, change],
        "status": [target],
    }
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, text in COMMANDS.items():
        command = sub.add_parser(
            name, parents=parents[name], help=text, description=text, prog=f"scripts/deploy {name}"
        )
        if name == "rollback":
            command.add_argument(
                "--to", metavar="ID", help="the deployment to restore (default: the one before the current)"
            )
    return parser


def _with_command(argv: list[str]) -> list[str]:
    """``scripts/deploy --plan ...`` means ``scripts/deploy apply --plan ...``: apply is the default."""
    if argv and (argv[0] in COMMANDS or argv[0] in {"-h", "--help"}):
        return argv
    return ["apply", *argv]


def _local_endpoint(client: Any) -> str | None:
    """The endpoint URL when ``client`` points at this machine (a moto server), else None."""
    url = str(getattr(client.meta, "endpoint_url", "") or "")
    host = urllib.parse.urlsplit(url).hostname or ""
    return url if host in {"localhost", "127.0.0.1", "::1"} or host.endswith(".localhost") else None


def validate_args(args: argparse.Namespace) -> None:
    """The usage rules argparse cannot express (raises UsageError: exit 2); also used by the doc checks."""
    if args.command == "plan":
        args.command, args.plan = "apply", True
    for name in ("parse_budget", "poll_interval", "wait_timeout", "verify_timeout"):
        if getattr(args, name, 1.0) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.command != "preflight" and not (args.bucket or args.environment):
        raise UsageError("no target: give --environment (its bucket is then used) or --bucket")
    if not (args.project_root / "dags").is_dir():
        raise UsageError(f"{args.project_root} has no dags/ folder (--project-root)")


def _clients(args: argparse.Namespace) -> tuple[Any, Any]:
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    s3 = session.client("s3")
    mwaa = session.client("mwaa") if args.environment else None
    if mwaa is not None and (local := _local_endpoint(mwaa)):
        # Otherwise botocore retries "http://api.127.0.0.1:..." for seconds and fails obscurely.
        raise UsageError(
            f"--environment {args.environment} with a local endpoint ({local}, from AWS_ENDPOINT_URL): there "
            "is no local MWAA API. To deploy to a local moto server, drop --environment and give --bucket; "
            "to use a local S3 with a real environment, set AWS_ENDPOINT_URL_S3 (S3 only) instead of "
            "AWS_ENDPOINT_URL"
        )
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
        imports="dev" if args.dev_imports else "mwaa",
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
    changing = args.command in {"apply", "rollback"}
    try:
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
            poll_seconds=args.poll_interval if changing else 30.0,
            wait_timeout_seconds=(args.wait_timeout if changing else 90.0) * 60.0,
            worker_replacement=args.worker_replacement if changing else None,
            verify_timeout_seconds=None if not changing or args.no_verify else args.verify_timeout * 60.0,
        )
    except ValueError as problem:  # prefixes that overlap or reach the whole bucket
        raise UsageError(str(problem)) from problem
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
    deployer.apply(plan, update=not args.no_update, dag_ids=report.dag_ids)
    return 0


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _explain(problem: Exception) -> int:
    """Print what went wrong in a user's terms; return the exit code."""
    if isinstance(problem, DeployRefusedError):
        _error("refusing to deploy:\n" + "\n".join(f"  - {reason}" for reason in problem.reasons))
    elif isinstance(problem, DeployFailedError | record.RecordError | sync.DeleteRefusedError):
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
    args = parser.parse_args(_with_command(list(sys.argv[1:] if argv is None else argv)))
    write = out or (lambda line: print(line, flush=True))
    try:
        validate_args(args)
        return _run(args, write, clients)
    except (UsageError, ProfileNotFound) as problem:
        parser.print_usage(sys.stderr)
        _error(str(problem))
        return 2
    except HANDLED_ERRORS as problem:
        return _explain(problem)
    except KeyboardInterrupt:
        _error("interrupted; `scripts/deploy status` shows what state the bucket and environment are in")
        return 1
