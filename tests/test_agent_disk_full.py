"""The agent on a full or read-only disk: readings wait in memory (bounded, drops counted
and logged), nothing crashes, and they reach the outbox by themselves when space returns.
The outbox and stats file live on a real small tmpfs that the test fills."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from disks import fill, small_filesystem

from agent.config import AgentConfig
from agent.publish import batcher as batcher_module
from agent.publish.outbox import Outbox, OutboxError
from agent.publish.publisher import Publisher
from greengauge.common.files import DiskFault, condition
from greengauge.contract import MeterReading, Quantity, ReadingBatch

START = datetime(2026, 1, 1, tzinfo=UTC)


def config(state_dir: Path) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "site": "s",
            "agent_id": "a",
            "mqtt": {"url": "mqtt://127.0.0.1:1"},
            "meters": [{"id": "m1", "profile": "eastron_sdm630", "modbus": {"host": "x"}}],
            "state_dir": str(state_dir),
        }
    )


def reading(index: int) -> MeterReading:
    return MeterReading(
        meter="m1", ts=START + timedelta(seconds=index), values={Quantity.POWER_ACTIVE: index}
    )


def in_outbox(outbox: Outbox) -> list[int]:
    values: list[int] = []
    for entry in outbox.oldest(limit=100_000):
        batch = ReadingBatch.model_validate_json(entry.payload)
        values += [int(r.values[Quantity.POWER_ACTIVE]) for r in batch.readings]
    return values


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / "state", 1024 * 1024) as folder:
        yield folder


async def test_readings_wait_for_a_full_disk_and_reach_the_outbox_after(
    disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(disk / "outbox.sqlite")
    publisher = Publisher(config(disk), outbox, {})
    batching = asyncio.create_task(publisher.batcher.run())
    try:
        filler = fill(disk)
        caplog.set_level(logging.INFO)
        for index in range(3000):
            publisher.submit(reading(index))
            if index % 100 == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)
        assert not batching.done()
        assert publisher.outbox_disk.condition == "disk full"
        publisher.report()  # the stats file cannot be written either: logged, not raised
        assert publisher.stats_disk.condition == "disk full"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 2, [r.getMessage() for r in errors]  # outbox, stats
        filler.unlink()
        for _ in range(200):
            if len(in_outbox(outbox)) == 3000:
                break
            await asyncio.sleep(0.05)
        assert sorted(in_outbox(outbox)) == list(range(3000))
        assert not publisher.outbox_disk.failing and publisher.unsaved_dropped == 0
        publisher.report()
        assert json.loads((disk / "stats.json").read_text())["readings_taken"] == 3000
    finally:
        batching.cancel()
        await asyncio.gather(batching, return_exceptions=True)
        outbox.close()


async def test_memory_is_bounded_while_the_disk_stays_full_and_drops_are_counted(
    disk: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(batcher_module, "MAX_UNSAVED_READINGS", 500)
    outbox = Outbox(disk / "outbox.sqlite")
    publisher = Publisher(config(disk), outbox, {})
    batching = asyncio.create_task(publisher.batcher.run())
    try:
        fill(disk)
        for index in range(2000):
            publisher.submit(reading(index))
            if index % 100 == 0:
                await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)
        publisher.batcher._take_queued()  # what the next retry does first
        waiting = sum(len(b) for b in publisher.batcher._unsaved)
        assert waiting <= 500 and publisher.batcher._queue.empty()
        assert publisher.unsaved_dropped + waiting == 2000
        assert "oldest readings in memory dropped" in caplog.text
        assert publisher.stats()["dropped_unsaved_readings"] == publisher.unsaved_dropped
    finally:
        batching.cancel()
        await asyncio.gather(batching, return_exceptions=True)
        outbox.close()


def test_a_read_only_state_dir_is_one_line_at_start(tmp_path: Path) -> None:
    with (
        small_filesystem(tmp_path / "state", 64 * 1024, read_only=True) as folder,
        pytest.raises(OutboxError, match="cannot open the outbox"),
    ):
        Outbox(folder / "outbox.sqlite")


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        (OSError(errno.EROFS, "Read-only file system"), "read-only filesystem"),
        (OSError(errno.EACCES, "Permission denied"), "permission denied"),
        (sqlite3.OperationalError("database or disk is full"), "disk full"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only filesystem"),
        (sqlite3.OperationalError("disk I/O error"), "disk I/O error"),
    ],
)
def test_a_write_failure_is_named_the_same_for_every_message(error: Exception, name: str) -> None:
    assert condition(error) == name


def test_a_disk_fault_logs_once_per_condition_and_once_when_it_clears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fault = DiskFault("outbox", tmp_path / "outbox.sqlite")
    caplog.set_level(logging.INFO)
    for _ in range(100):
        fault.failed(OSError(errno.ENOSPC, "No space left on device"))
    fault.failed(OSError(errno.EROFS, "Read-only file system"))
    fault.ok()
    fault.ok()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "cannot write: holding back, retrying",
        "cannot write: holding back, retrying",
        "writable again: resuming",
    ]
    assert fault.failures == 101 and not fault.failing
