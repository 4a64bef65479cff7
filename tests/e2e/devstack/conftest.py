"""Fixtures of the durable endpoint's tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.devstack.test_endpoint_durability import Endpoint, _free_port


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Endpoint]:
    """A durable endpoint of its own, on a free port; killed at the end if still running."""
    running = Endpoint(tmp_path / "state", _free_port())
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop(signal.SIGKILL)
