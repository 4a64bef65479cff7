"""The one fake clock for tests: time passes only when the code under test sleeps, or the test says so."""

from __future__ import annotations

from collections.abc import Callable


class FakeClock:
    """``clock()`` (or ``clock.clock()``) reads the time; ``sleep`` advances it and records the sleep;
    ``at(when, action)`` runs ``action`` once the time reaches ``when`` (through a sleep or ``advance``)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._actions: list[tuple[float, Callable[[], object]]] = []

    def __call__(self) -> float:
        return self.now

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for when, action in list(self._actions):
            if self.now >= when:
                self._actions.remove((when, action))
                action()

    def at(self, when: float, action: Callable[[], object]) -> None:
        self._actions.append((when, action))
