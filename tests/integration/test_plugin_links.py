"""The plugin's links and its local page, against the moto server."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from clean_zone_plugin import PAGE_PREFIX, CleanZonePlugin, s3_console_url, sns_topic_console_url

from clean_zone import undelivered_alerts


def test_local_links_open_the_moto_dashboard(aws_env: str) -> None:
    # No endpoint argument: the macros follow AWS_ENDPOINT_URL, as they do in a local task. The local
    # endpoint serves objects only to signed requests, so the dashboard is where a person looks.
    urls = {
        s3_console_url("clean-zone", "landing/a b.csv"),
        s3_console_url("clean-zone", "landing/"),
        sns_topic_console_url("arn:aws:sns:us-east-1:123456789012:clean-zone-failures"),
    }

    assert urls == {f"{aws_env}/moto-api/"}
    with urllib.request.urlopen(urls.pop(), timeout=10) as response:
        assert response.status == 200
        assert "<title>Moto</title>" in response.read().decode()


def test_local_ui_links_open_the_plugins_own_page_listing_each_place(
    s3: Any, provisioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The endpoint's dashboard needs scripts from the internet and stays on "Loading"; the UI's links
    # open this plugin's page instead, served by the API server, reading the endpoint signed.
    from fastapi.testclient import TestClient

    s3.put_object(Bucket=provisioned.bucket, Key="landing/ report.csv ", Body=b"id\n1\n")
    s3.put_object(Bucket=provisioned.bucket, Key="rejected/notes <b>.txt", Body=b"x")
    monkeypatch.setattr(CleanZonePlugin, "external_views", [])
    monkeypatch.setattr(CleanZonePlugin, "fastapi_apps", [])

    CleanZonePlugin.on_load()

    assert [view["href"] for view in CleanZonePlugin.external_views] == [
        f"{PAGE_PREFIX}/",
        f"{PAGE_PREFIX}/?place=landing",
        f"{PAGE_PREFIX}/topic",
    ]
    [app] = CleanZonePlugin.fastapi_apps
    assert app["url_prefix"] == PAGE_PREFIX
    client = TestClient(app["app"])
    page = client.get("/")
    assert page.status_code == 200
    assert "<script" not in page.text
    assert "<code>&quot;landing/ report.csv &quot;</code>" in page.text  # quoted: its spaces show
    assert "notes &lt;b&gt;.txt" in page.text  # escaped, never markup
    assert "<h2>quarantine" in page.text and "(empty)" in page.text
    landing = client.get("/", params={"place": "landing"}).text
    assert "report.csv" in landing and "notes" not in landing
    topic = client.get("/topic").text
    assert provisioned.failure_topic_arn in topic
    assert provisioned.alerts_queue_name in topic  # the local inbox is subscribed
    assert "No alerts waiting" in topic
    s3.put_object(
        Bucket=provisioned.bucket,
        Key=f"{undelivered_alerts.folder(provisioned)}20261201T0000.json",
        Body=b"{}",
    )
    assert "1 alert(s) SNS refused, waiting to be sent again" in client.get("/topic").text


def test_on_aws_the_ui_links_open_the_consoles_and_no_page_is_served(
    provisioned: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setattr(CleanZonePlugin, "external_views", [])
    monkeypatch.setattr(CleanZonePlugin, "fastapi_apps", [])

    CleanZonePlugin.on_load()

    hrefs = [view["href"] for view in CleanZonePlugin.external_views]
    assert hrefs[0].startswith("https://us-east-1.console.aws.amazon.com/s3/buckets/clean-zone?")
    assert hrefs[2].startswith("https://us-east-1.console.aws.amazon.com/sns/v3/home?")
    assert CleanZonePlugin.fastapi_apps == []


def test_the_plugin_looks_for_kept_alerts_where_the_notifier_keeps_them() -> None:
    from clean_zone_plugin import UNDELIVERED_FOLDER

    assert UNDELIVERED_FOLDER == undelivered_alerts.FOLDER
