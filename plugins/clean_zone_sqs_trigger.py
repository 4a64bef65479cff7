"""The events route's SQS watcher trigger: long-polls for the first message, then drains the queue.

The Amazon provider's ``SqsSensorTrigger`` (what ``MessageQueueTrigger(scheme="sqs")`` builds) fires
with at most one receive's worth of messages (SQS gives ten at most), and the triggerer takes a few
seconds to run the watcher again: on the local stack a burst of 1,000 uploads was read at about
ten files every 3.5 s, which alone took longer than processing them. This trigger waits for the
first message with a long poll (so a file alone is noticed at once and an idle queue is asked
three times a minute), then receives again without waiting while messages are there, up to
``max_drain_messages``, and fires once with all of them: a burst reaches Airflow as a few large
asset events.

It lives in ``plugins/`` because the triggerer imports a trigger by its class path, and of this
project's folders only the plugins folder is on the triggerer's path (locally and on MWAA).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger


class SqsDrainTrigger(SqsSensorTrigger):
    """``SqsSensorTrigger`` that fires with every message already queued (up to ``max_drain_messages``)."""

    def __init__(self, *, max_drain_messages: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_drain_messages = max_drain_messages

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **kwargs,
            "max_drain_messages": self.max_drain_messages,
        }

    async def poke(self, client: Any) -> list[Any]:
        batch = list(await super().poke(client))
        if not batch:
            return batch
        # The rest of what is queued now, without waiting: the long poll is for the first message only.
        long_poll, self.wait_time_seconds = self.wait_time_seconds, 0
        try:
            while len(batch) < self.max_drain_messages:
                more = await super().poke(client)
                if not more:
                    break
                batch.extend(more)
        finally:
            self.wait_time_seconds = long_poll
        return batch
