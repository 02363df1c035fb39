"""Where readings are kept: InfluxDB (v2 write protocol) or the embedded SQLite store.

A store stores; it holds no domain rules. Writes are blocking calls that the collector
runs off its event loop, in worker threads, up to `write.concurrency` at once: a store
takes concurrent calls (InfluxStore: urllib3's connection pool; SQLiteStore: a lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from collector.batch import Batch
from collector.stores.lineprotocol import Point


class StoreError(Exception):
    """The store could not take the write now (unreachable, overloaded); retrying may work."""


class StoreRejected(Exception):
    """The store refused the data as invalid; retrying the same write will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Store(Protocol):
    def write(self, batches: Sequence[Batch]) -> int:
        """Store every value of the batches durably; return how many values were written.

        Writing the same reading twice leaves it stored once (same series, same time).
        Raises StoreError or StoreRejected.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class PointStore(Protocol):
    """A store that also takes derived measurements (energy_interval, intensity)."""

    def write_points(self, points: Sequence[Point]) -> int:
        """Store the points; a point written again (same series and time) replaces the
        earlier one. Raises StoreError or StoreRejected."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class RetentionStore(Protocol):
    """A store that can say how long it keeps points (it drops older ones silently)."""

    def retention(self) -> timedelta | None:
        """The retention, or None when it keeps points forever or cannot say."""
        ...
