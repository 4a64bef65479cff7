"""Settings: documented defaults, environment overrides, clear errors naming the Variable."""

from __future__ import annotations

from dataclasses import fields

import pytest
from airflow.sdk import DAG
from airflow.sdk.execution_time.context import VariableAccessor

from clean_zone import config
from clean_zone.config import ConfigError, Settings, from_lookup, load_for_parsing, variable_template


def env(**values: str) -> dict[str, str]:
    return {config.env_name(name): value for name, value in values.items()}


def test_defaults() -> None:
    settings = load_for_parsing({})
    assert settings == Settings()
    assert settings.bucket == "clean-zone"
    assert settings.landing_prefix == "landing/"
    assert settings.failure_topic_arn == "arn:aws:sns:us-east-1:123456789012:clean-zone-failures"
    assert settings.account_id == "123456789012"
    assert (settings.retry_interval_seconds, settings.retry_backoff_rate) == (10.0, 1.5)
    assert settings.retry_jitter == "NONE"
    assert settings.failure_rate == pytest.approx(1 / 3)
    assert settings.failure_seed == ""


def test_names() -> None:
    assert config.variable_name("bucket") == "clean_zone_bucket"
    assert config.env_name("bucket") == "AIRFLOW_VAR_CLEAN_ZONE_BUCKET"


def test_environment_overrides_with_types() -> None:
    settings = load_for_parsing(
        env(
            bucket="partner-drop",
            retry_max_attempts=" 7 ",
            retry_interval_seconds="0.25",
            failure_rate="0",
            failure_seed="fixed",
            retry_jitter="full",
        )
    )
    assert settings.bucket == "partner-drop"
    assert settings.retry_max_attempts == 7
    assert settings.retry_interval_seconds == 0.25
    assert settings.failure_rate == 0.0
    assert settings.failure_seed == "fixed"
    assert settings.retry_jitter == "full"  # accepted in any case; the retry policy upper-cases it


def test_an_empty_value_means_the_default() -> None:
    assert load_for_parsing(env(bucket="", retry_max_attempts="")) == Settings()


def test_load_for_parsing_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BUCKET", "from-the-environment")
    assert load_for_parsing().bucket == "from-the-environment"


@pytest.mark.parametrize(
    ("setting", "value", "kind"),
    [
        ("retry_max_attempts", "seven", "an int"),
        ("retry_max_attempts", "2.5", "an int"),
        ("retry_interval_seconds", "ten", "a float"),
        ("failure_rate", "1/3", "a float"),
    ],
)
def test_a_bad_number_names_the_variable(setting: str, value: str, kind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_for_parsing(env(**{setting: value}))
    message = str(caught.value)
    assert f"clean_zone_{setting}" in message
    assert config.env_name(setting) in message
    assert f"must be {kind}" in message
    assert repr(value) in message


@pytest.mark.parametrize("value", ["landing", "/landing/", "/"])
def test_a_prefix_must_end_with_a_slash_and_not_start_with_one(value: str) -> None:
    with pytest.raises(ConfigError, match="clean_zone_landing_prefix must end with '/'"):
        load_for_parsing(env(landing_prefix=value))


def test_prefixes_must_not_nest() -> None:
    with pytest.raises(ConfigError, match="must not nest: 'landing/' contains 'landing/processing/'"):
        load_for_parsing(env(processing_prefix="landing/processing/"))


def test_prefixes_must_be_distinct() -> None:
    with pytest.raises(ConfigError, match="distinct"):
        load_for_parsing(env(processed_prefix="done/", rejected_prefix="done/"))


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_failure_rate_must_be_a_probability(value: str) -> None:
    with pytest.raises(ConfigError, match="clean_zone_failure_rate must be within"):
        load_for_parsing(env(failure_rate=value))


def test_jitter_must_be_none_or_full() -> None:
    with pytest.raises(ConfigError, match="clean_zone_retry_jitter must be NONE or FULL"):
        load_for_parsing(env(retry_jitter="HALF"))


def test_every_setting_is_documented() -> None:
    described = config.describe()
    assert [d["name"] for d in described] == [f.name for f in fields(Settings)]
    for entry in described:
        assert entry["doc"], entry["name"]
        assert entry["variable"] == "clean_zone_" + entry["name"]
        assert entry["env"] == "AIRFLOW_VAR_CLEAN_ZONE_" + entry["name"].upper()


def test_variables_round_trip() -> None:
    tuned = from_lookup({"clean_zone_bucket": "b2", "clean_zone_retry_max_attempts": "9"}.get)
    assert (tuned.bucket, tuned.retry_max_attempts) == ("b2", 9)
    assert from_lookup(tuned.to_variables().get) == tuned
    assert from_lookup(Settings().to_variables().get) == Settings()


def test_load_at_run_time_reads_variables_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_QUARANTINE_PREFIX", "bad-files/")
    assert config.load().quarantine_prefix == "bad-files/"


def render(template: str) -> str:
    # The Jinja environment Airflow renders operator fields with, and the accessor a task's
    # template context holds as ``var.value``.
    environment = DAG(dag_id="render_check", schedule=None).get_template_env()
    return environment.from_string(template).render(var={"value": VariableAccessor(False)})


def test_variable_template_renders_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_CLEAN_ZONE_BUCKET", "bucket-at-run-time")
    template = variable_template("bucket", "clean-zone")
    assert template == "{{ var.value.get('clean_zone_bucket', 'clean-zone') }}"
    assert render(template) == "bucket-at-run-time"


def test_variable_template_falls_back_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_CLEAN_ZONE_MANIFESTS_PREFIX", raising=False)
    assert render(variable_template("manifests_prefix", "manifests/")) == "manifests/"


def test_variable_template_refuses_unknown_settings() -> None:
    with pytest.raises(KeyError):
        variable_template("no_such_setting", "x")
