"""Least privilege, checked: what the MWAA execution role in ``infra/`` may touch.

The role may reach this project's resources only (the data bucket, the environment's source
bucket, the failure topic, the S3 events queue, the environment's own log groups, metrics and
Celery queues, as AWS's execution-role template asks) and nothing with a wildcard action.
``Resource: "*"`` is allowed only for the few actions IAM cannot scope to a resource.

Used by ``tests/integrity/test_security.py``; ``python -m clean_zone_tools.checks.iam_policy``
prints the problems of the repository's template (exit 1 when there are any).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clean_zone_tools import REPO_ROOT

TEMPLATE = REPO_ROOT / "infra" / "mwaa-environment.yaml"
ROLE = "ExecutionRole"

# Template resources the role may name, and the ARN patterns MWAA's own needs take.
PROJECT_RESOURCES = ("DataBucket", "SourceBucket", "FailureTopic", "EventsQueue")
MWAA_OWN_PATTERNS = (
    ":environment/${EnvironmentName}",  # airflow:PublishMetrics on this environment
    ":log-group:airflow-${EnvironmentName}-",  # its own log groups
    ":sqs:${AWS::Region}:*:airflow-celery-",  # the Celery queues MWAA creates
)
# Actions IAM does not let a policy scope to a resource ARN.
UNSCOPABLE_ACTIONS = frozenset(
    {"s3:GetAccountPublicAccessBlock", "logs:DescribeLogGroups", "cloudwatch:PutMetricData"}
)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _names_project_resource(resource: Any) -> bool:
    if isinstance(resource, dict):
        if "Ref" in resource:
            return resource["Ref"] in PROJECT_RESOURCES
        if "Fn::GetAtt" in resource:
            target = resource["Fn::GetAtt"]
            name = target[0] if isinstance(target, list) else str(target).split(".", 1)[0]
            return name in PROJECT_RESOURCES
        if "Fn::Sub" in resource:
            text = resource["Fn::Sub"]
            text = text[0] if isinstance(text, list) else text
            return any(f"${{{name}.Arn}}" in text for name in PROJECT_RESOURCES) or any(
                pattern in text for pattern in MWAA_OWN_PATTERNS
            )
    return False


def statements(template: dict[str, Any], role: str = ROLE) -> Iterator[tuple[str, dict[str, Any]]]:
    properties = template["Resources"][role]["Properties"]
    for policy in properties.get("Policies", []):
        for index, statement in enumerate(policy["PolicyDocument"]["Statement"]):
            yield f"{policy['PolicyName']}/{statement.get('Sid', index)}", statement


def problems(template: dict[str, Any], role: str = ROLE) -> list[str]:
    """Every grant of ``role`` that reaches beyond this project; empty when it is least privilege."""
    found: list[str] = []
    if template["Resources"][role]["Properties"].get("ManagedPolicyArns"):
        found.append(f"{role}: managed policies grant what this template cannot see; use inline statements")
    for where, statement in statements(template, role):
        if statement.get("Effect") != "Allow":
            continue
        actions = [str(action) for action in _as_list(statement.get("Action", []))]
        if "NotAction" in statement:
            found.append(f"{where}: NotAction allows everything else")
        for action in actions:
            if action == "*" or action.endswith(":*"):
                found.append(f"{where}: wildcard action {action!r}")
        if "NotResource" in statement:
            via = statement.get("Condition", {}).get("StringLike", {}).get("kms:ViaService")
            if not (all(action.startswith("kms:") for action in actions) and via):
                found.append(f"{where}: NotResource is allowed only for KMS through a named service")
            continue
        for resource in _as_list(statement.get("Resource", [])):
            if resource == "*":
                broad = [action for action in actions if action not in UNSCOPABLE_ACTIONS]
                if broad:
                    found.append(f"{where}: Resource '*' for {', '.join(broad)}")
            elif not _names_project_resource(resource):
                found.append(f"{where}: resource {json.dumps(resource)} is not one of this project's")
    return found


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    from cfnlint.decode import decode_str

    decoded, errors = decode_str(path.read_text())
    if errors:
        raise ValueError(f"{path}: cannot read the template: {errors[0]}")
    return decoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clean_zone_tools.checks.iam_policy",
        description=f"Check {ROLE} in a CloudFormation template for least privilege. Exit 1 on a problem.",
    )
    parser.add_argument(
        "template", nargs="?", type=Path, default=TEMPLATE, help=f"default: {TEMPLATE.relative_to(REPO_ROOT)}"
    )
    path = parser.parse_args(argv).template
    found = problems(load_template(path))
    for problem in found:
        print(problem)
    print(f"{path.name}: {ROLE}: " + ("least privilege" if not found else f"{len(found)} problem(s)"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
