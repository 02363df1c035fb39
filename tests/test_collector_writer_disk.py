"""The batch writer on a full disk (a real tmpfs): nothing is acknowledged before it is
durable somewhere, the writer does not stop, and it catches up by itself."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from disks import fill, small_filesystem
from test_collector_writer import FakeStore, add

from collector.config import WriteSettings
from collector.deadletters import DeadLetters
from collector.sequences import SequenceTracker
from collector.spool import Spool
from collector.writer import BatchWriter


def writer_on(disk: Path, store: FakeStore) -> tuple[BatchWriter, DeadLetters, Spool]:
    dead_letters = DeadLetters(disk / "dead.jsonl")
    spool = Spool(disk / "spool.sqlite")
    writer = BatchWriter(
        store,
        WriteSettings(max_values=3),
        dead_letters,
        spool,
        SequenceTracker(),
        disk / "sequences.json",
    )
    return writer, dead_letters, spool


async def test_store_down_and_spool_full_holds_messages_back_unacked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    with small_filesystem(tmp_path / "disk", 512 * 1024) as disk:
        writer, _, spool = writer_on(disk, store)
        store.up = False
        filler = fill(disk)
        acked: list[int] = []
        caplog.set_level(logging.WARNING)
        for seq in range(20):
            add(writer, acked, seq)
            await writer.flush()
            writer._retry_at = 0.0  # skip the backoff's wait
        assert acked == [] and writer.pending == 20 and spool.depth == 0
        assert writer.disk.condition == "disk full"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert caplog.text.count("store unavailable") == 1
        filler.unlink()
        await writer.flush()
        assert acked == list(range(20)) and spool.depth == 20 and writer.pending == 0
        assert not writer.disk.failing
        store.up = True
        writer._replay_at = 0.0
        for _ in range(10):
            await writer.replay()
        assert store.batches == list(range(20)) and spool.depth == 0
        spool.close()


async def test_a_refused_message_is_acked_only_once_its_dead_letter_is_durable(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    store.refuse = {1}
    with small_filesystem(tmp_path / "disk", 512 * 1024) as disk:
        writer, dead_letters, spool = writer_on(disk, store)
        filler = fill(disk)
        acked: list[int] = []
        for seq in range(3):
            add(writer, acked, seq)
        await writer.flush()
        assert sorted(acked) == [0, 2]  # stored; the refused one waits for the disk
        assert dead_letters.pending == 1
        filler.unlink()
        dead_letters.write_waiting()
        assert sorted(acked) == [0, 1, 2]
        assert "HTTP 400" in (disk / "dead.jsonl").read_text()
        spool.close()


async def test_a_spooled_message_refused_on_replay_stays_spooled_until_its_dead_letter_is_durable(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    with small_filesystem(tmp_path / "disk", 512 * 1024) as disk:
        writer, dead_letters, spool = writer_on(disk, store)
        acked: list[int] = []
        store.up = False
        for seq in range(3):
            add(writer, acked, seq)
        await writer.flush()
        assert spool.depth == 3 and acked == [0, 1, 2]
        store.up, store.refuse = True, {1}
        filler = fill(disk)
        for _ in range(3):
            writer._replay_at = 0.0
            await writer.replay()
            # Nothing leaves the spool unless it is in the store or durably dead-lettered.
            assert spool.depth >= 2 and set(store.batches) <= {0}
            assert not (disk / "dead.jsonl").exists() or not (disk / "dead.jsonl").read_text()
        filler.unlink()
        for _ in range(5):
            dead_letters.write_waiting()
            writer._replay_at = 0.0
            await writer.replay()
        assert set(store.batches) == {0, 2} and spool.depth == 0
        lines = (disk / "dead.jsonl").read_text().splitlines()
        assert len(lines) == 1 and "HTTP 400" in lines[0]
        spool.close()


async def test_a_spooled_message_stays_spooled_while_only_the_dead_letters_disk_is_full(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    spool = Spool(tmp_path / "spool.sqlite")  # a disk with room
    with small_filesystem(tmp_path / "disk", 256 * 1024) as disk:
        dead_letters = DeadLetters(disk / "dead.jsonl")
        writer = BatchWriter(
            store,
            WriteSettings(max_values=3),
            dead_letters,
            spool,
            SequenceTracker(),
            tmp_path / "sequences.json",
        )
        acked: list[int] = []
        store.up = False
        for seq in range(3):
            add(writer, acked, seq)
        await writer.flush()
        store.up, store.refuse = True, {1}
        filler = fill(disk)
        for _ in range(3):
            writer._replay_at = 0.0
            await writer.replay()
            # 0 stored and gone from the spool; 1 waits there for its dead letter, once.
            assert set(store.batches) == {0} and spool.depth == 2
            assert dead_letters.pending == 1
        filler.unlink()
        dead_letters.write_waiting()
        writer._replay_at = 0.0
        await writer.replay()
        assert store.batches[-1] == 2 and spool.depth == 0
        assert len((disk / "dead.jsonl").read_text().splitlines()) == 1
    spool.close()
