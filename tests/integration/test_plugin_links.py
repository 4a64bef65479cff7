"""The plugin's local links, served by the moto server."""

from __future__ import annotations

import urllib.request

from clean_zone_plugin import s3_console_url, sns_topic_console_url


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
