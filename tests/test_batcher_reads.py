"""A poller's reads wait in the batcher as they came and are written as JSON with their
batch: the outbox gets the contract's JSON, the float32 decimals made then; a read the
contract refuses is left out, logged and counted, and the rest of its batch is kept."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.modbus.codec.plan import plan_reads
from agent.modbus.codec.scale import Float32Run
from agent.profiles import load_profile
from agent.publish.batcher import Batcher
from agent.publish.outbox import Outbox
from agent.reading import Read, custom_of
from greengauge.common.files import DiskFault
from greengauge.contract import Quantity, QuantityName, ReadingBatch

PROFILE = load_profile(str(Path(__file__).parents[1] / "bench/profiles/sdm630_full45.yaml"))
TS = datetime(2026, 11, 28, 3, 0, 1, tzinfo=UTC)


def read_of_runs(meter: str) -> Read:
    """A read of the 45-value map with every register at 230.1, as a poller makes it."""
    values: dict[QuantityName, float] = {}
    runs: list[Float32Run] = []
    for block in plan_reads(PROFILE):
        run = block.float32_run([0x4366, 0x199A] * (block.count // 2) + [0] * (block.count % 2))
        assert run is not None
        runs.append(run)
        values.update(zip(run.quantities, run.raws, strict=True))
    return Read(meter, TS, values, custom_of(PROFILE.custom_units), runs)


def test_reads_are_written_with_their_batch_and_a_refused_one_is_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    live: asyncio.Queue[int] = asyncio.Queue()
    disk = DiskFault("outbox", tmp_path / "outbox.sqlite")
    batcher = Batcher("plant-a", "gw-01", outbox, disk, live, lambda: None)
    caplog.set_level(logging.ERROR)
    try:
        batcher.submit(read_of_runs("m1"))
        batcher.submit(Read("bad/id", TS, {Quantity.FREQUENCY: 50.0}))  # not a meter id
        batcher.submit(read_of_runs("m2"))
        batcher.commit_queued()
        [entry] = outbox.oldest(limit=10)
        batch = ReadingBatch.model_validate_json(entry.payload)
        assert [r.meter for r in batch.readings] == ["m1", "m2"] and entry.readings == 2
        for reading in batch.readings:
            assert reading.size == 45
            assert set(reading.values.values()) == {230.1}
            assert {v.value for v in reading.custom.values()} == {230.1}
        assert entry.payload.count(b"230.1") == 90  # the shortest decimal, as read
        assert batcher.refused == 1
        [record] = caplog.records
        assert "refused" in record.getMessage()
        assert record.kv["meter"] == "bad/id" and "meter" in record.kv["reason"]  # type: ignore[attr-defined]
    finally:
        outbox.close()


def test_a_batch_of_refused_reads_only_is_no_batch(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    disk = DiskFault("outbox", tmp_path / "outbox.sqlite")
    batcher = Batcher("plant-a", "gw-01", outbox, disk, asyncio.Queue(), lambda: None)
    try:
        batcher.submit(Read("m1", TS, {}))  # no value
        batcher.commit_queued()
        assert outbox.depth == 0 and batcher.refused == 1
    finally:
        outbox.close()
