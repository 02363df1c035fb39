"""Batches validated readings into store writes, and acknowledges them once durable.

A write is sent once `max_values` wait or the oldest waiting message has waited
`max_delay` (0: as soon as a write may start, so the earlier writes' durations are the
batching window and batches grow with the load by themselves), in writes of at most
`max_values` values, each acknowledged as soon as it is durable. Up to `concurrency`
writes are in flight at once (a store answers slower than it works, and one at a time
its answer time bounds the rate); whatever they finish in, they are settled (sequence
numbers saved, messages spooled or dead-lettered, acknowledged) one after another in the
order they started, as if they had been sent one at a time. When the store cannot
take it (unreachable, overloaded), the messages go to the local spool on disk instead,
and so does every message after them until the spool has been replayed to the store,
oldest first: a message is acknowledged to the broker only once it is in the store, in
the spool, or in the dead letters. A batch the store refuses as invalid goes to the dead
letters with the store's reason, and the others of the same write are still stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from collector.batch import Batch
from collector.config import WriteSettings
from collector.deadletters import DeadLetters
from collector.sequences import SequenceTracker, see_all
from collector.spool import Spool, Spooled, SpoolError
from collector.stores import Store, StoreError, StoreRejected
from collector.validate import describe
from greengauge.common.backoff import Backoff
from greengauge.common.files import DiskFault, write_atomically
from greengauge.common.logs import fields
from greengauge.contract import ReadingBatch

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
    batch: Batch
    values: int
    ack: Callable[[], None]


def _noop() -> None:
    pass


class _Held(Exception):
    """Messages `left` could not be made durable (the spool cannot be written)."""

    def __init__(self, durable: list[Received], left: list[Received], error: SpoolError) -> None:
        super().__init__(str(error))
        self.durable = durable
        self.left = left
        self.error = error


def _first_chunk(received: list[Received], max_values: int) -> int:
    """How many of the first messages make one write: at most `max_values` values, or
    one bigger message alone."""
    values = 0
    for count, item in enumerate(received):
        values += item.values
        if values > max_values:
            return max(count, 1)
    return len(received)


@dataclass(frozen=True, slots=True)
class _Write:
    """Consecutive messages whose store write has started."""

    received: list[Received]
    attempt: asyncio.Task[StoreError | StoreRejected | None] | None
    """the write, and what went wrong with it; None: behind the spool, so spooled"""

    @property
    def finished(self) -> bool:
        return self.attempt is None or self.attempt.done()


class BatchWriter:
    def __init__(
        self,
        store: Store,
        settings: WriteSettings,
        dead_letters: DeadLetters,
        spool: Spool,
        sequences: SequenceTracker,
        sequences_file: Path,
        stored: Callable[[Sequence[Batch]], Awaitable[None]] | None = None,
    ) -> None:
        """`stored`, when given, is told of the batches once durable, before their acks,
        instead of tracking their sequence numbers here (collector.replicas); when it
        raises ConnectionError (stopping) the batches stay unacknowledged."""
        self._store = store
        self._settings = settings
        self._dead_letters = dead_letters
        self._spool = spool
        self._sequences = sequences
        self._sequences_file = sequences_file
        self._stored = stored
        self._pending: list[Received] = []
        self._pending_values = 0
        # Writes started, oldest first: settled in this order.
        self._inflight: deque[_Write] = deque()
        self._oldest = 0.0  # when the oldest pending message arrived (monotonic)
        self._waiting = asyncio.Event()
        self._full = asyncio.Event()
        self._replay_backoff = Backoff(start=0.2, ceiling=10.0)
        self._replay_at = 0.0
        # The spool's disk full or read-only: pending messages wait (unacknowledged).
        self.disk = DiskFault("spool", spool.path)
        self.sequences_disk = DiskFault("sequences", sequences_file)
        self._retry_backoff = Backoff(start=0.2, ceiling=10.0)
        self._retry_at = 0.0
        # Spooled messages handed to the dead letters: id -> durable there yet.
        self._handed: dict[int, bool] = {}
        # A spool left by an earlier run is replayed like one of this run.
        self._spool_started: float | None = time.monotonic() if spool.depth else None
        self.values_written = 0
        self.writes = 0
        self.store_faults = 0

    def add(
        self, topic: str, payload: bytes, batch: Batch, ack: Callable[[], None] = _noop
    ) -> None:
        values = batch.size
        if not self._pending:
            self._oldest = time.monotonic()
            self._waiting.set()
        self._pending.append(Received(topic, payload, batch, values, ack))
        self._pending_values += values
        if self._pending_values >= self._settings.max_values:
            self._full.set()

    @property
    def pending(self) -> int:
        """Messages not durable yet: waiting for a write, or in one."""
        return len(self._pending) + sum(len(w.received) for w in self._inflight)

    @property
    def spooled(self) -> int:
        return self._spool.depth

    async def run(self) -> None:
        while True:
            due = await self._due()
            await self._settle_finished()
            if due:
                self._start()
            await self.replay()

    async def _due(self) -> bool:
        """Wait until pending messages are due for a write that may start now (True), or
        the oldest write in flight has finished, or a spool replay may be (False)."""
        if self._inflight and self._inflight[0].finished:
            return False
        if len(self._inflight) >= self._settings.concurrency:
            await self._until_oldest_finished()
            return False
        # Idle, the spool's retries still need their turns.
        if not await self._until(self._waiting, REPLAY_CHECK_INTERVAL):
            return False
        held_back = self._retry_at - time.monotonic()
        if held_back > 0:
            await asyncio.sleep(held_back)
            return True
        linger = self._oldest + self._settings.max_delay - time.monotonic()
        if self._pending and linger > 0:
            await self._until(self._full, linger)
            # A write that finished first is settled first; the linger goes on after.
            return not (self._inflight and self._inflight[0].finished) or self._full.is_set()
        return True

    async def _until(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for `event`, at most `seconds` or until the oldest write in flight
        finishes; whether the event is set."""
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        waits: set[asyncio.Future[Any]] = {waiter}
        if self._inflight and self._inflight[0].attempt is not None:
            waits.add(self._inflight[0].attempt)
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return event.is_set()

    async def _until_oldest_finished(self) -> None:
        attempt = self._inflight[0].attempt
        if attempt is not None:
            await asyncio.wait([attempt])

    def _start(self) -> None:
        """Start writes for what is pending, oldest first, while fewer than `concurrency`
        are in flight; messages behind the spool go to it, in order, without a write."""
        while self._pending and len(self._inflight) < self._settings.concurrency:
            count = _first_chunk(self._pending, self._settings.max_values)
            taken, self._pending = self._pending[:count], self._pending[count:]
            self._pending_values -= sum(r.values for r in taken)
            attempt = None if self._spool.depth else asyncio.create_task(self._attempt(taken))
            self._inflight.append(_Write(taken, attempt))
        if not self._pending:
            self._waiting.clear()
        if self._pending_values < self._settings.max_values:
            self._full.clear()

    async def flush(self) -> None:
        """Make everything pending durable (store, spool or dead letters), then ack it.

        What cannot be made durable now (the spool's disk is full or read-only) goes back
        to the front of the queue, unacknowledged, and is tried again after a backoff.
        """
        while self._pending or self._inflight:
            self._start()
            if not await self._settle_oldest():
                return

    async def _settle_finished(self) -> bool:
        """Settle the writes in flight that have finished, in the order they started, up
        to the first one still running; False when messages had to be held back."""
        while self._inflight and self._inflight[0].finished:
            if not await self._settle_oldest():
                return False
        return True

    async def _settle_oldest(self) -> bool:
        """Settle the oldest write in flight, once finished; False when messages had to be
        held back (the spool cannot be written)."""
        write = self._inflight.popleft()
        try:
            durable = await self._make_durable(write)
        except _Held as held:
            await self._settle(held.durable)
            # Later writes may have stored theirs already: written again, they are stored
            # once (the Store contract), and the order of the acks is kept.
            later = [r for w in self._inflight for r in w.received]
            self._inflight.clear()
            self._hold_back(held.left + later, held.error)
            return False
        await self._settle(durable)
        if self.disk.failing:
            self._retry_backoff.reset()
            self.disk.ok()
        return True

    def _hold_back(self, held: list[Received], error: SpoolError) -> None:
        self._pending = held + self._pending
        self._pending_values = sum(r.values for r in self._pending)
        delay = self._retry_backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self.disk.failed(error.__cause__ or error, delay)
        self._waiting.set()

    async def _make_durable(self, write: _Write) -> list[Received]:
        """The write's messages now durable (store, spool, or handed to the dead letters)."""
        taken = write.received
        if write.attempt is None:
            # The spool is replayed first, so newer messages queue behind it, in order.
            self._to_spool(taken, [])
            return taken
        failed = await write.attempt
        if isinstance(failed, StoreRejected):
            return await self._one_by_one(taken, failed.reason)
        if isinstance(failed, StoreError):
            if not self.disk.failing:  # else said once already, and retried
                log.warning(
                    "store unavailable: spooling to disk",
                    extra=fields(reason=str(failed), spool=str(self._spool.path)),
                )
            self._to_spool(taken, [])
        return taken

    async def _attempt(self, taken: Sequence[Received]) -> StoreError | StoreRejected | None:
        """One write of `taken`, and what went wrong with it (settled later, in order)."""
        try:
            await self._write(taken)
        except (StoreError, StoreRejected) as exc:
            return exc
        return None

    async def _write(self, received: Sequence[Received]) -> None:
        started = time.perf_counter()
        written = await self._store_write([r.batch for r in received])
        self.values_written += written
        self.writes += 1
        log.debug(
            "stored",
            extra=fields(values=written, ms=f"{(time.perf_counter() - started) * 1000:.1f}"),
        )

    async def _store_write(self, batches: list[Batch]) -> int:
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

    async def _one_by_one(self, taken: list[Received], reason: str) -> list[Received]:
        """One bad message must not take the good ones with it: write them one by one."""
        if len(taken) == 1:
            return [self._to_dead_letters(taken[0], f"store refused: {reason}")]
        durable: list[Received] = []
        for index, received in enumerate(taken):
            try:
                await self._write([received])
            except StoreRejected as exc:
                durable.append(self._to_dead_letters(received, f"store refused: {exc.reason}"))
                continue
            except StoreError:
                self._to_spool(taken[index:], durable)
                return durable + taken[index:]
            durable.append(received)
        return durable

    def _to_dead_letters(self, received: Received, reason: str) -> Received:
        """Hand the message and its ack to the dead letters, which ack once it is durable
        there; what is left is settled (its sequence number seen) without an ack."""
        self._dead_letters.add(received.topic, received.payload, reason, received.ack)
        return replace(received, ack=_noop)

    def _to_spool(self, received: list[Received], durable: list[Received]) -> None:
        """Spool `received`; raise _Held (with the `durable` ones) when the spool cannot."""
        try:
            self._spool.append([(r.topic, r.payload, r.values) for r in received])
        except SpoolError as exc:
            raise _Held(durable, received, exc) from exc
        if self._spool_started is None:
            self._spool_started = time.monotonic()

    async def _settle(self, durable: Sequence[Received]) -> None:
        """Track the sequence numbers of durable messages, then acknowledge them, in order."""
        if not durable:
            return
        if self._stored is not None:
            # A replica: every replica's tracker learns of the batches from the notice.
            try:
                await self._stored([r.batch for r in durable])
            except ConnectionError:
                return  # stopping: unacknowledged, so delivered again (a repeat)
            for received in durable:
                received.ack()
            return
        see_all(self._sequences, ((r.batch.site, r.batch.agent, r.batch.seq) for r in durable))
        # Saved before the acks: a restart then never reports gaps for acked batches. The
        # fsync runs off the event loop, which meanwhile keeps receiving. The messages are
        # durable already: a disk that cannot take this file costs at most false gap
        # reports after a restart, so they are acknowledged anyway.
        try:
            await asyncio.to_thread(
                write_atomically, self._sequences_file, self._sequences.to_json()
            )
        except OSError as exc:
            self.sequences_disk.failed(exc)
        else:
            self.sequences_disk.ok()
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
            written = -1
            try:
                batches = self._parse(chunk)
                if batches is not None:
                    try:
                        written = await self._store_write(batches)
                        self._spool.remove_through(chunk[-1].id)
                    except StoreRejected:
                        batches = None
                if batches is None:
                    written = await self._replay_one_by_one(chunk)
            except (StoreError, SpoolError) as exc:
                # A spool that cannot forget what the store has: replayed again, harmlessly.
                reason = str(exc)
            if written < 0:
                delay = self._replay_backoff.next_delay()
                self._replay_at = time.monotonic() + delay
                log.info(
                    "spool replay paused",
                    extra=fields(
                        reason=reason, spooled=self._spool.depth, retry_in=f"{delay:.1f}s"
                    ),
                )
                return
            self.values_written += written
            self.writes += 1
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

    @staticmethod
    def _parse(chunk: Sequence[Spooled]) -> list[Batch] | None:
        """The chunk's batches, or None when one is invalid (then replayed one by one)."""
        try:
            return [Batch.of(ReadingBatch.model_validate_json(item.payload)) for item in chunk]
        except ValidationError:  # validated before it was spooled: never expected
            return None

    async def _replay_one_by_one(self, chunk: Sequence[Spooled]) -> int:
        """A refused chunk: store the good messages, dead-letter the bad; -1 if unreachable,
        or while a dead letter is not durable yet (it stays in the spool until it is)."""
        written = 0
        for item in chunk:
            try:
                batch = Batch.of(ReadingBatch.model_validate_json(item.payload))
            except ValidationError as exc:
                refused: str | None = f"spooled message invalid: {describe(exc)}"
            else:
                try:
                    written += await self._store_write([batch])
                    refused = None
                except StoreRejected as exc:
                    refused = f"store refused: {exc.reason}"
                except StoreError:
                    return -1
            if refused is not None and not self._spooled_dead_letter(item, refused):
                return -1
            self._spool.remove_through(item.id)
        return written

    def _spooled_dead_letter(self, item: Spooled, reason: str) -> bool:
        """Dead-letter a spooled message once; whether the entry is durable yet."""
        if item.id not in self._handed:
            self._handed[item.id] = False

            def durable() -> None:
                self._handed[item.id] = True

            self._dead_letters.add(item.topic, item.payload, reason, durable)
            self._dead_letters.write_waiting()  # now: the replay goes on only once it is
        if not self._handed[item.id]:
            return False
        del self._handed[item.id]
        return True
