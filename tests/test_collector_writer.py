"""The batch writer: ack only once durable; spool while the store is down, replay in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from collector.batch import Batch
from collector.config import WriteSettings
from collector.deadletters import DeadLetters
from collector.sequences import SequenceTracker, load
from collector.spool import Spool
from collector.stores import StoreError, StoreRejected
from collector.writer import BatchWriter
from greengauge.contract import MeterReading, Quantity, ReadingBatch


class FakeStore:
    def __init__(self) -> None:
        self.up = True
        self.refuse: set[int] = set()
        self.crash: set[int] = set()
        self.batches: list[int] = []
        self.writes: list[list[int]] = []

    def write(self, batches: Sequence[Batch]) -> int:
        if not self.up:
            raise StoreError("connection refused")
        if any(b.seq in self.refuse for b in batches):
            raise StoreRejected("HTTP 400: bad line")
        if any(b.seq in self.crash for b in batches):
            raise OverflowError("a bug the store did not foresee")
        self.batches += [b.seq for b in batches]
        self.writes.append([b.seq for b in batches])
        return sum(len(r.values) for b in batches for r in b.readings)

    def close(self) -> None:
        pass


def batch(seq: int) -> ReadingBatch:
    reading = MeterReading(
        meter="m1",
        ts=datetime(2026, 1, 1, 0, 0, seq % 60, tzinfo=UTC),
        values={Quantity.POWER_ACTIVE: float(seq)},
    )
    return ReadingBatch(site="s", agent="a", seq=seq, readings=[reading])


def make(
    tmp_path: Path, store: FakeStore, settings: WriteSettings | None = None
) -> tuple[BatchWriter, list[int], Spool]:
    spool = Spool(tmp_path / "spool.sqlite")
    writer = BatchWriter(
        store,
        settings or WriteSettings(max_values=3),
        DeadLetters(tmp_path / "dead.jsonl"),
        spool,
        SequenceTracker(),
        tmp_path / "sequences.json",
    )
    return writer, [], spool


def add(writer: BatchWriter, acked: list[int], seq: int) -> None:
    b = batch(seq)
    writer.add(
        "greengauge/v1/s/a/readings",
        b.model_dump_json().encode(),
        Batch.of(b),
        lambda: acked.append(seq),
    )


async def test_stored_batches_are_acked_after_the_write(tmp_path: Path) -> None:
    store = FakeStore()
    writer, acked, _ = make(tmp_path, store)
    add(writer, acked, 0)
    add(writer, acked, 1)
    assert acked == []
    await writer.flush()
    assert (store.batches, acked) == ([0, 1], [0, 1])
    assert load(tmp_path / "sequences.json").agents[("s", "a")].ranges == [[0, 1]]


async def test_store_down_spools_and_acks_then_replays_in_order(tmp_path: Path) -> None:
    store = FakeStore()
    writer, acked, spool = make(tmp_path, store)
    store.up = False
    for seq in range(4):
        add(writer, acked, seq)
        await writer.flush()
        await writer.replay()
    assert acked == [0, 1, 2, 3]  # durable in the spool
    assert spool.depth == 4 and store.batches == []
    store.up = True
    add(writer, acked, 4)
    await writer.flush()  # behind the spool, not before it
    assert spool.depth == 5 and store.batches == []
    writer._replay_at = 0.0  # skip the backoff wait
    await writer.replay()
    await writer.replay()
    assert store.batches == [0, 1, 2, 3, 4]
    assert spool.depth == 0
    add(writer, acked, 5)
    await writer.flush()
    assert store.batches[-1] == 5 and spool.depth == 0


async def test_a_refused_batch_goes_to_the_dead_letters_and_the_rest_is_stored(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    store.refuse = {1}
    writer, acked, _ = make(tmp_path, store)
    for seq in range(3):
        add(writer, acked, seq)
    await writer.flush()
    assert store.batches == [0, 2]
    # The dead letters ack theirs as soon as durable; the broker still gets the PUBACKs
    # in order (collector.acks.OrderedAcks).
    assert sorted(acked) == [0, 1, 2]
    assert "HTTP 400: bad line" in (tmp_path / "dead.jsonl").read_text()


async def test_an_unforeseen_store_error_dead_letters_only_that_batch_live_or_replayed(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    store.crash = {1, 4}
    writer, acked, spool = make(tmp_path, store)
    for seq in range(3):
        add(writer, acked, seq)
    await writer.flush()  # the writer goes on: no exception out of it
    assert store.batches == [0, 2]
    # The dead letter acks its message itself, once durable (OrderedAcks keeps the order).
    assert sorted(acked) == [0, 1, 2]
    store.up = False
    for seq in range(3, 6):
        add(writer, acked, seq)
    await writer.flush()
    assert spool.depth == 3
    store.up = True
    await writer.replay()
    assert store.batches == [0, 2, 3, 5] and spool.depth == 0
    reasons = (tmp_path / "dead.jsonl").read_text()
    assert reasons.count("OverflowError: a bug the store did not foresee") == 2
    assert writer.store_faults >= 2


async def test_a_flush_writes_at_most_max_values_at_once_and_acks_each_write(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    writer, acked, _ = make(tmp_path, store, WriteSettings(max_values=3, concurrency=1))
    acked_at_writes: list[list[int]] = []
    store_write = store.write

    def write(batches: Sequence[Batch]) -> int:
        acked_at_writes.append(list(acked))
        return store_write(batches)

    store.write = write  # type: ignore[method-assign]
    for seq in range(7):
        add(writer, acked, seq)
    await writer.flush()
    assert store.writes == [[0, 1, 2], [3, 4, 5], [6]]
    # Each write is acknowledged once stored, not after the last one.
    assert acked_at_writes == [[], [0, 1, 2], [0, 1, 2, 3, 4, 5]]
    assert acked == list(range(7))


async def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not met in time"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_without_max_delay_a_message_is_written_as_soon_as_the_writer_is_free(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    writer, acked, _ = make(tmp_path, store, WriteSettings(max_values=100, max_delay=0))
    task = asyncio.create_task(writer.run())
    try:
        add(writer, acked, 0)
        await wait_until(lambda: acked == [0])
        assert store.writes == [[0]]
    finally:
        task.cancel()


async def test_max_delay_lets_messages_join_the_oldest_ones_write(tmp_path: Path) -> None:
    store = FakeStore()
    writer, acked, _ = make(tmp_path, store, WriteSettings(max_values=100, max_delay=0.5))
    task = asyncio.create_task(writer.run())
    try:
        add(writer, acked, 0)
        await asyncio.sleep(0.1)
        add(writer, acked, 1)
        waited = await wait_until(lambda: acked == [0, 1])
        assert store.writes == [[0, 1]]
        assert waited >= 0.2  # the oldest waited its max_delay (0.5 s from the first add)
    finally:
        task.cancel()
