"""The agent's disk outbox, on a real SQLite file: order, persistence, bounds, drop accounting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.publish.outbox import Limits, Outbox


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def payload(seq: int) -> bytes:
    return f"batch {seq}".encode()


def fill(outbox: Outbox, count: int, readings: int = 3) -> list[int]:
    return [outbox.add(payload, readings)[0] for _ in range(count)]


def test_batches_come_out_in_seq_order_and_leave_only_when_removed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    assert fill(outbox, 5) == [0, 1, 2, 3, 4]
    assert [e.seq for e in outbox.oldest(limit=10)] == [0, 1, 2, 3, 4]
    assert outbox.oldest(after=1, before=4, limit=10)[0].payload == b"batch 2"
    assert [e.seq for e in outbox.oldest(after=1, before=4, limit=10)] == [2, 3]
    assert outbox.remove(2) is True
    assert outbox.remove(2) is False
    assert [e.seq for e in outbox.oldest(limit=10)] == [0, 1, 3, 4]
    assert outbox.depth == 4
    assert outbox.get(3) is not None and outbox.get(2) is None


def test_everything_survives_a_restart_and_seq_never_repeats(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    fill(outbox, 3, readings=2)
    for seq in (0, 1, 2):
        outbox.remove(seq)
    fill(outbox, 2, readings=5)
    # No close(): a killed agent never gets to it.
    reopened = Outbox(path)
    assert reopened.next_seq == 5
    assert reopened.readings_taken == 16
    assert [e.seq for e in reopened.oldest(limit=10)] == [3, 4]
    assert reopened.depth == 2
    assert reopened.size == len(b"batch 3") + len(b"batch 4")
    assert reopened.add(payload, 1)[0] == 5
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_full_outbox_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", Limits(max_batches=3))
    fill(outbox, 3, readings=4)
    seq, dropped = outbox.add(payload, 4)
    assert seq == 3
    assert (dropped.batches, dropped.readings, dropped.first_seq, dropped.last_seq) == (1, 4, 0, 0)
    fill(outbox, 2, readings=4)
    assert [e.seq for e in outbox.oldest(limit=10)] == [3, 4, 5]
    assert (outbox.dropped_batches, outbox.dropped_readings) == (3, 12)
    assert outbox.readings_taken == 24
    reopened = Outbox(outbox.path, Limits(max_batches=3))
    assert (reopened.dropped_batches, reopened.dropped_readings) == (3, 12)


def test_the_byte_limit_drops_oldest_until_it_fits(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", Limits(max_bytes=3 * len(b"batch 0")))
    fill(outbox, 5)
    assert [e.seq for e in outbox.oldest(limit=10)] == [2, 3, 4]
    assert outbox.dropped_batches == 2


def test_batches_older_than_max_age_are_dropped(tmp_path: Path) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "outbox.sqlite", Limits(max_age=60), clock=clock)
    fill(outbox, 2)
    clock.now += 30
    fill(outbox, 1)
    assert outbox.prune().batches == 0
    clock.now += 31
    dropped = outbox.prune()
    assert (dropped.batches, dropped.first_seq, dropped.last_seq) == (2, 0, 1)
    assert [e.seq for e in outbox.oldest(limit=10)] == [2]
    assert outbox.oldest_created() == pytest.approx(clock.now - 31)


def test_removed_batches_are_never_counted_as_dropped(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", Limits(max_batches=2))
    for _ in range(10):
        seq, dropped = outbox.add(payload, 1)
        assert dropped.batches == 0
        outbox.remove(seq)
    assert outbox.dropped_batches == 0
    assert outbox.depth == 0
    assert outbox.oldest_created() is None


def test_a_removal_waits_for_the_next_add_to_reach_the_disk(tmp_path: Path) -> None:
    """remove() commits without an fsync of its own (synchronous=NORMAL for its
    transaction only); every add still commits with synchronous=FULL, which makes the
    removals before it durable too, since the WAL is appended in order."""
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    fill(outbox, 3)
    statements: list[str] = []
    outbox._conn.set_trace_callback(statements.append)
    assert outbox.remove(0) is True
    assert statements[0] == "PRAGMA synchronous=NORMAL"
    assert statements.count("COMMIT") == 1
    assert statements[-1] == "PRAGMA synchronous=FULL"
    statements.clear()
    assert outbox.remove(0) is False
    assert statements[-1] == "PRAGMA synchronous=FULL"
    # The next add commits as durably as before (2 = FULL).
    assert outbox._conn.execute("PRAGMA synchronous").fetchone() == (2,)
    statements.clear()
    fill(outbox, 1)
    assert not any("synchronous" in s for s in statements)
    # No close(): a killed agent never gets to it.
    reopened = Outbox(path)
    assert [e.seq for e in reopened.oldest(limit=10)] == [1, 2, 3]
