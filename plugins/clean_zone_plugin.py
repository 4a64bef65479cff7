"""Airflow plugin for the clean-zone pipelines: template macros and UI links to the bucket and alert topic.

Macros, in any templated field, as ``{{ macros.clean_zone.<name>(...) }}``:

* ``s3_console_url(bucket, key="", region=None, endpoint_url=None)``: where a person looks at an object
  (or, for a key ending in ``/`` or no key, a prefix): its page in the S3 console; against the local
  endpoint (moto, ``AWS_ENDPOINT_URL``), moto's dashboard, which lists every bucket and key;
* ``s3_uri(bucket, key="")``: ``s3://bucket/key``;
* ``sns_topic_console_url(topic_arn, endpoint_url=None)``: the topic in the SNS console (locally, the
  moto dashboard).

UI: links under Plugins -> "Clean zone" to the bucket, its landing prefix and the failure topic, built
when the plugin loads from the project's settings (``clean_zone.config.load_for_parsing``: the
environment only, no Variable or network lookup), found on the Python path or in ``[core] dags_folder``.
Where ``clean_zone`` cannot be found, the links are left out with a warning; the macros never need it.
On AWS they open the S3 and SNS consoles. Against a local endpoint (``AWS_ENDPOINT_URL``), whose own
dashboard needs scripts from the internet and a browser cannot read its objects unsigned, they open
a small page this plugin serves from the API server (:data:`PAGE_PREFIX`): each place's objects, and
the topic with its subscriptions, read through the endpoint with signed requests. Plain HTML, no scripts.

Keys are taken as they are stored (decoded): an S3 event's URL-encoded key (``a+b.csv``) must be
decoded first, as the pipelines do. Importing this module does no I/O.

This is one module rather than a package on purpose: Airflow's plugins loader imports each ``.py``
file under ``plugins/`` as a top-level module named after the file, so a package's ``__init__.py``
would load as a module called ``__init__``.
"""

from __future__ import annotations

import html
import json
import logging
import os
from typing import Any
from urllib.parse import quote, urlencode

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
LINK_CATEGORY = "Clean zone"


def _endpoint(endpoint_url: str | None, service: str) -> str | None:
    """The custom AWS endpoint in force, as boto3 resolves it from the environment; None for AWS."""
    if endpoint_url is not None:
        return endpoint_url.rstrip("/") or None
    for name in (f"AWS_ENDPOINT_URL_{service.upper()}", "AWS_ENDPOINT_URL"):
        if value := os.environ.get(name, "").strip():
            return value.rstrip("/")
    return None


def _region(region: str | None) -> str:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _console(region: str) -> str:
    """The AWS console of the region's partition."""
    if region.startswith("cn-"):
        return f"https://{region}.console.amazonaws.cn"
    if region.startswith("us-gov-"):
        return "https://console.amazonaws-us-gov.com"
    return f"https://{region}.console.aws.amazon.com"


def _local_dashboard(endpoint: str) -> str:
    # The local endpoint (moto) serves objects only to signed requests, so a browser link to an object
    # would answer 403; its dashboard lists every bucket, key, topic and queue instead.
    return f"{endpoint}/moto-api/"


def _query(params: dict[str, str]) -> str:
    return urlencode(params, safe="/", quote_via=quote)


def _check_bucket(bucket: str) -> None:
    if not bucket or "/" in bucket:
        raise ValueError(f"expected an S3 bucket name, got {bucket!r}")


def s3_uri(bucket: str, key: str = "") -> str:
    """``s3://bucket/key``, the form the AWS CLI and most tools take."""
    _check_bucket(bucket)
    return f"s3://{bucket}/{key.lstrip('/')}"


def s3_console_url(
    bucket: str, key: str = "", region: str | None = None, endpoint_url: str | None = None
) -> str:
    """A URL where a person can look at ``key`` in ``bucket`` (a prefix when ``key`` is empty or ends in /).

    ``region`` defaults to ``AWS_REGION``/``AWS_DEFAULT_REGION``, then us-east-1. ``endpoint_url``
    defaults to ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``; when one is set (the local moto server)
    the URL is moto's dashboard.
    """
    _check_bucket(bucket)
    key = key.lstrip("/")
    is_prefix = not key or key.endswith("/")
    if endpoint := _endpoint(endpoint_url, "s3"):
        return _local_dashboard(endpoint)
    region = _region(region)
    console = f"{_console(region)}/s3"
    if is_prefix:
        params = {"region": region, "bucketType": "general", "prefix": key, "showversions": "false"}
        return f"{console}/buckets/{quote(bucket)}?{_query(params)}"
    params = {"region": region, "bucketType": "general", "prefix": key}
    return f"{console}/object/{quote(bucket)}?{_query(params)}"


def sns_topic_console_url(topic_arn: str, endpoint_url: str | None = None) -> str:
    """The topic's page in the SNS console (its region comes from the ARN); locally, moto's dashboard."""
    parts = topic_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[3] or not parts[5]:
        raise ValueError(f"expected an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>): {topic_arn!r}")
    if endpoint := _endpoint(endpoint_url, "sns"):
        return _local_dashboard(endpoint)
    region = parts[3]
    return f"{_console(region)}/sns/v3/home?{_query({'region': region})}#/topic/{topic_arn}"


# Where the API server serves the local page (a FastAPI sub-application of this plugin).
PAGE_PREFIX = "/clean-zone"
# Objects listed per place on the local page: enough to find one's upload, small enough to stay fast.
PAGE_LISTING_LIMIT = 200


def navigation_links(settings: Any, endpoint_url: str | None = None) -> list[dict[str, str]]:
    """The UI links for ``settings`` (a ``clean_zone.config.Settings``); external, so no ``url_route``.

    Locally (a custom endpoint) they open this plugin's page; on AWS, the S3 and SNS consoles.
    """
    region = settings.region
    local = _endpoint(endpoint_url, "s3") is not None
    hrefs = (
        [f"{PAGE_PREFIX}/", f"{PAGE_PREFIX}/?{_query({'place': 'landing'})}", f"{PAGE_PREFIX}/topic"]
        if local
        else [
            s3_console_url(settings.bucket, "", region),
            s3_console_url(settings.bucket, settings.landing_prefix, region),
            sns_topic_console_url(settings.failure_topic_arn),
        ]
    )
    names = [f"Bucket {settings.bucket}", f"Landing prefix {settings.landing_prefix}", "Failure alerts topic"]
    return [
        {"name": name, "href": href, "destination": "nav", "category": LINK_CATEGORY}
        for name, href in zip(names, hrefs, strict=True)
    ]


def _shown(key: str) -> str:
    """A key quoted when spaces at its ends (or control characters) would be invisible."""
    if key != key.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        return json.dumps(key, ensure_ascii=False)
    return key


def places(settings: Any) -> dict[str, str]:
    """Each place's name and prefix (``landing`` for ``landing_prefix``), the ledger left out."""
    names = [name for name in vars(settings) if name.endswith("_prefix") and name != "state_prefix"]
    return {name.removesuffix("_prefix"): getattr(settings, name) for name in names}


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 10px;text-align:left}"
        "code{white-space:pre}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def places_page(s3: Any, settings: Any, place: str | None = None) -> str:
    """HTML listing each place's objects (or one ``place``'s), newest first, through ``s3``."""
    wanted = {k: v for k, v in places(settings).items() if place in (None, k)}
    nav = " | ".join(
        f"<a href='?{_query({'place': name})}'>{html.escape(name)}</a>" for name in places(settings)
    )
    sections = [f"<p><a href='./'>all places</a> | {nav} | <a href='topic'>failure alerts topic</a></p>"]
    for name, prefix in wanted.items():
        response = s3.list_objects_v2(Bucket=settings.bucket, Prefix=prefix, MaxKeys=1000)
        items = sorted(response.get("Contents", []), key=lambda item: item["LastModified"], reverse=True)
        more = response.get("IsTruncated") or len(items) > PAGE_LISTING_LIMIT
        rows = "".join(
            f"<tr><td><code>{html.escape(_shown(item['Key']))}</code></td><td>{item['Size']}</td>"
            f"<td>{item['LastModified']:%Y-%m-%d %H:%M:%S}</td></tr>"
            for item in items[:PAGE_LISTING_LIMIT]
        )
        sections.append(
            f"<h2>{html.escape(name)} <small><code>s3://{html.escape(settings.bucket)}/"
            f"{html.escape(prefix)}</code></small></h2>"
            + (
                f"<table><tr><th>key</th><th>bytes</th><th>last modified (UTC)</th></tr>{rows}</table>"
                if rows
                else "<p>(empty)</p>"
            )
            + (f"<p>Showing the newest {PAGE_LISTING_LIMIT}.</p>" if more else "")
        )
    return _page(f"Clean zone: s3://{settings.bucket}", "".join(sections))


# Where the notifier keeps alerts SNS refused (clean_zone.undelivered_alerts.FOLDER; the plugin
# does not import the DAGs' package, which the API server on MWAA does not have on its path).
UNDELIVERED_FOLDER = "alerts/undelivered/"


def _kept_alerts(s3: Any, settings: Any) -> str:
    prefix = f"{settings.state_prefix}{UNDELIVERED_FOLDER}"
    response = s3.list_objects_v2(Bucket=settings.bucket, Prefix=prefix, MaxKeys=PAGE_LISTING_LIMIT)
    items = response.get("Contents", [])
    where = f"<code>s3://{html.escape(settings.bucket)}/{html.escape(prefix)}</code>"
    if not items:
        return f"<p>No alerts waiting: SNS took every alert ({where} is empty).</p>"
    rows = "".join(
        f"<tr><td><code>{html.escape(item['Key'].removeprefix(prefix))}</code></td>"
        f"<td>{item['LastModified']:%Y-%m-%d %H:%M:%S}</td></tr>"
        for item in items
    )
    more = "+" if response.get("IsTruncated") else ""
    return (
        f"<h2>{len(items)}{more} alert(s) SNS refused, waiting to be sent again</h2>"
        f"<p>Kept in {where}; <code>clean_zone_alert_redelivery</code> sends them once SNS answers.</p>"
        f"<table><tr><th>alert</th><th>due (UTC)</th></tr>{rows}</table>"
    )


def topic_page(sns: Any, s3: Any, settings: Any) -> str:
    """HTML naming the failure topic, who receives its alerts, and the alerts SNS refused."""
    arn = settings.failure_topic_arn
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=arn).get("Subscriptions", [])
    rows = "".join(
        f"<tr><td>{html.escape(sub['Protocol'])}</td><td><code>{html.escape(sub['Endpoint'])}</code></td></tr>"
        for sub in subscriptions
    )
    body = (
        f"<p><a href='./'>places</a></p><p>Topic <code>{html.escape(arn)}</code></p>"
        + (
            f"<table><tr><th>protocol</th><th>subscriber</th></tr>{rows}</table>"
            if rows
            else "<p>No subscribers: alerts reach no one.</p>"
        )
        + "<p>Locally, alerts arrive in the SQS queue "
        f"<code>{html.escape(settings.alerts_queue_name)}</code> (<code>scripts/dev inbox</code> "
        "prints them).</p>" + _kept_alerts(s3, settings)
    )
    return _page("Clean zone: failure alerts", body)


def local_page_app(settings: Any) -> Any:
    """The FastAPI app behind the local links (built on load; requests reach the endpoint only when asked)."""
    import boto3
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="Clean zone", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def show_places(place: str | None = None) -> str:
        return places_page(boto3.client("s3", region_name=settings.region), settings, place)

    @app.get("/topic", response_class=HTMLResponse)
    def show_topic() -> str:
        return topic_page(
            boto3.client("sns", region_name=settings.region),
            boto3.client("s3", region_name=settings.region),
            settings,
        )

    return app


_CONFIG_FROM_FILE = "clean_zone_plugin_project_config"


def _import_project_config() -> Any:
    """``clean_zone.config``, importable where the DAGs are on the path, else read from the DAG folder.

    Airflow 3.3 puts the DAG folder on the import path only while it parses DAGs or runs a task
    (``BundleDagBag``); the API server, which builds these links, does not. ``config`` imports
    nothing from the rest of the package, so it is loaded from its file there, leaving the
    import path alone.
    """
    try:
        from clean_zone import config
    except ImportError:
        import importlib.util
        import sys

        from airflow.configuration import conf

        dags_folder = os.path.expanduser(conf.get("core", "dags_folder", fallback=""))
        path = os.path.join(dags_folder, "clean_zone", "config.py")
        if not dags_folder or not os.path.isfile(path):
            raise
        spec = importlib.util.spec_from_file_location(_CONFIG_FROM_FILE, path)
        if spec is None or spec.loader is None:
            raise
        config = importlib.util.module_from_spec(spec)
        # Registered before it runs: dataclasses resolve the module's annotations through sys.modules.
        sys.modules[_CONFIG_FROM_FILE] = config
        spec.loader.exec_module(config)
    return config


def _project_settings() -> Any | None:
    try:
        config = _import_project_config()
    except ImportError as error:
        log.warning("clean_zone plugin: no UI links, the clean_zone package is not importable: %s", error)
        return None
    try:
        return config.load_for_parsing()
    except ValueError as error:  # config.ConfigError names the setting at fault
        log.warning("clean_zone plugin: no UI links, a setting is invalid: %s", error)
        return None


class CleanZonePlugin(AirflowPlugin):
    """Registered by Airflow's plugins manager from the plugins folder (plugins.zip on MWAA)."""

    name = "clean_zone"
    macros = [s3_console_url, s3_uri, sns_topic_console_url]  # noqa: RUF012  (AirflowPlugin's own API)
    external_views: list[Any] = []  # noqa: RUF012  (filled in on_load)
    fastapi_apps: list[Any] = []  # noqa: RUF012  (filled in on_load, locally only)

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        # Built here, not at import, so a setting problem is logged when Airflow loads plugins.
        settings = _project_settings()
        cls.external_views = navigation_links(settings) if settings is not None else []
        local = _endpoint(None, "s3") is not None
        cls.fastapi_apps = (
            [{"app": local_page_app(settings), "url_prefix": PAGE_PREFIX, "name": "Clean zone places"}]
            if settings is not None and local
            else []
        )
