"""Provisioning: the one script both local stacks run, against the moto server over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest

from clean_zone import config

pytestmark = pytest.mark.e2e

MODULE = "clean_zone_tools.devstack.provision"


def run_script(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args], capture_output=True, text=True, env=env, check=False
    )


def test_provisioning_twice_creates_everything_once(provisioned):
    settings = provisioned
    env = os.environ.copy()

    first = run_script("--json", env=env)
    second = run_script("--json", env=env)

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    s3 = boto3.client("s3", region_name=settings.region)
    assert s3.get_bucket_versioning(Bucket=settings.bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=settings.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    sns = boto3.client("sns", region_name=settings.region)
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=settings.failure_topic_arn)["Subscriptions"]
    assert len(subscriptions) == 1
    assert subscriptions[0]["Endpoint"].endswith(":" + settings.alerts_queue_name)
    notifications = s3.get_bucket_notification_configuration(Bucket=settings.bucket)["QueueConfigurations"]
    assert sorted(n["Filter"]["Key"]["FilterRules"][0]["Value"] for n in notifications) == [
        settings.landing_prefix,
        settings.manifests_prefix,
    ]


def test_an_alert_published_to_the_topic_reaches_the_inbox(provisioned, alerts_inbox):
    sns = boto3.client("sns", region_name=provisioned.region)
    sns.publish(TopicArn=provisioned.failure_topic_arn, Subject="hello", Message="inbox check")

    assert [(a["subject"], a["message"]) for a in alerts_inbox.receive(wait_seconds=3, expect=1)] == [
        ("hello", "inbox check")
    ]


def test_refuses_real_aws_without_an_endpoint(monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}

    result = run_script(env=env)

    assert result.returncode == 2
    assert "AWS_ENDPOINT_URL is not set" in result.stderr


def test_a_bad_setting_is_a_clear_usage_error(aws_env):
    env = {**os.environ, "AIRFLOW_VAR_CLEAN_ZONE_EVENT_ROUTE": "carrier-pigeon"}

    result = run_script(env=env)

    assert result.returncode == 2
    assert config.variable_name("event_route") in result.stderr
