"""Readings into the outbox, in batches, within BATCH_LINGER of being read.

A batch is committed to the outbox (SQLite, on disk) before anything else sees it; its
sequence number is then handed to the forwarder as live. While the outbox cannot be
written (full or read-only disk) the readings wait in memory, bounded, and are retried
after a backoff.

A poller's read waits as it came (a Read: its values, the float32 ones as read) and is
written as JSON when its batch is: a tick's reads then have their decimals and JSON made
one after another, which costs 60 % of what it cost when each was made between the
requests of the reads (108 against 180 µs a read: the CPU's caches then held other
code; agent at 100 meters, bench/README.md). A reading made elsewhere waits as its
JSON: at 500 meters of 45 values the contract's models held 5.7 MiB at once against
2.8 MiB as text. A batch is its envelope, written by the contract's own serializer,
around the readings' JSON.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from agent.publish.outbox import Dropped, Outbox, OutboxError
from agent.reading import Read
from greengauge.common.backoff import Backoff
from greengauge.common.files import DiskFault
from greengauge.common.logs import fields
from greengauge.contract import MeterReading, Quantity, ReadingBatch

log = logging.getLogger(__name__)

MAX_READINGS_PER_BATCH: Final = 100
# About 4,000 values, 150 KB of JSON. A batch exists in several copies at once (JSON,
# SQLite, the MQTT packet): at 500 meters, five batches a tick instead of one keep a
# small gateway's memory ~3.5 MiB lower for four more commits a second (~1 % of its CPU).
# Pollers read on the same wall-clock tick; waiting this long after the first reading
# puts one tick's readings in one batch (and one fsync) instead of one per meter.
BATCH_LINGER: Final = 0.1
# Readings kept in memory while the outbox cannot be written (disk full, read-only):
# beyond this, the oldest are dropped, counted and logged.
MAX_UNSAVED_READINGS: Final = 20_000


_PROBE: Final = MeterReading(
    meter="probe", ts=datetime(2000, 1, 1, tzinfo=UTC), values={Quantity.FREQUENCY: 50.0}
)
"""Stands in for a batch's readings while its envelope is checked."""


def reading_json(reading: MeterReading) -> bytes:
    """A reading as it goes into a batch; refused as ReadingBatch refuses it (no value)."""
    if not reading.size:
        raise ValueError(f"a reading of meter {reading.meter} has no value (values or custom)")
    return reading.__pydantic_serializer__.to_json(reading)


def batch_json(site: str, agent: str, seq: int, readings: list[bytes]) -> bytes:
    """The batch of `readings` (reading_json's) as the wire carries it. The envelope is
    checked and written by the contract (ReadingBatch: ids, seq range, at least one
    reading); the readings' JSON goes between its brackets."""
    if not readings:
        raise ValueError("a batch needs at least one reading")
    envelope = ReadingBatch(site=site, agent=agent, seq=seq, readings=[_PROBE])
    empty = envelope.model_copy(update={"readings": []})
    text = empty.__pydantic_serializer__.to_json(empty)
    # The readings are the envelope's last field: its JSON ends with them, '[]}'.
    assert text.endswith(b"[]}")
    return b"".join((text[:-2], b",".join(readings), b"]}"))


class Batcher:
    def __init__(
        self,
        site: str,
        agent: str,
        outbox: Outbox,
        disk: DiskFault,
        live: asyncio.Queue[int],
        changed: Callable[[], None],
    ) -> None:
        """`live` gets the sequence number of every committed batch; `changed` is called
        when the outbox dropped batches (a status is due)."""
        self._site = site
        self._agent = agent
        self._outbox = outbox
        self.disk = disk
        self._live = live
        self._changed = changed
        self._queue: asyncio.Queue[Read | bytes] = asyncio.Queue()
        self._held: list[Read | bytes] = []
        # Batches of readings the outbox could not take yet, oldest first.
        self._unsaved: list[list[bytes]] = []
        self._unsaved_backoff = Backoff(start=0.2, ceiling=10.0)
        self.unsaved_dropped = 0
        self.refused = 0
        """Reads the contract refused when they were written (none a poller makes)."""

    def submit(self, reading: Read | MeterReading) -> None:
        """A poller's read, or a reading made elsewhere (tools, tests)."""
        self._queue.put_nowait(reading if isinstance(reading, Read) else reading_json(reading))

    def _keep(self, readings: list[Read | bytes]) -> None:
        """The readings, as JSON, join the batches waiting for the outbox; a read the
        contract refuses is logged and left out, the others of the batch kept."""
        written: list[bytes] = []
        for reading in readings:
            if isinstance(reading, bytes):
                written.append(reading)
                continue
            try:
                written.append(reading.json())
            except ValueError as exc:
                self.refused += 1
                log.error(
                    "reading refused by the contract, left out",
                    extra=fields(meter=reading.meter, reason=str(exc)[:300]),
                )
        if written:
            self._unsaved.append(written)

    def _commit(self, readings: list[bytes]) -> int:
        def build(seq: int) -> bytes:
            return batch_json(self._site, self._agent, seq, readings)

        seq, dropped = self._outbox.add(build, len(readings))
        self.report_dropped(dropped)
        self._live.put_nowait(seq)
        return seq

    def report_dropped(self, dropped: Dropped) -> None:
        if not dropped.batches:
            return
        self._changed()
        log.warning(
            "outbox full: oldest batches dropped",
            extra=fields(
                batches=dropped.batches,
                readings=dropped.readings,
                first_seq=dropped.first_seq,
                last_seq=dropped.last_seq,
                dropped_total=self._outbox.dropped_batches,
                depth=self._outbox.depth,
            ),
        )

    async def run(self) -> None:
        while True:
            # Held on the object, not a local: a shutdown during the linger commits them.
            self._held.append(await self._queue.get())
            await asyncio.sleep(BATCH_LINGER)
            # What came meanwhile goes now, in as many batches as it takes (none when a
            # shutdown took the readings meanwhile).
            while self._held or not self._queue.empty():
                while len(self._held) < MAX_READINGS_PER_BATCH and not self._queue.empty():
                    self._held.append(self._queue.get_nowait())
                readings, self._held = self._held, []
                self._keep(readings)
                while (error := self._save_unsaved()) is not None:
                    delay = self._unsaved_backoff.next_delay()
                    self.disk.failed(error, delay)
                    await asyncio.sleep(delay)
                    self._take_queued()
                self._unsaved_backoff.reset()

    def _save_unsaved(self) -> BaseException | None:
        """Commit the batches waiting for the outbox, oldest first; the error if it cannot."""
        while self._unsaved:
            try:
                self._commit(self._unsaved[0])
            except OutboxError as exc:
                return exc.__cause__ or exc
            self._unsaved.pop(0)
        self.disk.ok()
        return None

    def _take_queued(self) -> None:
        """While the outbox cannot be written: the readings that came meanwhile join the
        waiting batches, and beyond MAX_UNSAVED_READINGS the oldest are dropped, counted."""
        while not self._queue.empty():
            readings = [self._queue.get_nowait()]
            while len(readings) < MAX_READINGS_PER_BATCH and not self._queue.empty():
                readings.append(self._queue.get_nowait())
            self._keep(readings)
        dropped = 0
        while sum(len(b) for b in self._unsaved) > MAX_UNSAVED_READINGS:
            dropped += len(self._unsaved.pop(0))
        if dropped:
            self.unsaved_dropped += dropped
            log.warning(
                "outbox cannot be written: oldest readings in memory dropped",
                extra=fields(readings=dropped, dropped_total=self.unsaved_dropped),
            )

    def commit_queued(self) -> None:
        """On shutdown: whatever readings are still in memory go to the outbox."""
        readings, self._held = self._held, []
        while not self._queue.empty():
            readings.append(self._queue.get_nowait())
        for start in range(0, len(readings), MAX_READINGS_PER_BATCH):
            self._keep(readings[start : start + MAX_READINGS_PER_BATCH])
        error = self._save_unsaved()
        if error is not None:
            lost = sum(len(b) for b in self._unsaved)
            log.error(
                "outbox cannot be written: readings in memory lost at shutdown",
                extra=fields(readings=lost, path=str(self._outbox.path), error=str(error)),
            )
            self.unsaved_dropped += lost
            self._unsaved = []
