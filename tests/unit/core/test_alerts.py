"""Failure alerts: what the person receives, and that SNS trouble never crashes the callback."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from clean_zone.alerts import SUBJECT_LIMIT, parse_sns_envelope, task_log_url
from clean_zone.failures import FailureClass
from tests.support.alerts import RUN_ID, make_alert

SNS_MESSAGE_LIMIT = 256 * 1024


# --- subject -----------------------------------------------------------------


def test_subject() -> None:
    expected = "[CRITICAL] endpoint failure: clean_zone_file_pipeline.run_failure_generator"
    assert make_alert().subject() == expected


@pytest.mark.parametrize(
    ("dag_id", "task_id"),
    [
        ("d" * 250, "t" * 250),  # Airflow's longest ids
        ("données_été_" * 20, "tâche_échouée_日本語"),
        ("x", "y" * 300),
        ("dag\nwith\nnewlines\tand\ttabs", "task\r\n"),
    ],
)
def test_subject_fits_sns_for_any_ids(dag_id: str, task_id: str) -> None:
    subject = make_alert(dag_id=dag_id, task_id=task_id).subject()
    assert len(subject) <= SUBJECT_LIMIT == 100
    assert subject.isascii()
    assert subject.isprintable()  # one line, no control characters
    assert subject.startswith("[CRITICAL] endpoint failure: ")


def test_long_subject_says_it_was_cut() -> None:
    subject = make_alert(dag_id="d" * 250).subject()
    assert len(subject) == SUBJECT_LIMIT
    assert subject.endswith("...")


@pytest.mark.parametrize(
    ("failure_class", "severity"),
    [
        (FailureClass.DATA_QUALITY, "warning"),
        (FailureClass.INVALID_INPUT, "warning"),
        (FailureClass.ENDPOINT, "critical"),
        (FailureClass.DEPENDENCY, "critical"),
        (FailureClass.CODE, "critical"),
    ],
)
def test_severity(failure_class: FailureClass, severity: str) -> None:
    alert = make_alert(failure_class=failure_class)
    assert alert.severity == severity
    assert alert.subject().startswith(f"[{severity.upper()}] {failure_class.value} failure")


# --- message -----------------------------------------------------------------


def test_message_carries_what_a_person_needs() -> None:
    alert = make_alert()
    message = alert.message()
    assert "Airflow task failed: clean_zone_file_pipeline.run_failure_generator" in message
    assert f"Run:           {RUN_ID}" in message
    assert "Try:           5 of 5" in message
    assert "Failure class: endpoint (retried with backoff)" in message
    assert "S3 object:     s3://clean-zone/landing/partner/orders 2026+01.csv" in message
    assert "Now at:        s3://clean-zone/processing/partner/orders 2026+01.csv" in message
    assert "Error:         SimulatedOutage: failure generator: 10 / 0 raised ZeroDivisionError" in message
    assert f"Log:           {alert.log_url}" in message
    assert "clear the failed task" in message  # what to do next


def test_message_ends_with_the_facts_as_json() -> None:
    alert = make_alert(
        failure_class=FailureClass.DATA_QUALITY,
        error_type="DataQualityError",
        error="ragged rows: line 3 has 2 columns, the header has 3",
    )
    details = json.loads(alert.message().rsplit("Details (JSON):\n", 1)[1])
    assert details["dag_id"] == "clean_zone_file_pipeline"
    assert details["run_id"] == RUN_ID
    assert details["failure_class"] == "data_quality"
    assert details["severity"] == "warning"
    assert details["error"] == "ragged rows: line 3 has 2 columns, the header has 3"
    assert details["s3_object"] == "s3://clean-zone/landing/partner/orders 2026+01.csv"
    assert "Failure class: data_quality (not retried)" in alert.message()
    assert "quarantined" in alert.message()


def test_message_without_a_known_object() -> None:
    message = make_alert(s3_object=None, s3_location=None).message()
    assert "S3 object:     unknown" in message
    assert "Now at:" not in message


def test_a_huge_error_text_is_clipped_to_fit_sns() -> None:
    alert = make_alert(error="x" * 400_000, error_type="ValueError")
    message = alert.message()
    assert len(message.encode()) < SNS_MESSAGE_LIMIT
    assert "more characters; see the log" in message
    assert json.loads(message.rsplit("Details (JSON):\n", 1)[1])["error"].startswith("xxxx")


def test_attributes_let_subscribers_filter() -> None:
    assert make_alert().attributes() == {
        "severity": {"DataType": "String", "StringValue": "critical"},
        "failure_class": {"DataType": "String", "StringValue": "endpoint"},
        "dag_id": {"DataType": "String", "StringValue": "clean_zone_file_pipeline"},
        "task_id": {"DataType": "String", "StringValue": "run_failure_generator"},
    }


# --- log link ----------------------------------------------------------------


def test_task_log_url() -> None:
    url = task_log_url("https://abc.airflow.us-east-1.on.aws/", "my_dag", RUN_ID, "my_task", 3)
    assert url == (
        "https://abc.airflow.us-east-1.on.aws/dags/my_dag/runs/"
        "manual__2026-01-01T04%3A12%3A00%2B00%3A00/tasks/my_task?try_number=3"
    )


def test_task_log_url_of_a_mapped_task() -> None:
    url = task_log_url("http://localhost:8080", "d", "r", "t", 1, map_index=4)
    assert url == "http://localhost:8080/dags/d/runs/r/tasks/t/mapped/4?try_number=1"


# --- publishing --------------------------------------------------------------


def test_parse_sns_envelope() -> None:
    alert = make_alert()
    envelope = {
        "Type": "Notification",
        "Subject": alert.subject(),
        "Message": alert.message(),
        "MessageAttributes": {
            k: {"Type": "String", "Value": v["StringValue"]} for k, v in alert.attributes().items()
        },
    }
    parsed = parse_sns_envelope(json.dumps(envelope))
    assert parsed["subject"] == alert.subject()
    assert parsed["message"] == alert.message()
    assert parsed["attributes"]["failure_class"] == "endpoint"
    bare = parse_sns_envelope(json.dumps({"Message": "hello"}))
    assert bare == {"subject": None, "message": "hello", "attributes": {}}


def test_to_dict_is_json() -> None:
    alert = replace(make_alert(), s3_location=None)
    assert json.loads(json.dumps(alert.to_dict()))["s3_location"] is None


# --- never retried, withdrawn files, invisible key ends ---------------------------------------------


@pytest.mark.parametrize(
    ("failure_class", "max_tries"),
    [
        (FailureClass.DATA_QUALITY, 5),
        (FailureClass.INVALID_INPUT, 5),
        (FailureClass.CODE, 5),
        (FailureClass.ENDPOINT, 1),
    ],
)
def test_a_task_that_is_never_retried_says_so_instead_of_a_try_count(
    failure_class: FailureClass, max_tries: int
) -> None:
    message = make_alert(failure_class=failure_class, try_number=1, max_tries=max_tries).message()
    assert "Try:           not retried" in message
    assert "1 of" not in message


def test_a_withdrawn_file_is_a_warning_in_words() -> None:
    alert = make_alert(
        failure_class=FailureClass.INVALID_INPUT, reason="gone", task_id="reject_file", s3_location=None
    )
    assert alert.subject() == "[WARNING] file withdrawn: clean_zone_file_pipeline.reject_file"
    assert alert.severity == "warning"
    assert "no reason file was left behind" in alert.message()
    superseded = make_alert(failure_class=FailureClass.INVALID_INPUT, reason="superseded")
    assert superseded.subject().startswith("[WARNING] file replaced by a newer upload: ")
    assert "processed by its own run" in superseded.message()


def test_keys_with_spaces_at_their_ends_are_quoted() -> None:
    message = make_alert(
        s3_object="s3://clean-zone/landing/ report.csv ", s3_location="s3://clean-zone/processing/x.csv"
    ).message()
    assert 'S3 object:     s3://clean-zone/"landing/ report.csv "' in message
    assert "Now at:        s3://clean-zone/processing/x.csv" in message  # ordinary keys as they are


def test_a_kept_alert_sent_again_says_when_it_was_due_and_is_marked_delayed() -> None:
    from clean_zone.undelivered_alerts import KeptAlert

    document = {
        "subject": "[CRITICAL] endpoint failure: d.t",
        "message": "Airflow task failed: d.t",
        "attributes": {"severity": {"DataType": "String", "StringValue": "critical"}},
        "due_at": "2026-12-01T03:00:00+00:00",
    }
    kept = KeptAlert.from_document(document)

    assert kept.subject() == document["subject"]  # filters and inbox rules still match it
    assert kept.message().startswith("(Delayed: this alert was due at 2026-12-01T03:00:00+00:00")
    assert kept.message().endswith("Airflow task failed: d.t")
    assert kept.attributes()["severity"]["StringValue"] == "critical"
    assert kept.attributes()["delayed"] == {"DataType": "String", "StringValue": "true"}
