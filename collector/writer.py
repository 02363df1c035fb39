"""Batches validated readings into store writes: flushed by size or age, retried with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from agent.backoff import Backoff
from agent.logs import fields
from agent.wire import ReadingBatch
from collector.config import WriteSettings
from collector.deadletters import DeadLetters
from collector.stores import Store, StoreError, StoreRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """A valid batch with the message it came in, kept for the dead letters."""

    topic: str
    payload: bytes
    batch: ReadingBatch
    values: int


class BatchWriter:
    def __init__(self, store: Store, settings: WriteSettings, dead_letters: DeadLetters) -> None:
        self._store = store
        self._settings = settings
        self._dead_letters = dead_letters
        self._pending: list[Received] = []
        self._pending_values = 0
        self._full = asyncio.Event()
        self.values_written = 0
        self.writes = 0

    def add(self, topic: str, payload: bytes, batch: ReadingBatch) -> None:
        values = sum(len(r.values) for r in batch.readings)
        self._pending.append(Received(topic, payload, batch, values))
        self._pending_values += values
        if self._pending_values >= self._settings.max_values:
            self._full.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._settings.max_delay)
            await self.flush()

    async def flush(self) -> None:
        """Write everything pending, retrying until the store takes or refuses it."""
        self._full.clear()
        if not self._pending:
            return
        taken, self._pending, self._pending_values = self._pending, [], 0
        backoff = Backoff(start=0.2, ceiling=10.0)
        while True:
            started = time.perf_counter()
            try:
                written = await asyncio.to_thread(self._store.write, [r.batch for r in taken])
            except StoreRejected as exc:
                await self._reject(taken, exc.reason)
                return
            except StoreError as exc:
                delay = backoff.next_delay()
                log.warning(
                    "store write failed",
                    extra=fields(
                        reason=str(exc),
                        values=sum(r.values for r in taken),
                        retry_in=f"{delay:.1f}s",
                    ),
                )
                await asyncio.sleep(delay)
                continue
            self.values_written += written
            self.writes += 1
            log.debug(
                "stored",
                extra=fields(values=written, ms=f"{(time.perf_counter() - started) * 1000:.1f}"),
            )
            return

    async def _reject(self, taken: list[Received], reason: str) -> None:
        if len(taken) == 1:
            self._dead_letters.add(taken[0].topic, taken[0].payload, f"store refused: {reason}")
            return
        # One bad message must not take the good ones with it: write them one by one.
        for received in taken:
            try:
                self.values_written += await asyncio.to_thread(self._store.write, [received.batch])
            except StoreRejected as exc:
                self._dead_letters.add(
                    received.topic, received.payload, f"store refused: {exc.reason}"
                )
            except StoreError:
                self._pending.append(received)
                self._pending_values += received.values
