"""Energy accounting on a full disk (a real tmpfs): the step that cannot be written is
rolled back and retried with its readings, the accounting task keeps running, and the
readings are accounted once space returns."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from disks import fill, small_filesystem
from test_api import READ, SITE, WRITE, batch, make_rig, output, plant, post, tokens

from collector.accounting.engine import Accounting
from collector.ingest import Message
from greengauge.contract import ReadingBatch

START = datetime(2026, 11, 2, 8, tzinfo=UTC)


def batches(count: int) -> list[ReadingBatch]:
    return [batch(i, START + timedelta(minutes=i), m1=(100.0 + i, 1000.0)) for i in range(count)]


async def test_a_full_disk_is_retried_with_the_same_readings(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", 1024 * 1024) as disk:
        config = plant().model_copy(update={"interval": 0.05})
        accounting = Accounting(config, disk)
        filler = fill(disk)
        for b in batches(200):
            accounting.feed(b)
        with pytest.raises(sqlite3.Error):
            await accounting.step()
        assert len(accounting._queue) == 200 and accounting.readings_used == 0
        task = asyncio.create_task(accounting.run())
        await asyncio.sleep(0.3)
        assert not task.done() and accounting.disk.condition == "disk full"
        filler.unlink()
        for _ in range(100):
            if accounting.readings_used:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert accounting.readings_used == 200 and not accounting.disk.failing
        assert accounting.db.query("SELECT COUNT(*) FROM minute WHERE site = ?", (SITE,))[0][0] > 0
        accounting.close()


async def test_an_mes_message_waits_unacknowledged_for_the_disk_and_the_api_says_503(
    tmp_path: Path,
) -> None:
    with small_filesystem(tmp_path / "disk", 1024 * 1024) as disk:
        rig = make_rig(disk, tokens(READ, WRITE))
        live = rig.ctx.live
        assert live is not None
        filler = fill(disk)
        body = output(rig, "l1", 10.0)
        refused = post(rig, body)
        assert refused.status_code == 503 and "disk full" in refused.json()["detail"]
        acked: list[str] = []
        topic = f"greengauge/v1/{SITE}/production"
        live.receive(Message(topic, json.dumps(body).encode(), lambda: acked.append("first")))
        later = {**body, "quantity": 20.0}
        live.receive(Message(topic, json.dumps(later).encode(), lambda: acked.append("later")))
        await asyncio.sleep(0.5)
        assert acked == [] and rig.accounting.disk.condition == "disk full"
        filler.unlink()
        for _ in range(100):
            if len(acked) == 2:
                break
            await asyncio.sleep(0.05)
        assert acked == ["first", "later"]  # in order: the later period replaced the first
        assert post(rig, body).status_code == 202
        rig.client.close()
        rig.accounting.close()
        rig.store.close()
