"""Store writes in flight at once (`write.concurrency`): whatever order they finish in,
every message is acknowledged once, in the order it arrived, and only once it is durable
(stored or spooled, its sequence number saved; or in the dead letters), and nothing is
lost when a write in the middle fails."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import VictoriaMetrics
from test_store_influx import expected_series, store_for, stored_series

from collector.acks import OrderedAcks
from collector.batch import Batch
from collector.config import WriteSettings
from collector.deadletters import DeadLetters
from collector.sequences import SequenceTracker, load
from collector.spool import Spool
from collector.stores import Store, StoreError, StoreRejected
from collector.writer import BatchWriter
from greengauge.contract import MeterReading, Quantity, ReadingBatch

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOPIC = "greengauge/v1/s/a/readings"


def batch(seq: int) -> ReadingBatch:
    """Two readings of two values each, distinct per seq."""
    return ReadingBatch(
        site="s",
        agent="a",
        seq=seq,
        readings=[
            MeterReading(
                meter=f"m{meter}",
                ts=T0 + timedelta(seconds=seq),
                values={Quantity.POWER_ACTIVE: seq + 0.5, Quantity.VOLTAGE_L1: 230.0 + meter},
            )
            for meter in (1, 2)
        ],
    )


@dataclass
class Faults:
    """What the store does with a write holding a given seq (each at most `times` times)."""

    delay: dict[int, float] = field(default_factory=dict)
    unreachable: dict[int, int] = field(default_factory=dict)
    refused: set[int] = field(default_factory=set)


class FaultyStore:
    """Wraps a store: slows, fails or refuses chosen writes, in the writer's threads, and
    counts the writes in flight at once."""

    def __init__(self, store: Store, faults: Faults) -> None:
        self._store = store
        self._faults = faults
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.stored: set[int] = set()

    def write(self, batches: Sequence[Batch]) -> int:
        seqs = {b.seq for b in batches}
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            unreachable = [s for s in seqs if self._faults.unreachable.get(s, 0) > 0]
            for seq in unreachable:
                self._faults.unreachable[seq] -= 1
        try:
            time.sleep(max((self._faults.delay.get(s, 0.0) for s in seqs), default=0.0))
            if unreachable:
                raise StoreError(f"connection reset writing seq {unreachable}")
            if seqs & self._faults.refused:
                raise StoreRejected("HTTP 400: bad line")
            written = self._store.write(batches)
            with self._lock:
                self.stored |= seqs
            return written
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self._store.close()


class MemoryStore:
    def write(self, batches: Sequence[Batch]) -> int:
        return sum(r.size for b in batches for r in b.readings)

    def close(self) -> None:
        pass


@dataclass
class Harness:
    """A writer fed like the subscription feeds it: each message a ticket of OrderedAcks,
    so `released` is what the broker would get as PUBACKs, in that order."""

    writer: BatchWriter
    store: FaultyStore
    spool: Spool
    dead_letters: DeadLetters
    sequences_file: Path
    acks: OrderedAcks = field(default_factory=OrderedAcks)
    released: list[int] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    early: list[str] = field(default_factory=list)
    """acknowledgements that came before the message was durable (must stay empty)"""

    def add(self, seq: int) -> None:
        b = batch(seq)
        ticket = self.acks.received(mid=seq)

        def ack() -> None:
            self.check_durable(seq)
            self.acked.append(seq)
            self.released.extend(self.acks.done(ticket))

        self.writer.add(TOPIC, b.model_dump_json().encode(), Batch.of(b), ack)

    def check_durable(self, seq: int) -> None:
        dead = self.dead_letters.path.exists() and f'"seq\\":{seq},' in (
            self.dead_letters.path.read_text()
        )
        if dead:
            return  # the dead letters ack their own, once the entry is written
        if seq not in self.store.stored and not self.spooled(seq):
            self.early.append(f"seq {seq} acked before it was stored or spooled")
        saved = load(self.sequences_file).agents.get(("s", "a"))
        if saved is None or not any(lo <= seq <= hi for lo, hi in saved.ranges):
            self.early.append(f"seq {seq} acked before its sequence number was saved")

    def spooled(self, seq: int) -> bool:
        chunk = self.spool.oldest(1_000_000)
        return any(ReadingBatch.model_validate_json(c.payload).seq == seq for c in chunk)


def harness(tmp_path: Path, store: Store, faults: Faults, write: WriteSettings) -> Harness:
    faulty = FaultyStore(store, faults)
    spool = Spool(tmp_path / "spool.sqlite")
    dead_letters = DeadLetters(tmp_path / "dead.jsonl")
    writer = BatchWriter(
        faulty,
        write,
        dead_letters,
        spool,
        SequenceTracker(),
        tmp_path / "sequences.json",
    )
    return Harness(writer, faulty, spool, dead_letters, tmp_path / "sequences.json")


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "condition not met in time"
        await asyncio.sleep(0.005)


async def run_through(h: Harness, seqs: Sequence[int], gap: float = 0.0) -> None:
    """Feed `seqs` to the running writer, `gap` seconds apart; return once every one is
    released and the spool has been replayed."""
    task = asyncio.create_task(h.writer.run())
    try:
        for seq in seqs:
            h.add(seq)
            await asyncio.sleep(gap)
        await until(lambda: len(h.released) == len(seqs))
        h.writer._replay_at = 0.0  # skip the replay's backoff
        await until(lambda: h.spool.depth == 0)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.fixture
def vm_store(victoria_metrics: VictoriaMetrics) -> Iterator[Store]:
    store = store_for(victoria_metrics.url)
    yield store
    store.close()


async def test_writes_overlap_and_acks_stay_in_arrival_order(
    tmp_path: Path, vm_store: Store, victoria_metrics: VictoriaMetrics
) -> None:
    # The first write is the slowest: the later ones finish before it, while new
    # messages keep the writer busy starting writes.
    faults = Faults(delay={0: 0.4, 3: 0.2})
    write = WriteSettings(max_values=12, concurrency=4, max_delay=0.0)
    h = harness(tmp_path, vm_store, faults, write)

    await run_through(h, range(12), gap=0.03)

    assert h.store.most_in_flight >= 2
    assert h.acked == list(range(12)) and h.released == list(range(12))
    assert h.early == []
    assert stored_series(victoria_metrics) == expected_series([batch(s) for s in range(12)])


async def test_one_at_a_time_never_overlaps(tmp_path: Path) -> None:
    faults = Faults(delay={0: 0.1, 3: 0.1})
    h = harness(tmp_path, MemoryStore(), faults, WriteSettings(max_values=12, concurrency=1))

    await run_through(h, range(9))

    assert h.store.most_in_flight == 1
    assert h.released == list(range(9)) and h.early == []


async def test_a_failed_write_in_the_middle_is_spooled_and_nothing_is_lost(
    tmp_path: Path, vm_store: Store, victoria_metrics: VictoriaMetrics
) -> None:
    # Three writes at once (3 batches of 4 values each): the middle one fails after the
    # later one has been stored.
    faults = Faults(delay={0: 0.3, 3: 0.15}, unreachable={3: 1})
    h = harness(tmp_path, vm_store, faults, WriteSettings(max_values=12, concurrency=3))

    await run_through(h, range(9))

    assert h.store.most_in_flight == 3
    assert h.released == list(range(9)) and h.acked == list(range(9))
    assert h.early == []
    assert h.store.stored == set(range(9))  # seq 3-5 replayed from the spool
    assert stored_series(victoria_metrics) == expected_series([batch(s) for s in range(9)])
    saved = load(h.sequences_file).agents[("s", "a")]
    assert saved.ranges == [[0, 8]]


async def test_a_refused_write_in_the_middle_dead_letters_only_its_bad_batch(
    tmp_path: Path, vm_store: Store, victoria_metrics: VictoriaMetrics
) -> None:
    faults = Faults(delay={0: 0.3}, refused={4})
    h = harness(tmp_path, vm_store, faults, WriteSettings(max_values=12, concurrency=3))

    await run_through(h, range(9))

    assert h.released == list(range(9)) and h.early == []
    assert h.store.stored == set(range(9)) - {4}
    assert h.dead_letters.count == 1
    assert "HTTP 400: bad line" in h.dead_letters.path.read_text()
    kept = [batch(s) for s in range(9) if s != 4]
    assert stored_series(victoria_metrics) == expected_series(kept)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    concurrency=st.integers(1, 4),
    max_values=st.integers(4, 16),
    count=st.integers(1, 14),
    gap=st.sampled_from([0.0, 0.004]),
    delays=st.dictionaries(st.integers(0, 13), st.sampled_from([0.0, 0.002, 0.01, 0.03])),
    unreachable=st.dictionaries(st.integers(0, 13), st.integers(1, 2)),
    refused=st.sets(st.integers(0, 13), max_size=3),
)
def test_any_schedule_acks_every_message_once_in_order_once_durable(
    tmp_path_factory: pytest.TempPathFactory,
    concurrency: int,
    max_values: int,
    count: int,
    gap: float,
    delays: dict[int, float],
    unreachable: dict[int, int],
    refused: set[int],
) -> None:
    tmp_path = tmp_path_factory.mktemp("writer")
    faults = Faults(delays, unreachable, refused)
    write = WriteSettings(max_values=max_values, concurrency=concurrency, max_delay=0.0)
    h = harness(tmp_path, MemoryStore(), faults, write)

    asyncio.run(run_through(h, range(count), gap))

    bad = refused & set(range(count))
    assert h.released == list(range(count))
    assert sorted(h.acked) == list(range(count))  # each once
    # Settled in the order the writes started (the dead letters ack theirs themselves).
    assert [s for s in h.acked if s not in bad] == [s for s in range(count) if s not in bad]
    assert h.early == []
    assert h.store.stored == set(range(count)) - bad
    assert h.dead_letters.count == len(bad)
    assert h.store.most_in_flight <= concurrency
