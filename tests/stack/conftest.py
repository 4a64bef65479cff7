"""A whole local stack for tests (clean_zone_tools.devstack.harness): free ports, a temporary
state folder, the developer's own stack untouched. Scripts use the harness directly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clean_zone_tools.devstack.harness import Stack, running_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A healthy stack, shared by a module's tests and stopped after them."""
    with running_stack() as started:
        yield started


@pytest.fixture(scope="module")
def stack_with_fault_proxy() -> Iterator[Stack]:
    """A healthy stack whose Airflow reaches the endpoint through the fault proxy (``proxy_url``)."""
    with running_stack(fault_proxy=True) as started:
        yield started
