"""Timestamps as the pipelines write them into records, reports and summaries."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso(epoch: float | None = None) -> str:
    """``epoch`` (seconds; now when None) as ISO 8601 in UTC, to the second."""
    moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="seconds")
