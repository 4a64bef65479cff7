"""The clean_zone Airflow plugin, as a user meets it: loaded by Airflow's plugins manager from plugins/,
its macros rendered in a task template, its links listed, and its local links served by the moto server.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clean_zone_plugin import (
    CleanZonePlugin,
    s3_console_url,
    s3_uri,
    sns_topic_console_url,
)

REPO_ROOT = Path(__file__).resolve().parents[3]

# Runs in a fresh interpreter: Airflow reads the plugins folder from its configuration once, at import.
LOAD_AND_RENDER = """
import json
from airflow import plugins_manager

info = [plugin for plugin in plugins_manager.get_plugin_info() if plugin["name"] == "clean_zone"]

# Rendered the way the task runner does it: plugin macros integrated, then the task's template
# rendered with the context's macros accessor.
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from airflow.sdk.execution_time.context import MacrosAccessor
from airflow.sdk.plugins_manager import integrate_macros_plugins

integrate_macros_plugins()
with DAG("plugin_render_check", schedule=None):
    task = BashOperator(
        task_id="show",
        bash_command=(
            "echo {{ macros.clean_zone.s3_console_url('partner-drop', 'landing/2026/a b.csv') }} "
            "{{ macros.clean_zone.s3_uri('partner-drop', 'landing/x.csv') }}"
        ),
    )
rendered = task.render_template(task.bash_command, {"macros": MacrosAccessor()})
# What the UI receives: GET /api/v2/plugins validates each plugin into this model and skips it if invalid.
from airflow.api_fastapi.core_api.datamodels.plugins import PluginResponse

ui = [PluginResponse.model_validate(plugin).model_dump(mode="json") for plugin in info]

# default=str: the plugin's source prints as "$PLUGINS_FOLDER/...", as `airflow plugins -o json` shows it.
result = {"info": info, "ui": ui, "import_errors": plugins_manager.get_import_errors(), "rendered": rendered}
print(json.dumps(result, default=str))
"""


@pytest.fixture(scope="module")
def loaded_by_airflow(tmp_path_factory: pytest.TempPathFactory) -> dict:
    airflow_home = tmp_path_factory.mktemp("airflow-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(airflow_home),
        "LANG": "C.UTF-8",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The links come from the project's settings (clean_zone.config); the DAG folder is named as
        # the API server knows it.
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW_VAR_CLEAN_ZONE_BUCKET": "partner-drop",
        "AIRFLOW_VAR_CLEAN_ZONE_REGION": "eu-west-1",
        "AIRFLOW_VAR_CLEAN_ZONE_FAILURE_TOPIC_ARN": "arn:aws:sns:eu-west-1:210987654321:pipeline-alerts",
    }
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_AND_RENDER],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_airflow_loads_the_plugin_from_the_plugins_folder(loaded_by_airflow: dict) -> None:
    assert loaded_by_airflow["import_errors"] == {}
    [plugin] = loaded_by_airflow["info"]
    assert plugin["source"] == "$PLUGINS_FOLDER/clean_zone_plugin.py"
    assert sorted(plugin["macros"]) == [
        "clean_zone_plugin.s3_console_url",
        "clean_zone_plugin.s3_uri",
        "clean_zone_plugin.sns_topic_console_url",
    ]


def test_a_task_template_renders_the_macros(loaded_by_airflow: dict) -> None:
    assert loaded_by_airflow["rendered"] == (
        "echo https://us-east-1.console.aws.amazon.com/s3/object/partner-drop"
        "?region=us-east-1&bucketType=general&prefix=landing/2026/a%20b.csv s3://partner-drop/landing/x.csv"
    )


def test_the_ui_lists_links_to_the_bucket_landing_prefix_and_alert_topic(loaded_by_airflow: dict) -> None:
    [plugin] = loaded_by_airflow["ui"]
    links = [
        {key: view[key] for key in ("name", "href", "destination", "category")}
        for view in plugin["external_views"]
    ]
    # No url_route: external links that open in a new tab (the AWS console refuses to be framed).
    assert [view["url_route"] for view in plugin["external_views"]] == [None, None, None]
    assert links == [
        {
            "name": "Bucket partner-drop",
            "href": "https://eu-west-1.console.aws.amazon.com/s3/buckets/partner-drop"
            "?region=eu-west-1&bucketType=general&prefix=&showversions=false",
            "destination": "nav",
            "category": "Clean zone",
        },
        {
            "name": "Landing prefix landing/",
            "href": "https://eu-west-1.console.aws.amazon.com/s3/buckets/partner-drop"
            "?region=eu-west-1&bucketType=general&prefix=landing/&showversions=false",
            "destination": "nav",
            "category": "Clean zone",
        },
        {
            "name": "Failure alerts topic",
            "href": "https://eu-west-1.console.aws.amazon.com/sns/v3/home?region=eu-west-1"
            "#/topic/arn:aws:sns:eu-west-1:210987654321:pipeline-alerts",
            "destination": "nav",
            "category": "Clean zone",
        },
    ]


# --- the URLs themselves ------------------------------------------------------------------------------


@pytest.fixture
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SNS", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")


@pytest.mark.usefixtures("no_endpoint")
def test_console_urls_follow_the_region_and_partition() -> None:
    assert s3_console_url("b", "k.csv") == (
        "https://ap-southeast-2.console.aws.amazon.com/s3/object/b?region=ap-southeast-2&bucketType=general&prefix=k.csv"
    )
    assert s3_console_url("b", "k.csv", "cn-north-1").startswith(
        "https://cn-north-1.console.amazonaws.cn/s3/"
    )
    assert s3_console_url("b", "k.csv", "us-gov-west-1").startswith(
        "https://console.amazonaws-us-gov.com/s3/"
    )
    assert sns_topic_console_url("arn:aws-cn:sns:cn-north-1:1:t").startswith(
        "https://cn-north-1.console.amazonaws.cn/sns/v3/home?region=cn-north-1#/topic/"
    )


@pytest.mark.usefixtures("no_endpoint")
def test_keys_are_escaped_and_prefixes_open_the_listing() -> None:
    assert s3_console_url("b", "/in/ä & b?.csv", "eu-west-1").endswith("prefix=in/%C3%A4%20%26%20b%3F.csv")
    assert "/s3/buckets/b?" in s3_console_url("b", "in/", "eu-west-1")
    assert "/s3/buckets/b?" in s3_console_url("b", region="eu-west-1")
    assert s3_uri("b", "/in/x.csv") == "s3://b/in/x.csv"


@pytest.mark.parametrize("bucket", ["", "bucket/with/slash"])
def test_a_bad_bucket_is_refused(bucket: str) -> None:
    with pytest.raises(ValueError, match="expected an S3 bucket name"):
        s3_console_url(bucket, "k")


@pytest.mark.parametrize("arn", ["", "clean-zone-failures", "arn:aws:sqs:us-east-1:1:q", "arn:aws:sns::1:t"])
def test_a_bad_topic_arn_is_refused(arn: str) -> None:
    with pytest.raises(ValueError, match="expected an SNS topic ARN"):
        sns_topic_console_url(arn)


# --- when the project's settings are not available ------------------------------------------------------


def test_without_the_clean_zone_package_the_links_are_left_out_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setattr(CleanZonePlugin, "external_views", [])
    monkeypatch.setitem(sys.modules, "clean_zone", None)  # makes the import fail
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))  # and the DAG folder lacks it

    with caplog.at_level(logging.WARNING, logger="clean_zone_plugin"):
        CleanZonePlugin.on_load()

    assert CleanZonePlugin.external_views == []
    assert "clean_zone package is not importable" in caplog.text


def test_without_the_package_on_the_path_the_settings_are_read_from_the_dag_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The API server's case: clean_zone is not importable, the DAG folder holds it.
    monkeypatch.setattr(CleanZonePlugin, "external_views", [])
    monkeypatch.setitem(sys.modules, "clean_zone", None)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BUCKET", "from-the-dag-folder")

    CleanZonePlugin.on_load()

    assert any("from-the-dag-folder" in view["href"] for view in CleanZonePlugin.external_views)


def test_an_invalid_setting_leaves_the_links_out_and_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(CleanZonePlugin, "external_views", [])
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_LANDING_PREFIX", "/landing")

    with caplog.at_level(logging.WARNING, logger="clean_zone_plugin"):
        CleanZonePlugin.on_load()

    assert CleanZonePlugin.external_views == []
    assert "clean_zone_landing_prefix" in caplog.text
