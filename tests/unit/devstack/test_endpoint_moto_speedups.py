"""The endpoint's speed-ups to moto answer exactly as moto did (only faster)."""

from __future__ import annotations

import logging

import pytest
from moto import backends
from moto.core.utils import unix_time
from moto.sqs.models import SQSBackend

from clean_zone_tools.devstack.endpoint import speed_up_moto


@pytest.fixture
def sped_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registered first, so the test process gets moto's own functions back afterwards.
    monkeypatch.setattr(backends, "list_of_moto_modules", backends.list_of_moto_modules)
    monkeypatch.setattr(
        SQSBackend,
        "is_message_valid_based_on_retention_period",
        SQSBackend.is_message_valid_based_on_retention_period,
    )
    monkeypatch.setattr(logging.getLogger("werkzeug"), "level", logging.getLogger("werkzeug").level)
    speed_up_moto()


def test_a_message_is_kept_exactly_as_long_as_its_queue_retains_messages(sped_up: None) -> None:
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("retained", MessageRetentionPeriod="60")
    backend.send_message("retained", "an event")
    message = backend.get_queue("retained")._messages[0]

    assert backend.is_message_valid_based_on_retention_period("retained", message)
    message.sent_timestamp = int((unix_time() - 59) * 1000)
    assert backend.is_message_valid_based_on_retention_period("retained", message)
    message.sent_timestamp = int((unix_time() - 61) * 1000)
    assert not backend.is_message_valid_based_on_retention_period("retained", message)
    assert backend.receive_message("retained", 10, 0, 30) == []  # moto's receive drops it, as before


def test_the_service_lookup_lists_the_same_modules_without_reading_the_disk_again(
    sped_up: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    listed = list(backends.list_of_moto_modules())
    assert {"s3", "sqs", "sns", "events"} <= set(listed)
    monkeypatch.setattr(os, "listdir", lambda _path: pytest.fail("moto's folder listed again"))
    assert list(backends.list_of_moto_modules()) == listed


def test_request_lines_are_not_logged(sped_up: None) -> None:
    assert not logging.getLogger("werkzeug").isEnabledFor(logging.INFO)
