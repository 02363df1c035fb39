"""Batches validated readings into store writes, and acknowledges them once durable.

A write is sent once `max_values` wait or the oldest waiting message has waited
`max_delay` (0: as soon as the writer is free, so the previous write's duration is the
batching window and batches grow with the load by themselves), in writes of at most
`max_values` values, each acknowledged as soon as it is durable. When the store cannot
take it (unreachable, overloaded), the messages go to the local spool on disk instead,
and so does every message after them until the spool has been replayed to the store,
oldest first: a message is acknowledged to the broker only once it is in the store, in
the spool, or in the dead letters. A batch the store refuses as invalid goes to the dead
letters with the store's reason, and the others of the same write are still stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from agent.backoff import Backoff
from agent.files import write_atomically
from agent.logs import fields
from agent.wire import ReadingBatch
from collector.config import WriteSettings
from collector.deadletters import DeadLetters
from collector.sequences import SequenceTracker
from collector.spool import Spool, Spooled
from collector.stores import Store, StoreError, StoreRejected

log = logging.getLogger(__name__)

# Spooled messages replayed per turn of the writer, so new messages keep being
# spooled and acknowledged while a long spool drains.
REPLAY_CHUNKS_PER_TURN: Final = 4
# How often an idle writer looks at the spool (its retries have their own backoff).
REPLAY_CHECK_INTERVAL: Final = 0.2


@dataclass(frozen=True, slots=True)
class Received:
    """A valid batch with the message it came in, kept for the spool and the dead letters."""

    topic: str
    payload: bytes
    batch: ReadingBatch
    values: int
    ack: Callable[[], None]


def _noop() -> None:
    pass


def _chunks(received: list[Received], max_values: int) -> list[list[Received]]:
    """Consecutive runs of at most `max_values` values (a bigger message alone)."""
    chunks: list[list[Received]] = []
    values = 0
    for item in received:
        if not chunks or values + item.values > max_values:
            chunks.append([])
            values = 0
        chunks[-1].append(item)
        values += item.values
    return chunks


class BatchWriter:
    def __init__(
        self,
        store: Store,
        settings: WriteSettings,
        dead_letters: DeadLetters,
        spool: Spool,
        sequences: SequenceTracker,
        sequences_file: Path,
    ) -> None:
        self._store = store
        self._settings = settings
        self._dead_letters = dead_letters
        self._spool = spool
        self._sequences = sequences
        self._sequences_file = sequences_file
        self._pending: list[Received] = []
        self._pending_values = 0
        self._oldest = 0.0  # when the oldest pending message arrived (monotonic)
        self._waiting = asyncio.Event()
        self._full = asyncio.Event()
        self._replay_backoff = Backoff(start=0.2, ceiling=10.0)
        self._replay_at = 0.0
        # A spool left by an earlier run is replayed like one of this run.
        self._spool_started: float | None = time.monotonic() if spool.depth else None
        self.values_written = 0
        self.writes = 0
        self.store_faults = 0

    def add(
        self, topic: str, payload: bytes, batch: ReadingBatch, ack: Callable[[], None] = _noop
    ) -> None:
        values = sum(len(r.values) for r in batch.readings)
        if not self._pending:
            self._oldest = time.monotonic()
            self._waiting.set()
        self._pending.append(Received(topic, payload, batch, values, ack))
        self._pending_values += values
        if self._pending_values >= self._settings.max_values:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def spooled(self) -> int:
        return self._spool.depth

    async def run(self) -> None:
        while True:
            await self._due()
            await self.flush()
            await self.replay()

    async def _due(self) -> None:
        """Return once pending messages are due for a write, or a spool replay is."""
        with contextlib.suppress(TimeoutError):
            # Idle, the spool's retries still need their turns.
            await asyncio.wait_for(self._waiting.wait(), REPLAY_CHECK_INTERVAL)
        linger = self._oldest + self._settings.max_delay - time.monotonic()
        if self._pending and linger > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), linger)

    async def flush(self) -> None:
        """Make everything pending durable (store, spool or dead letters), then ack it."""
        self._full.clear()
        self._waiting.clear()
        taken, self._pending, self._pending_values = self._pending, [], 0
        for chunk in _chunks(taken, self._settings.max_values):
            await self._make_durable(chunk)
            await self._settle(chunk)

    async def _make_durable(self, taken: list[Received]) -> None:
        if self._spool.depth:
            # The spool is replayed first, so newer messages queue behind it, in order.
            self._to_spool(taken)
            return
        try:
            await self._write(taken)
        except StoreRejected as exc:
            await self._one_by_one(taken, exc.reason)
        except StoreError as exc:
            log.warning(
                "store unavailable: spooling to disk",
                extra=fields(reason=str(exc), spool=str(self._spool.path)),
            )
            self._to_spool(taken)

    async def _write(self, received: Sequence[Received]) -> None:
        started = time.perf_counter()
        written = await self._store_write([r.batch for r in received])
        self.values_written += written
        self.writes += 1
        log.debug(
            "stored",
            extra=fields(values=written, ms=f"{(time.perf_counter() - started) * 1000:.1f}"),
        )

    async def _store_write(self, batches: list[ReadingBatch]) -> int:
        """The store's write, where an error it does not foresee counts as a refusal: the
        messages are then written one by one and only the failing ones dead-lettered,
        instead of the exception stopping the writer (and, at the restart, again)."""
        try:
            return await asyncio.to_thread(self._store.write, batches)
        except (StoreError, StoreRejected):
            raise
        except Exception as exc:
            self.store_faults += 1
            log.exception("store write failed unexpectedly", extra=fields(batches=len(batches)))
            raise StoreRejected(f"{type(exc).__name__}: {exc}") from exc

    async def _one_by_one(self, taken: list[Received], reason: str) -> None:
        """One bad message must not take the good ones with it: write them one by one."""
        if len(taken) == 1:
            self._dead_letters.add(taken[0].topic, taken[0].payload, f"store refused: {reason}")
            return
        for index, received in enumerate(taken):
            try:
                await self._write([received])
            except StoreRejected as exc:
                self._dead_letters.add(
                    received.topic, received.payload, f"store refused: {exc.reason}"
                )
            except StoreError:
                self._to_spool(taken[index:])
                return

    def _to_spool(self, received: Sequence[Received]) -> None:
        self._spool.append([(r.topic, r.payload, r.values) for r in received])
        if self._spool_started is None:
            self._spool_started = time.monotonic()

    async def _settle(self, durable: Sequence[Received]) -> None:
        """Track the sequence numbers of durable messages, then acknowledge them, in order."""
        repeats: Counter[tuple[str, str]] = Counter()
        for received in durable:
            batch = received.batch
            seen = self._sequences.see(batch.site, batch.agent, batch.seq)
            if seen.repeat:
                repeats[(batch.site, batch.agent)] += 1
            elif seen.epoch:
                log.warning(
                    "sequence restarted: seq far from every earlier one, counting anew",
                    extra=fields(
                        site=batch.site,
                        agent=batch.agent,
                        seq=batch.seq,
                        max_jump=self._sequences.max_jump,
                    ),
                )
            elif seen.gap:
                log.warning(
                    "sequence gap: batches not received (yet)",
                    extra=fields(
                        site=batch.site,
                        agent=batch.agent,
                        seq=batch.seq,
                        missing=seen.gap,
                        missing_now=self._sequences.agents[(batch.site, batch.agent)].missing(),
                    ),
                )
        for (site, agent), count in repeats.items():
            log.info(
                "sequence repeats: batches delivered again",
                extra=fields(site=site, agent=agent, batches=count),
            )
        # Saved before the acks: a restart then never reports gaps for acked batches. The
        # fsync runs off the event loop, which meanwhile keeps receiving.
        await asyncio.to_thread(write_atomically, self._sequences_file, self._sequences.to_json())
        for received in durable:
            received.ack()

    async def replay(self) -> None:
        """Send spooled messages to the store, oldest first, while it takes them."""
        for _ in range(REPLAY_CHUNKS_PER_TURN):
            if not self._spool.depth or time.monotonic() < self._replay_at:
                return
            chunk = self._spool.oldest(self._settings.max_values)
            started = time.perf_counter()
            reason = "store unreachable while replaying one by one"
            try:
                written = await self._store_write(self._parse(chunk))
            except StoreRejected:
                written = await self._replay_one_by_one(chunk)
            except StoreError as exc:
                written = -1
                reason = str(exc)
            if written < 0:
                delay = self._replay_backoff.next_delay()
                self._replay_at = time.monotonic() + delay
                log.info(
                    "store still unavailable",
                    extra=fields(
                        reason=reason, spooled=self._spool.depth, retry_in=f"{delay:.1f}s"
                    ),
                )
                return
            self.values_written += written
            self.writes += 1
            self._spool.remove_through(chunk[-1].id)
            self._replay_backoff.reset()
            log.debug(
                "replayed from spool",
                extra=fields(
                    messages=len(chunk),
                    values=written,
                    ms=f"{(time.perf_counter() - started) * 1000:.1f}",
                ),
            )
            if not self._spool.depth and self._spool_started is not None:
                log.info(
                    "spool replayed: store up to date",
                    extra=fields(seconds=f"{time.monotonic() - self._spool_started:.1f}"),
                )
                self._spool_started = None

    def _parse(self, chunk: Sequence[Spooled]) -> list[ReadingBatch]:
        batches: list[ReadingBatch] = []
        for item in chunk:
            try:
                batches.append(ReadingBatch.model_validate_json(item.payload))
            except ValidationError as exc:  # validated before it was spooled: never expected
                self._dead_letters.add(item.topic, item.payload, f"spooled message invalid: {exc}")
        return batches

    async def _replay_one_by_one(self, chunk: Sequence[Spooled]) -> int:
        """A refused chunk: store the good messages, dead-letter the bad; -1 if unreachable."""
        written = 0
        for item in chunk:
            try:
                written += await self._store_write(self._parse([item]))
            except StoreRejected as exc:
                self._dead_letters.add(item.topic, item.payload, f"store refused: {exc.reason}")
            except StoreError:
                return -1
            self._spool.remove_through(item.id)
        return written
