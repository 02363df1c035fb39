"""Exponential backoff with jitter, for reconnecting to brokers, meters and databases."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from `start` up to `ceiling`, each scaled by a random 50-100 %.

    The jitter keeps a fleet of agents that lost the same broker from reconnecting in step.
    """

    def __init__(self, start: float = 0.5, ceiling: float = 30.0) -> None:
        self.start = start
        self.ceiling = ceiling
        self._next = start

    def next_delay(self) -> float:
        delay = self._next * random.uniform(0.5, 1.0)
        self._next = min(self._next * 2, self.ceiling)
        return delay

    def reset(self) -> None:
        self._next = self.start
