"""The CloudFormation template and the sample CI/CD workflow: linted and schema-checked with the
tools CI has (cfn-lint, check-jsonschema), and the properties the docs promise checked directly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import decode_str

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "infra" / "mwaa-environment.yaml"
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode_str(TEMPLATE.read_text())
    assert not problems, problems
    return decoded


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def test_cfn_lint_passes() -> None:
    result = subprocess.run(
        [str(BIN / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_matches_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["SourceBucket", "DataBucket"])
def test_buckets_are_versioned_private_and_encrypted(template: dict[str, Any], name: str) -> None:
    properties = template["Resources"][name]["Properties"]

    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert template["Resources"][name]["DeletionPolicy"] == "Retain"


def test_the_environment_is_airflow_3_3_1_reading_dags_from_the_source_bucket(
    template: dict[str, Any],
) -> None:
    environment = template["Resources"]["Environment"]["Properties"]

    assert template["Parameters"]["AirflowVersion"]["Default"] == "3.3.1"
    assert environment["AirflowVersion"] == {"Ref": "AirflowVersion"}
    assert environment["SourceBucketArn"] == {"Fn::GetAtt": ["SourceBucket", "Arn"]}
    assert environment["DagS3Path"] == "dags"  # scripts/deploy's default --dags-prefix
    assert environment["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}


def test_the_execution_role_reaches_only_its_bucket_topic_queue_and_logs(template: dict[str, Any]) -> None:
    allowed = [s for s in statements(template["Resources"]["ExecutionRole"]) if s["Effect"] == "Allow"]
    # Actions AWS allows only on "*": log group listing, metrics, the account-level public access check.
    unscoped_ok = {"logs:DescribeLogGroups", "cloudwatch:PutMetricData", "s3:GetAccountPublicAccessBlock"}
    for statement in allowed:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement.get("Resource") == "*":
            assert set(actions) <= unscoped_ok, statement
        services = {action.split(":")[0] for action in actions}
        if services & {"s3", "sns"} and statement.get("Resource") != "*":
            text = repr(statement["Resource"])
            assert "SourceBucket" in text or "DataBucket" in text or "FailureTopic" in text, statement
    by_sid = {s["Sid"]: s for s in allowed}
    assert by_sid["FailureAlerts"]["Resource"] == {"Ref": "FailureTopic"}
    assert by_sid["EventsQueueConsume"]["Resource"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    source_actions = by_sid["ReadSourceBucketOnly"]["Action"]
    assert not [a for a in source_actions if a.startswith(("s3:Put", "s3:Delete"))], (
        "MWAA must not rewrite its DAGs"
    )
    assert "log-group:airflow-${EnvironmentName}-*" in by_sid["OwnLogs"]["Resource"]["Fn::Sub"]


def test_the_deploy_role_trusts_one_repository_environment_and_deletes_only_dags(
    template: dict[str, Any],
) -> None:
    role = template["Resources"]["DeployRole"]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    conditions = trust["Condition"]["StringEquals"]

    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert conditions["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert conditions["token.actions.githubusercontent.com:sub"] == {
        "Fn::Sub": "repo:${GitHubRepository}:environment:${GitHubEnvironment}"
    }
    by_sid = {s["Sid"]: s for s in statements(role)}
    assert by_sid["DeleteOnlyUnderDags"]["Resource"] == {"Fn::Sub": "${SourceBucket.Arn}/dags/*"}
    assert set(by_sid["UpdateThisEnvironment"]["Action"]) == {
        "airflow:GetEnvironment",
        "airflow:UpdateEnvironment",
    }


def test_the_workflow_tests_before_it_deploys_through_oidc() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    deploy = workflow["jobs"]["deploy"]
    steps = [step.get("run", "") for step in deploy["steps"]]

    assert deploy["needs"] == "test"
    assert deploy["permissions"]["id-token"] == "write"
    assert any(
        step.get("uses", "").startswith("aws-actions/configure-aws-credentials") for step in deploy["steps"]
    )
    assert "scripts/deploy --plan" in steps and "scripts/deploy" in steps
    assert steps.index("scripts/deploy --plan") < steps.index("scripts/deploy")
    assert "AWS_SECRET_ACCESS_KEY" not in WORKFLOW.read_text()
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_the_example_parameters_are_parameters_of_the_template(template: dict[str, Any]) -> None:
    example = json.loads((REPO / "infra" / "parameters.example.json").read_text())

    assert {item["ParameterKey"] for item in example} <= set(template["Parameters"])


def test_versions_the_environment_pins_never_expire(template: dict[str, Any]) -> None:
    # Defect 2: a bucket-wide 365-day expiry of noncurrent versions could delete the requirements.txt
    # version an environment still runs (after a failed update or a rollback it is not the current one).
    rules = template["Resources"]["SourceBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = [rule for rule in rules if "NoncurrentVersionExpiration" in rule or "ExpirationInDays" in rule]

    assert expiring, "old DAG versions should still expire"
    for rule in expiring:
        prefix = rule.get("Prefix", "")
        assert prefix in {"dags/", "deployments/"}, rule
        for key in ("plugins.zip", "requirements.txt", "startup.sh"):
            assert not key.startswith(prefix)


def test_the_worker_replacement_strategy_is_a_parameter(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["WorkerReplacementStrategy"]
    environment = template["Resources"]["Environment"]["Properties"]

    assert set(parameter["AllowedValues"]) == {"FORCED", "GRACEFUL"}
    assert environment["WorkerReplacementStrategy"] == {"Ref": "WorkerReplacementStrategy"}


def test_the_deploy_role_can_release_its_lock_and_ask_what_was_parsed(template: dict[str, Any]) -> None:
    by_sid = {s["Sid"]: s for s in statements(template["Resources"]["DeployRole"])}

    assert by_sid["ReleaseDeployLock"]["Action"] == "s3:DeleteObject"
    assert by_sid["ReleaseDeployLock"]["Resource"] == {"Fn::Sub": "${SourceBucket.Arn}/deployments/lock.json"}
    assert by_sid["VerifyWhatWasParsed"]["Action"] == "airflow:InvokeRestApi"
    assert by_sid["VerifyWhatWasParsed"]["Resource"]["Fn::Sub"].endswith(":role/${EnvironmentName}/Viewer")


def test_every_action_is_pinned_by_commit_sha() -> None:
    # Defect 9: a tag (v4) can be moved to other code, which would then run with the deploy role.
    workflow = yaml.safe_load(WORKFLOW.read_text())
    uses = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]

    assert uses
    for reference in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", reference), reference


def test_deploying_only_from_main_is_documented_as_the_environments_branch_rule() -> None:
    # The `if: github.ref == 'refs/heads/main'` in the workflow is editable by any branch; the
    # environment's deployment branch rule is what holds.
    guide = (REPO / "docs" / "deploy.md").read_text()

    assert "Deployment branches and tags" in guide and "Selected branches" in guide
    assert "Deployment branches and tags" in WORKFLOW.read_text()
