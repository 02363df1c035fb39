"""The collector's health, for a container's health check: `data_dir/health.json`.

Rewritten every few seconds while the collector runs; deploy/healthcheck.py (the image's
HEALTHCHECK, GREENGAUGE_HEALTH_FILE) fails when the file is stale (the collector is hung,
or cannot write its data_dir) or says `"healthy": false`. Healthy means the collector
can take readings in and put them away:

- ingest: subscribed to the broker;
- store: the spool is empty, or shrank at least once within the last `window` seconds
  (it fills only while the store refuses or times out writes, and drains once it takes
  them);
- disk: every state file (spool, sequences, dead letters, accounting) can be written.

`assess` is the pure part; `HealthFile` observes a running collector (its counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

from greengauge.common.files import write_atomically

HEALTH_FILE: Final = "health.json"
INTERVAL: Final = 5.0
"""seconds between two writes of the file"""
WINDOW: Final = 60.0
"""seconds within which a non-empty spool must have drained a little"""


class Disk(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def failing(self) -> bool: ...


class Observed(Protocol):
    """What the health is judged from: the collector's counts now (collector.stats.Stats)."""

    @property
    def mqtt_connected(self) -> bool: ...
    @property
    def spool_depth(self) -> int: ...
    @property
    def disks(self) -> Sequence[Disk]: ...


@dataclass(frozen=True)
class Health:
    broker_connected: bool
    spool_depth: int
    spool_stuck: bool
    disk_faults: tuple[str, ...]

    @property
    def problems(self) -> list[str]:
        problems = []
        if not self.broker_connected:
            problems.append("ingest: not subscribed to the broker")
        if self.spool_stuck:
            problems.append(
                f"store: {self.spool_depth} messages spooled and not draining "
                "(the store refuses or times out writes)"
            )
        problems += [f"disk: cannot write {name}" for name in self.disk_faults]
        return problems

    def document(self, at: datetime) -> str:
        problems = self.problems
        return (
            json.dumps(
                {
                    "healthy": not problems,
                    "problems": problems,
                    "broker_connected": self.broker_connected,
                    "spool_depth": self.spool_depth,
                    "disk_faults": list(self.disk_faults),
                    "at": at.isoformat(),
                },
                indent=2,
            )
            + "\n"
        )


def assess(broker_connected: bool, depths: Sequence[int], disk_faults: Sequence[str]) -> Health:
    """`depths`: the spool's depth at each sample over the last window, oldest first, now
    last. A non-empty spool is stuck when it did not shrink once over the window (replay
    shrinks it as soon as the store takes writes); a single sample (the window not yet
    full) is never stuck: a spool that just began filling is given the window's time."""
    now = depths[-1]
    drained = any(later < earlier for earlier, later in itertools.pairwise(depths))
    return Health(
        broker_connected=broker_connected,
        spool_depth=now,
        spool_stuck=now > 0 and len(depths) > 1 and not drained,
        disk_faults=tuple(disk_faults),
    )


class HealthFile:
    """Observes the collector every `interval` seconds and writes its health to `path`."""

    def __init__(
        self,
        observe: Callable[[], Observed],
        path: Path,
        interval: float = INTERVAL,
        window: float = WINDOW,
    ) -> None:
        self._observe = observe
        self._path = path
        self._interval = interval
        # One sample more than the window holds: the oldest is `window` seconds ago.
        self._depths: deque[int] = deque(maxlen=max(1, round(window / interval)) + 1)

    def sample(self) -> Health:
        now = self._observe()
        self._depths.append(now.spool_depth)
        window_full = len(self._depths) == self._depths.maxlen
        return assess(
            now.mqtt_connected,
            list(self._depths) if window_full else [self._depths[-1]],
            [disk.name for disk in now.disks if disk.failing],
        )

    async def run(self) -> None:
        while True:
            document = self.sample().document(datetime.now(UTC))
            # Not written (disk full, read-only): the file goes stale, which the health
            # check reports; the disk fault itself is logged where it happens.
            with contextlib.suppress(OSError):
                await asyncio.to_thread(write_atomically, self._path, document)
            await asyncio.sleep(self._interval)
