"""Exponential backoff with jitter, for reconnecting to brokers, meters and databases."""

from __future__ import annotations

import random


def doubled(start: float, ceiling: float, times: int) -> float:
    """`start` doubled `times` times, at most `ceiling`: the nominal wait after `times`
    failures in a row."""
    # The exponent is capped: 2.0 ** 1100 overflows, and the ceiling is hit long before.
    return min(start * 2.0 ** min(times, 64), ceiling)


class Backoff:
    """Delays that double from `start` up to `ceiling`, each scaled by a random 50-100 %.

    The jitter keeps a fleet of agents that lost the same broker from reconnecting in step.
    """

    def __init__(self, start: float = 0.5, ceiling: float = 30.0) -> None:
        self.start = start
        self.ceiling = ceiling
        self._failures = 0

    def next_delay(self) -> float:
        delay = doubled(self.start, self.ceiling, self._failures) * random.uniform(0.5, 1.0)
        self._failures += 1
        return delay

    def reset(self) -> None:
        self._failures = 0
