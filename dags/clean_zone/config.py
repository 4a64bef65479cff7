"""The one place that knows every name and knob the pipelines use.

Every setting is an Airflow Variable named ``clean_zone_<name>``. Airflow
resolves a Variable from the environment first (``AIRFLOW_VAR_CLEAN_ZONE_<NAME>``),
then the secrets backend, then the metadata database, so the same DAG code
runs locally (environment) and on MWAA (Variables or Secrets Manager) with no
edits. Every setting has a documented default.

Two ways in, for two moments:

* :func:`load` at task run time: reads Variables (environment first).
* :func:`load_for_parsing` while a DAG file is parsed: reads the environment
  only, because a Variable lookup is a database/API call and DAG files must
  do no I/O at import time. Only settings marked ``parse_time`` matter there
  (schedules, sensor intervals, retry presets); ``scripts/`` use it too.

This module imports nothing from Airflow at module level, so plain-Python
code and scripts can use it without Airflow installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

VARIABLE_PREFIX = "clean_zone_"
ENV_PREFIX = "AIRFLOW_VAR_CLEAN_ZONE_"

# Moto's (and AWS documentation's) placeholder account; only the local default.
LOCAL_ACCOUNT_ID = "123456789012"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the Variable."""


def variable_name(setting: str) -> str:
    """The Airflow Variable that holds ``setting``."""
    return f"{VARIABLE_PREFIX}{setting}"


def env_name(setting: str) -> str:
    """The environment variable Airflow reads for ``setting``'s Variable."""
    return f"{ENV_PREFIX}{setting.upper()}"


def _setting(default: Any, doc: str, *, parse_time: bool = False) -> Any:
    from dataclasses import field

    return field(default=default, metadata={"doc": doc, "parse_time": parse_time})


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Field names are the setting names."""

    # --- where things are -------------------------------------------------
    aws_conn_id: str = _setting(
        "aws_default",
        "Airflow connection for AWS. On MWAA the default connection uses the execution role; "
        "locally it carries the moto endpoint.",
        parse_time=True,
    )
    region: str = _setting("us-east-1", "AWS Region of the bucket, topic and queues.", parse_time=True)
    bucket: str = _setting("clean-zone", "The clean-zone bucket partners drop files into.", parse_time=True)
    landing_prefix: str = _setting(
        "landing/", "Where single files land; the file pipeline watches it.", parse_time=True
    )
    processing_prefix: str = _setting(
        "processing/",
        "Files claimed by a run in a bucket without versioning, until they reach a terminal place; in a "
        "versioned bucket (as provisioned) a claimed file stays where it landed, its version pinned.",
    )
    processed_prefix: str = _setting("processed/", "Terminal: processed files, their outputs and summaries.")
    rejected_prefix: str = _setting(
        "rejected/", "Terminal: files with an extension the pipeline does not process."
    )
    quarantine_prefix: str = _setting(
        "quarantine/", "Terminal: files and batches that failed a data-quality check."
    )
    duplicates_prefix: str = _setting(
        "duplicates/", "Terminal: exact re-deliveries of a file already processed."
    )
    manifests_prefix: str = _setting(
        "manifests/", "Where partners put batch manifests; the batch pipeline watches it.", parse_time=True
    )
    batches_prefix: str = _setting("batches/", "Where partners put the data files a manifest lists.")
    state_prefix: str = _setting("_state/", "Idempotency ledger (claims and outcomes). Never hand-edit.")
    failure_topic_arn: str = _setting(
        f"arn:aws:sns:us-east-1:{LOCAL_ACCOUNT_ID}:clean-zone-failures",
        "SNS topic that receives failure alerts.",
    )
    events_queue_name: str = _setting(
        "clean-zone-s3-events",
        "SQS queue that receives the bucket's S3 event notifications.",
        parse_time=True,
    )
    event_route: str = _setting(
        "s3",
        "How S3 events reach that queue: 's3' (bucket notifications straight to SQS) or 'eventbridge' "
        "(S3 -> EventBridge rule -> SQS, the reference's route). Used by provisioning.",
    )
    alerts_queue_name: str = _setting(
        "clean-zone-alerts-inbox",
        "SQS queue subscribed to the failure topic (the local 'inbox'; on AWS, any subscriber).",
    )
    alert_redelivery_minutes: float = _setting(
        5.0,
        "How often alerts SNS refused (kept under _state/alerts/undelivered/) are sent again by "
        "clean_zone_alert_redelivery.",
        parse_time=True,
    )
    ui_base_url: str = _setting(
        "http://localhost:8080", "Airflow UI base URL used in alert links (set to MWAA's UI URL there)."
    )
    # --- how things behave ------------------------------------------------
    sensor_poke_interval_seconds: float = _setting(
        30.0, "How often the S3 sensors look (in the triggerer, deferrable).", parse_time=True
    )
    sensor_timeout_seconds: float = _setting(
        6 * 3600.0,
        "How long one sensor waits before its run ends (it is then re-scheduled).",
        parse_time=True,
    )
    failure_rate: float = _setting(
        1 / 3,
        "Failure generator: chance one attempt raises (the reference: 10 / randint(0, 2)).",
    )
    failure_seed: str = _setting(
        "",
        "Failure generator seed; empty means truly random. Tests set it for determinism.",
    )
    retry_interval_seconds: float = _setting(
        10.0, "Failure generator retry: first delay (Step Functions IntervalSeconds).", parse_time=True
    )
    retry_backoff_rate: float = _setting(1.5, "Failure generator retry: BackoffRate.", parse_time=True)
    retry_max_attempts: int = _setting(
        4, "Failure generator retry: MaxAttempts (retries after the first try).", parse_time=True
    )
    retry_max_delay_seconds: float = _setting(
        300.0, "Failure generator retry: MaxDelaySeconds.", parse_time=True
    )
    retry_jitter: str = _setting(
        "NONE", "Failure generator retry: JitterStrategy, NONE or FULL.", parse_time=True
    )
    trigger_route: str = _setting(
        "events",
        "What starts file runs: 'events' (S3 notifications -> SQS -> Asset watcher, about 1-5 s), "
        "'sensor' (the deferrable S3KeySensor DAG, up to one poke interval) or 'both'. The DAG of a "
        "route not chosen is not generated.",
        parse_time=True,
    )
    landing_sweep_minutes: float = _setting(
        5.0,
        "Every this many minutes the routes look again at files that waited in landing/ longer than this "
        "without a run that claimed them (an event lost or left behind, a run deleted before its claim) "
        "and hand them over again; 0 turns it off.",
        parse_time=True,
    )
    burst_max_files: int = _setting(
        100, "Bursts: most files one burst run takes (N); the rest go to following runs.", parse_time=True
    )
    burst_window_seconds: float = _setting(
        30.0,
        "Bursts: a burst run takes files that landed within this many seconds of its first (T).",
        parse_time=True,
    )
    burst_chunk_files: int = _setting(
        25,
        "Bursts: files per chunk task inside a burst run (task instances do not grow per file).",
        parse_time=True,
    )
    burst_max_parallel_chunks: int = _setting(
        4, "Bursts: how many chunk tasks of one burst run work at once.", parse_time=True
    )
    max_inflated_bytes: int = _setting(
        64 * 1024**3,
        "Largest a .csv.gz may inflate to; past it the file is quarantined as gzip_bomb.",
    )
    batch_late_file_window_seconds: float = _setting(
        300.0, "Batch pipeline: how long to wait for listed files that have not arrived yet."
    )
    batch_max_parallel_verifications: int = _setting(
        16, "Batch pipeline: how many files are verified at once (mapped task concurrency).", parse_time=True
    )
    batch_max_parallel_batches: int = _setting(
        4,
        "Batch pipeline: how many manifests are in flight at once (active runs, each with one batch).",
        parse_time=True,
    )

    @property
    def account_id(self) -> str:
        """The account in the failure topic's ARN."""
        parts = self.failure_topic_arn.split(":")
        return parts[4] if len(parts) > 5 else LOCAL_ACCOUNT_ID

    @property
    def events_queue_url(self) -> str:
        """The events queue's URL in AWS's form (what the SQS watcher expects; moto serves it too)."""
        return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.events_queue_name}"

    def to_variables(self) -> dict[str, str]:
        """Every setting as ``{variable_name: text}``, the form Airflow Variables take."""
        return {variable_name(f.name): str(getattr(self, f.name)) for f in fields(self)}


def describe() -> list[dict[str, Any]]:
    """Name, Variable, environment name, default and meaning of every setting (docs, tests)."""
    return [
        {
            "name": f.name,
            "variable": variable_name(f.name),
            "env": env_name(f.name),
            "default": f.default,
            "type": f.type,
            "doc": f.metadata["doc"],
            "parse_time": f.metadata["parse_time"],
        }
        for f in fields(Settings)
    ]


def _convert(name: str, kind: str, raw: str) -> Any:
    text = raw.strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ConfigError(
            f"{variable_name(name)} (env {env_name(name)}) must be a{'n' if kind == 'int' else ''} {kind}, "
            f"got {raw!r}"
        ) from None
    return text


# Counts that bound work: zero would stall it (no run, no chunk, no file at a time).
_AT_LEAST_ONE = (
    "burst_max_files",
    "burst_chunk_files",
    "burst_max_parallel_chunks",
    "batch_max_parallel_batches",
)


def _check_bursts(settings: Settings) -> None:
    for name in _AT_LEAST_ONE:
        if getattr(settings, name) < 1:
            raise ConfigError(f"{variable_name(name)} must be at least 1, got {getattr(settings, name)}")
    if settings.burst_window_seconds < 0:
        raise ConfigError(f"{variable_name('burst_window_seconds')} must not be negative")


def _check(settings: Settings) -> Settings:
    prefixes = [f.name for f in fields(settings) if f.name.endswith("_prefix")]
    for name in prefixes:
        value = getattr(settings, name)
        if not value.endswith("/") or value.startswith("/"):
            raise ConfigError(f"{variable_name(name)} must end with '/' and not start with it, got {value!r}")
    values = [getattr(settings, n) for n in prefixes]
    for a in values:
        for b in values:
            if a != b and b.startswith(a):
                raise ConfigError(f"prefixes must not nest: {a!r} contains {b!r}")
    if len(set(values)) != len(values):
        raise ConfigError("every *_prefix setting must be distinct")
    if not 0.0 <= settings.failure_rate <= 1.0:
        raise ConfigError(
            f"{variable_name('failure_rate')} must be within [0, 1], got {settings.failure_rate}"
        )
    if settings.event_route not in {"s3", "eventbridge"}:
        raise ConfigError(
            f"{variable_name('event_route')} must be s3 or eventbridge, got {settings.event_route!r}"
        )
    if settings.trigger_route not in {"events", "sensor", "both"}:
        raise ConfigError(
            f"{variable_name('trigger_route')} must be events, sensor or both, got {settings.trigger_route!r}"
        )
    _check_bursts(settings)
    if settings.retry_jitter.upper() not in {"NONE", "FULL"}:
        raise ConfigError(
            f"{variable_name('retry_jitter')} must be NONE or FULL, got {settings.retry_jitter!r}"
        )
    return settings


def from_lookup(lookup: Callable[[str], str | None]) -> Settings:
    """Build settings from ``lookup(variable_name) -> text or None`` (None: use the default)."""
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = lookup(variable_name(f.name))
        if raw is not None and raw != "":
            values[f.name] = _convert(f.name, str(f.type), str(raw))
    return _check(Settings(**values))


def load_for_parsing(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment only: safe while parsing a DAG file (no I/O)."""
    env = os.environ if environ is None else environ
    return from_lookup(lambda var: _from_environment(var, env))


def _from_environment(variable: str, environ: Mapping[str, str]) -> str | None:
    """A Variable as Airflow's environment backend reads it (``AIRFLOW_VAR_<KEY>``)."""
    return environ.get("AIRFLOW_VAR_" + variable.upper())


def load() -> Settings:
    """Settings at task run time: Airflow Variables, environment first, then defaults.

    A Variable asked of the metadata database is a request through the task's supervisor to the
    API server, and most settings are not set at all: 38 of them cost about half a second in every
    task. So one request lists the ``clean_zone_`` Variables stored in the database, and only those
    are fetched (the environment is read in-process, first, as Airflow would). Where another
    secrets backend is configured (Secrets Manager, Vault...), which cannot be listed, every
    setting is asked for, as Airflow's own lookup does.
    """
    from airflow.sdk import Variable

    stored = _stored_variable_keys()
    if stored is None:
        return from_lookup(lambda var: Variable.get(var, default=None))

    def lookup(var: str) -> str | None:
        in_environment = _from_environment(var, os.environ)
        if in_environment is not None:
            return in_environment
        return Variable.get(var, default=None) if var in stored else None

    return from_lookup(lookup)


# Where Variables come from in a task when no other secrets backend is configured.
_LISTABLE_BACKENDS = frozenset({"EnvironmentVariablesBackend", "ExecutionAPISecretsBackend"})


def _stored_variable_keys() -> frozenset[str] | None:
    """The ``clean_zone_`` Variables in the metadata database; None when that cannot tell which
    settings are set (another secrets backend, or no task context to ask in)."""
    try:
        from airflow.sdk import Variable
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

        backends = {type(backend).__name__ for backend in ensure_secrets_backend_loaded()}
        if not backends <= _LISTABLE_BACKENDS or "ExecutionAPISecretsBackend" not in backends:
            return None
        return frozenset(Variable.keys(prefix=VARIABLE_PREFIX))
    except Exception:  # an Airflow without the listing, or no supervisor: ask for every setting
        return None


def variable_template(name: str, fallback: str) -> str:
    """A Jinja expression for a templated operator field: the Variable at run time, else ``fallback``."""
    if name not in {f.name for f in fields(Settings)}:
        raise KeyError(name)
    return "{{ var.value.get(%r, %r) }}" % (variable_name(name), fallback)  # noqa: UP031 - Jinja braces
